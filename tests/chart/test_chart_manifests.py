"""The rendered manifests: valid Kubernetes objects that wire together correctly."""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib

import helm_python
import kubernetes_validate
import pytest

from chart_support import (
    CHART_DIR,
    HEALTH_SERVICES,
    NAMESPACE,
    RELEASE,
    ROOT,
    SCENARIOS,
    SERVER_CONFIG_KEYS,
    STANDARD_LABELS,
    Rendered,
    ci_values,
    matches,
    render,
    validate_kubernetes,
    validate_service_monitor,
)


# --- Lint and validation -------------------------------------------------------------


@pytest.mark.parametrize("values_file", ["default", "nats-ha", "tls-auth"])
def test_the_chart_lints_without_errors_or_warnings_in_strict_mode(values_file: str) -> None:
    report = helm_python.lint(CHART_DIR, ci_values(values_file), strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_every_rendered_manifest_passes_strict_kubernetes_schema_validation(scenario: Rendered) -> None:
    checked = 0
    for doc in scenario.docs:
        if doc["kind"] == "ServiceMonitor":
            validate_service_monitor(doc)
        else:
            validate_kubernetes(doc)
        checked += 1
    assert checked >= 4


def test_strict_validation_would_catch_an_unknown_field() -> None:
    # Guards the guard: the validator used above really is strict.
    service = render().one("Service", f"{RELEASE}-switchboard")
    service["spec"]["bogusField"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(service)


def test_the_servicemonitor_matches_the_prometheus_operator_crd(rendered: dict[str, Rendered]) -> None:
    monitor = rendered["ci-nats-ha"].one("ServiceMonitor")
    validate_service_monitor(monitor)
    bad = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "metrics", "interval": "30 seconds"}]}}
    with pytest.raises(Exception, match="interval"):
        validate_service_monitor(bad)
    unknown = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    with pytest.raises(AssertionError, match="spec.endpoint"):
        validate_service_monitor(unknown)


def test_every_resource_name_fits_in_63_characters_even_with_the_longest_release_name() -> None:
    long_name = "a-release-name-that-is-exactly-fifty-three-chars-long"
    assert len(long_name) == 53
    out = render({**SCENARIOS["ci-nats-ha"], "tests": {"enabled": True}}, name=long_name)
    for doc in out.docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


# --- Shapes of the two modes ----------------------------------------------------------


def test_the_defaults_render_one_sqlite_replica_in_a_statefulset_with_a_volume(rendered: dict[str, Rendered]) -> None:
    out = rendered["defaults"]
    sts = out.one("StatefulSet")
    assert sts["spec"]["replicas"] == 1
    assert not out.all("Deployment")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    data_mount = next(m for m in out.container["volumeMounts"] if m["name"] == "data")
    assert data_mount["mountPath"] == out.config["data_dir"] == "/var/lib/switchboard"
    assert out.config["store"] == "sqlite"
    headless = out.one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"):
        assert not out.all(kind), kind


