"""ClusterModel: built from real `kubectl get` dumps, selection by policy, owners, and re-list repair."""

import copy
import json
from pathlib import Path

from kubemeter.policy import parse_policy
from kubemeter.types import WorkloadRef
from kubemeter.watch.model import JOBS, NAMESPACES, NODES, PODS, REPLICASETS, ClusterModel

FIXTURES = Path(__file__).parents[1] / "fixtures" / "apiserver"


def _items(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["items"]


def _owner_object(kind_api: str, namespace: str, name: str, owner: tuple[str, str, str] | None) -> dict:
    refs = []
    if owner:
        refs = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "uid": f"uid-{owner[2]}", "controller": True}]
    return {"apiVersion": kind_api, "metadata": {"namespace": namespace, "name": name, "ownerReferences": refs}}


def real_model() -> ClusterModel:
    model = ClusterModel()
    for node in _items("nodes-k8s-1.35.0-minikube.kubectl-get.json"):
        model.apply(NODES, None, node)
    for ns in ("kube-system", "scraper"):
        model.apply(NAMESPACES, None, {"metadata": {"name": ns, "labels": {"team": ns}}})
    for pod in _items("pods-k8s-1.35.0-minikube.kubectl-get.json"):
        if pod["metadata"]["name"] == "e2e-cronjob-29707814-h2f28":
            pod["status"]["phase"] = "Running"  # the capture's CronJob pods had all completed
        model.apply(PODS, "ADDED", pod)
        for ref in pod["metadata"].get("ownerReferences", []):
            ns = pod["metadata"]["namespace"]
            if ref["kind"] == "ReplicaSet":
                deployment = ref["name"].rsplit("-", 1)[0]
                model.apply(REPLICASETS, "ADDED", _owner_object("apps/v1", ns, ref["name"], ("apps/v1", "Deployment", deployment)))
            elif ref["kind"] == "Job":
                cron = ref["name"].rsplit("-", 1)[0] if ref["name"].startswith("e2e-cronjob") else None
                model.apply(JOBS, "ADDED", _owner_object("batch/v1", ns, ref["name"], cron and ("batch/v1", "CronJob", cron)))
    return model


def test_real_node_endpoint_comes_from_internal_ip_and_daemon_endpoint():
    node = real_model().nodes["datagen-1-35"]
    assert (node.address, node.kubelet_port) == ("192.168.67.2", 10250)


def test_terminated_pods_are_dropped_and_unscheduled_ones_are_not_scraped():
    model = real_model()
    assert model.pod_count == 20  # 25 listed - 4 Failed - 1 Succeeded (one CronJob pod made Running)
    selection = model.select(parse_policy({}))
    names = {p.name for p in selection.pods()}
    assert "e2e-container-pending" not in names  # no nodeName: nothing to scrape
    assert "e2e-failjob-28dqq" not in names
    assert len(names) == 19


def test_every_real_pod_resolves_to_its_top_level_workload():
    selection = real_model().select(parse_policy({}))
    workloads = {p.name: p.workload for p in selection.pods()}
    assert workloads["coredns-7d764666f9-qdcxt"] == WorkloadRef("kube-system", "Deployment", "coredns", "apps/v1")
    assert workloads["e2e-cronjob-29707814-h2f28"] == WorkloadRef("scraper", "CronJob", "e2e-cronjob", "batch/v1")
    assert workloads["kindnet-zkpn8"] == WorkloadRef("kube-system", "DaemonSet", "kindnet", "apps/v1")
    assert workloads["e2e-statefulset-1"] == WorkloadRef("scraper", "StatefulSet", "e2e-statefulset", "apps/v1")
    assert workloads["etcd-datagen-1-35"] == WorkloadRef("kube-system", "Pod", "etcd-datagen-1-35", "v1")  # static
    assert workloads["storage-provisioner"] == WorkloadRef("kube-system", "Pod", "storage-provisioner", "v1")  # bare


def test_requests_and_limits_are_parsed_from_the_pod_spec():
    model = real_model()
    pod = next(p for p in model.select(parse_policy({})).pods() if p.name.startswith("coredns"))
    (coredns,) = pod.containers
    assert coredns.cpu_request == 0.1 and coredns.memory_request == 70 * 2**20
    assert coredns.memory_limit == 170 * 2**20 and coredns.cpu_limit is None


