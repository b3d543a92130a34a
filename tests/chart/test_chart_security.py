"""The chart's security posture: NetworkPolicy coverage of every pod it creates, and the
rendered manifests under a policy checker (checkov).

Both run on every values set of the suite (`SCENARIOS`) with `networkPolicy.enabled`, the
shape a careful operator deploys; they look at whatever the chart renders (every pod
template, every bare Pod), so new workloads are covered without touching this file.

checkov runs offline: `--skip-download` and `BC_SKIP_MAPPING=TRUE` keep it from fetching
policy metadata from Prisma Cloud, `CKV_SKIP_PACKAGE_UPDATE_CHECK=true` from asking PyPI
for a newer version, `--skip-results-upload` and a private HOME (no
`~/.bridgecrew/credentials`, no `BC_API_KEY`) from uploading anything. Without those it
connects out (seen with `strace -f -e trace=connect`); with them it opens no socket but
the local nscd one. It lives in .venv-checkov (tests/checkov-requirements.txt), which
scripts/test fills.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_support import CHART_DIR, ROOT, SCENARIOS, Rendered, render

CHECKOV = Path(os.environ.get("CHECKOV_BIN") or ROOT / ".venv-checkov" / "bin" / "checkov")
README = CHART_DIR / "README.md"
SKIPS_START = "<!-- checkov-skips:start -->"
SKIPS_END = "<!-- checkov-skips:end -->"

# The secret detector (CKV_SECRET_6, high-entropy strings) may fire only on these lines:
# the chart-generated bearer token inside the chart's own Secret (where a secret belongs)
# and the `checksum/*` pod annotations (SHA-256 digests of values, not secrets).
SECRET_DETECTOR = "CKV_SECRET_6"
SECRET_DETECTOR_LINES = re.compile(r"^\s*(token: [A-Za-z0-9+/=]+|checksum/(config|secret): [0-9a-f]{64})$")


def with_network_policy(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "networkPolicy": {**values.get("networkPolicy", {}), "enabled": True}}


POLICY_SCENARIOS = {name: with_network_policy(values) for name, values in SCENARIOS.items()}


@pytest.fixture(scope="module")
def policy_rendered() -> dict[str, Rendered]:
    return {name: render(values) for name, values in POLICY_SCENARIOS.items()}


# --- NetworkPolicy coverage ----------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def policies_of(rendered: Rendered, pod: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in rendered.all("NetworkPolicy") + rendered.connectors("NetworkPolicy")
        if p["metadata"].get("namespace") == namespace and selects(p["spec"]["podSelector"], pod["metadata"].get("labels", {}))
    ]


@pytest.mark.parametrize("name", sorted(POLICY_SCENARIOS))
def test_every_pod_the_chart_creates_is_fenced_by_a_network_policy(policy_rendered: dict[str, Rendered], name: str) -> None:
    rendered = policy_rendered[name]
    owners = {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered.docs}
    pods = list(rendered.pods())
    assert pods, "the chart renders no pods"
    for owner, pod in pods:
        policies = policies_of(rendered, pod, owners[owner]["metadata"]["namespace"])
        assert policies, f"{owner}: no NetworkPolicy selects its pods"
        assert any("Ingress" in p["spec"]["policyTypes"] for p in policies), f"{owner}: ingress is not restricted"


def test_the_helm_test_pod_admits_nothing_and_reaches_only_dns_and_the_servers_health_port(
    policy_rendered: dict[str, Rendered],
) -> None:
    rendered = policy_rendered["defaults"]
    test_pod = rendered.test_pod
    (policy,) = policies_of(rendered, test_pod, test_pod["metadata"]["namespace"])
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and not spec["ingress"]
    dns, health = spec["egress"]
    assert "to" not in dns and {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert health["ports"] == [{"port": "health", "protocol": "TCP"}]
    server_labels = rendered.pod["metadata"]["labels"]
    assert [selects(peer["podSelector"], server_labels) for peer in health["to"]] == [True]
    # ...and the servers' own policy admits it on that port.
    admitted = [
        rule
        for rule in rendered.server_policy["spec"]["ingress"]
        if any(p["port"] == "health" for p in rule["ports"])
        and any("namespaceSelector" not in peer and selects(peer["podSelector"], test_pod["metadata"]["labels"]) for peer in rule["from"])
    ]
    assert admitted
    assert not policy_rendered["sqlite-ephemeral-no-auth"].test_pod, "that scenario has tests disabled"
    assert [p["metadata"]["name"] for p in policy_rendered["sqlite-ephemeral-no-auth"].all("NetworkPolicy")] == [
        policy_rendered["sqlite-ephemeral-no-auth"].workload["metadata"]["name"]
    ]


# --- checkov -------------------------------------------------------------------------


def readme_skips() -> dict[str, tuple[str, str]]:
    """`{check id: (where, why)}` from the chart README's table of skipped checks."""
    text = README.read_text()
    assert SKIPS_START in text and SKIPS_END in text, f"{README} lacks the {SKIPS_START} table"
    table = text[text.index(SKIPS_START) + len(SKIPS_START) : text.index(SKIPS_END)]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a skipped check is `| check | where | why |`: {line}"
        check = re.fullmatch(r"`(CKV2?_[A-Z0-9]+_\d+)`.*", cells[0])
        assert check, f"no check id in {line}"
        assert cells[1] and len(cells[2]) > 20, f"{check[1]} is skipped without saying where or why"
        rows[check[1]] = (cells[1], cells[2])
    return rows


