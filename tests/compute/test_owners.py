import json
from pathlib import Path

import pytest
from kubemeter.compute.owners import controller_of, resolve_workload
from kubemeter.types import PodInfo, WorkloadRef

PODS = Path(__file__).parents[1] / "fixtures" / "apiserver" / "pods-k8s-1.35.0-minikube.kubectl-get.json"
APPS = "apps/v1"


def pod_info(item: dict) -> PodInfo:
    meta = item["metadata"]
    return PodInfo(
        uid=meta["uid"], namespace=meta["namespace"], name=meta["name"], node=item["spec"].get("nodeName"),
        phase=item["status"]["phase"], labels=meta.get("labels", {}),
        owner=controller_of(meta.get("ownerReferences", [])), containers=(),
    )


def fixture_pods() -> list[PodInfo]:
    return [pod_info(item) for item in json.loads(PODS.read_text())["items"]]


def owners_from_pod_names(pods: list[PodInfo]) -> tuple[dict, dict]:
    """The ReplicaSet and Job objects the fixture's pods imply: ``<deployment>-<hash>`` ReplicaSets owned by
    their Deployment, ``<cronjob>-<minutes>`` Jobs owned by their CronJob, other Jobs without owner."""
    replicasets, jobs = {}, {}
    for pod in pods:
        if pod.owner and pod.owner["kind"] == "ReplicaSet":
            deployment = pod.owner["name"].rsplit("-", 1)[0]
            replicasets[(pod.namespace, pod.owner["name"])] = [
                {"apiVersion": APPS, "kind": "Deployment", "name": deployment, "uid": "d", "controller": True}]
        if pod.owner and pod.owner["kind"] == "Job":
            prefix, _, suffix = pod.owner["name"].rpartition("-")
            jobs[(pod.namespace, pod.owner["name"])] = (
                [{"apiVersion": "batch/v1", "kind": "CronJob", "name": prefix, "uid": "c", "controller": True}]
                if suffix.isdigit() else [])
    return replicasets, jobs


EXPECTED = {
    "coredns-7d764666f9-qdcxt": ("Deployment", "coredns", APPS),
    "etcd-datagen-1-35": ("Pod", "etcd-datagen-1-35", "v1"),
    "kindnet-zkpn8": ("DaemonSet", "kindnet", APPS),
    "kube-apiserver-datagen-1-35": ("Pod", "kube-apiserver-datagen-1-35", "v1"),
    "kube-controller-manager-datagen-1-35": ("Pod", "kube-controller-manager-datagen-1-35", "v1"),
    "kube-proxy-8k9zt": ("DaemonSet", "kube-proxy", APPS),
    "kube-scheduler-datagen-1-35": ("Pod", "kube-scheduler-datagen-1-35", "v1"),
    "metrics-server-9d74bb658-c6nnt": ("Deployment", "metrics-server", APPS),
    "storage-provisioner": ("Pod", "storage-provisioner", "v1"),
    "e2e-container-creating": ("Pod", "e2e-container-creating", "v1"),
    "e2e-container-pending": ("Pod", "e2e-container-pending", "v1"),
    "e2e-cronjob-29707813-dhlr2": ("CronJob", "e2e-cronjob", "batch/v1"),
    "e2e-cronjob-29707814-h2f28": ("CronJob", "e2e-cronjob", "batch/v1"),
    "e2e-daemonset-kb65b": ("DaemonSet", "e2e-daemonset", APPS),
    "e2e-deployment-79967c5968-8bnn8": ("Deployment", "e2e-deployment", APPS),
    "e2e-deployment-79967c5968-zjslc": ("Deployment", "e2e-deployment", APPS),
    "e2e-failjob-28dqq": ("Job", "e2e-failjob", "batch/v1"),
    "e2e-failjob-4kj9v": ("Job", "e2e-failjob", "batch/v1"),
    "e2e-failjob-64h4g": ("Job", "e2e-failjob", "batch/v1"),
    "e2e-failjob-p2w8g": ("Job", "e2e-failjob", "batch/v1"),
    "e2e-hpa-6cd8d99884-tggnr": ("Deployment", "e2e-hpa", APPS),
    "e2e-kube-state-metrics-75b885dc9-97mtr": ("Deployment", "e2e-kube-state-metrics", APPS),
    "e2e-scraper-5f97dc94d8-vkcjl": ("Deployment", "e2e-scraper", APPS),
    "e2e-statefulset-0": ("StatefulSet", "e2e-statefulset", APPS),
    "e2e-statefulset-1": ("StatefulSet", "e2e-statefulset", APPS),
}


