"""Simulated kubelet cost: one scrape of a full 110-pod node, and Cluster startup at 100 and 1,000 nodes.

* payload: ``Kubelet.render`` (read the profiles + render the body) for ``/metrics/resource`` and
  ``/stats/summary`` at kubelet 1.28, 1.30 and 1.35, 110 pods x 3 containers; CPU time of this process,
  best of several rounds (other processes on the machine disturb it little).
* startup: wall and CPU time of ``async with Cluster(nodes, 30)`` (API server, kubelets with their own
  TLS listeners, namespaces, nodes and the "mixed" workloads), and wall time of its shutdown. On a
  shared machine the CPU time is the stable figure; wall time grows with the machine's load.

Prints a table and writes bench/results/sim_kubelet.json. Run: .venv/bin/python bench/bench_sim_kubelet.py
(``--quick`` skips the 1,000-node startup).
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from pathlib import Path

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.kubelet import Kubelet

PODS = 110
CONTAINERS = ("app", "sidecar", "exporter")
VERSIONS = ("1.28.3", "1.30.0", "1.35.0")
ROUNDS, REPEATS = 7, 10
NOW = 1_795_000_000.0


def _timestamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def full_node(version: str) -> Kubelet:
    kubelet = Kubelet("bench-node", "127.1.0.1", 10250, version, authorize=lambda *a, **k: (True, "bench"))
    for index in range(PODS):
        started = _timestamp(NOW - 7200 + index)
        kubelet.sync_pod({
            "metadata": {"name": f"app-{index:03d}-7d9f8c6b5d-x2k4p", "namespace": f"team-{index % 7}",
                         "uid": f"00000000-0000-4000-8000-{index:012d}"},
            "spec": {"nodeName": "bench-node", "volumes": [{"name": f"kube-api-access-{index:05d}"}],
                     "containers": [{"name": name, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                                 "limits": {"memory": "512Mi"}}}
                                    for name in CONTAINERS]},
            "status": {"phase": "Running", "startTime": started, "containerStatuses": [
                {"name": name, "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}}}
                for name in CONTAINERS]},
        })
    return kubelet


def payload_cost(version: str, path: str) -> dict[str, float]:
    kubelet = full_node(version)
    best = float("inf")
    size = 0
    for round_number in range(ROUNDS):
        started = time.process_time()
        for repeat in range(REPEATS):
            body, _ = kubelet.render(path, NOW + round_number * 10 + repeat)  # type: ignore[misc]
            size = len(body)
        best = min(best, (time.process_time() - started) / REPEATS)
    return {"ms": best * 1e3, "bytes": size}


async def startup_cost(nodes: int) -> dict[str, float]:
    started, started_cpu = time.perf_counter(), time.process_time()
    cluster = Cluster(nodes=nodes, pods_per_node=30)
    await cluster.__aenter__()
    up, up_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    pods = len(cluster.store.list("v1", "pods"))
    stopping = time.perf_counter()
    await cluster.__aexit__(None, None, None)
    return {"nodes": nodes, "pods": pods, "startup_s": up, "startup_cpu_s": up_cpu,
            "shutdown_s": time.perf_counter() - stopping}


def main() -> None:
    quick = "--quick" in sys.argv
    payloads = [{"version": v, "endpoint": p, **payload_cost(v, p)}
                for v in VERSIONS for p in ("/metrics/resource", "/stats/summary")]
    print(f"payload of a {PODS}-pod node ({len(CONTAINERS)} containers each): read + render, CPU ms")
    print(f"{'kubelet':<9} {'endpoint':<18} {'ms':>7} {'bytes':>9}")
    for row in payloads:
        print(f"{row['version']:<9} {row['endpoint']:<18} {row['ms']:>7.2f} {row['bytes']:>9}")
    startups = [asyncio.run(startup_cost(n)) for n in ((100,) if quick else (100, 1000))]
    print("\nCluster startup, mixed scenario, 30 pods per node (seconds; CPU = this process only)")
    print(f"{'nodes':>6} {'pods':>7} {'startup wall':>13} {'startup CPU':>12} {'shutdown wall':>14}")
    for row in startups:
        print(f"{row['nodes']:>6} {row['pods']:>7} {row['startup_s']:>13.1f} {row['startup_cpu_s']:>12.1f} "
              f"{row['shutdown_s']:>14.1f}")
    results = {"python": platform.python_version(), "machine": platform.machine(), "payloads": payloads,
               "startup": startups}
    out = Path(__file__).resolve().parent / "results" / "sim_kubelet.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
