"""A Python grpcio client connects with TLS and a bearer token, the way a
production bridge would; without the token it is refused."""

import hashlib
import json

import grpc
import pytest
import trustme

from switchboard_process import Server


@pytest.fixture
def tls_server(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    token = "sbt_python-bridge-secret"
    (tmp_path / "tokens.toml").write_text(
        "[[tokens]]\n"
        'name = "python-bridge"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        'tenant = "acme"\n'
        'roles = ["ingest", "subscribe", "query"]\n'
    )
    server = Server(
        "--store", "memory",
        "--tls-cert", str(tmp_path / "server.pem"),
        "--tls-key", str(tmp_path / "server.key"),
        "--auth-file", str(tmp_path / "tokens.toml"),
    )
    yield server, ca.cert_pem.bytes(), token
    server.stop()


def test_a_python_client_connects_with_tls_and_a_token(stubs, tls_server):
    server, ca_pem, token = tls_server
    port = server.addr.rsplit(":", 1)[1]
    tls = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    creds = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))
    with grpc.secure_channel(f"localhost:{port}", creds) as channel:
        ingest = stubs.ingest_grpc.IngestServiceStub(channel)
        payload = json.dumps({"type": "callstarted", "detail": {"callId": "py-tls", "callType": "inbound"}}).encode()
        resp = ingest.Ingest(stubs.ingest.IngestRequest(vendor=stubs.types.VENDOR_SALESFORCE_VOICE, payload=payload))
        assert resp.outcome == stubs.ingest.INGEST_OUTCOME_ACCEPTED
        assert resp.events[0].tenant_id == "acme"
        calls = stubs.calls_grpc.CallServiceStub(channel)
        assert calls.GetCall(stubs.calls.GetCallRequest(call_id="sf:py-tls")).call.tenant_id == "acme"

    with grpc.secure_channel(f"localhost:{port}", tls) as channel:
        ingest = stubs.ingest_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            ingest.Ingest(stubs.ingest.IngestRequest(payload=b"{}"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
