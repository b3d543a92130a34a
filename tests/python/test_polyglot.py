"""A Python grpcio client, generated from proto/ at test time, ingests,
subscribes, queries and reads rich errors: proof that a non-Rust client
works against the published contract."""

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def sf(event_type, call_id, **detail):
    return json.dumps({"type": event_type, "detail": {"callId": call_id, **detail}}).encode()


def test_a_python_client_ingests_and_subscribes_and_queries(stubs, server):
    with grpc.insecure_channel(server.addr) as channel:
        ingest = stubs.ingest_grpc.IngestServiceStub(channel)
        calls = stubs.calls_grpc.CallServiceStub(channel)
        resp = ingest.Ingest(
            stubs.ingest.IngestRequest(
                vendor=stubs.types.VENDOR_SALESFORCE_VOICE,
                payload=sf("callstarted", "py-1", callType="inbound", participant="+1 (415) 555-0132"),
            )
        )
        assert resp.outcome == stubs.ingest.INGEST_OUTCOME_ACCEPTED
        event = resp.events[0]
        assert event.call_id == "sf:py-1"
        assert event.parties[0].e164 == "+14155550132"
        ingest.Ingest(stubs.ingest.IngestRequest(payload=sf("callconnected", "py-1")))  # vendor detected

        stream = calls.Subscribe(stubs.calls.SubscribeRequest(from_beginning=True))
        updates = []
        for msg in stream:
            kind = msg.WhichOneof("response")
            if kind == "update":
                updates.append(msg.update)
            elif kind == "checkpoint" and msg.checkpoint.reason == stubs.calls.CHECKPOINT_REASON_CAUGHT_UP:
                break
        stream.cancel()
        assert [u.event.sequence for u in updates] == [1, 2]
        assert updates[-1].call.state == stubs.call.CALL_STATE_CONNECTED

        call = calls.GetCall(stubs.calls.GetCallRequest(call_id="sf:py-1")).call
        assert call.call_sequence == 2
        listed = calls.ListCalls(stubs.calls.ListCallsRequest(page_size=10))
        assert [c.call_id for c in listed.calls] == ["sf:py-1"]
        assert listed.next_page_token == ""


def test_a_python_client_sees_live_updates_after_caught_up(stubs, server):
    with grpc.insecure_channel(server.addr) as channel:
        ingest = stubs.ingest_grpc.IngestServiceStub(channel)
        calls = stubs.calls_grpc.CallServiceStub(channel)
        stream = calls.Subscribe(stubs.calls.SubscribeRequest())
        first = next(stream)
        assert first.checkpoint.reason == stubs.calls.CHECKPOINT_REASON_CAUGHT_UP
        ingest.Ingest(stubs.ingest.IngestRequest(vendor=stubs.types.VENDOR_SALESFORCE_VOICE, payload=sf("hold", "py-live")))
        live = next(stream)
        assert live.update.event.call_id == "sf:py-live"
        stream.cancel()


def test_a_python_client_reads_the_bad_request_details(stubs, server):
    with grpc.insecure_channel(server.addr) as channel:
        ingest = stubs.ingest_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            ingest.Ingest(stubs.ingest.IngestRequest(vendor=stubs.types.VENDOR_SALESFORCE_VOICE, payload=b'{"type":"hold","detail":{}}'))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(err.value)
        violations = []
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                violations = [v.field for v in br.field_violations]
        assert violations == ["detail.callId"]


def test_reflection_describes_the_services_the_way_grpcurl_does(stubs, server):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(server.addr) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"switchboard.v1.IngestService", "switchboard.v1.CallService", "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(db)
        svc = pool.FindServiceByName("switchboard.v1.CallService")
        subscribe = svc.FindMethodByName("Subscribe")
        assert subscribe.server_streaming
        assert subscribe.output_type.full_name == "switchboard.v1.SubscribeResponse"
        # Every field type resolves, including the well-known types.
        event = pool.FindMessageTypeByName("switchboard.v1.CallEvent")
        assert event.fields_by_name["occurred_at"].message_type.full_name == "google.protobuf.Timestamp"
