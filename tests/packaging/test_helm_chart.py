"""The Helm chart: lint, render, valid manifests, least-privilege RBAC, hardened pods and the optional features."""

from __future__ import annotations

import base64
import json
import re
import ssl
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from kubemeter.policy import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN
from kubemeter_sim.apiserver.schema import CompiledSchema

from .packaging_support import (
    ALL_FEATURES, CHART, Manifest, Render, aggregated, by_kind, crd_schema, load_manifests, one, operator_cluster_role,
    run,
)

# The chart's kubeVersion floor and the newest version kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
CUSTOM_KINDS = {"MetricsPolicy", "ServiceMonitor", "PrometheusRule"}
DIGEST = "sha256:" + "0123456789abcdef" * 4
# Every extension point at once (rendered and validated strictly, like every feature).
EXTENSIONS: dict[str, Any] = {
    "replicaCount": 2,
    "pdb": {"enabled": True, "minAvailable": 1},
    "image": {"repository": "team/kubemeter", "digest": DIGEST},
    "global": {"imageRegistry": "registry.example.com:5000"},
    "commonLabels": {"example.com/team": "platform", "cost-center": "42"},
    "extraArgs": ["--api-timeout=10", "--max-body-bytes=33554432"],  # flags the chart does not set itself
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
                 {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kubemeter"}}}],
    "service": {"annotations": {"prometheus.io/scrape": "true"}},
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    "terminationGracePeriodSeconds": 60,
    "revisionHistoryLimit": 3,
    # Each form of a quantity Kubernetes accepts.
    "resources": {"requests": {"cpu": 0.5, "memory": "1.5Gi", "ephemeral-storage": "512M"},
                  "limits": {"cpu": "1500m", "memory": "2G", "ephemeral-storage": ".5Ti"}},
    "serviceMonitor": {"enabled": True},
    "metricsAuth": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "defaultPolicy": {"enabled": True},
}
VALUE_SETS = {"defaults": None, "all-features": ALL_FEATURES, "extensions": EXTENSIONS}


def test_lint_strict_passes_with_defaults_and_every_feature(tmp_path: Path) -> None:
    features = tmp_path / "all-features.yaml"
    features.write_text(yaml.safe_dump(ALL_FEATURES))
    run("helm", "lint", "--strict", CHART)
    run("helm", "lint", "--strict", CHART, "-f", features)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_built_in_objects_validate_strictly(
    render: Render, values: dict[str, Any] | None, version: str
) -> None:
    for manifest in render(values):
        if manifest["kind"] in CUSTOM_KINDS:
            continue  # kubernetes-validate has no schema for them; validated by the tests below
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {'.'.join(map(str, error.path))}: "
                        f"{error.message}")


def test_defaults_render_only_the_core_objects(render: Render) -> None:
    kinds = sorted(m["kind"] for m in render())
    assert kinds == sorted([
        "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
        "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
    ])


def test_every_feature_renders_its_objects(render: Render) -> None:
    kinds = {m["kind"] for m in render(ALL_FEATURES)}
    assert {"PodDisruptionBudget", "Role", "RoleBinding", "ServiceMonitor", "PrometheusRule", "MetricsPolicy",
            "ConfigMap", "NetworkPolicy", "Secret"} <= kinds


def rules_for(manifests: list[Manifest], resource: str, group: str = "") -> set[str]:
    verbs: set[str] = set()
    for rule in operator_cluster_role(manifests)["rules"]:
        if resource in rule["resources"] and group in rule["apiGroups"]:
            verbs |= set(rule["verbs"])
    return verbs


def test_tenants_read_workload_metrics_through_the_built_in_roles(render: Render) -> None:
    """view, edit and admin (namespace users) get read access to WorkloadMetrics and MetricsCheckpoints only (not
    even edit and admin may write a checkpoint: only the operator does); cluster-reader to all three kinds."""
    roles = {tuple(sorted(k.split("aggregate-to-")[1]
                          for k in r["metadata"]["labels"] if "aggregate-to-" in k)): r
             for r in by_kind(render(), "ClusterRole") if aggregated(r)}
    assert set(roles) == {("admin", "edit", "view"), ("cluster-reader",)}
    assert roles[("admin", "edit", "view")]["rules"] == [
        {"apiGroups": ["kubemeter.io"], "resources": ["workloadmetrics", "metricscheckpoints"],
         "verbs": ["get", "list", "watch"]}]
    assert roles[("cluster-reader",)]["rules"] == [
        {"apiGroups": ["kubemeter.io"], "resources": ["metricspolicies", "workloadmetrics", "metricscheckpoints"],
         "verbs": ["get", "list", "watch"]}]
    assert not any(aggregated(r) for r in by_kind(render({"rbac": {"aggregatedRoles": False}}), "ClusterRole"))


def test_rbac_create_false_renders_no_roles_or_bindings(render: Render) -> None:
    """Not even the users' aggregated roles or the scrapers' metrics-reader, which the values table says."""
    values = {"rbac": {"create": False, "aggregatedRoles": True}, "replicaCount": 2, "metricsAuth": {"enabled": True}}
    kinds = {m["kind"] for m in render(values)}
    assert kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} == set()
    assert "ServiceAccount" in kinds and "Deployment" in kinds
    readme = " ".join((CHART / "README.md").read_text().split())
    assert ("`false`: none of them is rendered, so bind `serviceAccount.name` to equivalent rules (see Permissions) "
            "and give users and scrapers their access yourself; `aggregatedRoles` then has no effect") in readme


def test_metrics_readers_without_rbac_fail_the_render(tmp_path: Path) -> None:
    """Readers given cannot be bound without the chart's RBAC: failing beats installing a /metrics they cannot read."""
    stderr = failed_render(tmp_path, {"rbac": {"create": False}, "metricsAuth": {
        "enabled": True, "readers": [{"kind": "User", "name": "prometheus"}]}})
    assert "metricsAuth.readers is set but rbac.create is false" in stderr, stderr
    assert "set rbac.create=true, or leave metricsAuth.readers empty" in stderr, stderr


def test_nodes_proxy_is_granted_only_when_scraping_via_proxy(render: Render) -> None:
    assert rules_for(render(), "nodes/proxy") == set()
    assert rules_for(render({"scrape": {"via": "proxy"}}), "nodes/proxy") == {"get"}


def test_cluster_role_is_least_privilege(render: Render) -> None:
    manifests = render()
    for resource in ("pods", "nodes", "namespaces"):
        assert rules_for(manifests, resource) == {"get", "list", "watch"}
    assert rules_for(manifests, "replicasets", "apps") == {"get", "list", "watch"}
    assert rules_for(manifests, "jobs", "batch") == {"get", "list", "watch"}
    assert rules_for(manifests, "nodes/metrics") == rules_for(manifests, "nodes/stats") == {"get"}
    # Exactly what the operator calls (tests/packaging/test_rbac_e2e.py proves it needs no more).
    assert rules_for(manifests, "metricspolicies", "kubemeter.io") == {"get", "list", "watch"}
    assert rules_for(manifests, "metricspolicies/status", "kubemeter.io") == {"patch"}
    assert rules_for(manifests, "workloadmetrics", "kubemeter.io") == {"get", "list", "create", "patch", "delete"}
    assert rules_for(manifests, "workloadmetrics/status", "kubemeter.io") == {"patch"}
    assert rules_for(manifests, "metricscheckpoints", "kubemeter.io") == {"get", "list", "create", "patch", "delete"}
    assert rules_for(manifests, "events") == {"create"}
    assert rules_for(manifests, "events", "events.k8s.io") == set()
    every_rule = operator_cluster_role(manifests)["rules"]
    assert all("*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"] for rule in every_rule)
    assert not any(rule["resources"] == ["secrets"] for rule in every_rule)


def test_cluster_role_is_bound_to_the_operators_service_account(render: Render) -> None:
    manifests = render()
    binding = one(manifests, "ClusterRoleBinding")
    account = one(manifests, "ServiceAccount")
    assert binding["roleRef"]["name"] == operator_cluster_role(manifests)["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": "kubemeter"}]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True


