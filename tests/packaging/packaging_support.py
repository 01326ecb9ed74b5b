"""Helpers shared by the packaging tests: repository paths, running tools, reading manifests."""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import collection

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubemeter"
CRDS = REPO / "crds"
TOOLS_DIR = REPO / ".cache" / "tools"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]  # the conftest fixture: render(values=None, namespace=...)

# Every optional feature of the chart at once.
ALL_FEATURES: dict[str, Any] = {
    "replicaCount": 2,
    "scrape": {"via": "proxy"},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "defaultPolicy": {"enabled": True, "spec": {"interval": "15s", "source": {"endpoint": "summary"}}},
    "metricsAuth": {"enabled": True, "readers": [{"kind": "ServiceAccount", "name": "prometheus",
                                                  "namespace": "monitoring"}]},
    "networkPolicy": {"enabled": True,
                      "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
}


def run(*command: str | Path, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a tool and, when it fails unexpectedly, fails the test with everything it printed."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def load_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def crd(plural: str) -> Manifest:
    return yaml.safe_load((CRDS / f"{plural}.kubemeter.io.yaml").read_text(encoding="utf-8"))


def crd_schema(plural: str) -> dict[str, Any]:
    return crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
OPERATOR_NAMESPACE = "kubemeter"  # helm install --namespace kubemeter --create-namespace


def aggregated(role: Manifest) -> bool:
    """A ClusterRole the chart aggregates into built-in ones (view, edit, ...) for users, not the operator's."""
    return any(label.startswith("rbac.authorization.k8s.io/aggregate-to-")
               for label in role["metadata"].get("labels", {}))


def operator_cluster_roles(manifests: list[Manifest]) -> list[Manifest]:
    return [role for role in by_kind(manifests, "ClusterRole") if not aggregated(role)]


def operator_cluster_role(manifests: list[Manifest]) -> Manifest:
    """The operator's own ClusterRole (without metricsAuth's metrics-reader)."""
    (role,) = [r for r in operator_cluster_roles(manifests) if not r["metadata"]["name"].endswith("-metrics-reader")]
    return role


def chart_rules(manifests: list[dict]) -> list[dict]:
    """The operator's ClusterRoles' rules plus the leader-election Role's (the simulator binds rules cluster-wide);
    not the ones aggregated to users' roles."""
    rules = [rule for role in operator_cluster_roles(manifests) for rule in role["rules"]]
    rules += [rule for role in by_kind(manifests, "Role") for rule in role["rules"]]
    return rules


async def chart_service_account_token(cluster: Cluster | RealCluster, manifests: list[dict]) -> tuple[str, str]:
    """(username, bearer token) of the chart's ServiceAccount, bound to the chart's roles. On the real control
    plane: the rendered ServiceAccount, roles and bindings applied as they are and a token from the TokenRequest
    API, as the kubelet mounts one; on the simulator: a token bound to the same rules."""
    (account,) = by_kind(manifests, "ServiceAccount")
    username = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account['metadata']['name']}"
    created = cluster.scenario.ensure_namespace(OPERATOR_NAMESPACE)
    if inspect.isawaitable(created):  # the real scenario's; the simulator's is synchronous
        await created
    if not isinstance(cluster, RealCluster):
        return username, cluster.token_for(chart_rules(manifests), user=username)
    for manifest in manifests:
        if manifest["kind"] in RBAC_KINDS:
            api_version, plural = manifest["apiVersion"], manifest["kind"].lower() + "s"
            namespace = OPERATOR_NAMESPACE if manifest["kind"] in ("ServiceAccount", "Role", "RoleBinding") else None
            await cluster.rest.apply(collection(api_version, plural, namespace), manifest)
    request = await cluster.rest.create(
        collection("v1", "serviceaccounts", OPERATOR_NAMESPACE) + f"/{account['metadata']['name']}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    return username, request["status"]["token"]


def kubeconfig_with_token(cluster: Cluster | RealCluster, token: str, path: Path) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path