def annotation_skips() -> dict[str, str]:
    """`{check id: reason}` of the `checkov.io/skipN` annotations in the templates: skips
    scoped to the one resource that carries them."""
    found = {}
    for template in (CHART_DIR / "templates").rglob("*.yaml"):
        for check, reason in re.findall(r"checkov\.io/skip\d+: (CKV2?_[A-Z0-9]+_\d+)=(.+)", template.read_text()):
            found[check] = reason.strip()
    return found


@pytest.fixture(scope="module")
def checkov_results(policy_rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: scripts/test installs tests/checkov-requirements.txt into .venv-checkov"
    work = tmp_path_factory.mktemp("checkov")
    manifests = work / "manifests"
    manifests.mkdir()
    for name, rendered in policy_rendered.items():
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump_all(rendered.docs, sort_keys=False))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "LOG_LEVEL": "WARNING",
    }
    command = [str(CHECKOV), "--directory", str(manifests), "--framework", "kubernetes", "secrets"]
    command += ["--skip-download", "--skip-results-upload", "--output", "json"]
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), f"checkov failed to run ({run.returncode}): {run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    for r in reports:
        r["manifests"] = manifests
    assert {r["check_type"] for r in reports} == {"kubernetes", "secrets"}, run.stdout[:2000]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    return reports


def failures(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(c, manifests=r["manifests"]) for r in reports for c in r["results"]["failed_checks"]]


def line_of(check: dict[str, Any]) -> str:
    path = check["manifests"] / check["file_path"].lstrip("/")
    return path.read_text().splitlines()[check["file_line_range"][0] - 1]


def test_checkov_passes_the_rendered_chart_except_for_the_skips_the_readme_lists(checkov_results: list[dict[str, Any]]) -> None:
    listed = readme_skips()
    scoped = annotation_skips()
    everywhere = set(listed) - set(scoped) - {SECRET_DETECTOR}
    kube = next(r for r in checkov_results if r["check_type"] == "kubernetes")
    assert kube["summary"]["passed"] > 500, kube["summary"]

    unexpected = []
    for check in failures(checkov_results):
        if check["check_id"] == SECRET_DETECTOR and SECRET_DETECTOR_LINES.match(line_of(check)):
            continue
        if check["check_id"] in everywhere:
            continue
        unexpected.append(f"{check['check_id']} {check['check_name']}: {check['file_path']} {check.get('resource') or line_of(check)}")
    assert not unexpected, "checkov findings neither fixed nor listed in the chart README:\n" + "\n".join(unexpected)

    # The resource-scoped skips are annotations on the resource, listed in the README too.
    suppressed = {c["check_id"] for r in checkov_results for c in r["results"]["skipped_checks"]}
    assert suppressed == set(scoped), "checkov.io/skip annotations that checkov did not apply, or others"
    assert set(scoped) <= set(listed), f"annotation skips missing from the README: {set(scoped) - set(listed)}"


def test_every_skip_the_readme_lists_is_still_needed(checkov_results: list[dict[str, Any]]) -> None:
    fired = {c["check_id"] for c in failures(checkov_results)}
    fired |= {c["check_id"] for r in checkov_results for c in r["results"]["skipped_checks"]}
    stale = set(readme_skips()) - fired
    assert not stale, f"the chart README skips checks that no longer fail: {sorted(stale)}"