def failed_render(tmp_path: Path, values: dict[str, Any]) -> str:
    """`helm template` with ``values``, which must fail: its error output."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = run("helm", "template", "km", CHART, "-f", values_file, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr


def container(manifests: list[Manifest]) -> dict[str, Any]:
    return one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_pod_is_hardened(render: Render) -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    context = container(render())["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
    assert isinstance(pod["securityContext"]["runAsGroup"], int)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # The read-only root still gets a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container(render())["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])


def test_probes_hit_health_endpoints_on_the_metrics_port(render: Render) -> None:
    operator = container(render({"metricsPort": 9100}))
    assert operator["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_operator_flags_come_from_values(render: Render) -> None:
    operator = container(render({"logFormat": "text", "logLevel": "debug", "writeQPS": 5, "writeBurst": 10}))
    assert operator["command"] == ["kubemeter"]
    assert operator["args"] == ["run", "--metrics-port=8080", "--log-format=text", "--log-level=debug",
                                "--write-qps=5", "--write-burst=10"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in operator["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}


def test_a_kubelet_ca_from_a_config_map_is_mounted_and_passed(render: Render) -> None:
    assert not any(a.startswith("--kubelet-ca") for a in container(render())["args"]), "default: the cluster CA"
    manifests = render({"scrape": {"kubeletCA": {"configMap": "kubelet-serving-ca", "key": "bundle.pem"}}})
    operator = container(manifests)
    assert "--kubelet-ca=/etc/kubemeter/kubelet-ca/bundle.pem" in operator["args"]
    mount = next(m for m in operator["volumeMounts"] if m["name"] == "kubelet-ca")
    assert mount == {"name": "kubelet-ca", "mountPath": "/etc/kubemeter/kubelet-ca", "readOnly": True}
    volumes = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "kubelet-ca", "configMap": {"name": "kubelet-serving-ca"}} in volumes


def test_image_tag_defaults_to_the_app_version(render: Render) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(render())["image"] == f"kubemeter:{app_version}"
    assert container(render({"image": {"repository": "r.example/km", "tag": "dev"}}))["image"] == "r.example/km:dev"


def test_one_replica_runs_alone(render: Render) -> None:
    manifests = render()
    assert "--leader-election" not in container(manifests)["args"]
    assert one(manifests, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert by_kind(manifests, "PodDisruptionBudget") == by_kind(manifests, "Role") == []


def test_two_replicas_elect_a_leader_and_get_a_disruption_budget(render: Render) -> None:
    manifests = render({"replicaCount": 2})
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "--leader-election" in container(manifests)["args"]
    assert "strategy" not in deployment["spec"]  # a rolling update is safe behind the lease
    budget = one(manifests, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    assert "--lease-name=km-kubemeter" in container(manifests)["args"]
    lease_rules = one(manifests, "Role")["rules"]
    assert lease_rules == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["km-kubemeter"],
         "verbs": ["get", "update"]},
    ]
    assert one(manifests, "RoleBinding")["metadata"]["namespace"] == "kubemeter"


def test_scheduling_values_reach_the_pod(render: Render) -> None:
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/a": "1"},
        "podLabels": {"team": "platform"},
    }
    template = one(render(values), "Deployment")["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert template["metadata"]["annotations"] == {"example.com/a": "1"}
    assert template["metadata"]["labels"]["team"] == "platform"


def test_service_monitor_scrapes_the_service_metrics_port(render: Render) -> None:
    manifests = render(ALL_FEATURES)
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kubemeter"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert service["spec"]["selector"].items() <= one(manifests, "Deployment")["spec"]["template"]["metadata"][
        "labels"].items()


def test_service_monitor_keeps_the_workloads_namespace_label(render: Render) -> None:
    # prometheus-operator adds a `namespace` target label (the operator's); honoring the scraped labels keeps
    # each series' own namespace, so sums by namespace and workload do not merge namespaces.
    (endpoint,) = one(render(ALL_FEATURES), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    (opted_out,) = one(render({"serviceMonitor": {"enabled": True, "honorLabels": False}}),
                       "ServiceMonitor")["spec"]["endpoints"]
    assert opted_out["honorLabels"] is False


@pytest.mark.parametrize(("interval", "timeout"), [("30s", "30s"), ("1m", "45s"), ("1m30s", "90s"),
                                                   ("10s", "9500ms")])
def test_service_monitor_accepts_a_scrape_timeout_up_to_the_interval(
    render: Render, interval: str, timeout: str
) -> None:
    values = {"serviceMonitor": {"enabled": True, "interval": interval, "scrapeTimeout": timeout}}
    (endpoint,) = one(render(values), "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (interval, timeout)


@pytest.mark.parametrize(("interval", "timeout"), [("30s", "31s"), ("1m", "1m500ms"), ("15s", "1h"),
                                                   ("1m30s", "91s")])
def test_a_scrape_timeout_longer_than_the_interval_fails_the_render(
    tmp_path: Path, interval: str, timeout: str
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"serviceMonitor": {"enabled": True, "interval": interval,
                                                              "scrapeTimeout": timeout}}))
    result = run("helm", "template", "km", CHART, "-f", values_file, check=False)
    assert result.returncode != 0
    assert (f"serviceMonitor.scrapeTimeout ({timeout}) is longer than serviceMonitor.interval ({interval})"
            in result.stderr), result.stderr


def promtool_accepts_config(interval: str, timeout: str, tmp_path: Path) -> bool:
    """Whether Prometheus takes a scrape config with this interval and timeout (as prometheus-operator writes it)."""
    config = tmp_path / "prometheus.yaml"
    config.write_text(yaml.safe_dump({"scrape_configs": [{
        "job_name": "km", "scrape_interval": interval, "scrape_timeout": timeout,
        "static_configs": [{"targets": ["127.0.0.1:8080"]}]}]}))
    return run("promtool", "check", "config", "--syntax-only", config, check=False).returncode == 0


# Prometheus's durations (model.ParseDuration, and prometheus-operator's Duration pattern): whole numbers of y, w,
# d, h, m, s, ms in that order; 0 alone. Go's fractions and ns/us are refused, and so is the wrong order.
PROMETHEUS_DURATIONS = ["1d", "1w", "1h30m", "90m", "1y2w3d4h5m6s7ms", "500ms", "0"]
NOT_PROMETHEUS_DURATIONS = ["0.5h", "1.5m", "1h1d", "30s1m", "1H", "30", "1m 30s", "-1h", "1us", ""]


@pytest.mark.parametrize("duration", PROMETHEUS_DURATIONS + NOT_PROMETHEUS_DURATIONS)
def test_the_alerts_for_takes_exactly_the_durations_prometheus_takes(
    render: Render, tmp_path: Path, duration: str
) -> None:
    values = {"prometheusRule": {"enabled": True, "scrapeFailuresFor": duration, "underRequested": {"for": duration}}}
    if duration in PROMETHEUS_DURATIONS:
        rule = one(render(values), "PrometheusRule")
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
        run("promtool", "check", "rules", tmp_path / "rules.yaml")
        alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
        # Strings, even 0 (prometheus-operator's field is one).
        assert alerts["KubemeterScrapeFailures"]["for"] == alerts["KubemeterWorkloadUnderRequested"]["for"] == duration
        return
    stderr = failed_render(tmp_path, values)
    for value in ("/prometheusRule/scrapeFailuresFor", "/prometheusRule/underRequested/for"):
        assert f"at '{value}': '{duration}' does not match pattern" in stderr or (
            duration == "" and f"at '{value}': minLength" in stderr), stderr
    # ...as Prometheus would have refused it.
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "up == 0", "for": duration}]}]}))
    assert run("promtool", "check", "rules", tmp_path / "rules.yaml", check=False).returncode != 0


@pytest.mark.parametrize(("interval", "timeout"), [
    ("1d", "1h"), ("1w", "1d"), ("1h30m", "90m"), ("2m", "1m30s"), ("1y", "1w"),  # accepted by both
    ("1m", "1d"), ("1d", "1w"), ("90m", "1h31m"), ("1h", "1y"),  # a timeout over the interval, in the new units
    ("1.5m", "1m"), ("1m", "0.5m"), ("1d1h", "1h1d"),  # not Prometheus durations
])
def test_the_service_monitor_takes_the_intervals_and_timeouts_prometheus_takes(
    render: Render, tmp_path: Path, interval: str, timeout: str
) -> None:
    values = {"serviceMonitor": {"enabled": True, "interval": interval, "scrapeTimeout": timeout}}
    if promtool_accepts_config(interval, timeout, tmp_path):
        (endpoint,) = one(render(values), "ServiceMonitor")["spec"]["endpoints"]
        assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (interval, timeout)
        return
    stderr = failed_render(tmp_path, values)
    assert (f"serviceMonitor.scrapeTimeout ({timeout}) is longer than serviceMonitor.interval ({interval})" in stderr
            or f"'{interval}' does not match pattern" in stderr or f"'{timeout}' does not match pattern" in stderr), (
        stderr)


# Comma-separated PromQL label matchers; what the alerts' expressions put between braces.
SELECTORS = ['job="kubemeter"', 'job="kubemeter", namespace=~"mon.*"', "job!='x',", 'job=~`km.*`',
             'job="a\\"b"']
NOT_SELECTORS = ["job=kubemeter", 'job="a"}', 'job="a"} or vector(1)', 'job=="a"', '{job="a"}',
                 'job="a" namespace="b"', 'job="a', "job"]


@pytest.mark.parametrize("selector", SELECTORS + NOT_SELECTORS)
def test_the_alerts_selector_must_be_promql_label_matchers(render: Render, tmp_path: Path, selector: str) -> None:
    values = {"prometheusRule": {"enabled": True, "selector": selector}}
    if selector in SELECTORS:
        rule = one(render(values), "PrometheusRule")
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
        assert f"SUCCESS: {len(ALERTS)} rules found" in run("promtool", "check", "rules", tmp_path / "rules.yaml").stdout
        return
    stderr = failed_render(tmp_path, values)
    assert "at '/prometheusRule/selector':" in stderr and "does not match pattern" in stderr, stderr
    # ...where PromQL would have refused it.
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": f"absent(up{{{selector}}} == 1)"}]}]}))
    assert run("promtool", "check", "rules", tmp_path / "rules.yaml", check=False).returncode != 0


def test_network_policy_admits_only_the_metrics_port_from_the_given_peers(render: Render) -> None:
    assert by_kind(render(), "NetworkPolicy") == []
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
             {"podSelector": {"matchLabels": {"app": "prometheus"}}}]
    manifests = render({"metricsPort": 9100, "networkPolicy": {"enabled": True, "from": peers}})
    policy = one(manifests, "NetworkPolicy")["spec"]
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"], "egress to the API server and the kubelets stays open"
    assert policy["ingress"] == [{"ports": [{"port": 9100, "protocol": "TCP"}], "from": peers}]
    assert [p["containerPort"] for p in container(manifests)["ports"]] == [9100], "the only port the pod serves"
    # No peers given: any source, still on the metrics port only.
    anyone = one(render({"networkPolicy": {"enabled": True}}), "NetworkPolicy")["spec"]
    assert anyone["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


METRICS_READERS = [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"},
                   {"kind": "Group", "name": "metrics-readers"}]


def test_metrics_auth_serves_https_and_delegates_to_the_api_server(render: Render) -> None:
    assert rules_for(render(), "tokenreviews", "authentication.k8s.io") == set()
    manifests = render({"metricsAuth": {"enabled": True, "readers": METRICS_READERS}})
    operator = container(manifests)
    flags = dict(arg.split("=", 1) for arg in operator["args"] if "=" in arg)
    assert flags["--metrics-auth"] == "delegated"
    mounts = {m["name"]: m["mountPath"] for m in operator["volumeMounts"]}
    assert flags["--tls-cert-file"] == f"{mounts['metrics-tls']}/tls.crt"
    assert flags["--tls-private-key-file"] == f"{mounts['metrics-tls']}/tls.key"
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "metrics-tls"]
    secret = one(manifests, "Secret")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    # The probes stay unauthenticated on the same port, over HTTPS.
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert operator[probe]["httpGet"] == {"path": path, "port": "metrics", "scheme": "HTTPS"}

    roles = {role["metadata"]["name"]: role for role in by_kind(manifests, "ClusterRole")}
    operator_role, reader_role = roles["kubemeter-km-kubemeter"], roles["kubemeter-km-kubemeter-metrics-reader"]
    grants = {(group, resource): rule["verbs"] for rule in operator_role["rules"]
              for group in rule["apiGroups"] for resource in rule["resources"]}
    assert grants[("authentication.k8s.io", "tokenreviews")] == ["create"]
    assert grants[("authorization.k8s.io", "subjectaccessreviews")] == ["create"]
    assert reader_role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    (binding,) = [b for b in by_kind(manifests, "ClusterRoleBinding") if b["roleRef"]["name"] == reader_role[
        "metadata"]["name"]]
    assert binding["subjects"] == [METRICS_READERS[0], {**METRICS_READERS[1], "apiGroup": "rbac.authorization.k8s.io"}]


def test_the_generated_metrics_certificate_is_signed_for_the_service_by_the_ca_it_ships(
    render: Render, tmp_path: Path
) -> None:
    manifests = render({"metricsAuth": {"enabled": True}})
    secret = one(manifests, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    # The name values.yaml documents.
    assert "`<fullname>-metrics-tls`" in (CHART / "values.yaml").read_text()
    assert secret["metadata"]["name"] == f"{one(manifests, 'Deployment')['metadata']['name']}-metrics-tls"
    files = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert files.keys() == {"tls.crt", "tls.key", "ca.crt"}
    certificate, ca = x509.load_pem_x509_certificate(files["tls.crt"]), x509.load_pem_x509_certificate(files["ca.crt"])
    certificate.verify_directly_issued_by(ca)
    service = one(manifests, "Service")["metadata"]["name"]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{service}.kubemeter.svc" in names.get_values_for_type(x509.DNSName)
    # The key is the certificate's: what the operator's --tls-cert-file / --tls-private-key-file load.
    for key, content in files.items():
        (tmp_path / key).write_bytes(content)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    # The ServiceMonitor verifies it with that CA, for the Service's name, with Prometheus's own token.
    endpoint = one(render({**ALL_FEATURES, "metricsAuth": {"enabled": True}}), "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {"serverName": f"{service}.kubemeter.svc",
                                     "ca": {"secret": {"name": secret["metadata"]["name"], "key": "ca.crt"}}}


def test_a_given_metrics_certificate_secret_and_scrape_credentials_are_used(render: Render) -> None:
    authorization = {"type": "Bearer", "credentials": {"name": "prometheus-token", "key": "token"}}
    tls_config = {"ca": {"configMap": {"name": "cluster-ca", "key": "ca.crt"}}, "serverName": "kubemeter"}
    manifests = render({"metricsAuth": {"enabled": True, "tlsSecret": "kubemeter-metrics-cert"},
                        "serviceMonitor": {"enabled": True, "authorization": authorization, "tlsConfig": tls_config}})
    assert by_kind(manifests, "Secret") == [], "no certificate generated"
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "metrics-tls", "secret": {"secretName": "kubemeter-metrics-cert"}} in pod["volumes"]
    endpoint = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["authorization"], endpoint["tlsConfig"]) == (authorization, tls_config)
    assert "bearerTokenFile" not in endpoint


ALERTS = ("KubemeterScrapeFailures", "KubemeterPolicyStale", "KubemeterCycleFailures", "KubemeterStatusWritesBehind",
          "KubemeterDown", "KubemeterWorkloadUnderRequested")


def test_prometheus_rules_pass_promtool(render: Render, tmp_path: Path) -> None:
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = run("promtool", "check", "rules", rules_file)
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert alerts.keys() == set(ALERTS)
    service = one(render(ALL_FEATURES), "Service")["metadata"]["name"]
    # Prometheus names the job after the Service the ServiceMonitor selects, and gives the target its namespace.
    assert f'absent(up{{job="{service}", namespace="kubemeter"}} == 1)' == alerts["KubemeterDown"]["expr"]
    assert "kubemeter_scrape_errors_total" in alerts["KubemeterScrapeFailures"]["expr"]
    assert alerts["KubemeterScrapeFailures"]["for"] == "15m"
    assert "kubemeter_policy_last_cycle_timestamp_seconds" in alerts["KubemeterPolicyStale"]["expr"]


README_URL = "https://github.com/kubemeter/kubemeter/blob/main/README.md"


def fired(rule: Manifest, alert: str, labels: dict[str, str]) -> dict[str, Any]:
    """What promtool should see of ``alert`` firing with ``labels``: its annotations with the labels filled in."""
    (spec,) = [r for group in rule["spec"]["groups"] for r in group["rules"] if r.get("alert") == alert]
    annotations = {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], text)
                   for key, text in spec["annotations"].items()}
    return {"exp_labels": {**labels, "severity": "warning"}, "exp_annotations": annotations}


def promtool_test_rules(rule: Manifest, tests: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                          "tests": tests}))
    result = run("promtool", "test", "rules", "tests.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    """A promtool input series of the operator's job, with the target labels prometheus-operator gives it."""
    matchers = ",".join(f'{key}="{value}"' for key, value in
                        {"job": "km-kubemeter", "namespace": "kubemeter", **labels}.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def test_alerts_fire_when_they_should_and_link_their_runbooks(render: Render, tmp_path: Path) -> None:
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    failing = {"namespace": "kubemeter", "node": "node-1", "reason": "timeout"}  # summed by these
    errors = "kubemeter_scrape_errors_total"
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [
            series("up", "0x30"),
            series(errors, "0+1x30", node="node-1", policy="p", reason="timeout"),
            series(errors, "3x30", node="node-2", policy="p", reason="timeout"),  # long ago
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "KubemeterDown", "exp_alerts": []},  # down, not yet for 5m
            {"eval_time": "6m", "alertname": "KubemeterDown", "exp_alerts": [fired(rule, "KubemeterDown", {})]},
            {"eval_time": "10m", "alertname": "KubemeterScrapeFailures", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "KubemeterScrapeFailures",
             "exp_alerts": [fired(rule, "KubemeterScrapeFailures", failing)]},
        ],
    }, {
        "interval": "1m",
        "input_series": [series("up", "1x30")],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "KubemeterDown", "exp_alerts": []}],
    }, {
        "interval": "1m",
        # One failure every 4 minutes keeps a failure in every 5-minute rate window; every 10 minutes does not.
        "input_series": [series(errors, " ".join(str(minute // 4) for minute in range(31)), node="node-1",
                                policy="p", reason="timeout"),
                         series(errors, " ".join(str(minute // 10) for minute in range(31)), node="node-2",
                                policy="p", reason="timeout")],
        "alert_rule_test": [{"eval_time": "25m", "alertname": "KubemeterScrapeFailures",
                             "exp_alerts": [fired(rule, "KubemeterScrapeFailures", failing)]}],
    }, {
        "interval": "1m",
        # A release of the same name in another namespace is up, this one down: its job is the same.
        "input_series": [series("up", "0x30"), series("up", "1x30", namespace="staging")],
        "alert_rule_test": [{"eval_time": "6m", "alertname": "KubemeterDown", "exp_alerts": [
            fired(rule, "KubemeterDown", {})]}],
    }], tmp_path)
    readme = (CHART.parents[1] / "README.md").read_text()
    for alert in ALERTS:
        labels = {name: name[0] for name in ("node", "reason", "policy", "namespace", "workload_kind", "workload",
                                             "container", "resource")}
        url = fired(rule, alert, labels)["exp_annotations"]["runbook_url"]
        assert url == f"{README_URL}#{alert.lower()}"
        assert f"\n#### {alert}\n" in readme, "the README section the runbook_url points at"


def test_a_policy_is_stale_when_its_cycles_are_overdue_or_absent(render: Render, tmp_path: Path) -> None:
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    last, interval = "kubemeter_policy_last_cycle_timestamp_seconds", "kubemeter_policy_interval_seconds"
    pending, leader = "kubemeter_status_writes_pending", "kubemeter_is_leader"
    stale = [fired(rule, "KubemeterPolicyStale", {"namespace": "kubemeter", "policy": "p"})]
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [  # p's last cycle is at 0 (30 s interval); "fresh" cycles every minute
            series(last, "0x30", policy="p"), series(interval, "30x30", policy="p"),
            series(last, "0+60x30", policy="fresh"), series(interval, "30x30", policy="fresh"),
            series(pending, "0x30", policy="p"), series(pending, "0x30", policy="fresh"),
        ],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "KubemeterPolicyStale", "exp_alerts": stale}],
    }, {
        "interval": "1m",
        "input_series": [  # the leader knows p but never completed a cycle of it (its spec was never valid)
            series(leader, "1x30", instance="a"), series(pending, "0x30", instance="a", policy="p"),
        ],
        "alert_rule_test": [{"eval_time": "4m", "alertname": "KubemeterPolicyStale", "exp_alerts": []},
                            {"eval_time": "6m", "alertname": "KubemeterPolicyStale", "exp_alerts": stale}],
    }, {
        "interval": "1m",
        "input_series": [  # two standbys and no leader: no replica exports p's cycles
            series(leader, "0x30", instance="a"), series(leader, "0x30", instance="b"),
            series(pending, "0x30", instance="a", policy="p"), series(pending, "0x30", instance="b", policy="p"),
        ],
        "alert_rule_test": [{"eval_time": "6m", "alertname": "KubemeterPolicyStale", "exp_alerts": stale}],
    }, {
        "interval": "1m",
        "input_series": [  # a leader cycling p, beside a standby
            series(leader, "1x30", instance="a"), series(leader, "0x30", instance="b"),
            series(pending, "0x30", instance="a", policy="p"), series(pending, "0x30", instance="b", policy="p"),
            series(last, "0+60x30", instance="a", policy="p"), series(interval, "30x30", instance="a", policy="p"),
        ],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "KubemeterPolicyStale", "exp_alerts": []}],
    }], tmp_path)


