"""The chart's CRDs, RBAC and default policy applied with kubectl, and the chart installed with helm, as a user
would: on the simulated cluster and on a real control plane, each test on both."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import collection
from tests.operator.conftest import BACKENDS, eventually

from .packaging_support import (
    ALL_FEATURES, CHART, RBAC_KINDS, Manifest, Render, by_kind, chart_service_account_token,
    kubeconfig_with_token, one, run,
)



@pytest.fixture(params=BACKENDS)
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster | RealCluster]:
    """An empty one-node cluster of each backend."""
    async with BACKENDS[request.param](nodes=1, pods_per_node=0, scenario="empty",
                                       workdir=tmp_path / request.param) as cluster:
        yield cluster


class Kubectl:
    """kubectl against one kubeconfig, run without blocking the event loop that serves the simulated cluster."""

    def __init__(self, cluster: Cluster | RealCluster, token: str | None = None) -> None:
        # A token replaces the kubeconfig's cluster-admin credentials (all of them: a real server takes a client
        # certificate over a bearer token when a request carries both).
        kubeconfig = cluster.kubeconfig
        if token:
            kubeconfig = kubeconfig_with_token(cluster, token, kubeconfig.with_name(f"token-{token[-12:]}.kubeconfig"))
        self.options = [f"--kubeconfig={kubeconfig}"]

    async def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "kubectl", *self.options, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout=60)
        code = process.returncode
        assert code is not None
        if check and code != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {code}:\n{out.decode()}\n{err.decode()}")
        return code, out.decode(), err.decode()

    async def apply(self, manifests: list[Manifest], check: bool = True) -> tuple[int, str, str]:
        return await self("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests), check=check)


def policy_manifest(name: str, spec: dict[str, Any]) -> Manifest:
    return {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "metadata": {"name": name}, "spec": spec}


WORKLOAD_METRICS = {
    "apiVersion": "kubemeter.io/v1alpha1", "kind": "WorkloadMetrics",
    "metadata": {"name": "deployment-web", "namespace": "default"},
    "spec": {"policy": "default", "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
}

REJECTED = [
    (policy_manifest("bad-duration", {"interval": "30 seconds"}), "spec.interval: Invalid value: \"30 seconds\""),
    (policy_manifest("slow-timeout", {"interval": "15s", "source": {"timeout": "15s"}}),
     "spec.source.timeout: Invalid value: timeout must be shorter than interval"),
    (policy_manifest("p-zero", {"aggregation": {"percentiles": [0]}}),
     "spec.aggregation.percentiles[0]: Invalid value: 0: spec.aggregation.percentiles[0] in body should be greater "
     "than 0"),
    (policy_manifest("p-101", {"aggregation": {"percentiles": [101]}}),
     "spec.aggregation.percentiles[0] in body should be less than or equal to 100"),
    (policy_manifest("cadvisor", {"source": {"endpoint": "cadvisor"}}),
     "spec.source.endpoint: Unsupported value: \"cadvisor\": supported values: \"resource\", \"summary\""),
]


async def test_chart_installs_with_kubectl(render: Render, cluster: Cluster | RealCluster) -> None:
    manifests = render(ALL_FEATURES)
    kubectl = Kubectl(cluster)
    await kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubemeter"}}])

    await kubectl.apply(by_kind(manifests, "CustomResourceDefinition"))
    await kubectl("wait", "--for=condition=Established", "--timeout=30s",
                  "crd/metricspolicies.kubemeter.io", "crd/workloadmetrics.kubemeter.io")
    await kubectl.apply([m for m in manifests if m["kind"] in RBAC_KINDS])

    # A real server publishes a new CRD's OpenAPI schema a moment after it is Established.
    async def explanation() -> str:
        code, out, _ = await kubectl("explain", "metricspolicy.spec.source.timeout", check=False)
        return out if code == 0 else ""
    explained = await eventually(explanation, timeout=30, interval=0.5)
    explained = " ".join(explained.split())  # kubectl wraps descriptions at its terminal width
    assert "must be shorter than interval" in explained and "Unset: 80% of interval, at most 10s." in explained

    # The command NOTES.txt suggests for creating a first policy works as printed.
    helm_install = ("helm", "install", "km", CHART, "--dry-run=client", "--namespace", "kubemeter")
    notes = (await asyncio.to_thread(run, *helm_install)).stdout
    (create_command,) = [line.strip() for line in notes.splitlines() if "kubectl apply" in line]
    shell = await asyncio.create_subprocess_shell(
        create_command, env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await shell.communicate()
    assert shell.returncode == 0, err.decode()
    assert out.decode().strip() == "metricspolicy.kubemeter.io/default created"

    policy = one(manifests, "MetricsPolicy")
    await kubectl.apply([policy])
    _, out, _ = await kubectl("get", "metricspolicy", policy["metadata"]["name"], "-o", "json")
    stored = json.loads(out)["spec"]
    assert (stored["interval"], stored["source"]["endpoint"]) == ("15s", "summary")
    # Derived from the interval by the operator, so not defaulted by the CRD (README, MetricsPolicy reference).
    assert "timeout" not in stored["source"] and "window" not in stored["aggregation"], stored

    _, table, _ = await kubectl("get", "mp")
    assert table.split("\n")[0].split() == ["NAME", "INTERVAL", "NODES", "FAILED", "WORKLOADS", "CPU", "MEMORY",
                                            "READY", "DEGRADED", "SCRAPED", "AGE"]
    assert table.split("\n")[1].split()[:2] == [policy["metadata"]["name"], "15s"]

    # An upgrade re-applies the policy: a patch of the existing object, still validated.
    await kubectl.apply([{**policy, "spec": {**policy["spec"], "interval": "1m"}}])
    _, interval, _ = await kubectl("get", "mp", policy["metadata"]["name"], "-o", "jsonpath={.spec.interval}")
    assert interval == "1m"

    for bad, message in REJECTED:
        code, _, err = await kubectl.apply([bad], check=False)
        assert code != 0 and f'The MetricsPolicy "{bad["metadata"]["name"]}" is invalid' in err, err
        assert message in err, err


async def test_workload_metrics_status_is_a_subresource(render: Render, cluster: Cluster | RealCluster) -> None:
    crds = by_kind(render(), "CustomResourceDefinition")
    status = {"status": {"pods": 3, "podsReporting": 2, "reporting": "2/3", "stale": False,
                         "cpu": {"usage": "250m", "usageCores": 0.25, "podsMeasured": 2,
                                 "requestUtilization": 0.5, "requestPercent": "50%"},
                         "memory": {"usage": "120Mi", "workingSetBytes": 125829120}}}
    kubectl = Kubectl(cluster)
    await kubectl.apply(crds)
    await kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/workloadmetrics.kubemeter.io")
    await kubectl.apply([WORKLOAD_METRICS])
    await kubectl("patch", "wm", "deployment-web", "--subresource=status", "--type=merge",
                  "-p", json.dumps(status))
    _, table, _ = await kubectl("get", "wm", "-n", "default")
    assert table.split("\n")[0].split() == ["NAME", "KIND", "WORKLOAD", "PODS", "CPU", "CPU/REQ", "MEMORY",
                                            "MEM/REQ", "SIZING", "STALE", "AGE"]
    # No memory request and no recommendation: MEM/REQ and SIZING are empty cells, so the row has two fields fewer.
    assert table.split("\n")[1].split()[:8] == ["deployment-web", "Deployment", "web", "2/3", "250m", "50%",
                                                "120Mi", "false"]
    code, _, err = await kubectl("patch", "wm", "deployment-web", "--type=merge",
                                 "-p", '{"spec": {"workload": {"name": "api"}}}', check=False)
    assert code != 0 and "workload is immutable" in err, err


async def test_operator_permissions_are_what_it_needs_and_no_more(render: Render, cluster: Cluster | RealCluster) -> None:
    """The rendered ClusterRole, bound to a token, used with kubectl: reads and its own writes pass, the rest is
    Forbidden; nodes/proxy only with scrape.via=proxy."""
    admin = Kubectl(cluster)
    await admin.apply(by_kind(render(), "CustomResourceDefinition"))
    await admin("wait", "--for=condition=Established", "--timeout=30s", "crd/metricspolicies.kubemeter.io",
                "crd/workloadmetrics.kubemeter.io")
    await admin.apply([policy_manifest("default", {})])
    _, node, _ = await admin("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")

    _, token = await chart_service_account_token(cluster, render())
    as_operator = Kubectl(cluster, token=token)
    for allowed in (["get", "pods", "-A"], ["get", "nodes"], ["get", "namespaces"], ["get", "replicasets", "-A"],
                    ["get", "jobs", "-A"], ["get", "metricspolicies"]):
        await as_operator(*allowed)
    # (Status patches: kubectl reads before it patches, the operator does not; test_rbac_e2e runs the operator
    # itself under these rules and sees no request refused.)
    await as_operator.apply([WORKLOAD_METRICS])
    await as_operator("delete", "workloadmetrics", WORKLOAD_METRICS["metadata"]["name"])
    for forbidden in (["get", "secrets", "-A"], ["delete", "node", node], ["delete", "metricspolicy", "default"],
                      ["patch", "metricspolicy", "default", "--type=merge", "-p", '{"spec": {"interval": "1m"}}'],
                      ["get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/resource"]):
        code, _, err = await as_operator(*forbidden, check=False)
        assert code != 0 and "Error from server (Forbidden)" in err, (forbidden, err)

    _, token = await chart_service_account_token(cluster, render({"scrape": {"via": "proxy"}}))
    as_proxying_operator = Kubectl(cluster, token=token)
    code, metrics, err = await as_proxying_operator("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/resource",
                                                    check=False)
    if cluster.backend == "sim":
        assert code == 0 and "node_cpu_usage_seconds_total" in metrics, err
    else:  # allowed by RBAC, then refused by the real server's proxy: the fake node's address is loopback
        assert code != 0 and "Forbidden" not in err and "address not allowed" in err, err


@pytest.mark.parametrize("cluster", ["real"], indirect=True)
async def test_namespace_viewers_read_only_their_namespaces_workload_metrics(render: Render,
                                                                            cluster: Cluster | RealCluster) -> None:
    """rbac.aggregatedRoles: a user bound in namespace tenant-a to the built-in `view` ClusterRole lists tenant-a's
    WorkloadMetrics and is refused tenant-b's; without the chart's aggregated ClusterRole `view` grants no
    WorkloadMetrics at all. Real control plane only: the aggregation into `view` is done by kube-controller-manager's
    clusterrole-aggregation controller, and the simulator has neither the built-in roles nor that controller."""
    admin = Kubectl(cluster)
    manifests = render()
    await admin.apply(by_kind(manifests, "CustomResourceDefinition"))
    await admin("wait", "--for=condition=Established", "--timeout=30s", "crd/workloadmetrics.kubemeter.io")
    for namespace in ("tenant-a", "tenant-b"):
        await admin("create", "namespace", namespace)
        await admin.apply([{**WORKLOAD_METRICS, "metadata": {**WORKLOAD_METRICS["metadata"], "namespace": namespace}}])
    await admin("create", "serviceaccount", "viewer", "-n", "tenant-a")
    await admin("create", "rolebinding", "viewer", "-n", "tenant-a", "--clusterrole=view",
                "--serviceaccount=tenant-a:viewer")
    _, token, _ = await admin("create", "token", "viewer", "-n", "tenant-a")
    viewer = Kubectl(cluster, token=token.strip())
    name = WORKLOAD_METRICS["metadata"]["name"]

    code, _, err = await viewer("get", "workloadmetrics", "-n", "tenant-a", check=False)
    assert code != 0 and "Error from server (Forbidden)" in err, "view grants nothing before the chart's role"

    for role in by_kind(manifests, "ClusterRole"):
        if "rbac.authorization.k8s.io/aggregate-to-view" in role["metadata"]["labels"]:
            await cluster.rest.apply(collection("rbac.authorization.k8s.io/v1", "clusterroles", None), role)

    async def listed() -> bool:
        code, out, _ = await viewer("get", "workloadmetrics", "-n", "tenant-a", "-o", "name", check=False)
        return code == 0 and out.split() == [f"workloadmetrics.kubemeter.io/{name}"]

    await eventually(listed, timeout=30)
    await viewer("get", "workloadmetrics", name, "-n", "tenant-a")
    for refused in (["get", "workloadmetrics", "-n", "tenant-b"], ["get", "workloadmetrics", "-A"],
                    ["delete", "workloadmetrics", name, "-n", "tenant-a"], ["get", "metricspolicies"]):
        code, _, err = await viewer(*refused, check=False)
        assert code != 0 and "Error from server (Forbidden)" in err, (refused, err)


async def test_leader_election_may_touch_only_its_own_lease(render: Render, cluster: Cluster | RealCluster) -> None:
    manifests = render({"replicaCount": 2})
    lease_name = next(a for a in one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
                      if a.startswith("--lease-name=")).split("=", 1)[1]

    def lease(name: str, holder: str) -> Manifest:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kubemeter"}, "spec": {"holderIdentity": holder}}

    admin = Kubectl(cluster)
    await admin.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubemeter"}}])
    await admin.apply([lease("someone-elses", "x")])
    _, token = await chart_service_account_token(cluster, manifests)
    as_candidate = Kubectl(cluster, token=token)
    # The elector reads, creates and replaces (PUT) its lease.
    await as_candidate("create", "-f", "-", stdin=yaml.safe_dump(lease(lease_name, "pod-a")))
    await as_candidate("get", "lease", "-n", "kubemeter", lease_name)
    await as_candidate("replace", "-f", "-", stdin=yaml.safe_dump(lease(lease_name, "pod-b")))
    for forbidden in (["get", "lease", "-n", "kubemeter", "someone-elses"],
                      ["delete", "lease", "-n", "kubemeter", lease_name]):
        code, _, err = await as_candidate(*forbidden, check=False)
        assert code != 0 and "Error from server (Forbidden)" in err, (forbidden, err)


async def helm(cluster: Cluster | RealCluster, tmp_path: Path, *command: str) -> None:
    """A real helm command against the cluster (client-go underneath), with its own homes under ``tmp_path``."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "config"), "HELM_DATA_HOME": str(tmp_path / "data")}
    process = await asyncio.create_subprocess_exec("helm", *command, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()


async def test_helm_installs_and_uninstalls_the_release(cluster: Cluster | RealCluster, tmp_path: Path) -> None:
    """A real `helm install` and `helm uninstall` (client-go underneath: it deletes its release Secret with
    protobuf DeleteOptions) leave nothing of the release behind."""
    await helm(cluster, tmp_path, "install", "km", str(CHART), "--namespace", "default")
    await helm(cluster, tmp_path, "uninstall", "km", "--namespace", "default")
    left = [s["metadata"]["name"] for s in cluster.store.list("v1", "secrets", namespace="default")]
    assert not [name for name in left if name.startswith("sh.helm.release.")], left
    assert cluster.store.list("apps/v1", "deployments", namespace="default") == []


async def test_helm_upgrade_keeps_the_generated_metrics_certificate(cluster: Cluster | RealCluster,
                                                                     tmp_path: Path) -> None:
    """metricsAuth without a Secret of one's own: the certificate generated at install is kept by an upgrade
    (helm's lookup), so Prometheus's trust in its ca.crt and the running pods' certificate stay valid."""
    options = ("--namespace", "default", "--set", "metricsAuth.enabled=true")
    await helm(cluster, tmp_path, "install", "km", str(CHART), *options)

    def certificate() -> dict[str, str]:
        return cluster.store.get("v1", "secrets", "km-kubemeter-metrics-tls", namespace="default")["data"]

    installed = certificate()
    assert installed.keys() == {"tls.crt", "tls.key", "ca.crt"}
    await helm(cluster, tmp_path, "upgrade", "km", str(CHART), *options, "--set", "logLevel=debug")
    assert certificate() == installed
