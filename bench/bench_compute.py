"""Compute-stage cost per cycle at scale: CPU rates for every container, then one Aggregator cycle.

Prints a table and writes bench/results/compute.json. Run: .venv/bin/python bench/bench_compute.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.rates import CounterRates
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef

PODS = 30_000
CONTAINERS = ("app", "sidecar", "proxy")
NODES = 300
INTERVAL = 30.0
CYCLES = 8
SCENARIOS = {"deployments of 10 pods": 10, "deployments of 100 pods": 100, "bare pods": 1}


def build_pods(pods_per_workload: int) -> list[PodInfo]:
    specs = tuple(ContainerSpec(name, 0.1, 0.5 if name != "proxy" else None, 128e6, 256e6) for name in CONTAINERS)
    pods = []
    for i in range(PODS):
        namespace = f"ns-{i // pods_per_workload % 50}"
        workload = WorkloadRef(namespace, "Deployment", f"app-{i // pods_per_workload}", "apps/v1")
        pods.append(PodInfo(f"uid-{i}", namespace, f"pod-{i}", f"node-{i % NODES}", "Running", {}, None, specs, workload))
    return pods


def run(pods_per_workload: int) -> dict[str, float]:
    pods = build_pods(pods_per_workload)
    keys = [(pod.uid, spec.name) for pod in pods for spec in pod.containers]
    rates = CounterRates()
    aggregator = Aggregator(window_seconds=300.0, percentiles=(50, 95))
    rate_seconds, aggregate_seconds = [], []
    for cycle in range(CYCLES):
        now = 1_700_000_000.0 + cycle * INTERVAL
        counters = [(n % 7 + 1) * 0.01 * cycle * INTERVAL for n in range(len(keys))]
        started = time.process_time()
        cores = [rates.observe(key, value, now, start_time=now - 3600, interval=INTERVAL)
                 for key, value in zip(keys, counters)]
        rates.prune(now - 3 * INTERVAL)
        measured = time.process_time()
        usage: dict[str, dict[str, Usage]] = {}
        for (uid, name), rate in zip(keys, cores):
            usage.setdefault(uid, {})[name] = Usage(rate, 100e6, now)
        before = time.process_time()
        aggregator.cycle(now, pods, usage)
        finished = time.process_time()
        if cycle >= 2:  # the first cycles have no rates and short windows
            rate_seconds.append(measured - started)
            aggregate_seconds.append(finished - before)
    return {
        "workloads": len({pod.workload for pod in pods}),
        "rates_cpu_seconds": statistics.median(rate_seconds),
        "aggregate_cpu_seconds": statistics.median(aggregate_seconds),
    }


def main() -> None:
    results = {name: run(size) for name, size in SCENARIOS.items()}
    print(f"{PODS} pods x {len(CONTAINERS)} containers, {NODES} nodes, window 300s/{INTERVAL:.0f}s, "
          f"median CPU seconds per cycle over {CYCLES - 2} cycles (rates: CounterRates.observe for every "
          f"container; aggregate: Aggregator.cycle)")
    print(f"{'scenario':<26}{'workloads':>10}{'rates':>10}{'aggregate':>11}{'total':>9}")
    for name, r in results.items():
        total = r["rates_cpu_seconds"] + r["aggregate_cpu_seconds"]
        print(f"{name:<26}{r['workloads']:>10}{r['rates_cpu_seconds']:>10.3f}{r['aggregate_cpu_seconds']:>11.3f}{total:>9.3f}")
    out = Path(__file__).parent / "results" / "compute.json"
    out.write_text(json.dumps({"python": platform.python_version(), "pods": PODS, "containers_per_pod": len(CONTAINERS),
                               "scenarios": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
