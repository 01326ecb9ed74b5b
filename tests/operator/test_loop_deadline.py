"""A cycle through the scrape seam (a FakeScraper for the kubelets) and the loop's public API: bounded by its
deadline, each node's outcome reported, the samples joined to the selected pods and turned into rates."""

from __future__ import annotations

from kubemeter.loop import LoopDeps, PolicyLoop
from kubemeter.policy import parse_policy
from kubemeter.publish.prometheus import build_registry
from kubemeter.scrape.client import ScrapeError
from kubemeter.testing import FakeScraper
from kubemeter.types import ContainerSample, NodeMetrics, NodeSample, PodSample, WorkloadRef
from kubemeter.watch.model import NAMESPACES, NODES, PODS, REPLICASETS, ClusterModel

T0 = 1_800_000_000.0


def node(name: str) -> dict:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": {}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }


def bare_pod(name: str, on: str) -> dict:
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": on, "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]},
        "status": {"phase": "Running"},
    }


def model_of(nodes: list[str], pods: dict[str, str] | None = None) -> ClusterModel:
    model = ClusterModel()
    model.apply(NAMESPACES, "ADDED", {"metadata": {"name": "shop"}})
    for name in nodes:
        model.apply(NODES, "ADDED", node(name))
    for pod, on in (pods or {}).items():
        model.apply(PODS, "ADDED", bare_pod(pod, on))
    return model


def loop_over(model: ClusterModel, scraper: FakeScraper, source: dict, events: list | None = None) -> PolicyLoop:
    _, _, metrics = build_registry()
    post = (lambda ref, type_, reason, message: events.append((ref["name"], reason))) if events is not None else None
    deps = LoopDeps(model, scraper, metrics, post_event=post or (lambda *a: None))
    deps.active.set()
    return PolicyLoop("p", parse_policy({"interval": "10s", "source": source}), 1, deps, publishers=())


def cpu_counter(seconds: float, at: float) -> NodeMetrics:
    container = ContainerSample("app", cpu_seconds=seconds, memory_working_set_bytes=64 * 2**20, timestamp=at)
    return NodeMetrics(NodeSample(timestamp=at), [PodSample("shop", "web", [container], uid="uid-web")])


async def test_a_node_reached_after_the_deadline_fails_fast_as_a_timeout():
    scraper = FakeScraper({"late": cpu_counter(1.0, T0)}, hanging=frozenset({"hanging"}))
    loop = loop_over(model_of(["hanging", "late"]), scraper, {"timeout": "200ms", "concurrency": 1})
    report = await loop.run_cycle()
    # One slot: "late" waited for it while "hanging" took the whole timeout, so it was never asked.
    assert scraper.requests == ["hanging"]
    late = report.failures["late"]
    assert late.reason == "timeout" and "deadline" in late.message
    assert report.failures["hanging"].reason == "timeout"
    assert report.scraped == 0


async def test_answers_are_joined_to_the_selected_pods_and_failures_reported_once_per_transition():
    now = [T0]  # one clock for the operator and its fake kubelets
    answers = {"a": cpu_counter(100.0, T0), "b": ScrapeError("server_error", "HTTP 500")}
    scraper = FakeScraper(answers, clock=lambda: now[0])
    events: list = []
    loop = loop_over(model_of(["a", "b"], {"web": "a", "other": "b"}), scraper, {"timeout": "5s"}, events)
    loop.deps.clock = lambda: now[0]

    first = await loop.run_cycle()
    web = next(r for ref, r in first.snapshot.workloads.items() if ref.name == "web")
    assert web.memory.usage == 64 * 2**20 and web.cpu.usage is None  # one counter sample: no rate yet
    assert first.failures["b"].reason == "server_error" and events == [("b", "ScrapeFailed")]

    now[0] = T0 + 10
    scraper.answers["a"] = cpu_counter(102.5, T0 + 10)  # 2.5 core-seconds in 10 s
    second = await loop.run_cycle()
    web = next(r for ref, r in second.snapshot.workloads.items() if ref.name == "web")
    assert web.cpu.usage == 0.25 and web.cpu.request_utilization == 0.5
    assert second.failures["b"].since == first.failures["b"].since  # still failing since the first cycle
    assert events == [("b", "ScrapeFailed")]  # no second Event for the same failure


def replicaset_pod(name: str, on: str, replicaset: str) -> dict:
    pod = bare_pod(name, on)
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replicaset, "uid": f"uid-{replicaset}", "controller": True}
    ]
    return pod


async def test_a_pod_waits_one_cycle_for_its_owner_then_counts_as_unresolved_and_always_in_the_sums():
    model = model_of(["a"])
    model.apply(PODS, "ADDED", replicaset_pod("web-5d4-x", "a", "web-5d4"))
    model.apply(PODS, "ADDED", replicaset_pod("legacy-7f-y", "a", "legacy-7f"))
    loop = loop_over(model, FakeScraper({"a": NodeMetrics(NodeSample(timestamp=T0), [])}), {"timeout": "5s"})

    first = await loop.run_cycle()
    assert (first.unresolved, first.waiting) == ([], 2), "owners may be seen after their pods: both wait"
    assert first.snapshot.workloads == {}
    assert first.snapshot.cluster.cpu_requests_cores == 1.0 == first.snapshot.nodes["a"].cpu_requests_cores

    # The ReplicaSet's watch event comes after its pod's; the other pod's owner never does.
    model.apply(REPLICASETS, "ADDED", {"metadata": {"namespace": "shop", "name": "web-5d4", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": True}]}})
    second = await loop.run_cycle()
    assert [pod.name for pod in second.unresolved] == ["legacy-7f-y"] and second.waiting == 0
    (web,) = second.snapshot.workloads.values()
    assert web.workload == WorkloadRef("shop", "Deployment", "web", "apps/v1") and web.cpu.requests == 0.5
    assert second.snapshot.namespaces["shop"].cpu_requests_cores == 1.0 == second.snapshot.cluster.cpu_requests_cores