def test_cycle_failures_alert_while_they_happen(render: Render, tmp_path: Path) -> None:
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    failures = "kubemeter_cycle_failures_total"
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [series(failures, "0x9 1x20", policy="p"),  # one failure at 10m
                         series(failures, "0x30", policy="ok")],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "KubemeterCycleFailures", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "KubemeterCycleFailures",
             "exp_alerts": [fired(rule, "KubemeterCycleFailures", {"namespace": "kubemeter", "policy": "p"})]},
            {"eval_time": "30m", "alertname": "KubemeterCycleFailures", "exp_alerts": []},  # none since
        ],
    }], tmp_path)


def test_status_writes_alert_when_stuck_or_never_caught_up(render: Render, tmp_path: Path) -> None:
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    pending, stalled = "kubemeter_status_writes_pending", "kubemeter_status_writer_stalled_seconds"
    emptied_every_other_minute = " ".join(str(5 * (minute % 2)) for minute in range(31))
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [
            series(pending, "0 1x30", policy="stuck"), series(stalled, "0+60x30", policy="stuck"),
            series(pending, "0 5x30", policy="behind"), series(stalled, "0x30", policy="behind"),
            series(pending, emptied_every_other_minute, policy="keeping-up"), series(stalled, "0x30", policy="keeping-up"),
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "KubemeterStatusWritesBehind", "exp_alerts": []},
            {"eval_time": "8m", "alertname": "KubemeterStatusWritesBehind",
             "exp_alerts": [fired(rule, "KubemeterStatusWritesBehind", {"namespace": "kubemeter", "policy": "stuck"})]},
            {"eval_time": "20m", "alertname": "KubemeterStatusWritesBehind",
             "exp_alerts": [fired(rule, "KubemeterStatusWritesBehind", {"namespace": "kubemeter", "policy": policy})
                            for policy in ("behind", "stuck")]},
        ],
    }], tmp_path)


