"""Target 3: watch ingest. The initial listing of every pod, against a bare kopf operator in the same run,
then a steady churn of pod events (create, patch, delete) at a fixed rate, with the handling lag.

Ingest time, for both: from launching the operator process until its ``@kopf.on.event`` handler has
handled as many listed pods as the cluster holds; for kubemeter also until its own paged LIST seeded the
model (Runtime.relister.synced; cycles wait for it). So start-up (imports, login) counts for both.
Lag: handled time - the ``sent`` timestamp the benchmark wrote into each created or patched pod.
Run: .venv/bin/python bench/bench_ingest.py [--profile short|full]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import kubernetes

from common import (
    BENCH, PYTHON, Row, bench_cluster, bench_main, process_usage, report, stop_process, wait_until,
)
from ingest_probe import SENT_ANNOTATION
from kubemeter_sim.cluster import Cluster

PROFILES = {
    "full": {"nodes": 200, "pods_per_node": 150, "churn_rate": 200, "churn_seconds": 60},
    "short": {"nodes": 50, "pods_per_node": 100, "churn_rate": 200, "churn_seconds": 15},
}
RATE_RATIO = 0.8
MAX_LAG_SECONDS = 2.0
"""Falling behind = the 99th percentile of the lag above this, or growing over the churn."""
CHURN_NAMESPACE = "churn"
CHURN_POOL = 100
STARTUP_TIMEOUT = 600.0


class Churn:
    """Pod events at a fixed rate from this process's store: create, patch, patch, delete, repeated."""

    def __init__(self, cluster: Cluster, rate: float) -> None:
        self.cluster, self.rate = cluster, rate
        self.store = cluster.store
        self.nodes = sorted(cluster.kubelets)
        self.live: list[str] = []
        self.serial = 0
        self.generated = 0
        self.store.add_listener(self._count)

    def _count(self, change_type: str, rtype, obj: dict) -> None:
        if rtype.kind == "Pod":
            self.generated += 1

    def prepare(self) -> None:
        self.store.create("v1", "namespaces", {"metadata": {"name": CHURN_NAMESPACE}})
        for _ in range(CHURN_POOL):
            self._create()

    def _create(self) -> None:
        self.serial += 1
        name = f"churn-{self.serial}"
        self.store.create("v1", "pods", {
            "metadata": {"name": name, "namespace": CHURN_NAMESPACE, "labels": {"app": "churn"},
                         "annotations": {SENT_ANNOTATION: repr(time.time())}},
            "spec": {"nodeName": self.nodes[self.serial % len(self.nodes)],
                     "containers": [{"name": "app", "image": "registry.example/churn:1",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
        self.live.append(name)

    def _patch(self) -> None:
        name = self.live[self.serial * 7 % len(self.live)]
        self.store.patch("v1", "pods", name, {"metadata": {"annotations": {SENT_ANNOTATION: repr(time.time())}}},
                         namespace=CHURN_NAMESPACE)

    def _delete(self) -> None:
        self.store.delete("v1", "pods", self.live.pop(0), namespace=CHURN_NAMESPACE)

    async def run(self, seconds: float) -> float:
        """Churn for ``seconds``; returns the achieved event rate."""
        operations = (self._create, self._patch, self._patch, self._delete)
        started, before, step = time.monotonic(), self.generated, 0
        while (elapsed := time.monotonic() - started) < seconds:
            while self.generated - before < self.rate * elapsed:
                operations[step % len(operations)]()
                step += 1
            await asyncio.sleep(0.01)
        return (self.generated - before) / (time.monotonic() - started)


async def run_probe(mode: str, cluster: Cluster, pods: int, churn: Churn, churn_seconds: float) -> dict:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    launched = time.time()
    process = await asyncio.create_subprocess_exec(
        PYTHON, str(BENCH / "ingest_probe.py"), mode, "--kubeconfig", str(cluster.kubeconfig), "--expect", str(pods),
        stdout=asyncio.subprocess.PIPE, env=env, limit=64 * 1024 * 1024)
    assert process.stdout is not None
    messages: dict[str, dict] = {}

    async def read(stream: asyncio.StreamReader) -> None:  # all along: a full pipe would block the probe
        async for line in stream:
            message = json.loads(line)
            messages[message["event"]] = message

    reader = asyncio.create_task(read(process.stdout))
    wanted = {"listed", "synced"} if mode == "kubemeter" else {"listed"}

    async def listed() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"the {mode} probe exited with {process.returncode} before the listing was handled")
        return wanted <= messages.keys()

    try:
        await wait_until(listed, STARTUP_TIMEOUT, f"{mode}: the initial listing", interval=0.2)
        ingest_seconds = max(messages[mark]["at"] for mark in wanted) - launched
        listed_rss = process_usage(process.pid).rss_bytes
        print(f"  {mode}: {pods} pods handled in {ingest_seconds:.1f}s; churning ...", flush=True)
        achieved = await churn.run(churn_seconds)
        await asyncio.sleep(MAX_LAG_SECONDS)  # the last events' handling
    finally:
        await stop_process(process)
        await reader
    latencies = messages.get("latencies", {}).get("values", [])
    return {"ingest_seconds": ingest_seconds, "pods_per_second": pods / ingest_seconds, "rss_bytes": listed_rss,
            "churn_events_per_second": achieved, **lag_summary(latencies)}


def lag_summary(latencies: list[list[float]]) -> dict:
    if not latencies:
        return {"lag_events": 0, "lag_p50": None, "lag_p99": None, "lag_max": None, "lag_p99_first_third": None,
                "lag_p99_last_third": None}
    values = sorted(lag for _, lag in latencies)
    third = max(1, len(latencies) // 3)

    def p99(part: list[list[float]]) -> float:
        return statistics.quantiles([lag for _, lag in part], n=100)[98] if len(part) >= 2 else part[0][1]

    return {"lag_events": len(values), "lag_p50": statistics.median(values), "lag_p99": p99(latencies),
            "lag_max": values[-1], "lag_p99_first_third": p99(latencies[:third]),
            "lag_p99_last_third": p99(latencies[-third:])}


def _warm_listing(client: kubernetes.client.ApiClient) -> None:
    """One full LIST first, so neither operator pays the simulator's first encoding of every pod."""
    _ = kubernetes.client.CoreV1Api(client).list_pod_for_all_namespaces(_preload_content=False).data  # the whole body


def keeps_up(result: dict) -> bool:
    return (result["lag_p99"] is not None and result["lag_p99"] <= MAX_LAG_SECONDS
            and result["lag_p99_last_third"] <= max(MAX_LAG_SECONDS / 2, 2 * result["lag_p99_first_third"]))


async def run(profile: str) -> bool:
    settings = PROFILES[profile]
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        async with bench_cluster(settings["nodes"], settings["pods_per_node"], Path(workdir)) as (cluster, client, _):
            churn = Churn(cluster, settings["churn_rate"])
            churn.prepare()
            await asyncio.to_thread(_warm_listing, client)
            pods = len(cluster.store.list("v1", "pods"))
            # Each probe lists the pods as they are when it starts: churn keeps their number constant.
            results = {mode: await run_probe(mode, cluster, pods, churn, settings["churn_seconds"])
                       for mode in ("bare", "kubemeter")}
    kube, bare = results["kubemeter"], results["bare"]
    rows = [
        Row(f"initial listing of {pods:,} pods", kube["pods_per_second"], bare["pods_per_second"],
            f"ratio >= {RATE_RATIO}", kube["pods_per_second"] >= RATE_RATIO * bare["pods_per_second"], "pods/s"),
        Row("time to handle the listing", kube["ingest_seconds"], bare["ingest_seconds"], "-", None, "s"),
        Row("RSS once the listing was handled", kube["rss_bytes"] / 1e6, bare["rss_bytes"] / 1e6, "-", None, "MB"),
        Row("churn rate achieved", kube["churn_events_per_second"], bare["churn_events_per_second"],
            f">= {0.95 * settings['churn_rate']:.0f}/s",
            kube["churn_events_per_second"] >= 0.95 * settings["churn_rate"], "events/s"),
        Row("churn lag p50", kube["lag_p50"], bare["lag_p50"], "-", None, "s"),
        Row("churn lag p99", kube["lag_p99"], bare["lag_p99"], f"<= {MAX_LAG_SECONDS}s, not growing",
            keeps_up(kube), "s"),
        Row("churn lag p99, last third", kube["lag_p99_last_third"], bare["lag_p99_last_third"], "-", None, "s"),
        Row("churn lag max", kube["lag_max"], bare["lag_max"], "-", None, "s"),
    ]
    title = (f"Watch ingest ({profile} profile): {pods:,} pods on {settings['nodes']} nodes, then "
             f"{settings['churn_rate']} pod events/s for {settings['churn_seconds']}s; baseline: bare kopf "
             f"@kopf.on.event handler")
    return report("ingest", profile, title, rows, {"profile": profile, "pods": pods, **settings, "results": results})


if __name__ == "__main__":
    bench_main(__doc__, run)