def test_every_owner_chain_of_the_real_cluster_resolves_to_its_workload():
    pods = fixture_pods()
    replicasets, jobs = owners_from_pod_names(pods)
    resolved = {
        pod.name: resolve_workload(pod, lambda ns, n: replicasets.get((ns, n)), lambda ns, n: jobs.get((ns, n)))
        for pod in pods
    }
    assert {name: (ref.kind, ref.name, ref.api_version) for name, ref in resolved.items()} == EXPECTED
    assert all(ref.namespace == pod.namespace for pod in pods for ref in [resolved[pod.name]])


def test_cronjob_runs_share_one_workload():
    pods = fixture_pods()
    replicasets, jobs = owners_from_pod_names(pods)
    refs = {resolve_workload(p, lambda ns, n: replicasets.get((ns, n)), lambda ns, n: jobs.get((ns, n)))
            for p in pods if p.name.startswith("e2e-cronjob-")}
    assert refs == {WorkloadRef("scraper", "CronJob", "e2e-cronjob", "batch/v1")}


def owned(kind: str, name: str, api_version: str = APPS) -> PodInfo:
    owner = {"apiVersion": api_version, "kind": kind, "name": name, "uid": "u", "controller": True}
    return PodInfo("p", "ns", f"{name}-x", "node", "Running", {}, owner, ())


def unknown(namespace: str, name: str) -> None:
    return None


def test_pod_of_a_replicaset_not_seen_yet_stays_unresolved_instead_of_flapping():
    assert resolve_workload(owned("ReplicaSet", "web-5d4f8c7b9"), unknown, unknown) is None
    assert resolve_workload(owned("Job", "backup-28000000", "batch/v1"), unknown, unknown) is None


def test_argo_rollout_is_kept_with_its_own_kind_and_api_version():
    rollout = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "r",
                "controller": True}]
    ref = resolve_workload(owned("ReplicaSet", "web-6b7f9"), lambda ns, n: rollout, unknown)
    assert ref == WorkloadRef("ns", "Rollout", "web", "argoproj.io/v1alpha1")


@pytest.mark.parametrize(
    "references",
    [[], [{"apiVersion": APPS, "kind": "Deployment", "name": "web", "uid": "d"}]],  # none, or not a controller
)
def test_replicaset_without_controller_is_the_workload(references):
    ref = resolve_workload(owned("ReplicaSet", "standalone"), lambda ns, n: references, unknown)
    assert ref == WorkloadRef("ns", "ReplicaSet", "standalone", APPS)


@pytest.mark.parametrize(
    ("kind", "api_version"),
    [("StatefulSet", APPS), ("DaemonSet", APPS), ("ReplicationController", "v1"), ("Workflow", "argoproj.io/v1alpha1")],
)
def test_other_controllers_are_workloads_as_given(kind, api_version):
    ref = resolve_workload(owned(kind, "thing", api_version), unknown, unknown)
    assert ref == WorkloadRef("ns", kind, "thing", api_version)


def test_static_and_bare_pods_are_their_own_workload():
    static = owned("Node", "node-1", "v1")
    bare = PodInfo("p", "ns", "debug", "node", "Running", {}, None, ())
    assert resolve_workload(static, unknown, unknown) == WorkloadRef("ns", "Pod", "node-1-x", "v1")
    assert resolve_workload(bare, unknown, unknown) == WorkloadRef("ns", "Pod", "debug", "v1")


def test_replicaset_named_like_a_custom_kind_in_another_group_is_not_followed():
    ref = resolve_workload(owned("ReplicaSet", "x", "example.com/v1"), unknown, unknown)
    assert ref == WorkloadRef("ns", "ReplicaSet", "x", "example.com/v1")