def test_nats_ha_renders_a_deployment_with_hpa_pdb_servicemonitor_networkpolicy_tls_and_existing_secrets(
    rendered: dict[str, Rendered],
) -> None:
    out = rendered["ci-nats-ha"]
    deploy = out.one("Deployment")
    assert "replicas" not in deploy["spec"], "the HPA owns the replica count"
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert not out.all("StatefulSet") and not out.all("PersistentVolumeClaim")

    hpa = out.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}

    assert out.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert out.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert out.server_policy

    config = out.config
    assert config["store"] == "nats"
    assert config["nats_url"] == "nats://nats.nats.svc.cluster.local:4222"
    assert config["nats_stream_replicas"] == 3
    assert config["tls_cert"] == "/etc/switchboard/tls/tls.crt"
    assert config["tls_client_ca"] == "/etc/switchboard/tls/ca.crt"

    # Existing Secrets are mounted; the chart renders none of its own.
    assert not out.all("Secret")
    volumes = {v["name"]: v for v in out.pod["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "switchboard-tls"
    assert {i["key"] for i in volumes["tls"]["secret"]["items"]} == {"tls.crt", "tls.key", "ca.crt"}
    assert volumes["auth"]["secret"]["secretName"] == "switchboard-tokens"
    assert volumes["nats"]["secret"]["secretName"] == "switchboard-nats"
    assert config["nats_ca"] == "/etc/switchboard/nats/ca.crt"


def test_nats_secrets_reach_the_server_as_mounted_files_never_env_or_the_configmap(
    rendered: dict[str, Rendered],
) -> None:
    nats_dir = "/etc/switchboard/nats"
    for name, files in {
        "ci-nats-ha": {"user": "user", "password": "password", "ca.crt": "ca.crt"},
        "nats-creds-token": {"token": "token", "switchboard.creds": "switchboard.creds", "ca.crt": "ca.crt"},
    }.items():
        out = rendered[name]
        assert not [e for e in out.container.get("env", []) if "valueFrom" in e], "no secret as an environment variable"
        volume = {v["name"]: v for v in out.pod["spec"]["volumes"]}["nats"]["secret"]
        assert volume["secretName"] == ("switchboard-nats" if name == "ci-nats-ha" else "nats-auth")
        assert {i["path"]: i["key"] for i in volume["items"]} == {path: key for key, path in files.items()}
        mount = {m["name"]: m for m in out.container["volumeMounts"]}["nats"]
        assert mount == {"name": "nats", "mountPath": nats_dir, "readOnly": True}
        config = out.config
        for key in ("nats_password", "nats_token", "nats_user"):
            assert key not in config
        for role in ("user", "password", "token"):
            assert config.get(f"nats_{role}_file") == (f"{nats_dir}/{role}" if role in files.values() else None), role
    assert rendered["nats-creds-token"].config["nats_creds"] == f"{nats_dir}/switchboard.creds"
    assert rendered["ci-nats-ha"].config["nats_ca"] == f"{nats_dir}/ca.crt"


def test_nats_replicas_prefer_other_nodes_and_spread_across_zones(rendered: dict[str, Rendered]) -> None:
    spec = rendered["ci-nats-ha"].pod["spec"]
    selector = rendered["ci-nats-ha"].workload["spec"]["selector"]["matchLabels"]
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == selector
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    hard = rendered["nats-creds-token"].pod["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard


# --- Probes, security, labels, selectors, ports ---------------------------------------


def test_probes_are_native_grpc_probes_against_the_plaintext_health_port(scenario: Rendered) -> None:
    container = scenario.container
    health_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
    for probe_name, service in (("startupProbe", ""), ("livenessProbe", ""), ("readinessProbe", "switchboard.v1.CallService")):
        probe = container[probe_name]
        assert set(probe) & {"httpGet", "tcpSocket", "exec"} == set(), probe_name
        assert probe["grpc"] == {"port": health_port, "service": service}, probe_name
        assert probe["grpc"]["service"] in HEALTH_SERVICES
    assert scenario.config["health_listen"].endswith(f":{health_port}")


def test_pods_run_as_non_root_with_a_read_only_root_filesystem_and_no_capabilities(scenario: Rendered) -> None:
    pods = [scenario.pod] + ([scenario.test_pod] if scenario.test_pod else [])
    for pod in pods:
        pod_sc = pod["spec"]["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["spec"]["automountServiceAccountToken"] is False
        for container in pod["spec"]["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["runAsNonRoot"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_only_writable_paths_are_volumes(scenario: Rendered) -> None:
    mounts = {m["mountPath"]: m for m in scenario.container["volumeMounts"]}
    volumes = {v["name"]: v for v in scenario.pod["spec"]["volumes"]}
    claims = {c["metadata"]["name"] for c in scenario.workload["spec"].get("volumeClaimTemplates", [])}
    for path in (scenario.config["data_dir"], "/tmp"):
        mount = mounts[path]
        assert not mount.get("readOnly")
        volume = volumes.get(mount["name"], {})
        assert mount["name"] in claims or "emptyDir" in volume or "persistentVolumeClaim" in volume
    for path, mount in mounts.items():
        if path.startswith("/etc/switchboard"):
            assert mount["readOnly"] is True, path


def test_every_resource_carries_the_standard_labels(scenario: Rendered) -> None:
    for doc in scenario.docs:
        labels = doc["metadata"]["labels"]
        for label in STANDARD_LABELS:
            assert labels.get(label), f"{doc['kind']}/{doc['metadata']['name']} lacks {label}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    pod_labels = scenario.pod["metadata"]["labels"]
    for label in STANDARD_LABELS:
        assert pod_labels.get(label)


def test_selectors_match_the_server_pods_and_nothing_else(scenario: Rendered) -> None:
    pod_labels = scenario.pod["metadata"]["labels"]
    selector = scenario.workload["spec"]["selector"]["matchLabels"]
    assert matches(selector, pod_labels)
    assert "app.kubernetes.io/version" not in selector, "a selector must survive upgrades"
    for service in scenario.services():
        assert service["spec"]["selector"] == selector
    if pdb := scenario.maybe("PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    if policy := scenario.server_policy:
        assert policy["spec"]["podSelector"]["matchLabels"] == selector
    if monitor := scenario.maybe("ServiceMonitor"):
        chosen = [s for s in scenario.services() if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert [p["name"] for s in chosen for p in s["spec"]["ports"]].count("metrics") == 1, "scraped exactly once"
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    if scenario.workload["kind"] == "StatefulSet":
        assert scenario.one("Service", scenario.workload["spec"]["serviceName"])
    if test_pod := scenario.test_pod:
        assert not matches(selector, test_pod["metadata"]["labels"]), "the Services must not route to the test pod"


def test_ports_agree_between_services_container_probes_config_and_policies(scenario: Rendered) -> None:
    container_ports = {p["name"]: p["containerPort"] for p in scenario.container["ports"]}
    assert set(container_ports) == {"grpc", "health", "metrics"}
    config = scenario.config
    for key, name in (("listen", "grpc"), ("health_listen", "health"), ("metrics_listen", "metrics")):
        assert config[key].rsplit(":", 1)[1] == str(container_ports[name]), key
    main = scenario.one("Service", scenario.workload["metadata"]["name"])
    by_name = {p["name"]: p for p in main["spec"]["ports"]}
    assert set(by_name) == {"grpc", "health", "metrics"}
    assert by_name["grpc"]["appProtocol"] == "grpc"
    assert by_name["health"]["appProtocol"] == "grpc"
    assert by_name["metrics"]["appProtocol"] == "http"
    for service in scenario.services():
        for port in service["spec"]["ports"]:
            assert port["targetPort"] == port["name"] and port["targetPort"] in container_ports
    if monitor := scenario.maybe("ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    if policy := scenario.server_policy:
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in container_ports


def test_config_and_secret_checksums_roll_the_pods_when_they_change() -> None:
    base = render()
    annotations = base.pod["metadata"]["annotations"]
    configmap_text = base.templates["switchboard/templates/configmap.yaml"]
    assert annotations["checksum/config"] == hashlib.sha256(configmap_text.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])

    def checksums(values: dict) -> tuple[str, str]:
        a = render(values).pod["metadata"]["annotations"]
        return a["checksum/config"], a["checksum/secret"]

    config0, secret0 = checksums({})
    config1, secret1 = checksums({"config": {"logLevel": "debug"}})
    assert config1 != config0 and secret1 == secret0
    token = {"name": "t", "sha256": "0" * 64, "tenant": "acme", "roles": ["query"]}
    config2, secret2 = checksums({"auth": {"tokens": [token]}})
    assert secret2 != secret0
    _, secret3 = checksums({"tls": {"enabled": True, "existingSecret": "cert"}})
    assert secret3 != secret0
    assert checksums({"resources": {}}) == (config0, secret0), "unrelated changes roll nothing"


# --- The server's config file ---------------------------------------------------------


def test_the_configmap_renders_only_keys_the_server_accepts(scenario: Rendered) -> None:
    config = scenario.config  # also proves the file is valid TOML
    unknown = set(config) - SERVER_CONFIG_KEYS
    assert not unknown, f"the server rejects unknown keys: {sorted(unknown)}"
    assert config["log_format"] == "json"
    for key, value in config.items():
        assert not isinstance(value, float), f"{key} rendered as a float: {value}"


def test_the_config_file_renders_every_value_with_its_toml_type() -> None:
    config = render(
        {
            "config": {
                "logLevel": 'info,switchboard="debug"',
                "maxMessageBytes": 16777216,
                "maxSubscribersPerTenant": 5000,
                "rateLimit": {"perSecond": 100, "burst": 1000},
                "retention": {"maxAge": "0", "maxEvents": 10_000_000},
                "corsOrigins": "https://a.example.com,https://b.example.com",
                "defaultRegion": "",
            }
        }
    ).config
    assert config["log_level"] == 'info,switchboard="debug"'
    assert config["max_message_bytes"] == 16777216
    assert config["retention_max_events"] == 10_000_000
    assert config["retention_max_age"] == "0"
    assert (config["max_subscribers_per_tenant"], config["rate_limit_per_second"], config["rate_limit_burst"]) == (5000, 100, 1000)
    assert config["default_region"] == ""
    assert config["drain_delay"] == "5s"
    assert config["auth_file"] == "/etc/switchboard/auth/tokens.toml"


def test_the_auth_secret_holds_the_token_hashes_as_tokens_toml(rendered: dict[str, Rendered]) -> None:
    out = rendered["ci-tls-auth"]
    secret = out.one("Secret", f"{RELEASE}-switchboard-auth")
    tokens = tomllib.loads(base64.b64decode(secret["data"]["tokens.toml"]).decode())["tokens"]
    assert tokens == [
        {"name": "vendor-webhooks", "sha256": "c39cc66d1957f10e87dc5e3774dd40c6007933be449a3e47b3229f5957e25e22", "tenant": "acme", "roles": ["ingest"]},
        {"name": "crm-sync", "sha256": "c4a809df949baff22f735d644b0fe8616d8918b8b29c044ae44942b3a2d932a8", "tenant": "acme", "roles": ["subscribe", "query"]},
    ]
    assert "token" not in secret["data"], "explicit tokens: nothing is generated"
    tls = out.one("Secret", f"{RELEASE}-switchboard-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert set(tls["data"]) == {"tls.crt", "tls.key", "ca.crt"}


def test_a_generated_token_is_stored_beside_its_hash(rendered: dict[str, Rendered]) -> None:
    secret = rendered["defaults"].one("Secret", f"{RELEASE}-switchboard-auth")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 40
    (entry,) = tomllib.loads(base64.b64decode(secret["data"]["tokens.toml"]).decode())["tokens"]
    assert entry["sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert entry["tenant"] == "default" and entry["roles"] == ["ingest", "subscribe", "query"]
    assert "auth_file" not in rendered["sqlite-ephemeral-no-auth"].config


# --- Shutdown, NOTES, helm test -------------------------------------------------------


def _seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))
    return int(-(-total // 1))


def test_the_grace_period_covers_prestop_drain_and_the_final_checkpoints(scenario: Rendered) -> None:
    spec = scenario.pod["spec"]
    sleep = scenario.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert "exec" not in scenario.container["lifecycle"]["preStop"], "the image has no shell"
    drain = _seconds(scenario.config["drain_delay"])
    assert spec["terminationGracePeriodSeconds"] > sleep + drain + 30


def test_the_notes_tell_how_to_port_forward_and_call_the_service_with_grpcurl(rendered: dict[str, Rendered]) -> None:
    notes = rendered["defaults"].notes
    assert f"kubectl --namespace {NAMESPACE} port-forward svc/{RELEASE}-switchboard 50051:50051" in notes
    assert "grpcurl -plaintext -H \"authorization: Bearer $SWITCHBOARD_TOKEN\" localhost:50051 list" in notes
    assert "grpc.health.v1.Health/Check" in notes
    assert f"helm test {RELEASE} --namespace {NAMESPACE}" in notes
    assert "jsonpath='{.data.token}'" in notes
    tls_notes = rendered["ci-tls-auth"].notes
    assert "-cacert ca.crt" in tls_notes and "-cert client.crt -key client.key" in tls_notes
    assert "-plaintext -H" not in tls_notes
    assert "NO persistent volume" in rendered["sqlite-ephemeral-no-auth"].notes


def test_the_helm_test_hook_runs_the_images_own_health_check_against_the_service(rendered: dict[str, Rendered]) -> None:
    out = rendered["defaults"]
    pod = out.test_pod
    assert pod is not None
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    service = out.one("Service", f"{RELEASE}-switchboard")
    health_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "health")
    checked = set()
    for container in pod["spec"]["containers"]:
        assert container["image"] == out.container["image"]
        assert container["command"] == ["/usr/local/bin/switchboard"]
        args = container["args"]
        assert args[0] == "health"
        assert args[args.index("--addr") + 1] == f"http://{RELEASE}-switchboard.{NAMESPACE}.svc:{health_port}"
        checked.add(args[args.index("--service") + 1])
    assert checked == {"", "switchboard.v1.CallService"}
    assert rendered["sqlite-ephemeral-no-auth"].test_pod is None


def test_the_network_policy_admits_grpc_and_metrics_from_separate_labelled_peers(rendered: dict[str, Rendered]) -> None:
    policy = rendered["ci-nats-ha"].server_policy
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert set(rules) == {"grpc", "health", "metrics"}
    assert rules["grpc"] == [
        {
            "podSelector": {"matchLabels": {"switchboard-client": "true"}},
            "namespaceSelector": {"matchLabels": {"calls.example.com/switchboard-access": "true"}},
        }
    ]
    assert rules["metrics"] == [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    test_labels = rendered["ci-nats-ha"].test_pod["metadata"]["labels"]
    assert any(matches(peer["podSelector"].get("matchLabels", {}), test_labels) and "namespaceSelector" not in peer for peer in rules["health"])
    extra = rendered["sqlite-existing-claim"].server_policy["spec"]["ingress"][0]["from"]
    assert extra == [{"podSelector": {}}, {"ipBlock": {"cidr": "10.1.0.0/16"}}]


def test_service_links_are_off_so_no_stray_switchboard_variables_reach_the_server(scenario: Rendered) -> None:
    assert scenario.pod["spec"]["enableServiceLinks"] is False


def test_the_chart_app_version_is_the_crate_version() -> None:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    chart_yaml = (CHART_DIR / "Chart.yaml").read_text()
    assert re.search(r'^appVersion: "([^"]+)"$', chart_yaml, re.M).group(1) == cargo["package"]["version"]
    assert render().container["image"] == f"switchboard:{cargo['package']['version']}"
    assert render({"image": {"repository": "r.example.com/sb", "tag": "dev"}}).container["image"] == "r.example.com/sb:dev"
