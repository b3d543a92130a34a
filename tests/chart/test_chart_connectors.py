"""The connectors (`switchboard connect`, values `connectors.*`): one Deployment each next
to the server, with probes, the vendor credential from an existing Secret, and the server's
security context."""

from __future__ import annotations

import os
import subprocess

import pytest

from chart_support import CONNECTORS, NAMESPACE, RELEASE, Rendered, matches, render, validate_kubernetes

SERVER = f"{RELEASE}-switchboard"


def deployments(r: Rendered) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in r.connectors("Deployment")}


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_no_connector_is_rendered_by_default(rendered: dict[str, Rendered]) -> None:
    for name in ("defaults", "ci-default", "ci-nats-ha", "ci-tls-auth"):
        assert not [d for kind in ("Deployment", "NetworkPolicy") for d in rendered[name].connectors(kind)], name


def test_each_connector_is_one_deployment_next_to_the_server(rendered: dict[str, Rendered]) -> None:
    r = rendered["connectors"]
    found = deployments(r)
    assert set(found) == {f"{SERVER}-connect-8x8", f"{SERVER}-connect-xelion"}
    server_port = r.one("Service", SERVER)["spec"]["ports"][0]
    assert server_port["name"] == "grpc"
    for name, command, vendor_flag in (
        ("connect-8x8", "8x8-event-streaming", "--url"),
        ("connect-xelion", "xelion", "--base-url"),
    ):
        d = found[f"{SERVER}-{name}"]
        validate_kubernetes(d)
        assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"] == {"type": "Recreate"}, "never two consumers at once"
        c = container(d)
        args = c["args"]
        assert args[:2] == ["connect", command]
        assert flag(args, vendor_flag).startswith("http") or flag(args, vendor_flag).startswith("ws")
        assert flag(args, "--addr") == f"http://{SERVER}.{NAMESPACE}.svc:{server_port['port']}", "the server's Service"
        assert flag(args, "--metrics-listen") == f"0.0.0.0:{c['ports'][0]['containerPort']}"
        assert c["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert c["resources"]["limits"]["memory"]
        pod = d["spec"]["template"]
        assert int(flag(args, "--shutdown-grace").rstrip("s")) < pod["spec"]["terminationGracePeriodSeconds"]


def test_connectors_run_with_the_servers_security_context(rendered: dict[str, Rendered]) -> None:
    r = rendered["connectors"]
    server_pod = r.pod["spec"]
    for d in deployments(r).values():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"] == server_pod["securityContext"]
        assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
        assert pod["serviceAccountName"] == server_pod["serviceAccountName"]
        assert container(d)["securityContext"] == r.container["securityContext"]
        assert container(d)["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container(d)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        data_dir = flag(container(d)["args"], "--data-dir")
        for path in (data_dir, "/tmp"):
            assert "emptyDir" in volumes[mounts[path]], "the only writable paths are volumes"


def test_the_vendor_credential_comes_from_the_existing_secret(rendered: dict[str, Rendered]) -> None:
    found = deployments(rendered["connectors"])
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(found[f"{SERVER}-connect-8x8"])["env"]}
    assert env == {
        "SWITCHBOARD_8X8_API_KEY": {"name": "eight-by-eight", "key": "api-key"},
        "SWITCHBOARD_TOKEN": {"name": "eight-by-eight", "key": "switchboard-token"},
    }
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(found[f"{SERVER}-connect-xelion"])["env"]}
    assert env == {"SWITCHBOARD_XELION_TOKEN": {"name": "xelion", "key": "token"}}
    for d in found.values():
        assert all("value" not in e for e in container(d)["env"]), "no credential in the manifest"


def test_xelion_can_log_in_with_a_user_and_password_from_the_secret() -> None:
    values = {
        "connectors": {
            "xelion": {
                **CONNECTORS["connectors"]["xelion"],
                "secretKeys": {"token": "", "username": "user", "password": "pass"},
            }
        }
    }
    (d,) = render(values).connectors("Deployment")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container(d)["env"]}
    assert env == {"SWITCHBOARD_XELION_USERNAME": "user", "SWITCHBOARD_XELION_PASSWORD": "pass"}


