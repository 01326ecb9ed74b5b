"""End to end: the published metrics follow the cluster and the policy as they change."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from kubemeter import GROUP, VERSION
from tests.operator.conftest import eventually, stepped


def by_workload(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {
        (o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]): o for o in objects
    }


async def test_scaling_up_and_down_changes_pods_and_requests(any_operator):
    await any_operator.create_policy("p", stepped())
    scenario = any_operator.cluster.scenario
    await scenario.scale("Deployment", "shop", "frontend", 4)
    await any_operator.cycle("p")
    web = by_workload(await any_operator.workload_metrics("shop"))[("shop", "Deployment", "frontend")]["status"]
    assert web["pods"] == 4
    requests_at_four = web["cpu"]["requestsCores"]
    await scenario.scale("Deployment", "shop", "frontend", 2)
    await any_operator.cycle("p")
    web = by_workload(await any_operator.workload_metrics("shop"))[("shop", "Deployment", "frontend")]["status"]
    assert web["pods"] == 2
    assert abs(web["cpu"]["requestsCores"] - requests_at_four / 2) < 1e-9


FRONTEND = ("shop", "Deployment", "frontend")


async def cycle_at_interval(operator, policy: str, interval: str) -> None:
    """Set the policy's interval: its loop runs a cycle at once with it (and publishes) before this returns. A
    short pause first, as ``Operator.cycle`` makes, so that the kubelets' samples advance."""
    loop = await operator.loop(policy)
    published = loop.cycles_published
    await asyncio.sleep(0.7)
    await operator.patch_policy(policy, {"interval": interval})
    await eventually(lambda: loop.cycles_published > published)
    await operator.thread.run(operator.runtime.lifecycle.policies[policy].publisher.flush())


async def frontend_cpu(operator, policy: str) -> tuple[dict, dict[str, float]]:
    """The frontend's WorkloadMetrics status and its workload gauges (name without prefix -> value)."""
    status = by_workload(await operator.workload_metrics("shop"))[FRONTEND]["status"]
    gauges = {
        family.name.removeprefix("kubemeter_workload_"): sample.value
        for family in text_string_to_metric_families(await operator.scrape_metrics())
        if family.name.startswith("kubemeter_workload_")
        for sample in family.samples
        if sample.labels["policy"] == policy and sample.labels["workload"] == "frontend"
    }
    return status, gauges


async def test_new_pods_without_a_cpu_rate_yet_leave_the_workloads_cpu_shown_and_marked(any_operator):
    """A scale-up whose pods are first scraped more than an interval after they started (the cycle after it came
    late, or the kubelet's first sample of them did): their first sample gives no CPU rate (a container that old
    gets one from its second sample, as metrics-server does). The workload's CPU is that of its other pods, in
    the status and on /metrics, with the number of pods it covers; never absent. Then a scale-down."""
    operator = any_operator
    await operator.create_policy("p", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("p")
    await operator.cluster.scenario.scale("Deployment", *FRONTEND[::2], 5)
    await asyncio.sleep(11.5)  # the new containers started more than the 10 s interval before the next scrape
    await cycle_at_interval(operator, "p", "10s")
    status, gauges = await frontend_cpu(operator, "p")
    assert status["pods"] == status["podsReporting"] == 5
    assert status["cpu"].get("usageCores", 0) > 0 and not status.get("stale"), ("the CPU is blank", status)
    assert gauges.get("cpu_usage_cores") == pytest.approx(status["cpu"]["usageCores"], rel=1e-4)
    assert 0 < status["cpu"]["podsMeasured"] < 5, ("the new pods have no CPU rate in this cycle", status)
    assert status["memory"]["podsMeasured"] == 5
    assert (gauges["pods"], gauges["cpu_measured_pods"]) == (5, status["cpu"]["podsMeasured"])
    cluster = (await operator.policy("p"))["status"]["cluster"]
    assert cluster["cpuCores"] > 0 and cluster["cpuPodsMeasured"] < cluster["memoryPodsMeasured"], cluster

    await cycle_at_interval(operator, "p", "1h")
    status, gauges = await frontend_cpu(operator, "p")
    assert status["cpu"]["podsMeasured"] == gauges["cpu_measured_pods"] == 5 and status["cpu"]["usageCores"] > 0

    await operator.cluster.scenario.scale("Deployment", *FRONTEND[::2], 2)
    await operator.cycle("p")
    status, gauges = await frontend_cpu(operator, "p")
    assert status["pods"] == status["cpu"]["podsMeasured"] == gauges["cpu_measured_pods"] == 2
    assert gauges["cpu_usage_cores"] == pytest.approx(status["cpu"]["usageCores"], rel=1e-4)


async def test_rolling_update_keeps_one_workload_not_one_per_replicaset(any_operator):
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    before = by_workload(await any_operator.workload_metrics("shop"))[("shop", "Deployment", "frontend")]
    await any_operator.cluster.scenario.rolling_update("shop", "frontend")
    await any_operator.cycle("p", 2)
    objects = await any_operator.workload_metrics("shop")
    assert [o["spec"]["workload"]["kind"] for o in objects] == ["Deployment"]
    after = by_workload(objects)[("shop", "Deployment", "frontend")]
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "the same object is updated, not re-created"
    assert after["status"]["pods"] == before["status"]["pods"]
    assert after["status"]["cpu"].get("usageCores") is not None


async def test_cronjob_runs_do_not_grow_state(any_operator):
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    scenario = any_operator.cluster.scenario
    loop = await any_operator.loop("p")
    sizes = []
    for _ in range(6):
        job = await scenario.run_cronjob("batch", "nightly-report")
        await any_operator.cycle("p")
        await scenario.complete_job("batch", job["metadata"]["name"])
        sizes.append((loop.aggregator.state_size(), len(loop.meter.cpu_rates)))
    objects = [o for o in await any_operator.workload_metrics("batch")]
    assert [(o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]) for o in objects] == [
        ("CronJob", "nightly-report")
    ]
    history = [h for h, _ in sizes]
    assert max(history) == min(history), f"aggregator state grew with CronJob runs: {sizes}"
    # Counter baselines follow the running pods: at most one Job pod more at a time, never one more per run.
    baselines = [r for _, r in sizes]
    assert max(baselines) - min(baselines) <= 1, f"counter baselines grew with CronJob runs: {sizes}"