SHORTFALL = "kubemeter_workload_container_{}_request_shortfall_{}"
CPU_SHORTFALL, MEMORY_SHORTFALL = SHORTFALL.format("cpu", "cores"), SHORTFALL.format("memory", "bytes")


def container_series(name: str, values: str, workload: str, container: str = "app", **labels: str) -> dict[str, str]:
    """A workload container's series as Prometheus stores it with honorLabels: the workload's namespace, and the
    operator target's job and instance."""
    return series(name, values, **{"instance": "10.0.0.5:8080", "namespace": "shop", "workload_api_group": "apps",
                                   "workload_kind": "Deployment", "workload": workload, "container": container,
                                   "policy": "p", **labels})


def under_requested(rule: Manifest, workload: str, resource: str, container: str = "app") -> dict[str, Any]:
    return fired(rule, "KubemeterWorkloadUnderRequested", {
        "namespace": "shop", "workload_api_group": "apps", "workload_kind": "Deployment", "workload": workload,
        "container": container, "policy": "p", "resource": resource})


def test_a_workload_container_under_requested_for_an_hour_alerts_once_its_history_is_judged(
    render: Render, tmp_path: Path
) -> None:
    """The shortfall series exist only for the ``under`` verdict (none while learning: the operator's unit and
    end-to-end tests show it), so absent is quiet; present for the hour of ``for``, it fires, in the workload's
    namespace, per resource; one that comes and goes (a request at the edge of its bound) does not."""
    rule = one(render(ALL_FEATURES), "PrometheusRule")
    build = series("kubemeter_build_info", "1x200", instance="10.0.0.5:8080", python_version="3.11", version="0")
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [
            build,
            container_series(CPU_SHORTFALL, "0.05x200", "cart"),
            container_series(MEMORY_SHORTFALL, "3e7x200", "cart"),
            # Learning for 40 minutes (no series), then under.
            container_series(CPU_SHORTFALL, "_x40 0.2x160", "checkout"),
            # Under for 30 minutes, fit for 10 (no series: stale after 5), under again.
            container_series(CPU_SHORTFALL, "0.01x30 _x10 0.01x160", "search"),
        ],
        "alert_rule_test": [
            {"eval_time": "50m", "alertname": "KubemeterWorkloadUnderRequested", "exp_alerts": []},
            {"eval_time": "70m", "alertname": "KubemeterWorkloadUnderRequested",
             "exp_alerts": [under_requested(rule, "cart", "cpu"), under_requested(rule, "cart", "memory")]},
            {"eval_time": "90m", "alertname": "KubemeterWorkloadUnderRequested",
             "exp_alerts": [under_requested(rule, "cart", "cpu"), under_requested(rule, "cart", "memory")]},
            {"eval_time": "110m", "alertname": "KubemeterWorkloadUnderRequested",
             "exp_alerts": [under_requested(rule, "cart", "cpu"), under_requested(rule, "cart", "memory"),
                            under_requested(rule, "checkout", "cpu"), under_requested(rule, "search", "cpu")]},
        ],
    }, {
        "interval": "1m",
        # Another release of the same name (the same job) in namespace staging, another target: not this one's.
        "input_series": [
            build,
            series("kubemeter_build_info", "1x200", namespace="staging", instance="10.0.9.9:8080",
                   python_version="3.11", version="0"),
            container_series(CPU_SHORTFALL, "0.05x200", "cart", instance="10.0.9.9:8080"),
        ],
        "alert_rule_test": [{"eval_time": "90m", "alertname": "KubemeterWorkloadUnderRequested", "exp_alerts": []}],
    }, {
        "interval": "1m",
        # Leadership moves from one replica to the other at 30m: the same alert goes on (no instance label).
        "input_series": [
            build, series("kubemeter_build_info", "1x200", instance="10.0.0.6:8080", python_version="3.11",
                          version="0"),
            container_series(CPU_SHORTFALL, "0.05x30", "cart"),
            container_series(CPU_SHORTFALL, "_x30 0.05x170", "cart", instance="10.0.0.6:8080"),
        ],
        "alert_rule_test": [{"eval_time": "70m", "alertname": "KubemeterWorkloadUnderRequested",
                             "exp_alerts": [under_requested(rule, "cart", "cpu")]}],
    }], tmp_path)