def test_connector_pods_are_selected_by_their_own_deployment_only(rendered: dict[str, Rendered]) -> None:
    r = rendered["connectors"]
    server_selector = r.workload["spec"]["selector"]["matchLabels"]
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments(r).items()}
    for name, d in deployments(r).items():
        selector = d["spec"]["selector"]["matchLabels"]
        assert "app.kubernetes.io/version" not in selector
        assert [n for n, labels in pods.items() if matches(selector, labels)] == [name]
        assert not matches(server_selector, pods[name]), "the server's Services never route to a connector"
    for service in r.services():
        assert not any(matches(service["spec"]["selector"], labels) for labels in pods.values())


def test_with_network_policies_the_server_admits_the_connectors_and_their_pods_are_covered(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["connectors"]
    # The server's policy is named after its workload (the helm test pod has one of its own).
    server_policy = r.one("NetworkPolicy", r.workload["metadata"]["name"])
    grpc_peers = next(rule["from"] for rule in server_policy["spec"]["ingress"] if rule["ports"][0]["port"] == "grpc")
    policies = r.connectors("NetworkPolicy")
    assert len(policies) == 2
    for d in deployments(r).values():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(matches(p["podSelector"].get("matchLabels", {}), labels) for p in grpc_peers), "may reach gRPC"
        (policy,) = [p for p in policies if matches(p["spec"]["podSelector"]["matchLabels"], labels)]
        validate_kubernetes(policy)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]] == ["metrics"]
    assert not rendered["connectors-nats-tls"].connectors("NetworkPolicy"), "no policies unless enabled"


def test_with_tls_the_connectors_use_https_and_the_given_server_ca(rendered: dict[str, Rendered]) -> None:
    for d in deployments(rendered["connectors-nats-tls"]).values():
        assert flag(container(d)["args"], "--addr").startswith("https://")
        assert "--ca-cert" not in container(d)["args"], "system roots unless serverCa is given"
    values = {**rendered_values("connectors-nats-tls"), "connectors": {**CONNECTORS["connectors"], "serverCa": {"existingSecret": "internal-ca"}}}
    for d in render(values).connectors("Deployment"):
        validate_kubernetes(d)
        args = container(d)["args"]
        mount = next(m for m in container(d)["volumeMounts"] if m["name"] == "server-ca")
        assert flag(args, "--ca-cert") == f"{mount['mountPath']}/ca.crt" and mount["readOnly"] is True
        volume = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "server-ca")
        assert volume["secret"]["secretName"] == "internal-ca"


def rendered_values(name: str) -> dict:
    from chart_support import SCENARIOS

    return SCENARIOS[name]


@pytest.mark.parametrize(
    ("connector", "missing", "message"),
    [
        ("eventStreaming", "url", "connectors.eventStreaming.url is required"),
        ("eventStreaming", "existingSecret", "connectors.eventStreaming.existingSecret is required"),
        ("xelion", "baseUrl", "connectors.xelion.baseUrl is required"),
        ("xelion", "existingSecret", "connectors.xelion.existingSecret is required"),
    ],
)
def test_an_enabled_connector_without_its_url_or_secret_fails_with_a_clear_message(
    connector: str, missing: str, message: str
) -> None:
    values = {"connectors": {connector: {k: v for k, v in CONNECTORS["connectors"][connector].items() if k != missing}}}
    with pytest.raises(Exception, match=message):
        render(values)


def test_the_schema_rejects_a_url_that_is_not_a_pulsar_websocket_url() -> None:
    values = {"connectors": {"eventStreaming": {**CONNECTORS["connectors"]["eventStreaming"], "url": "https://example.com/topic"}}}
    with pytest.raises(Exception, match="url"):
        render(values)


SWITCHBOARD_BIN = os.environ.get("SWITCHBOARD_BIN")


@pytest.mark.skipif(not SWITCHBOARD_BIN, reason="SWITCHBOARD_BIN is not set to a built switchboard binary")
def test_every_flag_the_chart_passes_is_one_the_command_accepts(rendered: dict[str, Rendered]) -> None:
    for d in deployments(rendered["connectors"]).values():
        args = container(d)["args"]
        help_text = subprocess.run(
            [SWITCHBOARD_BIN, *args[:2], "--help"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        for arg in args[2:]:
            if arg.startswith("--"):
                assert f"{arg} " in help_text or f"{arg}\n" in help_text, f"{args[1]} has no {arg}"
        for env in container(d)["env"]:
            assert f"env: {env['name']}" in help_text, f"{args[1]} reads no {env['name']}"