async def test_pod_restart_gives_no_negative_or_spiking_rate(any_operator):
    await any_operator.create_policy("p", stepped(output={"minStatusChange": "0"}))
    await any_operator.cycle("p")
    key = ("data", "StatefulSet", "postgres")
    before = by_workload(await any_operator.workload_metrics("data"))[key]["status"]["cpu"]["usageCores"]
    await any_operator.cluster.scenario.restart_pod("data", "postgres-0")
    for _ in range(3):
        await any_operator.cycle("p")
        cpu = by_workload(await any_operator.workload_metrics("data"))[key]["status"]["cpu"]
        usage = cpu.get("usageCores")
        assert usage is None or 0 <= usage <= max(4 * before, 0.05), (before, cpu)


async def test_node_removal_drops_its_kubelet_and_pods(any_operator):
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    cluster = any_operator.cluster
    victim = "sim-worker-2"
    on_victim = {
        p["metadata"]["uid"] for p in cluster.store.list("v1", "pods", field_selector=f"spec.nodeName={victim}")
    }
    await cluster.node_fault(victim, "http500")
    await any_operator.cycle("p")
    assert f'node="{victim}"' in await any_operator.scrape_metrics()  # its scrape errors are counted
    await cluster.scenario.remove_node(victim)
    await eventually(lambda: victim not in any_operator.runtime.model.nodes)
    report = await any_operator.cycle("p")
    assert victim not in {n.name for n in report.selection.nodes}
    # Controllers replace the pods elsewhere (a StatefulSet even under the same name): none of the old ones stay.
    assert on_victim and not on_victim & {p.uid for p in report.selection.pods()}
    status = (await any_operator.policy("p"))["status"]
    assert status["nodes"] == {"selected": 2, "scraped": 2, "failed": 0}
    assert f'node="{victim}"' not in await any_operator.scrape_metrics(), "no series outlives its node"


async def test_deleted_workload_loses_its_object_and_series(any_operator):
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    assert ("shop", "Deployment", "frontend") in by_workload(await any_operator.workload_metrics("shop"))
    await any_operator.cluster.scenario.delete_workload("Deployment", "shop", "frontend")
    await eventually(lambda: not [p for p in any_operator.cluster.store.list("v1", "pods", namespace="shop")])
    await asyncio.sleep(0.3)  # the watch events reach the operator
    await any_operator.cycle("p")
    assert ("shop", "Deployment", "frontend") not in by_workload(await any_operator.workload_metrics("shop"))
    text = await any_operator.scrape_metrics()
    assert 'workload="frontend"' not in text


async def test_policy_edits_apply_at_the_next_cycle(any_operator):
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    namespaces = {o["metadata"]["namespace"] for o in await any_operator.workload_metrics()}
    assert {"shop", "data", "kube-system"} <= namespaces
    # Selectors: only one namespace from now on; the others' objects go away.
    await any_operator.patch_policy("p", {"selector": {"namespaces": ["data"]}})
    await eventually(lambda: any_operator.runtime.lifecycle.policies["p"].loop.spec.namespaces == {"data"})
    await any_operator.cycle("p")
    assert {o["metadata"]["namespace"] for o in await any_operator.workload_metrics()} == {"data"}
    # Source: the summary endpoint adds network figures. (Through the API server's node proxy only on the
    # simulator: a real kube-apiserver refuses to proxy to loopback node addresses; see test_rbac_e2e.)
    loop = await any_operator.loop("p")
    published = loop.cycles_published
    await any_operator.patch_policy("p", {"source": {"endpoint": "summary"}})
    # A new endpoint starts a cycle at once (not after the hour).
    await eventually(lambda: loop.spec.endpoint == "summary" and loop.cycles_published > published)
    # /stats/summary times have second precision: samples more than a second apart give a rate.
    await any_operator.cycle("p", 2, pause=1.1)
    status = (await any_operator.workload_metrics("data"))[0]["status"]
    assert status["network"]["receiveBytesPerSecond"] >= 0
    assert "usedBytes" in status["ephemeralStorage"]
    policy = await any_operator.policy("p")
    assert policy["status"]["observedGeneration"] == policy["metadata"]["generation"]
    # Interval: the loop picks it up (and starts a cycle at once rather than after the old hour).
    await any_operator.patch_policy("p", {"interval": "45m", "aggregation": {"window": "50m", "percentiles": [75]}})
    await eventually(lambda: any_operator.runtime.lifecycle.policies["p"].loop.spec.interval == 2700)
    # Steady usage or not, every object shows the new window and percentiles after the next cycle.
    await any_operator.cycle("p")
    shown = {(o["status"]["window"], tuple(o["status"]["cpu"].get("percentileCores", {"p75": None})))
             for o in await any_operator.workload_metrics()}
    assert shown == {("50m", ("p75",))}, shown


