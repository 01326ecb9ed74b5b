"""End to end: what the operator publishes equals what the simulated kubelets served, on the simulator and on
a real control plane (kube-apiserver, controllers, scheduler; the same kubelets as its fake nodes).

The expected values are computed independently of the operator: workloads by walking the pods'
ownerReferences in the API server's objects, usage from the last two payloads each kubelet served.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubemeter.compute.quantity import parse_bytes, parse_cpu
from kubemeter.timefmt import parse_rfc3339
from tests.operator.conftest import eventually, stepped

Key = tuple[str, str, str]  # namespace, kind, name


def top_owner(store, pod: dict) -> Key:
    ns = pod["metadata"]["namespace"]
    refs = [r for r in pod["metadata"].get("ownerReferences", []) if r.get("controller")]
    if not refs or refs[0]["kind"] == "Node":
        return ns, "Pod", pod["metadata"]["name"]
    ref = refs[0]
    if ref["kind"] in ("ReplicaSet", "Job"):
        api = "apps/v1" if ref["kind"] == "ReplicaSet" else "batch/v1"
        plural = "replicasets" if ref["kind"] == "ReplicaSet" else "jobs"
        owner = store.get(api, plural, ref["name"], ns)
        up = [r for r in owner["metadata"].get("ownerReferences", []) if r.get("controller")]
        if up:
            return ns, up[0]["kind"], up[0]["name"]
    return ns, ref["kind"], ref["name"]


def served_usage(cluster) -> dict[Key, dict[str, float]]:
    """Per workload: CPU rate between the last two payloads each kubelet served, and the last memory."""
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in cluster.store.list("v1", "pods")}
    totals: dict[Key, dict[str, float]] = defaultdict(lambda: {"cpu": 0.0, "memory": 0.0})
    for kubelet in cluster.kubelets.values():
        older, newer = kubelet.snapshots[-2], kubelet.snapshots[-1]
        for (ns, pod, _container), point in newer.containers.items():
            before = older.containers[(ns, pod, _container)]
            key = top_owner(cluster.store, pods[(ns, pod)])
            totals[key]["cpu"] += (point.cpu_seconds - before.cpu_seconds) / (point.timestamp - before.timestamp)
            totals[key]["memory"] += point.memory_working_set_bytes
    return totals


def declared_resources(cluster) -> dict[Key, dict[str, float]]:
    totals: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for pod in cluster.store.list("v1", "pods"):
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        key = top_owner(cluster.store, pod)
        for container in pod["spec"]["containers"]:
            requests = container.get("resources", {}).get("requests", {})
            totals[key]["cpuRequests"] += parse_cpu(requests.get("cpu", 0))
            totals[key]["memoryRequests"] += parse_bytes(requests.get("memory", 0))
    return totals


def close(actual: float, expected: float, rel: float = 0.01) -> bool:
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=2e-6)


async def test_every_workload_kind_is_metered_exactly(any_operator):
    operator = any_operator
    # minStatusChange 0: every change is written, so status can be compared with the latest payloads.
    await operator.create_policy("all", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("all")  # the second cycle: rates between two payloads exist from here on
    expected = served_usage(operator.cluster)
    declared = declared_resources(operator.cluster)
    objects = await operator.workload_metrics()
    published = {
        (o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]): o["status"]
        for o in objects
    }
    assert {kind for _, kind, _ in published} >= {"Deployment", "StatefulSet", "DaemonSet", "CronJob", "Pod"}
    assert set(published) == set(expected), "one WorkloadMetrics per running workload, no more, no less"
    for key, status in published.items():
        assert close(status["cpu"]["usageCores"], expected[key]["cpu"]), (key, status["cpu"], expected[key])
        assert close(status["memory"]["workingSetBytes"], expected[key]["memory"], rel=1e-6), key
        assert status["pods"] == status["podsReporting"] > 0
        assert close(status["cpu"].get("requestsCores", 0.0), declared[key]["cpuRequests"], rel=1e-9), key
        assert close(status["memory"].get("requestsBytes", 0.0), declared[key]["memoryRequests"], rel=1e-9), key

    policy = (await operator.policy("all"))["status"]
    total_cpu = sum(e["cpu"] for e in expected.values())
    assert close(policy["cluster"]["cpuCores"], total_cpu)
    assert policy["nodes"] == {"selected": 3, "scraped": 3, "failed": 0}
    assert policy["workloads"] == len(published)
    assert {c["type"]: c["status"] for c in policy["conditions"]} == {"Ready": "True", "Degraded": "False", "Invalid": "False"}


@pytest.mark.parametrize("housekeeping_interval", [5.0])
async def test_a_scrape_within_the_kubelets_housekeeping_period_shows_the_last_rates_again(any_operator):
    """Two cycles closer together than the kubelets' housekeeping (5 s here, so that a loaded machine's slow cycle
    is still within it; 10 to 15 s for cAdvisor, next to a 10 s interval): the second finds samples it already
    had. Their latest rate still holds (metrics-server serves it too), so no pod drops out of its workload's CPU."""
    operator = any_operator
    await operator.create_policy("p", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("p", pause=5.5)  # every container sampled anew since the first cycle: all have rates
    await operator.cycle("p", pause=0.0)
    repeated = [
        key for kubelet in operator.cluster.kubelets.values()
        for key, point in kubelet.snapshots[-1].containers.items()
        if kubelet.snapshots[-2].containers.get(key) == point
    ]
    assert repeated, "the second cycle's kubelets served some samples again"
    for obj in await operator.workload_metrics():
        status = obj["status"]
        assert status["cpu"]["podsMeasured"] == status["podsReporting"] > 0, (obj["metadata"]["name"], status)
        assert status["cpu"]["usageCores"] >= 0
    cluster = (await operator.policy("p"))["status"]["cluster"]
    assert cluster["cpuPodsMeasured"] == cluster["memoryPodsMeasured"] > 0



@pytest.mark.parametrize("housekeeping_interval", [3600.0])
async def test_the_policy_status_says_each_cycle_ran_even_when_no_value_moved(operator):
    """The kubelets serve the same samples every cycle (housekeeping far beyond the test), so no figure moves; the
    SCRAPED column (time since lastScrapeTime) must still stay within an interval while cycles run, or healthy
    figures would read as not current."""
    await operator.create_policy("p", stepped())
    running = [p for p in operator.cluster.store.list("v1", "pods") if p.get("status", {}).get("phase") == "Running"]

    async def every_pod_selected() -> bool:  # the watch may lag on a loaded machine: a pod coming in moves figures
        report = await operator.cycle("p", pause=0.3)
        return sum(1 for _ in report.selection.pods()) == len(running)
    await eventually(every_pod_selected, timeout=60)
    before = (await operator.policy("p"))["status"]
    for _ in range(2):
        await operator.cycle("p", pause=1.1)  # lastScrapeTime has whole seconds
        after = (await operator.policy("p"))["status"]
        assert after["cluster"] == before["cluster"] and after["nodes"] == before["nodes"], "nothing moved"
        assert parse_rfc3339(after["lastScrapeTime"]) > parse_rfc3339(before["lastScrapeTime"])
        before = after

def _series(text: str) -> dict[str, list]:
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.samples
    return families


async def test_prometheus_output_matches_status_and_rolls_up(any_operator):
    operator = any_operator
    await operator.create_policy("prom", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("prom")
    text = await operator.scrape_metrics()
    families = _series(text)
    workload_cpu = {
        (s.labels["namespace"], s.labels["workload_kind"], s.labels["workload"]): s.value
        for s in families["kubemeter_workload_cpu_usage_cores"]
        if s.labels["policy"] == "prom"
    }
    for obj in await operator.workload_metrics():
        key = (obj["metadata"]["namespace"], obj["spec"]["workload"]["kind"], obj["spec"]["workload"]["name"])
        assert close(workload_cpu[key], obj["status"]["cpu"]["usageCores"], rel=1e-4)

    by_namespace: dict[str, float] = defaultdict(float)
    for (ns, _, _), value in workload_cpu.items():
        by_namespace[ns] += value
    namespaces = {s.labels["namespace"]: s.value for s in families["kubemeter_namespace_cpu_usage_cores"]}
    assert namespaces.keys() == by_namespace.keys()
    for ns, value in by_namespace.items():
        assert close(namespaces[ns], value, rel=1e-9)
    (cluster_cpu,) = [s.value for s in families["kubemeter_cluster_cpu_usage_cores"] if s.labels["policy"] == "prom"]
    assert close(cluster_cpu, sum(namespaces.values()), rel=1e-9)
    nodes = [s.value for s in families["kubemeter_node_cpu_usage_cores"] if s.labels["policy"] == "prom"]
    assert len(nodes) == 3 and close(sum(nodes), cluster_cpu, rel=1e-9)


async def test_prometheus_output_passes_promtool(operator):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: run `make tools` (hack/install-tools.sh) first"
    await operator.create_policy("lint", stepped(recommendations={"metrics": "Full"}))  # every family
    # From the second cycle on, CPU rates and right-sizing verdicts (cycles an hour apart as the loop sees them: the
    # hour of history a verdict needs).
    await operator.cycle_until_measured("lint")
    await operator.cycle("lint", count=2, advance=3600.0)
    text = await operator.scrape_metrics()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"kubemeter_workload_container_cpu_recommendation_target_cores",
            "kubemeter_workload_container_cpu_requested_minus_recommended_cores",
            "kubemeter_namespace_memory_requested_minus_recommended_bytes",
            "kubemeter_cluster_cpu_requested_minus_recommended_cores"} <= names
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


async def test_a_replica_without_leader_election_reports_itself_the_leader(operator):
    families = {f.name: f for f in text_string_to_metric_families(await operator.scrape_metrics())}
    assert [(s.labels, s.value) for s in families["kubemeter_is_leader"].samples] == [({}, 1.0)]
