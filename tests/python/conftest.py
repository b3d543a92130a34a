"""Fixtures of the polyglot tests: Python stubs generated from proto/ with
grpcio-tools at test time, and a real `switchboard serve` process."""

import importlib.resources
import pathlib
import sys
import tempfile

import pytest

from browser import chromium  # noqa: F401  (the session's one headless Chromium, for the board and relay tests)
from switchboard_process import Server

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stubs():
    """Generates `switchboard/v1/*_pb2*.py` into a temp dir and imports them."""
    from grpc_tools import protoc

    out = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-py-"))
    wkt = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    rc = protoc.main(["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    assert rc == 0, "grpcio-tools failed to generate the stubs"
    sys.path.insert(0, str(out))
    from switchboard.v1 import call_pb2, call_service_pb2, call_service_pb2_grpc, ingest_service_pb2, ingest_service_pb2_grpc, types_pb2

    class Stubs:
        pass

    s = Stubs()
    s.calls, s.calls_grpc = call_service_pb2, call_service_pb2_grpc
    s.ingest, s.ingest_grpc = ingest_service_pb2, ingest_service_pb2_grpc
    s.types = types_pb2
    s.call = call_pb2
    return s


@pytest.fixture
def server():
    s = Server("--store", "memory")
    yield s
    s.stop()
