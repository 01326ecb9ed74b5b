"""CPU of the status planning per workload per cycle (issue 12, part 5), in process: the steps StatusPublisher
runs for every workload of every cycle (``workload_status``, then ``key_values`` to compare with what the object
holds), on the statuses of a synthetic cluster aggregated by the real Aggregator (workloads of 3 pods, 1 or 2
containers, a filled window, the default percentiles); and the Recommender's cost per container per cycle.

Side by side, alternately for ``--rounds`` rounds, median and ratio: the planning of a workload (``workload_status``
then ``key_values``, with and without right-sizing) as of 7377fdb (``_field_paths``, its ``_shape``, copied here, and
``percentile_key`` not cached) and as in this tree. Both shapes must tell the same statuses apart.
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

from common import Row, report


def _field_paths(value: object, prefix: str = "", paths: list[str] | None = None) -> list[str]:
    """documents._shape as of 7377fdb: the field paths of a document, as strings."""
    if paths is None:
        paths = []
    if type(value) is dict or isinstance(value, Mapping):
        for key in sorted(value):
            path = f"{prefix}.{key}"
            paths.append(path)
            child = value[key]
            if type(child) is dict or type(child) is list or isinstance(child, Mapping | list):
                _field_paths(child, path, paths)
    elif isinstance(value, list):
        for item in value:
            name = item.get("name", "") if type(item) is dict or isinstance(item, Mapping) else ""
            _field_paths(item, f"{prefix}[{name}]", paths)
    return paths


def _same_partition(statuses: list[dict]) -> None:
    """The two shapes hold the same statuses alike: the classes of equal field paths are those of equal shapes."""
    def classes(shape) -> list[int]:
        first: dict = {}
        return [first.setdefault(shape({k: v for k, v in s.items() if k not in ("lastUpdated", "lastSampleTime")}),
                                 len(first)) for s in statuses]
    assert classes(lambda d: tuple(_field_paths(d))) == classes(documents._shape)


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
    spec = parse_policy({"interval": "15s", "recommendations": {"minHistory": "0"}})
    aggregator = Aggregator(spec.window, spec.percentiles)
    pods, usage = cluster(workloads)
    containers = sum(len(pod.containers) for pod in pods)
    recommender = Recommender(spec.recommendations)
    now = 1_000_000.0
    for cycle in range(20):  # a filled window
        now += spec.interval
        snapshot = aggregator.cycle(now, pods, usage)
        recommender.observe(now, pods, usage, spec.interval)
    made = recommender.recommendations(now + 60, pods, spec.interval)
    sized = {False: {}, True: made}
    # Statuses that differ in shape, not only in values: without a container, a percentile, right-sizing.
    other = parse_policy({"interval": "15s", "aggregation": {"percentiles": [50, 99]}})
    variants = [documents.workload_status(r, s, now, now, m.get(w)) for s, m in ((spec, {}), (spec, made), (other, {}))
                for w, r in snapshot.workloads.items()]
    variants += [{**v, "containers": v["containers"][:1]} for v in variants[:200]]
    _same_partition(variants)
    shape_now, key_now = documents._shape, documents.percentile_key
    trees = {"7377fdb": (lambda d: tuple(_field_paths(d)), key_now.__wrapped__), "this tree": (shape_now, key_now)}

    def plan(recommendations: dict) -> None:
        for workload, result in snapshot.workloads.items():
            documents.key_values(documents.workload_status(result, spec, now, now, recommendations.get(workload)))

    results: dict[tuple[bool, str], list[float]] = {(r, t): [] for r in sized for t in trees}
    for round_ in range(rounds):
        for right_sizing, recommendations in sized.items():
            order = list(trees.items())
            for label, (shape, key) in order if round_ % 2 else order[::-1]:
                documents._shape, documents.percentile_key = shape, key
                try:
                    results[(right_sizing, label)].append(cpu_of(lambda: plan(recommendations), 3) / workloads)
                finally:
                    documents._shape, documents.percentile_key = shape_now, key_now
    observe = cpu_of(lambda: recommender.observe(now, pods, usage, spec.interval), 5)
    recommend = cpu_of(lambda: recommender.recommendations(now + 120, pods, spec.interval), 1)  # not refreshed yet
    rows = [Row(f"planning per workload per cycle, right-sizing {'on' if right_sizing else 'off'}",
                statistics.median(results[(right_sizing, "this tree")]) * 1e6,
                statistics.median(results[(right_sizing, "7377fdb")]) * 1e6, "", None, "us")
            for right_sizing in sized]
    rows += [Row("Recommender.observe per container per cycle", observe / containers * 1e6, None, "", None, "us"),
             Row("Recommender.recommendations per container per refresh (once a minute)", recommend / containers * 1e6,
                 None, "", None, "us")]
    report("planning", "full", f"{workloads} workloads, {len(pods)} pods, {containers} containers; median of {rounds} "
           "rounds, alternating", rows, {"workloads": workloads, "rounds": rounds,
                                         "samples_us": {f"{k[1]}, right-sizing {k[0]}": [v * 1e6 for v in vs]
                                                        for k, vs in results.items()}},
           columns=("this tree", "7377fdb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    run(options.workloads, options.rounds)


if __name__ == "__main__":
    main()
