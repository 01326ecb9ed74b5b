"""Kubelet clocks and a flapping kubelet: a skewed clock changes no value (rates use the kubelet's own sample
times), a clock stepping back or jumping far ahead is reported and never yields a negative rate, a spike or a
rate over a window that never was, and a node failing every other scrape gets one Event per transition, not one
per cycle.

Simulator only: these are the kubelets' faults, and the real control plane's fake nodes are the same
simulated kubelets (tests/operator/test_e2e_bad_input.py runs one kubelet fault on both backends).
"""

from __future__ import annotations

from collections import defaultdict

from tests.operator.conftest import stepped
from tests.operator.test_e2e_metering import close, top_owner
from tests.reliability.support import node_events, scrape_errors

SKEWED, BACKWARDS, FLAPPING = "sim-worker-1", "sim-worker-2", "sim-control-plane"
JUMPING = SKEWED


def served_usage(cluster, node: str) -> dict[tuple[str, str, str], float]:
    """Per workload running only on ``node``: its CPU rate between the last two payloads the kubelet served,
    from the kubelet's own counters and timestamps."""
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in cluster.store.list("v1", "pods")}
    elsewhere = {top_owner(cluster.store, p) for p in pods.values() if p["spec"].get("nodeName") != node}
    older, newer = cluster.kubelets[node].snapshots[-2], cluster.kubelets[node].snapshots[-1]
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    for (namespace, pod, container), point in newer.containers.items():
        before = older.containers[(namespace, pod, container)]
        key = top_owner(cluster.store, pods[(namespace, pod)])
        totals[key] += (point.cpu_seconds - before.cpu_seconds) / (point.timestamp - before.timestamp)
    return {key: value for key, value in totals.items() if key not in elsewhere}


async def test_skewed_backwards_and_flapping_kubelet_clocks(operator):
    cluster = operator.cluster
    await operator.create_policy("clocks", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("clocks")
    await cluster.node_fault(SKEWED, "clock_skew=10m")
    await cluster.node_fault(BACKWARDS, "backwards")
    await cluster.node_fault(FLAPPING, "flapping")  # every second scrape answers 500, from the next one

    failed_cycles = {BACKWARDS: 0, FLAPPING: 0}
    for _ in range(4):
        report = await operator.cycle("clocks")
        for node in report.failures:
            failed_cycles[node] += 1
        assert SKEWED not in report.failures
        # A skewed clock: exactly the rates the kubelet's own counters and timestamps give.
        expected = served_usage(cluster, SKEWED)
        assert expected
        published = {(r.namespace, r.kind, r.name): w.cpu.usage for r, w in report.snapshot.workloads.items()}
        for key, rate in expected.items():
            assert close(published[key], rate), key
        # Nothing negative or spiking anywhere, whatever the clocks do (a simulated node has 8 cores).
        for result in report.snapshot.workloads.values():
            assert result.cpu.usage is None or 0 <= result.cpu.usage <= 3 * 8
        if BACKWARDS in report.failures:
            assert report.failures[BACKWARDS].reason == "clock_backwards"

    assert failed_cycles == {BACKWARDS: 4, FLAPPING: 2}
    errors = scrape_errors(await operator.scrape_metrics(), "clocks")
    assert errors == {(BACKWARDS, "clock_backwards"): 4.0, (FLAPPING, "server_error"): 2.0}
    # Events on transitions only: the flapping node failed twice and recovered once in between.
    transitions = {BACKWARDS: 1, FLAPPING: 2}
    assert await node_events(operator.client, "ScrapeFailed", transitions) == transitions
    assert await node_events(operator.client, "ScrapeRecovered", {FLAPPING: 1}) == {FLAPPING: 1}
    status = (await operator.policy("clocks"))["status"]
    failed = {f["name"]: f["reason"] for f in status["failedNodes"]}
    assert failed == {BACKWARDS: "clock_backwards", FLAPPING: "server_error"}



async def test_a_kubelet_clock_jumping_far_ahead_is_reported_and_gives_no_rate_for_that_scrape(operator):
    """Samples a day ahead of the previous scrape's while a second passed here: a rate over that day would be
    tens of thousands of times too small. That scrape is reported failing and gives no rate; its samples are
    the next scrape's baselines, so the rates after it are the kubelet's own again."""
    cluster = operator.cluster
    await operator.create_policy("clocks", stepped(output={"minStatusChange": "0"}))
    await operator.cycle("clocks", count=2)  # every container has a rate
    await cluster.node_fault(JUMPING, "clock_skew=24h")  # every later sample a day ahead: one jump, then steady

    report = await operator.cycle("clocks")
    assert {node: f.reason for node, f in report.failures.items()} == {JUMPING: "clock_forward"}
    assert "clock jumped forward" in report.failures[JUMPING].message
    only_there = served_usage(cluster, JUMPING)
    assert only_there
    workloads = {(r.namespace, r.kind, r.name): w for r, w in report.snapshot.workloads.items()}
    for key in only_there:
        assert (workloads[key].cpu.usage, workloads[key].pods_reporting) == (None, 0), key  # unknown, not tiny
    status = (await operator.policy("clocks"))["status"]
    assert [(f["name"], f["reason"]) for f in status["failedNodes"]] == [(JUMPING, "clock_forward")]

    report = await operator.cycle("clocks")
    assert report.failures == {}
    published = {(r.namespace, r.kind, r.name): w.cpu.usage for r, w in report.snapshot.workloads.items()}
    for key, rate in served_usage(cluster, JUMPING).items():
        assert close(published[key], rate), key
    errors = scrape_errors(await operator.scrape_metrics(), "clocks")
    assert errors == {(JUMPING, "clock_forward"): 1.0}
    assert await node_events(operator.client, "ScrapeRecovered", {JUMPING: 1}) == {JUMPING: 1}
