"""CPU of the status planning per workload per cycle (issue 12, part 5), in process: the steps StatusPublisher
runs for every workload of every cycle (``workload_status``, then ``key_values`` to compare with what the object
holds), on the statuses of a synthetic cluster aggregated by the real Aggregator (workloads of 3 pods, 1 or 2
containers, a filled window, the default percentiles); and the Recommender's cost per container per cycle.

Side by side: ``key_values`` with the field-path walk of 207aa4f (``_shape_before``, copied here) and with this
tree's, alternately, for ``--rounds`` rounds; median and ratio. Both must give the same key values.
Run: .venv/bin/python bench/bench_planning.py [--workloads 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping

from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.rightsizing import Recommender
from kubemeter.policy import parse_policy
from kubemeter.publish import documents
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef


def _shape_before(value: object, prefix: str = "") -> list[str]:
    """documents._shape as of 207aa4f."""
    paths: list[str] = []
    if isinstance(value, Mapping):
        for key in sorted(value):
            paths += [f"{prefix}.{key}", *_shape_before(value[key], f"{prefix}.{key}")]
    elif isinstance(value, list):
        for item in value:
            name = item.get("name", "") if isinstance(item, Mapping) else ""
            paths += _shape_before(item, f"{prefix}[{name}]")
    return paths


def cluster(workloads: int) -> tuple[list[PodInfo], dict[str, dict[str, Usage]]]:
    pods, usage = [], {}
    for w in range(workloads):
        ref = WorkloadRef(f"ns-{w % 20}", "Deployment", f"app-{w}", "apps/v1")
        names = ("app", "sidecar") if w % 2 else ("app",)
        specs = tuple(ContainerSpec(name, 0.1, 0.5 if w % 3 else None, 1e8, 2e8) for name in names)
        for p in range(3):
            uid = f"uid-{w}-{p}"
            pods.append(PodInfo(uid, ref.namespace, f"app-{w}-{p}", f"node-{(w * 3 + p) % 100}", "Running", {},
                                None, specs, ref))
            usage[uid] = {name: Usage(0.01 * (1 + (w + p) % 7), 5e7 + w * 1000, 0.0) for name in names}
    return pods, usage


def cpu_of(step, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        step()
    return (time.process_time() - started) / repeat


def run(workloads: int, rounds: int) -> None:
    spec = parse_policy({"interval": "15s", "recommendations": {}})
    aggregator = Aggregator(spec.window, spec.percentiles)
    pods, usage = cluster(workloads)
    containers = sum(len(pod.containers) for pod in pods)
    recommender = Recommender(spec.recommendations)
    now = 1_000_000.0
    for cycle in range(20):  # a filled window
        now += spec.interval
        snapshot = aggregator.cycle(now, pods, usage)
        recommender.observe(now, pods, usage, spec.interval)
    statuses = [documents.workload_status(result, spec, now, now) for result in snapshot.workloads.values()]
    build = cpu_of(lambda: [documents.workload_status(r, spec, now, now) for r in snapshot.workloads.values()], 3)
    shape_now = documents._shape
    assert [documents.key_values(s) for s in statuses] == [
        {**documents.key_values(s), "shape": hash(tuple(_shape_before(
            {k: v for k, v in s.items() if k not in ("lastUpdated", "lastSampleTime")})))} for s in statuses]
    results: dict[str, list[float]] = {"207aa4f": [], "this tree": []}
    for round_ in range(rounds):
        order = [("207aa4f", _shape_before), ("this tree", shape_now)]
        for label, shape in order if round_ % 2 else order[::-1]:
            documents._shape = shape
            try:
                results[label].append(cpu_of(lambda: [documents.key_values(s) for s in statuses], 3) / len(statuses))
            finally:
                documents._shape = shape_now
    observe = cpu_of(lambda: recommender.observe(now, pods, usage, spec.interval), 5)
    recommend = cpu_of(lambda: recommender.recommendations(now + 60, pods, spec.interval), 3)
    print(f"{workloads} workloads, {len(pods)} pods, {containers} containers:")
    print(f"  workload_status: {1e6 * build / len(statuses):.1f} us per workload per cycle")
    old, new = (statistics.median(values) for values in results.values())
    print(f"  key_values, field paths of 207aa4f: {1e6 * old:.1f} us per workload (median of {rounds} rounds)")
    print(f"  key_values, this tree: {1e6 * new:.1f} us per workload; ratio {new / old:.2f}")
    print(f"  Recommender.observe: {1e6 * observe / containers:.2f} us per container per cycle")
    print(f"  Recommender.recommendations (refreshed once a minute): {1e6 * recommend / containers:.2f} us "
          "per container per refresh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    run(options.workloads, options.rounds)


if __name__ == "__main__":
    main()
