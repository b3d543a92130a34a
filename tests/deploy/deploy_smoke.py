"""The image and the chart's pod, really run: `scripts/deploy-smoke` runs this.

1. Builds the runtime image FROM scratch out of the host-built release binary
   (`runtime_image.py`) and checks that its config (`podman image inspect`) is the one the
   Dockerfile yields: entrypoint, command, user, ports, environment, working directory.
2. For each values set (the chart's defaults; explicit tokens with TLS) renders the chart
   with the Helm engine the chart tests use, turns the rendering into what podman 4.3's
   `kube play` can run (each substitution is named in `for_podman`), plays it, and checks
   through the published ports: gRPC health SERVING (the health port the kubelet probes,
   and the API port), an Ingest and a Subscribe that receives it (the switchboard CLI,
   with the release's bearer token and, with TLS, the CA), `/readyz` on the metrics port,
   that the server runs as UID 65532 with a read-only root filesystem, and that its sqlite
   store is written on the volume.
3. Removes its pods, volumes, secrets and image, also after a failure.

Exits 0 when every check passed, 1 otherwise. Needs root (rootful podman) and
CONTAINERS_CONF naming a containers.conf with the runc runtime (scripts/deploy-smoke
writes one).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import helm_python
import trustme
import yaml

from chart_support import Rendered, render
from runtime_image import (
    NONROOT_UID,
    ROOT,
    assemble_context,
    data_dir,
    dockerfile_config,
    image_config,
    scratch_containerfile,
)

IMAGE_REPOSITORY = "localhost/switchboard"
IMAGE_TAG = "deploy-smoke"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
RELEASE = "smoke"
NAMESPACE = "smoke"
FIXTURES = ROOT / "tests" / "fixtures" / "salesforce_voice"
DEADLINE = 60.0

# Kinds podman 4.3 `kube play` runs. The rest are dropped, each for its reason in `for_podman`.
PLAYABLE = {"ConfigMap", "PersistentVolumeClaim", "Deployment"}


# --- running things ------------------------------------------------------------------


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["podman", *args], capture_output=capture, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run


def poll(what: str, attempt: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    """`attempt()` until it returns a truthy value, at most `deadline` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        try:
            last = attempt()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported when the deadline passes
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {deadline:.0f}s (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Report:
    """Every check's outcome, printed as it happens."""

    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, ok, detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def run(self, name: str, body: Callable[[], str | None]) -> bool:
        """Runs `body`; an exception fails the check with its message."""
        try:
            detail = body() or ""
        except Exception as e:  # noqa: BLE001 - a failed check, reported
            return self.check(name, False, f"{type(e).__name__}: {e}")
        return self.check(name, True, detail)

    @property
    def failed(self) -> list[str]:
        return [name for name, ok, _ in self.results if not ok]


# --- the image -----------------------------------------------------------------------


def build_image(binary: Path, work: Path, report: Report) -> bool:
    print(f"\n==> runtime image {IMAGE} FROM scratch, from {binary}", flush=True)
    wanted = dockerfile_config()
    context = work / "image"
    assemble_context(binary, context)
    (context / "Containerfile").write_text(scratch_containerfile(wanted, data_dir()))
    podman("build", "--quiet", "--tag", IMAGE, "--file", str(context / "Containerfile"), str(context))
    (inspect,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    built = image_config(inspect)
    return report.check(
        "the scratch image has the Dockerfile's entrypoint, command, user, ports, env and workdir",
        not built.differences(wanted),
        "; ".join(built.differences(wanted)),
    )


# --- the chart, for podman 4.3 -------------------------------------------------------


@dataclass
class Played:
    """What `for_podman` made of one rendering."""

    docs: list[dict[str, Any]]
    secrets: dict[str, dict[str, Any]]
    volumes: list[str]
    ports: dict[str, int]
    pod_name: str
    readiness_service: str


def is_server(workload: dict[str, Any]) -> bool:
    """The switchboard server's workload (the chart may render others, e.g. connectors)."""
    return any(c.get("args", [])[:1] == ["serve"] for c in workload["spec"]["template"]["spec"]["containers"])


def for_podman(rendered: Rendered) -> Played:
    """The rendering as podman 4.3 `kube play` can run it. Every change is one of these
    substitutions; nothing else of the pod specs is touched."""
    out: list[dict[str, Any]] = []
    podman_secrets: dict[str, dict[str, Any]] = {}
    workloads: list[dict[str, Any]] = []
    for doc in (copy.deepcopy(d) for d in rendered.docs):
        kind = doc["kind"]
        if kind == "Secret":
            # Secret → podman secret: podman 4.3 reads `secret` volumes from podman secrets
            # holding a Kubernetes Secret (`podman secret create NAME secret.yaml`), not from
            # Secret documents in the played file. Its `data` decoded: podman 4.3 writes
            # `data` values into the volume as they stand, without base64-decoding them
            # (and it ignores `stringData`).
            data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
            doc["data"] = {**data, **doc.pop("stringData", {})}
            podman_secrets[doc["metadata"]["name"]] = doc
        elif kind in ("StatefulSet", "Deployment"):
            workloads.append(doc)
        elif kind in PLAYABLE:
            out.append(doc)
        # Dropped: Service (→ hostPort below), ServiceAccount (podman has no API server
        # to hand out tokens), NetworkPolicy, HPA, PDB, ServiceMonitor (no controllers
        # here), and the `helm test` Pod (its command, `switchboard health`, runs from
        # the host against the published health port instead).
    servers = [w for w in workloads if is_server(w)]
    assert len(servers) == 1, f"expected one server workload, found {[w['metadata']['name'] for w in workloads]}"

    volumes: list[str] = []
    ports: dict[str, int] = {}
    pod_name = readiness = ""
    for workload in workloads:
        server = is_server(workload)
        if workload["kind"] == "StatefulSet":
            workload, claims = statefulset_as_deployment(workload)
            out.extend(claims)
            volumes.extend(c["metadata"]["name"] for c in claims)
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            # podman 4.3 materializes ConfigMap and Secret volumes as named podman volumes
            # (named after the source), which outlive `kube down` and are reused as they
            # are by the next play: the smoke removes them before and after.
            if "configMap" in volume:
                volumes.append(volume["configMap"]["name"])
            if "secret" in volume:
                volumes.append(volume["secret"]["secretName"])
                # secret volumes get an explicit `optional: false`: podman 4.3
                # dereferences the field without a nil check (a SIGSEGV in
                # kube.VolumeFromSecret).
                volume["secret"].setdefault("optional", False)
            if "persistentVolumeClaim" in volume:
                volumes.append(volume["persistentVolumeClaim"]["claimName"])
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if "subPath" in mount:
                    # subPath → a directory mount: podman 4.3 ignores subPath and mounts
                    # the whole volume as a directory at mountPath. Mount it at
                    # `<mountPath>.d` and point the arguments that named the file at the
                    # file inside.
                    original, sub = mount["mountPath"], mount.pop("subPath")
                    mount["mountPath"] = f"{original}.d"
                    container["args"] = [f"{original}.d/{sub}" if a == original else a for a in container.get("args", [])]
            if server and "readinessProbe" in container:
                readiness = container["readinessProbe"]["grpc"]["service"]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                # Probes dropped: podman 4.3 knows no gRPC probes (it would turn exec/http
                # probes into healthchecks run inside the image, which has no shell). The
                # smoke asks the same grpc.health.v1 services from the host instead.
                container.pop(probe, None)
            for port in container.get("ports", []) if server else []:
                # Service → hostPort: no Service here; each port of the server is
                # published on a free port of the host's loopback.
                port["hostPort"] = ports[port["name"]] = free_port()
                port["hostIP"] = "127.0.0.1"
        if server:
            pod_name = f"{workload['metadata']['name']}-pod-0"
        out.append(workload)
    return Played(out, podman_secrets, sorted(set(volumes)), ports, pod_name, readiness)


def statefulset_as_deployment(sts: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """StatefulSet → Deployment: podman 4.3 plays Pods and Deployments only. One replica
    either way (sqlite); the StatefulSet-only fields go. Its volumeClaimTemplates →
    PersistentVolumeClaims (named `<template>-<statefulset>-0`, the claims Kubernetes
    would create) and pod volumes naming them: podman makes a named volume for each."""
    name = sts["metadata"]["name"]
    spec = {"replicas": 1, "selector": sts["spec"]["selector"], "template": sts["spec"]["template"]}
    pod = spec["template"]["spec"]
    security = pod.get("securityContext", {})
    claims = []
    for template in sts["spec"].get("volumeClaimTemplates", []):
        claim = f"{template['metadata']['name']}-{name}-0"
        annotations = dict(template["metadata"].get("annotations") or {})
        if "fsGroup" in security:
            # fsGroup → the volume's owner: podman 4.3 ignores fsGroup and would create the
            # volume owned by root, which the pod's user cannot write; its PVC annotations
            # `volume.podman.io/uid|gid` set the owner instead.
            annotations["volume.podman.io/uid"] = str(security.get("runAsUser", security["fsGroup"]))
            annotations["volume.podman.io/gid"] = str(security["fsGroup"])
        claims.append(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "annotations": annotations}, "spec": template["spec"]}
        )
        pod.setdefault("volumes", []).append({"name": template["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": sts["metadata"], "spec": spec}, claims


# --- one values set, played and checked ----------------------------------------------


@dataclass
class Scenario:
    name: str
    values: dict[str, Any]
    token: Callable[[Rendered], str]
    ca_file: Path | None = None


def generated_token(rendered: Rendered) -> str:
    """The token the chart generated, from its Secret (what the install notes tell users to read)."""
    secret = next(d for d in rendered.all("Secret") if "token" in d.get("data", {}))
    return base64.b64decode(secret["data"]["token"]).decode()


def scenarios(work: Path) -> list[Scenario]:
    image = {"image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG, "pullPolicy": "Never"}}
    token = secrets.token_urlsafe(32)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = work / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls_auth = {
        **image,
        "auth": {
            "tokens": [
                {
                    "name": "smoke",
                    "sha256": hashlib.sha256(token.encode()).hexdigest(),
                    "tenant": "default",
                    "roles": ["ingest", "subscribe", "query"],
                }
            ]
        },
        "tls": {
            "enabled": True,
            "cert": "".join(b.bytes().decode() for b in cert.cert_chain_pems),
            "key": cert.private_key_pem.bytes().decode(),
        },
    }
    return [
        Scenario("defaults (sqlite on a volume, generated token)", image, generated_token),
        Scenario("explicit tokens and TLS", tls_auth, lambda _: token, ca_file),
    ]


def switchboard(binary: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)


def server_container(pod_name: str) -> dict[str, Any]:
    listed = json.loads(podman("ps", "--all", "--filter", f"pod={pod_name}", "--format", "json").stdout)
    (server,) = [c for c in listed if not c.get("IsInfra")]
    return server


def first_event(binary: Path, client: list[str]) -> str:
    """Subscribes from the beginning and returns the first event line it prints."""
    proc = subprocess.Popen([str(binary), "subscribe", "--from-beginning", *client], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=DEADLINE)
        if line is None:
            raise RuntimeError(f"subscribe ended without an event: {proc.stderr.read() if proc.stderr else ''}")
        return line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def play(scenario: Scenario, binary: Path, work: Path, report: Report) -> None:
    print(f"\n==> chart: {scenario.name}", flush=True)
    rendered = render(scenario.values, name=RELEASE, namespace=NAMESPACE)
    played = for_podman(rendered)
    kube = work / f"kube-{len(report.results)}.yaml"
    kube.write_text(yaml.safe_dump_all(played.docs, sort_keys=False))
    with ExitStack() as cleanup:
        for name, secret in played.secrets.items():
            path = work / f"secret-{name}.yaml"
            path.write_text(yaml.safe_dump(secret))
            podman("secret", "rm", name, check=False)
            podman("secret", "create", name, str(path))
            cleanup.callback(podman, "secret", "rm", name, check=False)

        def remove_volumes() -> None:
            for volume in played.volumes:
                podman("volume", "rm", "--force", volume, check=False)

        remove_volumes()
        cleanup.callback(remove_volumes)
        cleanup.callback(podman, "kube", "down", str(kube), check=False)
        played_out = podman("kube", "play", str(kube), check=False)
        failure = "" if played_out.returncode == 0 else played_out.stderr.strip()
        if not report.check("podman kube play runs the rendered pod", not failure, failure):
            return
        check_pod(scenario, rendered, played, binary, report)


def check_pod(scenario: Scenario, rendered: Rendered, played: Played, binary: Path, report: Report) -> None:
    ports = played.ports
    token = scenario.token(rendered)
    health_addr = f"http://127.0.0.1:{ports['health']}"
    readiness = played.readiness_service

    def healthy(addr: str, service: str) -> bool:
        run = switchboard(binary, "health", "--addr", addr, "--service", service, "--timeout", "2s")
        return run.returncode == 0 and run.stdout.strip() == "SERVING"

    def serving_on_health_port() -> str:
        poll("health port SERVING", lambda: healthy(health_addr, ""))
        poll(f"health port SERVING for {readiness}", lambda: healthy(health_addr, readiness))
        return f"{health_addr}, services '' and {readiness}"

    if not report.run("gRPC health SERVING on the health port (what the kubelet probes)", serving_on_health_port):
        logs = podman("logs", "--tail", "20", server_container(played.pod_name)["Id"], check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        return

    scheme = "https" if scenario.ca_file else "http"
    # `--token=…` in one argument: a URL-safe token may begin with `-`, which
    # the CLI would otherwise read as a flag (a CI run drew `-j…`).
    client = ["--addr", f"{scheme}://127.0.0.1:{ports['grpc']}", f"--token={token}"]
    if scenario.ca_file:
        client += ["--ca-cert", str(scenario.ca_file)]
    tls_note = " over TLS" if scenario.ca_file else ""

    def api_health() -> str:
        run = switchboard(binary, "health", "--service", readiness, "--timeout", "5s", *client)
        if run.returncode != 0 or run.stdout.strip() != "SERVING":
            raise RuntimeError(run.stderr.strip() or run.stdout.strip())
        return run.stdout.strip()

    report.run(f"gRPC health SERVING on the API port{tls_note}", api_health)

    def ingest() -> str:
        run = switchboard(binary, "ingest", *client, str(FIXTURES / "callstarted.json"))
        if run.returncode != 0:
            raise RuntimeError(run.stderr.strip() or run.stdout.strip())
        outcome = json.loads(run.stdout).get("outcome")
        if outcome != "INGEST_OUTCOME_ACCEPTED":
            raise RuntimeError(f"not accepted: {run.stdout.strip()}")
        return outcome

    def rejected_without_token() -> str:
        run = switchboard(binary, "ingest", *client[:2], *client[3:], str(FIXTURES / "callstarted.json"))
        if run.returncode == 0 or "unauthenticated" not in (run.stderr + run.stdout).lower():
            raise RuntimeError(f"expected UNAUTHENTICATED: {run.returncode} {run.stderr.strip()}")
        return "UNAUTHENTICATED"

    def subscribe() -> str:
        event = json.loads(first_event(binary, client))
        if "call_started" not in json.dumps(event):
            raise RuntimeError(f"unexpected first event: {event}")
        return f"{event.get('type')} sequence {event.get('sequence')}"

    report.run(f"Ingest through the published API port{tls_note}", ingest)
    report.run("an Ingest without the token is refused", rejected_without_token)
    report.run(f"Subscribe through the published API port receives it{tls_note}", subscribe)

    def readyz() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/readyz", timeout=5) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return f"HTTP {r.status}"

    report.run("/readyz on the metrics port", readyz)

    server = server_container(played.pod_name)
    (inspect,) = json.loads(podman("container", "inspect", server["Id"]).stdout)
    pid = inspect["State"]["Pid"]

    def runs_as_nonroot() -> str:
        status = Path(f"/proc/{pid}/status").read_text()
        ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines() if line.startswith(("Uid:", "Gid:"))}
        if ids["Uid"] != [str(NONROOT_UID)] * 4 or ids["Gid"] != [str(NONROOT_UID)] * 4:
            raise RuntimeError(f"uid/gid {ids}")
        return f"pid {pid}: uid and gid {NONROOT_UID}"

    def mounts() -> dict[str, str]:
        # /proc/PID/mountinfo: field 5 is the mount point, field 6 its options.
        return {f[4]: f[5] for f in (line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines())}

    def read_only_root() -> str:
        options = mounts()["/"].split(",")
        if "ro" not in options or not inspect["HostConfig"]["ReadonlyRootfs"]:
            raise RuntimeError(f"root mounted {options}")
        return f"/ mounted {options[0]}"

    store_dir = data_dir()  # the Dockerfile's; tests/deploy checks the chart renders the same

    def store_on_volume() -> str:
        options = mounts().get(store_dir)
        if options is None or "rw" not in options.split(","):
            raise RuntimeError(f"{store_dir} is not a writable mount: {options}")
        volume = next((m for m in inspect["Mounts"] if m["Destination"] == store_dir), None)
        if volume is None or volume.get("Type") != "volume":
            raise RuntimeError(f"{store_dir} is not a podman volume: {volume}")
        source = Path(volume["Source"])
        files = {p.name: p.stat() for p in source.iterdir()}
        dbs = [n for n in files if n.endswith(".db")]
        if not dbs or files[dbs[0]].st_size == 0 or files[dbs[0]].st_uid != NONROOT_UID:
            raise RuntimeError(f"no sqlite store written by {NONROOT_UID} in {source}: {sorted(files)}")
        return f"volume {volume['Name']}: {', '.join(f'{n} ({files[n].st_size} B)' for n in sorted(files))}"

    report.run(f"the server runs as UID {NONROOT_UID}", runs_as_nonroot)
    report.run("the root filesystem is read-only", read_only_root)
    report.run(f"the sqlite store is written on the volume at {store_dir}", store_on_volume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "switchboard")
    parser.add_argument("--keep-work", action="store_true", help="keep the work directory (image context, played YAML)")
    args = parser.parse_args(argv)
    helm_python.disable_logging()
    if not os.environ.get("CONTAINERS_CONF"):
        print("CONTAINERS_CONF is not set; run scripts/deploy-smoke", file=sys.stderr)
        return 2
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="switchboard-deploy-smoke-"))
    try:
        if build_image(args.binary, work, report):
            for scenario in scenarios(work):
                play(scenario, args.binary, work, report)
    except Exception as e:  # noqa: BLE001 - reported as a failed step
        report.check("the smoke ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        podman("rmi", "--force", IMAGE, check=False)
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n==> deploy smoke: {len(report.results) - len(report.failed)} passed, {len(report.failed)} failed")
    for name in report.failed:
        print(f"  FAIL  {name}")
    return 1 if report.failed or not report.results else 0


if __name__ == "__main__":
    sys.exit(main())
