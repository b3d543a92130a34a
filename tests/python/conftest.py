"""Fixtures of the polyglot tests: Python stubs generated from proto/ with
grpcio-tools at test time, and a real `switchboard serve` process."""

import importlib.resources
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def switchboard_bin() -> str:
    return os.environ.get("SWITCHBOARD_BIN", str(ROOT / "target" / "debug" / "switchboard"))


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


class Server:
    """A `switchboard serve` child process; `addr` is host:port."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [switchboard_bin(), "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.addr = None
        for line in self.proc.stderr:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "grpc" in rec:
                self.addr = rec["grpc"]
                break
        assert self.addr, "the server did not announce its address"
        # Keep draining the log so the child never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def server():
    s = Server("--store", "memory")
    yield s
    s.stop()
