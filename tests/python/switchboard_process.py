"""A real `switchboard serve` child process for the Python tests."""

import json
import os
import pathlib
import subprocess
import threading

ROOT = pathlib.Path(__file__).resolve().parents[2]


def switchboard_bin() -> str:
    return os.environ.get("SWITCHBOARD_BIN", str(ROOT / "target" / "debug" / "switchboard"))


class Server:
    """A `switchboard serve` child process; `addr` is host:port. `listen`
    picks the port (a restart on the same port: pass the old `addr`)."""

    def __init__(self, *args: str, listen: str = "127.0.0.1:0"):
        self.proc = subprocess.Popen(
            [switchboard_bin(), "serve", "--listen", listen, "--metrics-listen", "127.0.0.1:0", "--log-format", "json", *args],
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
