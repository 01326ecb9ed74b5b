"""Misbehaving kubelets: every failure is reported per node (policy status, Events, error counter), the
other nodes keep reporting, and the last good values of a failing node's workloads are not shown as current.

Simulator only: these are the kubelets' faults, and the real control plane's fake nodes are the same
simulated kubelets (tests/operator/test_e2e_bad_input.py runs one kubelet fault on both backends).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from kubemeter.timefmt import rfc3339
from kubemeter_sim.cluster import Cluster

from tests.operator.conftest import stepped
from tests.reliability.support import node_events, samples, scrape_errors

# Simulated fault -> the reason kubemeter reports. One fault per worker; the control plane stays healthy.
FAILURES = {
    "timeout": "timeout",
    "refused": "connection",
    "http500": "server_error",
    "tls": "tls",  # a serving certificate from another CA: verification must refuse it
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "redirect": "redirect",  # never followed: the node must not choose where the token and request go
    "garbage": "decode",
    "truncated": "truncated",
    "oversized=1048576": "too_large",  # over the operator's body cap below
}
BODY_CAP = 256 * 1024
HEALTHY = "sim-control-plane"


@pytest.fixture
async def sim_cluster(tmp_path) -> AsyncIterator[Cluster]:
    async with Cluster(nodes=1 + len(FAILURES), pods_per_node=3, seed=11, workdir=tmp_path / "sim",
                       housekeeping_interval=0.5) as cluster:
        yield cluster


def by_workload(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {
        (o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]): o["status"]
        for o in objects
    }


async def test_each_kubelet_failure_is_reported_per_node_and_others_keep_reporting(sim_cluster, start, admin):
    op = await start(max_body_bytes=BODY_CAP)
    # The default minStatusChange, as in production: a workload whose values barely moved is not rewritten.
    await op.create_policy("faults", stepped(source={"timeout": "1s"}))
    last_good = await op.cycle("faults")
    before = by_workload(await op.workload_metrics())
    assert all("usageCores" in s["cpu"] and not s["stale"] for s in before.values())

    workers = sorted(n for n in sim_cluster.kubelets if n != HEALTHY)
    expected = {node: reason for node, reason in zip(workers, FAILURES.values(), strict=True)}
    for node, fault in zip(workers, FAILURES, strict=True):
        await sim_cluster.node_fault(node, fault)
    await op.cycle("faults", count=2)

    status = (await op.policy("faults"))["status"]
    assert {f["name"]: f["reason"] for f in status["failedNodes"]} == expected
    assert status["nodes"] == {"selected": 1 + len(FAILURES), "scraped": 1, "failed": len(FAILURES)}
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Degraded"] == ("True", "NodesFailing") and conditions["Ready"][0] == "True"

    # One Event per node on the transition, none for the second failing cycle.
    once = {node: 1 for node in expected}
    assert await node_events(admin, "ScrapeFailed", once) == once
    described = await asyncio.to_thread(
        subprocess.run, ["kubectl", "--kubeconfig", str(sim_cluster.kubeconfig), "describe", "node", workers[0]],
        capture_output=True, text=True, check=True,
    )
    assert "ScrapeFailed" in described.stdout, "kubectl describe node shows the Event"
    errors = scrape_errors(await op.scrape_metrics(), "faults")
    assert errors == {(node, reason): 2.0 for node, reason in expected.items()}

    # Workloads only on failing nodes are stale: no usage shown as current, their last sample time kept.
    after = by_workload(await op.workload_metrics())
    assert after.keys() == before.keys()
    healthy_static = [k for k in after if k[1] == "Pod" and k[2].endswith(HEALTHY)]
    assert healthy_static, "the healthy node's static pods are published"
    for key in healthy_static:
        assert not after[key]["stale"] and after[key]["cpu"]["usageCores"] >= 0
        assert after[key]["lastSampleTime"] >= before[key]["lastSampleTime"]
    stale = {k: s for k, s in after.items() if s["stale"]}
    assert stale, "workloads living on failing nodes only"
    for key, status in stale.items():
        assert "usageCores" not in status.get("cpu", {}) and "workingSetBytes" not in status.get("memory", {}), key
        assert status["podsReporting"] == 0 and status["pods"] > 0
        # The last cycle that measured it, even when that cycle skipped its write (nothing moved), so the
        # object showed an earlier time until the faults began.
        assert status["lastSampleTime"] == rfc3339(last_good.snapshot.time), "the last good sample time is kept"
        assert status["lastSampleTime"] >= before[key]["lastSampleTime"]
    everywhere = ("DaemonSet", "kube-proxy")
    spread = next(s for k, s in after.items() if k[1:] == everywhere)
    assert spread["podsReporting"] == 1 < spread["pods"] and not spread["stale"]

    for node in workers:
        await sim_cluster.node_fault(node, None)
    await op.cycle("faults")
    assert await node_events(admin, "ScrapeRecovered", once) == once
    assert await node_events(admin, "ScrapeFailed", once) == once, "still one per node: none per failing cycle"
    status = (await op.policy("faults"))["status"]
    assert status.get("failedNodes", []) == [] and status["nodes"]["failed"] == 0
    assert not any(s["stale"] for s in by_workload(await op.workload_metrics()).values())



def running_on(cluster: Cluster, node: str) -> int:
    """The pods bound to ``node`` and not terminated, from the API server: those expected to report."""
    return sum(1 for pod in cluster.store.list("v1", "pods", field_selector=f"spec.nodeName={node}")
               if pod["status"].get("phase") not in ("Succeeded", "Failed"))


async def test_pods_on_failing_kubelets_show_as_lost_coverage_in_prometheus_and_the_policy_status(sim_cluster, start):
    op = await start()
    await op.create_policy("coverage", stepped(source={"timeout": "1s"}))
    await op.cycle("coverage")
    everywhere = {"policy": "coverage", "namespace": "kube-system", "workload_kind": "DaemonSet", "workload": "kube-proxy"}

    def pods(text: str, level: str, **labels: str) -> tuple[float, float]:
        """(reporting, expected) of one series."""
        [reporting] = samples(text, f"kubemeter_{level}_pods_reporting", **labels).values()
        [expected] = samples(text, f"kubemeter_{level}_pods", **labels).values()
        return reporting, expected

    nodes, total = len(sim_cluster.kubelets), sum(running_on(sim_cluster, node) for node in sim_cluster.kubelets)
    healthy = await op.scrape_metrics()
    assert pods(healthy, "workload", **everywhere) == (nodes, nodes)
    assert pods(healthy, "cluster", policy="coverage") == (total, total)
    cpu_before = (await op.policy("coverage"))["status"]["cluster"]["cpuCores"]

    workers = sorted(n for n in sim_cluster.kubelets if n != HEALTHY)
    for node in workers:
        await sim_cluster.node_fault(node, "http500")
    await op.cycle("coverage")
    failing = await op.scrape_metrics()
    # Usage fell because coverage fell, and the gauges beside it say so: the workload, the cluster, each node.
    assert pods(failing, "workload", **everywhere) == (1, nodes)
    on_healthy = running_on(sim_cluster, HEALTHY)
    assert pods(failing, "cluster", policy="coverage") == (on_healthy, total)
    assert pods(failing, "node", policy="coverage", node=HEALTHY) == (on_healthy, on_healthy)
    for node in workers:
        assert pods(failing, "node", policy="coverage", node=node) == (0, running_on(sim_cluster, node))
    cluster = (await op.policy("coverage"))["status"]["cluster"]
    assert (cluster["podsReporting"], cluster["pods"]) == (on_healthy, total)
    assert cluster["cpuCores"] < cpu_before