def test_the_under_requested_alert_can_be_turned_off_or_given_its_own_delay_and_severity(render: Render) -> None:
    def alerts(values: dict[str, Any]) -> dict[str, Any]:
        rule = one(render({"prometheusRule": {"enabled": True, **values}}), "PrometheusRule")
        return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}

    assert alerts({})["KubemeterWorkloadUnderRequested"]["for"] == "1h"
    assert "KubemeterWorkloadUnderRequested" not in alerts({"underRequested": {"enabled": False}})
    own = alerts({"underRequested": {"for": "6h", "severity": "info"}})["KubemeterWorkloadUnderRequested"]
    assert (own["for"], own["labels"]["severity"]) == ("6h", "info")
    assert "6h" in own["annotations"]["description"]
    # The selector picks the operator's targets through kubemeter_build_info, never the workload series'
    # namespace (theirs, by honorLabels).
    chosen = alerts({"selector": 'job="kubemeter"'})["KubemeterWorkloadUnderRequested"]["expr"]
    assert chosen.count('and on (job, instance) kubemeter_build_info{job="kubemeter"}') == 2
    assert 'shortfall_cores{' not in chosen and 'shortfall_bytes{' not in chosen


def test_alerts_select_the_operators_series_by_the_given_matchers(render: Render, tmp_path: Path) -> None:
    # A Prometheus whose own scrape config names the job "kubemeter".
    rule = one(render({"prometheusRule": {"enabled": True, "selector": 'job="kubemeter"'}}), "PrometheusRule")
    promtool_test_rules(rule, [{
        "interval": "1m",
        "input_series": [{"series": 'up{job="kubemeter"}', "values": "1x30"},
                         {"series": 'up{job="km-kubemeter"}', "values": "0x30"}],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "KubemeterDown", "exp_alerts": []}],
    }, {
        "interval": "1m",
        "input_series": [{"series": 'up{job="km-kubemeter"}', "values": "1x30"}],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "KubemeterDown",
                             "exp_alerts": [fired(rule, "KubemeterDown", {})]}],
    }], tmp_path)


def test_default_policy_is_valid_against_the_crd(render: Render) -> None:
    policy = one(render(ALL_FEATURES), "MetricsPolicy")
    schema = CompiledSchema.compile(crd_schema("metricspolicies"))
    assert schema.validate(schema.prepare(policy)) == []
    assert schema.prepare(policy)["spec"]["source"]["endpoint"] == "summary"
    assert "namespace" not in policy["metadata"]  # cluster-scoped


@pytest.mark.parametrize("interval", ["10s", "10000ms", "1m30s", "10000000us", "24h", "1440m"])
def test_a_default_policy_interval_the_crd_accepts_renders(render: Render, interval: str) -> None:
    policy = one(render({"defaultPolicy": {"enabled": True, "spec": {"interval": interval}}}), "MetricsPolicy")
    schema = CompiledSchema.compile(crd_schema("metricspolicies"))
    assert schema.validate(schema.prepare(policy)) == []
    assert policy["spec"]["interval"] == interval


