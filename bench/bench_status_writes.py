"""CPU per WorkloadMetrics status write (issue 12, part 5): the blocking kubernetes client on a thread (as
KubeApi sent every status patch before) against KubeApi's status patch on the event loop (aiohttp), side by side.

A real control plane (the Go-built one of ``make controlplane``; one fake node, no pods), ``--objects``
WorkloadMetrics; each round patches every object's status once through ``KubeApi.call`` with each variant in
turn (the order alternating between rounds), paced by the rate limiter at ``--qps`` as the operator's writer is.
The figure is this process's CPU time (every thread) per write: the API server is another process. Median over
the rounds, and the ratio new / old of the medians.
Run: .venv/bin/python bench/bench_status_writes.py [--objects 200] [--rounds 6] [--qps 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import kubernetes

from common import admin_client
from kubemeter import GROUP, VERSION
from kubemeter.kube import load_configuration
from kubemeter.kubeapi import CONFLICT, KubeApi, RateLimiter
from kubemeter.timefmt import rfc3339
from kubemeter_sim.demo import install_crds
from kubemeter_sim.real.cluster import RealCluster

PLURAL = "workloadmetrics"
NAMESPACE = "default"


def status(index: int, round_: int) -> list[dict]:
    """A JSON patch with a status shaped as the operator's (two containers, window figures, percentiles)."""
    def resource(cpu: bool) -> dict:
        unit = "Cores" if cpu else "Bytes"
        value = (0.1 + index / 1000 + round_ / 100) if cpu else 100_000_000 + index * 1000 + round_
        return {"usage": f"{value}", f"usage{unit}" if cpu else "workingSetBytes": value, f"avg{unit}": value,
                f"max{unit}": value, f"percentile{unit}": {"p50": value, "p90": value, "p99": value},
                f"requests{unit}": value * 2, f"limits{unit}": value * 4, "requestUtilization": 0.5,
                "requestPercent": "50%"}

    body = {"pods": 3, "podsReporting": 3, "reporting": "3/3", "window": "5m", "samples": 20,
            "lastUpdated": rfc3339(time.time()), "lastSampleTime": rfc3339(time.time()), "stale": False,
            "cpu": {"podsMeasured": 3, **resource(True)}, "memory": {"podsMeasured": 3, **resource(False)},
            "containers": [{"name": name, "cpu": resource(True), "memory": resource(False)}
                           for name in ("app", "sidecar")]}
    return [{"op": "add", "path": "/status", "value": body}]


async def patch_all(api: KubeApi, fn, names: list[str], round_: int) -> tuple[float, float]:
    """CPU seconds of this process per write (user, system), every object patched once."""
    before = os.times()
    await asyncio.gather(*(api.call(fn, GROUP, VERSION, NAMESPACE, PLURAL, name, status(index, round_),
                                    _content_type="application/json-patch+json", also_retry=CONFLICT)
                           for index, name in enumerate(names)))
    after = os.times()
    return (after.user - before.user) / len(names), (after.system - before.system) / len(names)


async def run(objects: int, rounds: int, qps: float) -> None:
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        async with RealCluster(1, 0, scenario="empty", workdir=Path(workdir)) as cluster:
            client = admin_client(cluster)
            await asyncio.to_thread(install_crds, client)
            client.close()
            api = KubeApi(load_configuration(str(cluster.kubeconfig)), RateLimiter(qps, 8))
            blocking = kubernetes.client.CustomObjectsApi(api.client).patch_namespaced_custom_object_status
            variants = {"blocking client on a thread": blocking,
                        "aiohttp on the event loop": api.custom.patch_namespaced_custom_object_status}
            names = [f"bench-{index}" for index in range(objects)]
            for name in names:
                body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics",
                        "metadata": {"name": name, "namespace": NAMESPACE},
                        "spec": {"policy": "bench", "workload": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                 "name": name}}}
                await api.call(api.custom.create_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL, body)
            for fn in variants.values():  # warm-up: connections, TLS sessions
                await patch_all(api, fn, names[:20], 0)
            results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
            for round_ in range(1, rounds + 1):
                order = list(variants.items()) if round_ % 2 else list(variants.items())[::-1]
                for label, fn in order:
                    results[label].append(await patch_all(api, fn, names, round_))
                print(f"  round {round_}: " + ", ".join(f"{label} {sum(results[label][-1]) * 1e6:.0f} us"
                                                      for label in variants), flush=True)
            await api.close()
    print(f"CPU per status write (user + system), median of {rounds} rounds of {objects} writes at {qps:g} QPS:")
    medians = []
    for label, values in results.items():
        totals = [user + system for user, system in values]
        medians.append(statistics.median(totals))
        print(f"  {label}: {medians[-1] * 1e6:.0f} us (min {min(totals) * 1e6:.0f}, max {max(totals) * 1e6:.0f}; "
              f"user {statistics.median(u for u, _ in values) * 1e6:.0f}, "
              f"system {statistics.median(s for _, s in values) * 1e6:.0f})")
    print(f"  ratio new / old: {medians[1] / medians[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--qps", type=float, default=50.0)
    options = parser.parse_args()
    asyncio.run(run(options.objects, options.rounds, options.qps))


if __name__ == "__main__":
    main()
