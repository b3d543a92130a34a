"""Rendering and validation helpers for the chart tests.

The chart is rendered by the real Helm v4 engine through `helm-python-sdk` (a shared
library, no helm binary, no cluster): `helm_python.Chart.load(path).render(values,
name=..., namespace=...)` returns `{template path: manifest text}` after merging the
chart's defaults and validating the values against `values.schema.json`.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import helm_python
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "switchboard"
RELEASE = "sb"
NAMESPACE = "calls"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest whose
# schemas kubernetes-validate ships; every manifest is validated against both.
KUBE_VERSIONS = ("1.30.0", "1.37.0")

# The keys `switchboard serve` accepts in its TOML file (flat, top level). The server
# rejects any other key, so the ConfigMap must render only these.
SERVER_CONFIG_KEYS = frozenset(
    """
    listen metrics_listen health_listen store data_dir nats_url nats_creds nats_user
    nats_password nats_token nats_user_file nats_password_file nats_token_file nats_ca nats_stream_replicas log_format log_level dedup_window
    retention_max_age retention_max_events replay_cache_bytes retention_interval correlation_window call_idle_timeout
    heartbeat_interval subscriber_buffer max_payload_bytes max_message_bytes
    max_concurrent_streams keepalive_interval keepalive_timeout default_region drain_delay
    cors_origins auth_file tls_cert tls_key tls_client_ca max_subscribers_per_tenant
    rate_limit_per_second rate_limit_burst no_board
    """.split()
)

# grpc.health.v1 service names the server reports.
HEALTH_SERVICES = ("", "switchboard.v1.CallService", "switchboard.v1.IngestService")

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def ci_values(name: str) -> dict[str, Any]:
    """The values of `ci/<name>-values.yaml`."""
    return yaml.safe_load((CHART_DIR / "ci" / f"{name}-values.yaml").read_text()) or {}


NATS_MINIMAL = {"store": "nats", "replicaCount": 2, "nats": {"url": "nats://nats:4222"}}

# Both connectors on, as a user would turn them on (the Secrets exist beforehand).
CONNECTORS = {
    "connectors": {
        "eventStreaming": {
            "enabled": True,
            "url": "wss://pulsar-ws-euw2.8x8.com/ws/v2/consumer/persistent/acmecorp01/event-v1/all/switchboard",
            "existingSecret": "eight-by-eight",
            "secretKeys": {"apiKey": "api-key", "ingestToken": "switchboard-token"},
        },
        "xelion": {"enabled": True, "baseUrl": "https://acme.xelion.example/api/v1/acme", "existingSecret": "xelion"},
    }
}

# Every values set the suite renders: the chart defaults, the ci/ files and a few more
# shapes that exercise other branches of the templates.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ci-default": ci_values("default"),
    "ci-nats-ha": ci_values("nats-ha"),
    "ci-tls-auth": ci_values("tls-auth"),
    "nats-minimal": NATS_MINIMAL,
    "nats-creds-token": {
        **NATS_MINIMAL,
        "nats": {
            "url": "tls://nats-0.nats:4222,tls://nats-1.nats:4222",
            "existingSecret": "nats-auth",
            "secretKeys": {"token": "token", "creds": "switchboard.creds", "ca": "ca.crt"},
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": None, "maxUnavailable": "25%"},
        "podAntiAffinityPreset": "hard",
        "service": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerSourceRanges": ["10.0.0.0/8"]},
    },
    "sqlite-ephemeral-no-auth": {
        "persistence": {"enabled": False},
        "auth": {"enabled": False},
        "topologySpreadConstraints": [],
        "podAntiAffinityPreset": "",
        "serviceAccount": {"create": False},
        "tests": {"enabled": False},
    },
    "sqlite-existing-claim": {
        "persistence": {"existingClaim": "switchboard-data"},
        "fullnameOverride": "switchboard",
        "image": {"digest": "sha256:" + "ab" * 32},
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "networkPolicy": {"enabled": True, "grpc": {"podLabels": None, "extraFrom": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}},
        "serviceMonitor": {"enabled": True, "namespace": "monitoring", "scrapeTimeout": "10s"},
    },
    "connectors": {**CONNECTORS, "networkPolicy": {"enabled": True}},
    "connectors-nats-tls": {
        **NATS_MINIMAL,
        **CONNECTORS,
        "tls": {"enabled": True, "existingSecret": "switchboard-tls"},
        "auth": {"enabled": True, "existingSecret": "switchboard-auth"},
    },
}


def is_connector(doc: dict[str, Any]) -> bool:
    """Whether a resource belongs to a connector rather than to the server."""
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component", "").startswith("connect-")


@dataclass
class Rendered:
    """One rendering of the chart."""

    templates: dict[str, str]
    docs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for path, text in sorted(self.templates.items()):
            if path.endswith("NOTES.txt"):
                continue
            self.docs.extend(d for d in yaml.safe_load_all(text) if d)

    @property
    def notes(self) -> str:
        return self.templates["switchboard/templates/NOTES.txt"]

    def all(self, kind: str) -> list[dict[str, Any]]:
        """The server's (and test pod's) resources of `kind`; connectors have their own accessor."""
        return [d for d in self.docs if d["kind"] == kind and not is_connector(d)]

    def connectors(self, kind: str) -> list[dict[str, Any]]:
        """The connectors' resources of `kind` (`switchboard connect`, values `connectors.*`)."""
        return [d for d in self.docs if d["kind"] == kind and is_connector(d)]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def maybe(self, kind: str) -> dict[str, Any] | None:
        found = self.all(kind)
        return found[0] if found else None

    @property
    def workload(self) -> dict[str, Any]:
        found = self.all("StatefulSet") + self.all("Deployment")
        assert len(found) == 1, f"expected one workload, found {[d['kind'] for d in found]}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        return self.workload["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        (server,) = [c for c in self.pod["spec"]["containers"] if c["name"] == "switchboard"]
        return server

    @property
    def test_pod(self) -> dict[str, Any] | None:
        pods = [d for d in self.all("Pod") if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
        return pods[0] if pods else None

    @property
    def server_policy(self) -> dict[str, Any] | None:
        """The NetworkPolicy of the server pods (named like the workload), when rendered."""
        name = self.workload["metadata"]["name"]
        found = [d for d in self.all("NetworkPolicy") if d["metadata"]["name"] == name]
        return found[0] if found else None

    def pods(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod the rendering creates, whatever its owner: `(kind/name, pod metadata and
        spec)` of each workload's template, each Job's and CronJob's, and each bare Pod
        (e.g. the `helm test` hook)."""
        for doc in self.docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            if kind == "Pod":
                yield f"{kind}/{name}", doc
            elif kind == "CronJob":
                yield f"{kind}/{name}", doc["spec"]["jobTemplate"]["spec"]["template"]
            elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
                yield f"{kind}/{name}", doc["spec"]["template"]

    @property
    def config_text(self) -> str:
        return self.one("ConfigMap")["data"]["config.toml"]

    @property
    def config(self) -> dict[str, Any]:
        return tomllib.loads(self.config_text)

    def services(self) -> Iterator[dict[str, Any]]:
        return iter(self.all("Service"))


@functools.lru_cache(maxsize=1)
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    """Renders the chart as `helm template` would (schema validated, defaults merged)."""
    return Rendered(chart().render(values or {}, name=name, namespace=namespace))


def validate_kubernetes(doc: dict[str, Any]) -> None:
    """Strict schema validation (unknown fields are errors) for every supported version."""
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def validate_service_monitor(doc: dict[str, Any]) -> None:
    """Validates a ServiceMonitor against pydantic models generated from the Prometheus
    Operator CRD (types, enums, patterns), then checks that the model kept every field:
    the models ignore unknown fields, so a dropped field means one the CRD lacks."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    model = ServiceMonitor.model_validate(doc)
    kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert kept == doc, f"fields unknown to the ServiceMonitor CRD: {_diff(doc, kept)}"


def _diff(wanted: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(wanted, dict) and isinstance(got, dict):
        out = []
        for key in wanted:
            if key not in got:
                out.append(f"{path}.{key}")
            else:
                out.extend(_diff(wanted[key], got[key], f"{path}.{key}"))
        return out
    if isinstance(wanted, list) and isinstance(got, list):
        return [d for i, (w, g) in enumerate(zip(wanted, got)) for d in _diff(w, g, f"{path}[{i}]")]
    return [] if wanted == got else [path]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