@pytest.mark.parametrize(("interval", "message"), [
    *((interval, "is shorter than 10s, the MetricsPolicy CRD's minimum") for interval in ("5s", "9999ms", "9.5s", "0s",
                                                                                          "0")),
    *((interval, "is longer than 24h, the MetricsPolicy CRD's maximum") for interval in ("25h", "24h0m1s", "1441m")),
])
def test_a_default_policy_interval_outside_the_crds_range_fails_the_render(
    render: Render, tmp_path: Path, interval: str, message: str
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"defaultPolicy": {"enabled": True, "spec": {"interval": interval}}}))
    result = run("helm", "template", "km", CHART, "-f", values_file, check=False)
    assert result.returncode != 0
    assert f"defaultPolicy.spec.interval ({interval}) {message}" in result.stderr, result.stderr
    # What the API server would refuse at install.
    policy = one(render({"defaultPolicy": {"enabled": True}}), "MetricsPolicy")
    schema = CompiledSchema.compile(crd_schema("metricspolicies"))
    assert schema.validate(schema.prepare({**policy, "spec": {"interval": interval}})) != []


def test_the_default_policy_interval_has_the_crds_pattern() -> None:
    values_schema = json.loads((CHART / "values.schema.json").read_text())
    chart_interval = values_schema["properties"]["defaultPolicy"]["properties"]["spec"]["properties"]["interval"]
    crd_interval = crd_schema("metricspolicies")["properties"]["spec"]["properties"]["interval"]
    assert (chart_interval["pattern"], chart_interval["maxLength"]) == (crd_interval["pattern"], crd_interval["maxLength"])