def test_a_pod_of_an_unknown_owner_is_selected_without_a_workload_until_the_owner_is_known():
    model = ClusterModel()
    model.apply(NODES, None, {"metadata": {"name": "n1"}, "status": {}})
    pod = {"metadata": {"namespace": "d", "name": "web-abc-1", "uid": "u1",
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "r", "controller": True}]},
           "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Running"}}
    model.apply(PODS, "ADDED", pod)
    selection = model.select(parse_policy({}))
    (waiting,) = selection.pods()
    assert selection.pods_without_workload == [waiting] and waiting.workload is None, "scraped, in no workload"
    model.apply(REPLICASETS, "ADDED", _owner_object("apps/v1", "d", "web-abc", ("apps/v1", "Deployment", "web")))
    (resolved,) = model.select(parse_policy({})).pods()
    assert resolved.workload == WorkloadRef("d", "Deployment", "web", "apps/v1")


def test_policy_selectors_filter_namespaces_pods_and_nodes():
    model = real_model()
    by_ns = model.select(parse_policy({"selector": {"namespaceSelector": {"matchLabels": {"team": "scraper"}}}}))
    assert {p.namespace for p in by_ns.pods()} == {"scraper"}
    excluded = model.select(parse_policy({"selector": {"excludeNamespaces": ["scraper"]}}))
    assert {p.namespace for p in excluded.pods()} == {"kube-system"}
    by_pod = model.select(parse_policy({"selector": {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}}))
    assert [p.name for p in by_pod.pods()] == ["coredns-7d764666f9-qdcxt"]
    no_nodes = model.select(parse_policy({"selector": {"nodeSelector": {"matchLabels": {"pool": "gpu"}}}}))
    assert no_nodes.nodes == [] and list(no_nodes.pods()) == []


def test_relist_drops_what_was_deleted_during_a_watch_gap_but_keeps_newer_events():
    model = real_model()
    pods = _items("pods-k8s-1.35.0-minikube.kubectl-get.json")
    live = [p for p in pods if p["status"]["phase"] == "Running"]
    model.begin_relist(PODS)
    # While the LIST is in flight, a watch event adds a pod the listing will not contain.
    fresh = copy.deepcopy(live[0])
    fresh["metadata"].update(name="fresh-pod", uid="fresh")
    model.apply(PODS, "ADDED", fresh)
    gone = live[1]["metadata"]["name"]
    listed: set = set()
    remaining = [p for p in live if p["metadata"]["name"] != gone]
    model.apply_listed(PODS, remaining[:5], listed)  # the listing arrives in pages
    model.apply_listed(PODS, remaining[5:], listed)
    dropped = model.finish_relist(PODS, listed)
    names = {p.name for p in model.select(parse_policy({})).pods()}
    assert gone not in names and "fresh-pod" in names
    # The deleted pod, plus the two the model held that this Running-only listing leaves out (the pending
    # pod and the CronJob pod real_model() made Running).
    assert dropped == 3
    assert model.pod_count == len(live) - 1 + 1


def test_audit_counts_the_objects_a_complete_listing_no_longer_contains():
    model = real_model()
    live = [p for p in _items("pods-k8s-1.35.0-minikube.kubectl-get.json") if p["status"]["phase"] == "Running"]
    # kopf lists everything the model holds, and a pod created meanwhile arrives by watch: nothing to repair.
    model.begin_audit(PODS)
    for pod in live:
        model.apply(PODS, None, pod)
    fresh = copy.deepcopy(live[0])
    fresh["metadata"].update(name="fresh-pod", uid="fresh")
    model.apply(PODS, "ADDED", fresh)
    # Only the two pods this Running-only listing leaves out: the pending pod and the CronJob pod that
    # real_model() made Running.
    assert model.end_audit(PODS) == 2
    # After a gap, kopf's listing lacks two pods deleted meanwhile: the audit finds exactly those.
    model.begin_audit(PODS)
    for pod in live[2:] + [fresh]:
        model.apply(PODS, None, pod)
    assert model.end_audit(PODS) == 2 + 2


def test_node_removal_removes_its_kubelet_from_selection():
    model = real_model()
    model.apply(NODES, "DELETED", {"metadata": {"name": "datagen-1-35"}})
    assert model.select(parse_policy({})).nodes == []