async def test_an_interval_change_keeps_the_cpu_of_every_workload_that_had_it(any_operator):
    """An interval edit runs a cycle at once, closer to the previous one than the kubelets' housekeeping (0.5 s
    here, 10 to 15 s for cAdvisor): the counter baselines carry over, so that cycle has the CPU of every workload
    and of the cluster, over the same pods, rather than none for an interval (issue 14)."""
    operator = any_operator
    await operator.create_policy("p", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("p", 2)
    before = {obj["metadata"]["name"]: obj["status"]["cpu"]["podsMeasured"]
              for obj in await operator.workload_metrics() if "usageCores" in obj["status"]["cpu"]}
    assert before
    loop = await operator.loop("p")
    published = loop.cycles_published
    await operator.patch_policy("p", {"interval": "20s"})
    await eventually(lambda: loop.cycles_published > published)
    await operator.thread.run(operator.runtime.lifecycle.policies["p"].publisher.flush())
    after = {obj["metadata"]["name"]: obj["status"]["cpu"].get("podsMeasured")
             for obj in await operator.workload_metrics() if obj["metadata"]["name"] in before}
    assert after == before
    cluster = (await operator.policy("p"))["status"]["cluster"]
    assert cluster["cpuCores"] > 0 and cluster["cpuPodsMeasured"] == cluster["memoryPodsMeasured"], cluster
    cpu_gauges = [family for family in text_string_to_metric_families(await operator.scrape_metrics())
                  if family.name == "kubemeter_cluster_cpu_usage_cores"]
    assert [sample.value > 0 for family in cpu_gauges for sample in family.samples] == [True]


SLOW_NODE = "sim-worker-1"


async def test_an_interval_alone_runs_with_a_timeout_and_window_that_follow_it(any_operator):
    """The minimum interval alone and an hour alone are accepted and run with what is derived from them: a
    timeout of 80% of the interval, at most 10s, and a window of 10 intervals, at least 5m. A kubelet answering
    in 9 s is a timeout for the first (8 s) and answers within the second's (10 s)."""
    operator = any_operator
    await operator.cluster.node_fault(SLOW_NODE, "latency=9s")
    for name, interval in (("fast", "10s"), ("hourly", "1h")):
        stored = (await operator.create_policy(name, {"interval": interval}))["spec"]
        assert "timeout" not in stored["source"] and "window" not in stored["aggregation"], stored
    await operator.loop("fast")
    await operator.loop("hourly")
    fast, hourly = (await operator.policy("fast"))["status"], (await operator.policy("hourly"))["status"]
    assert [(f["name"], f["reason"]) for f in fast["failedNodes"]] == [(SLOW_NODE, "timeout")], fast
    assert fast["lastCycleSeconds"] < 9, fast
    assert hourly["nodes"] == {"selected": 3, "scraped": 3, "failed": 0}, hourly
    windows = {(obj["spec"]["policy"], obj["status"]["window"]) for obj in await operator.workload_metrics()}
    assert windows == {("fast", "5m"), ("hourly", "10h")}


async def test_deleting_a_policy_stops_its_loop_and_collects_its_objects(any_operator):
    await any_operator.create_policy("gone", stepped())
    await any_operator.cycle("gone")
    assert await any_operator.workload_metrics()
    await any_operator.call(any_operator.custom.delete_cluster_custom_object, GROUP, VERSION, "metricspolicies", "gone")
    await eventually(lambda: "gone" not in any_operator.runtime.lifecycle.policies)
    # The garbage collector removes them through their owner reference. A real one (kube-controller-manager)
    # watches a new custom resource only from its next discovery sync, every 30 s: allow for one.
    async def none_left() -> bool:
        return not await any_operator.workload_metrics()
    await eventually(none_left, timeout=60)
    assert 'policy="gone"' not in await any_operator.scrape_metrics()
    try:
        await any_operator.policy("gone")
        raise AssertionError("the policy still exists: deletion hung on a finalizer")
    except ApiException as exc:
        assert exc.status == 404