def test_grafana_dashboard_charts_workload_usage_against_requests_and_coverage(render: Render) -> None:
    config_map = one(render(ALL_FEATURES), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (dashboard_json,) = config_map["data"].values()
    dashboard = json.loads(dashboard_json)
    panels = [panel for panel in dashboard["panels"] if not panel["title"].startswith("Right-sizing: ")]
    expressions = " ".join(t["expr"] for panel in panels for t in panel["targets"])
    for metric in ("kubemeter_workload_cpu_usage_cores", "kubemeter_workload_cpu_requests_cores",
                   "kubemeter_workload_memory_working_set_bytes", "kubemeter_workload_memory_requests_bytes",
                   "kubemeter_workload_pods_reporting"):
        assert metric in expressions
    # The utilization the status has (over the measured pods whose containers all request), not usage over
    # every pod's requests, which falls with coverage.
    utilization = {panel["title"]: panel["targets"][0]["expr"] for panel in panels
                   if panel["title"].endswith(" / requests")}
    assert utilization.keys() == {"CPU usage / requests", "Memory working set / requests"}
    for title, expr in utilization.items():
        resource = title.split()[0].lower()
        assert re.findall(r"\b(kubemeter_\w+)\{", expr) == [f"kubemeter_workload_{resource}_request_utilization_ratio"]
    grouping = set(re.findall(r"(?:sum|max) by \(([^)]*)\)", expressions))
    # Two kinds of one name from different API groups are two workloads.
    assert grouping == {"namespace, workload_api_group, workload_kind, workload"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"policy", "namespace", "kind", "workload"} <= variables.keys()
    # A Deployment and a Job of one name in one namespace: told apart by the legend, and by $kind for $workload.
    assert 'workload_kind=~"$kind"' in variables["workload"]["query"]["query"]
    for target in (t for panel in panels for t in panel["targets"]):
        assert 'workload_kind=~"$kind", workload=~"$workload"' in target["expr"], target["expr"]
        assert target["legendFormat"].startswith(
            "{{namespace}}/{{workload_kind}}.{{workload_api_group}}/{{workload}}"), target
    # Policies that select the same pods each export them: one policy at a time, or a sum counts them twice.
    policy = variables["policy"]
    assert (policy["multi"], policy["includeAll"], policy["current"]) == (False, False, {})
    assert 'policy="$policy"' in expressions and 'policy=~"$policy"' not in expressions


def test_grafana_dashboard_charts_requested_minus_recommended_by_namespace_and_the_most_over_requested(
    render: Render,
) -> None:
    """Summed from the per-container series, not the namespace roll-up: those carry the workload's kind and name,
    so $kind and $workload apply to these panels too."""
    (dashboard_json,) = one(render(ALL_FEATURES), "ConfigMap")["data"].values()
    panels = {panel["title"]: panel for panel in json.loads(dashboard_json)["panels"]
              if panel["title"].startswith("Right-sizing: ")}
    assert panels.keys() == {"Right-sizing: requested minus recommended",
                             "Right-sizing: most over-requested workload containers, CPU",
                             "Right-sizing: most over-requested workload containers, memory"}
    by_namespace = [t["expr"] for t in panels["Right-sizing: requested minus recommended"]["targets"]]
    assert [re.findall(r"\b(kubemeter_\w+)\{", expr) for expr in by_namespace] == [
        ["kubemeter_workload_container_cpu_requested_minus_recommended_cores"],
        ["kubemeter_workload_container_memory_requested_minus_recommended_bytes"]]
    assert all(expr.startswith("sum by (namespace) (") for expr in by_namespace)
    for resource in ("CPU", "memory"):
        panel = panels[f"Right-sizing: most over-requested workload containers, {resource}"]
        (target,) = panel["targets"]
        assert (panel["type"], target["instant"], target["format"]) == ("table", True, "table")
        assert target["expr"].startswith("topk(10, sum by (namespace, workload_api_group, workload_kind, workload, "
                                         "container) (kubemeter_workload_container_" + resource.lower())
        assert target["expr"].endswith(") > 0)"), "over-requested only"
    for target in (t for panel in panels.values() for t in panel["targets"]):
        assert 'policy="$policy", namespace=~"$namespace", workload_kind=~"$kind", workload=~"$workload"' in (
            target["expr"]), target["expr"]


def test_every_dashboard_legend_names_each_label_its_query_groups_by() -> None:
    """Series a legend leaves a grouping label out of look the same (a Deployment and a custom kind of one name and
    kind in another API group): every label of the outermost `by (...)` is in the legend, workloads named alike."""
    dashboards = sorted((CHART / "dashboards").glob("*.json"))
    assert dashboards
    legends = 0
    for path in dashboards:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                grouping = re.search(r"\bby \(([^)]*)\)", target["expr"])
                assert grouping, target["expr"]
                labels = grouping[1].split(", ")
                legend = target["legendFormat"]
                assert set(re.findall(r"\{\{(\w+)\}\}", legend)) == set(labels), (path.name, panel["title"], legend)
                if "workload" in labels:
                    assert "{{namespace}}/{{workload_kind}}.{{workload_api_group}}/{{workload}}" in legend, legend
                legends += 1
    assert legends >= 10


def install_notes(*values: str) -> str:
    result = run("helm", "install", "km", CHART, "--dry-run=client", "--namespace", "kubemeter", *values)
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_tell_how_to_read_results() -> None:
    notes = install_notes()
    assert "kubectl get workloadmetrics -A" in notes
    assert "kubectl get metricspolicies" in notes
    assert "kubectl -n kubemeter port-forward svc/km-kubemeter 8080:8080" in notes


def test_notes_say_what_was_installed_and_how_to_check_it_runs() -> None:
    notes = install_notes()
    assert "kubemeter 0.1.0 is running" not in notes, "helm prints the notes before any pod has started"
    assert "- the Deployment km-kubemeter: 1 replica, image kubemeter:0.1.0\n" in notes
    assert "kubectl -n kubemeter rollout status deployment/km-kubemeter" in notes
    assert "set image.repository" in notes
    assert "ServiceMonitor" not in notes
    featured = install_notes("--set", "replicaCount=2,serviceMonitor.enabled=true,prometheusRule.enabled=true",
                             "--set", "image.repository=registry.example.com/kubemeter,image.tag=v1")
    assert ("- the Deployment km-kubemeter: 2 replicas, leader election on a Lease, image "
            "registry.example.com/kubemeter:v1\n") in featured
    assert "- a ServiceMonitor\n- a PrometheusRule\n" in featured


def test_notes_name_every_crd_the_chart_installs() -> None:
    crds = sorted(path.stem for path in (CHART / "crds").glob("*.yaml"))
    assert len(crds) == 3
    assert f"- the CRDs {', '.join(crds[:-1])} and {crds[-1]}, unless --skip-crds was given\n" in install_notes()


def test_notes_list_only_the_account_and_roles_the_release_created() -> None:
    assert "- its ServiceAccount, its ClusterRole and the Service km-kubemeter (port 8080)\n" in install_notes()
    without_rbac = install_notes("--set", "rbac.create=false")
    assert "- its ServiceAccount and the Service km-kubemeter (port 8080)\n" in without_rbac
    assert "bind km-kubemeter to the operator's rules yourself" in without_rbac
    assert "no aggregated view/edit/admin roles for WorkloadMetrics either\n" in without_rbac
    neither = install_notes("--set", "rbac.create=false,serviceAccount.create=false,serviceAccount.name=ops")
    assert "ServiceAccount and" not in neither and "its ClusterRole" not in neither
    assert "- the Service km-kubemeter (port 8080)\n- no ServiceAccount: the pods run as the existing ops\n" in neither


def test_notes_say_to_set_the_digest_when_the_image_is_pinned_by_one() -> None:
    assert "set image.repository and image.tag)" in install_notes()
    pinned = install_notes("--set", f"image.digest={DIGEST}")
    assert "set image.repository and image.digest)" in pinned
    assert "image.tag" not in pinned, "the tag is ignored with a digest"


def test_extension_points_reach_the_pod(render: Render) -> None:
    manifests = render(EXTENSIONS)
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    operator = container(manifests)
    assert operator["image"] == f"registry.example.com:5000/team/kubemeter@{DIGEST}"
    assert operator["args"][-2:] == EXTENSIONS["extraArgs"], "appended after the chart's own"
    assert operator["env"][-2:] == EXTENSIONS["extraEnv"]
    assert {e["name"] for e in operator["env"]} >= {"POD_NAMESPACE", "POD_NAME"}
    assert pod["topologySpreadConstraints"] == EXTENSIONS["topologySpreadConstraints"]
    assert pod["terminationGracePeriodSeconds"] == 60
    assert deployment["spec"]["strategy"] == EXTENSIONS["updateStrategy"]
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert operator["resources"] == EXTENSIONS["resources"]
    assert one(manifests, "Service")["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    assert one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in one(manifests, "PodDisruptionBudget")["spec"]


@pytest.mark.parametrize(("arg", "flag", "value"), [
    ("--metrics-port=9999", "--metrics-port", "metricsPort"),
    ("--log-level", "--log-level", "logLevel"),  # its value as the next entry
    ("--write-q=5", "--write-qps", "writeQPS"),  # argparse takes a unique prefix
    ("--leader-election", "--leader-election", "leaderElection.enabled"),
    ("--no-leader-election", "--no-leader-election", "leaderElection.enabled and replicaCount"),
    ("--lease-name=other", "--lease-name", "fullnameOverride"),
    ("--kubelet-ca=/ca.crt", "--kubelet-ca", "scrape.kubeletCA.configMap"),
    ("--metrics-auth=delegated", "--metrics-auth", "metricsAuth.enabled"),
    ("--tls-cert-file=/c", "--tls-cert-file", "metricsAuth.tlsSecret"),
])
def test_extra_args_setting_a_flag_the_chart_sets_fail_the_render(
    tmp_path: Path, arg: str, flag: str, value: str
) -> None:
    """Both would be passed (the last wins) while the probes, the Service and the RBAC follow the chart's value."""
    stderr = failed_render(tmp_path, {"extraArgs": ["--api-timeout=10", arg]})
    assert f"extraArgs[1] ({arg}) sets {flag}, which the chart sets itself: set {value}" in stderr, stderr


def test_extra_args_the_chart_does_not_set_are_appended(render: Render) -> None:
    args = ["--api-timeout=10", "--max-body-bytes", "1048576", "--metrics-host=0.0.0.0"]
    assert container(render({"extraArgs": args}))["args"][-4:] == args


def test_extension_defaults(render: Render) -> None:
    manifests = render()
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["revisionHistoryLimit"] == 10
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "topologySpreadConstraints" not in pod
    assert "annotations" not in one(manifests, "Service")["metadata"]
    assert [e["name"] for e in container(manifests)["env"]] == ["POD_NAMESPACE", "POD_NAME"]
    # Without leader election Recreate stays the default; a given strategy replaces it.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert one(render({"updateStrategy": {"type": "RollingUpdate"}}), "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate"}
    budget = one(render({"pdb": {"enabled": True}}), "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget


def test_global_image_registry_prefixes_the_image(render: Render) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(render({"global": {"imageRegistry": "r.example"}}))["image"] == f"r.example/kubemeter:{app_version}"
    assert container(render({"global": {"imageRegistry": "r.example/"}, "image": {"tag": "dev"}}))[
        "image"] == "r.example/kubemeter:dev"
    assert container(render({"image": {"tag": "dev", "digest": DIGEST}}))["image"] == f"kubemeter@{DIGEST}"


def test_common_labels_are_on_every_rendered_object(render: Render) -> None:
    manifests = [m for m in render(EXTENSIONS) if m["kind"] != "CustomResourceDefinition"]  # crds/: not templated
    assert len({m["kind"] for m in manifests}) >= 12
    for manifest in manifests:
        assert manifest["metadata"]["labels"].items() >= EXTENSIONS["commonLabels"].items(), manifest["kind"]
    template = one(manifests, "Deployment")["spec"]["template"]
    assert template["metadata"]["labels"].items() >= EXTENSIONS["commonLabels"].items()
    selector = one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    assert "cost-center" not in selector, "the selector is immutable: common labels stay out of it"


# The longest and shortest labels Kubernetes takes: a 253-character prefix, a 63-character name, an empty value.
EDGE_LABELS = {f"{'p' * 61}.{'q' * 63}.{'r' * 63}.{'s' * 63}/{'n' * 63}": "v" * 63, "a": "", "A_b.c-D": "x.Y_z-1"}


def test_labels_as_long_or_short_as_kubernetes_allows_are_accepted(render: Render) -> None:
    assert len(next(iter(EDGE_LABELS)).partition("/")[0]) == 253
    manifests = render({"commonLabels": EDGE_LABELS, "podAnnotations": EDGE_LABELS, "nodeSelector": EDGE_LABELS})
    template = one(manifests, "Deployment")["spec"]["template"]
    assert template["metadata"]["labels"].items() >= EDGE_LABELS.items()
    assert template["metadata"]["annotations"] == template["spec"]["nodeSelector"] == EDGE_LABELS


def test_the_chart_checks_labels_as_the_operator_checks_a_policys_selector() -> None:
    """One label syntax (apimachinery's): the operator's, which the MetricsPolicy CRD's selectors have too."""
    definitions = json.loads((CHART / "values.schema.json").read_text())["definitions"]
    (key, value), = definitions["labels"]["patternProperties"].items()
    assert (key, value["pattern"]) == (LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN)
    assert list(definitions["annotations"]["patternProperties"]) == [LABEL_KEY_PATTERN]


def duplicated_keys(text: str) -> list[str]:
    """Keys that a mapping of the YAML ``text`` has more than once (yaml.safe_load keeps the last silently)."""
    duplicated: list[str] = []
    nodes = list(yaml.compose_all(text))
    while nodes:
        node = nodes.pop()
        if isinstance(node, yaml.MappingNode):
            keys = [key.value for key, _ in node.value]
            duplicated += sorted({key for key in keys if keys.count(key) > 1})
            nodes += [value for _, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            nodes += node.value
    return duplicated


def test_common_and_pod_labels_replace_the_charts_own_values_once(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"commonLabels": {"app.kubernetes.io/part-of": "platform"},
                                      "podLabels": {"app.kubernetes.io/component": "metering"}}))
    rendered = run("helm", "template", "km", CHART, "-f", values).stdout
    assert duplicated_keys(rendered) == []
    deployment = one(load_manifests(rendered), "Deployment")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "platform"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (pod_labels["app.kubernetes.io/part-of"], pod_labels["app.kubernetes.io/component"]) == (
        "platform", "metering")
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize(("value", "label", "chart_value"), [("commonLabels", "app.kubernetes.io/name", "kubemeter"),
                                                             ("podLabels", "app.kubernetes.io/instance", "km")])
def test_labels_that_would_unmatch_the_deployments_selector_fail_the_render(
    tmp_path: Path, value: str, label: str, chart_value: str
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({value: {label: "other"}}))
    result = run("helm", "template", "km", CHART, "-f", values, check=False)
    assert result.returncode != 0
    assert (f'{value} must not set {label}: the chart sets it (to "{chart_value}") in the Deployment\'s selector'
            in result.stderr), result.stderr


def test_two_replicas_prefer_different_nodes_unless_affinity_is_given(render: Render) -> None:
    pod = one(render({"replicaCount": 2}), "Deployment")["spec"]["template"]["spec"]
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kubemeter",
                                              "app.kubernetes.io/instance": "km"}}}}]}}
    assert "affinity" not in one(render(), "Deployment")["spec"]["template"]["spec"], "one replica: none"
    given = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}
    pod = one(render({"replicaCount": 2, "affinity": given}), "Deployment")["spec"]["template"]["spec"]
    assert pod["affinity"] == given


INVALID_VALUES = [
    ({"logFormat": "xml"}, "at '/logFormat': value must be one of 'json', 'text'"),
    ({"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 0"),
    ({"metricsPort": "abc"}, "at '/metricsPort': got string, want integer"),
    ({"metricsPort": 70000}, "at '/metricsPort': maximum: got 70,000, want 65,535"),
    ({"scrape": {"via": "ssh"}}, "at '/scrape/via': value must be one of 'direct', 'proxy'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
    ({"writeQPS": 0}, "at '/writeQPS': exclusiveMinimum: got 0, want 0"),
    ({"serviceMonitor": {"interval": "often"}}, "at '/serviceMonitor/interval': 'often' does not match pattern"),
    ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    ({"networkPolicy": {"from": [{"namespaces": ["monitoring"]}]}}, "additional properties 'namespaces' not allowed"),
    ({"metricsAuth": {"readers": [{"kind": "Robot", "name": "r"}]}}, "at '/metricsAuth/readers/0/kind'"),
    ({"metricsAuth": {"tlsSecret": "Not_A_Name"}}, "at '/metricsAuth/tlsSecret'"),
    ({"prometheusRule": {"runbookURL": "README.md#alerts"}}, "at '/prometheusRule/runbookURL'"),
    ({"prometheusRule": {"underRequested": {"for": "an hour"}}}, "at '/prometheusRule/underRequested/for'"),
    ({"prometheusRule": {"underRequested": {"enable": False}}}, "additional properties 'enable' not allowed"),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    ({"extraArgs": "--log-level=debug"}, "at '/extraArgs': got string, want array"),
    ({"extraEnv": [{"name": "A", "vaule": "b"}]}, "additional properties 'vaule' not allowed"),
    ({"updateStrategy": {"type": "OnDelete"}}, "at '/updateStrategy/type': value must be one of"),
    ({"terminationGracePeriodSeconds": -1}, "at '/terminationGracePeriodSeconds'"),
    ({"service": {"annotations": {"a": 1}}}, "at '/service/annotations/a'"),
    ({"rbac": {"create": "no"}}, "at '/rbac/create': got string, want boolean"),
    ({"pdb": {"minAvailable": "half"}}, "at '/pdb/minAvailable'"),
    ({"global": {"imageRegistry": "r.example@x"}}, "at '/global/imageRegistry'"),
    # Kubernetes would refuse them at install.
    ({"resources": {"limits": {"memory": "lots"}}}, "at '/resources/limits/memory': 'lots' does not match pattern"),
    ({"resources": {"requests": {"cpu": "1.5 cores"}}}, "at '/resources/requests/cpu': '1.5 cores' does not match"),
    ({"resources": {"requests": {"memory": -1}}}, "at '/resources/requests/memory': minimum: got -1, want 0"),
    ({"resources": {"requests": {"gpu": 1}}}, "at '/resources/requests': additional properties 'gpu' not allowed"),
    ({"resources": {"limit": {"cpu": 1}}}, "at '/resources': additional properties 'limit' not allowed"),
    ({"defaultPolicy": {"spec": {"interval": "often"}}}, "at '/defaultPolicy/spec/interval': 'often' does not match"),
    # Names and labels the API server refuses.
    ({"commonLabels": {"bad label": "x"}}, "at '/commonLabels': additional properties 'bad label' not allowed"),
    ({"podLabels": {"team": "a b"}}, "at '/podLabels/team': 'a b' does not match pattern"),
    ({"podLabels": {"team": "-platform"}}, "at '/podLabels/team': '-platform' does not match pattern"),
    ({"commonLabels": {"n" * 64: "x"}}, f"at '/commonLabels': additional properties '{'n' * 64}' not allowed"),
    ({"commonLabels": {"team": "v" * 64}}, f"at '/commonLabels/team': '{'v' * 64}' does not match pattern"),
    ({"nodeSelector": {"Example.com/zone": "a"}}, "at '/nodeSelector': additional properties 'Example.com/zone'"),
    ({"serviceMonitor": {"labels": {"example.com/": "x"}}}, "at '/serviceMonitor/labels': additional properties"),
    ({"prometheusRule": {"labels": {"a/b/c": "x"}}}, "at '/prometheusRule/labels': additional properties 'a/b/c'"),
    ({"grafanaDashboard": {"labels": {"team": "a/b"}}}, "at '/grafanaDashboard/labels/team'"),
    ({"podAnnotations": {"bad key": "any value"}}, "at '/podAnnotations': additional properties 'bad key' not allowed"),
    ({"service": {"annotations": {"_x": "y"}}}, "at '/service/annotations': additional properties '_x' not allowed"),
    ({"commonLabels": {"a" * 254 + "/team": "x"}}, f"invalid propertyName '{'a' * 254}/team'"),
    ({"nameOverride": "Upper_Case"}, "at '/nameOverride': 'Upper_Case' does not match pattern"),
    ({"fullnameOverride": "kube.meter"}, "at '/fullnameOverride': 'kube.meter' does not match pattern"),
    ({"fullnameOverride": "k" * 64}, "at '/fullnameOverride': maxLength: got 64, want 63"),
    ({"grafanaDashboard": {"namespace": "Monitoring"}}, "at '/grafanaDashboard/namespace'"),
]


@pytest.mark.parametrize(("values", "message"), INVALID_VALUES)
def test_invalid_values_are_rejected_by_the_schema(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = run("helm", "template", "km", CHART, "-f", values_file, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def documented_keys(values_yaml: str) -> tuple[set[str], set[str]]:
    """(every key path, the paths with a helm-docs `# --` comment on the lines right above them)."""
    keys: set[str] = set()
    documented: set[str] = set()
    parents: list[tuple[int, str]] = []
    comment_above = False
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment_above = True
            continue
        if stripped.startswith("#"):
            continue  # a continuation of the comment above
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not match:
            comment_above = False
            continue
        indent = len(match.group(1))
        parents = [(i, k) for i, k in parents if i < indent]
        path = ".".join([k for _, k in parents] + [match.group(2)])
        parents.append((indent, match.group(2)))
        keys.add(path)
        if comment_above:
            documented.add(path)
        comment_above = False
    return keys, documented


def test_every_value_is_documented_helm_docs_style() -> None:
    keys, documented = documented_keys((CHART / "values.yaml").read_text())
    # A key is documented itself or as part of a documented parent (e.g. resources.requests.cpu).
    undocumented = [k for k in keys if not any(k == d or k.startswith(d + ".") for d in documented)
                    and not any(other.startswith(k + ".") for other in keys)]
    assert undocumented == []
