"""The right-sizing series' cost on /metrics per ``spec.recommendations.metrics``, side by side in one run.

In process: a synthetic cluster of ``--workloads`` Deployments (10,000; short 1,000) of 2 pods and 3 containers
each, aggregated by the real Aggregator (every level: workload, namespace, node, cluster) and right-sized by the
real Recommender over 20 cycles (minHistory 0, so every request has a verdict; usage at 20%, 100% or 300% of
the request, so over, fit and under all occur). One ``SnapshotCollector`` per value of
``spec.recommendations.metrics`` (None, Differences, Full) and one without recommendations (the workloads'
series alone: the baseline) render the policy's series; bytes and gzip bytes of the text, series, and CPU
(process time) per render: the median of ``--rounds`` rounds, the four rendered alternately in each round (a
render is built once per cycle and served from cache until the next; Prometheus scrapes it gzip-compressed).

    .venv/bin/python bench/bench_exposition.py [--profile short|full] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time

from common import Row, report

from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.rightsizing import Recommender
from kubemeter.policy import LEVELS, RECOMMENDATION_METRICS, parse_policy
from kubemeter.publish.prometheus import SnapshotCollector
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef

WORKLOADS = {"short": 1_000, "full": 10_000}
CONTAINERS = ("app", "sidecar", "proxy")
PODS = 2
USAGE_OF_REQUEST = (0.2, 1.0, 3.0)
BASELINE = "no right-sizing"


def cluster(workloads: int) -> tuple[list[PodInfo], dict[str, dict[str, Usage]]]:
    pods, usage = [], {}
    for w in range(workloads):
        ref = WorkloadRef(f"ns-{w % 50}", "Deployment", f"app-{w}", "apps/v1")
        specs = tuple(ContainerSpec(name, 0.1 * (1 + c), 0.5, 1e8 * (1 + c), 2e8 * (1 + c))
                      for c, name in enumerate(CONTAINERS))
        for p in range(PODS):
            uid = f"uid-{w}-{p}"
            pods.append(PodInfo(uid, ref.namespace, f"app-{w}-{p}", f"node-{(w * PODS + p) % 300}", "Running", {},
                                None, specs, ref))
            usage[uid] = {spec.name: Usage(spec.cpu_request * (scale := USAGE_OF_REQUEST[(w + c) % 3]),
                                           spec.memory_request * scale, 0.0)
                          for c, spec in enumerate(specs)}
    return pods, usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("short", "full"), default="full")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workloads = WORKLOADS[args.profile]
    spec = parse_policy({"interval": "15s", "recommendations": {"minHistory": "0s"}})
    pods, usage = cluster(workloads)
    aggregator, recommender = Aggregator(spec.window, spec.percentiles), Recommender(spec.recommendations)
    now = 1_700_000_000.0
    for _ in range(20):
        now += spec.interval
        snapshot = aggregator.cycle(now, pods, usage)
        recommender.observe(now, pods, usage, spec.interval)
    recommendations = recommender.recommendations(now, pods, spec.interval)
    containers = sum(len(made.containers) for made in recommendations.values())
    verdicts: dict[str, int] = {}
    for made in recommendations.values():
        for container in made.containers.values():
            for verdict in (container.cpu_verdict, container.memory_verdict):
                verdicts[verdict] = verdicts.get(verdict, 0) + 1

    collectors = {BASELINE: SnapshotCollector(), **{detail: SnapshotCollector() for detail in RECOMMENDATION_METRICS}}
    texts: dict[str, bytes] = {}
    seconds: dict[str, list[float]] = {name: [] for name in collectors}
    for round_ in range(args.rounds):
        order = list(collectors.items())
        for name, collector in order if round_ % 2 else order[::-1]:
            if name == BASELINE:
                collector.set_snapshot("p", snapshot, LEVELS)
            else:
                collector.set_snapshot("p", snapshot, LEVELS, recommendations, name)
            started = time.process_time()
            texts[name] = collector.exposition()  # a new snapshot: rendered again, not from cache
            seconds[name].append(time.process_time() - started)

    figures = {}
    for name, text in texts.items():
        figures[name] = {"bytes": len(text), "gzip_bytes": len(gzip.compress(text, 6)),
                         "series": sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#")),
                         "render_seconds": statistics.median(seconds[name])}
    base = figures[BASELINE]
    rows = []
    for name in (BASELINE, *RECOMMENDATION_METRICS):
        what = "workload series alone" if name == BASELINE else f"metrics: {name}"
        got = figures[name]
        rows += [Row(f"{what}: /metrics MB", got["bytes"] / 1e6, base["bytes"] / 1e6, "", None),
                 Row(f"{what}: gzip MB", got["gzip_bytes"] / 1e6, base["gzip_bytes"] / 1e6, "", None),
                 Row(f"{what}: series", got["series"], base["series"], "", None),
                 Row(f"{what}: render CPU ms (median)", got["render_seconds"] * 1e3, base["render_seconds"] * 1e3, "",
                     None)]
    title = (f"/metrics per spec.recommendations.metrics: {workloads:,} workloads x {PODS} pods x {len(CONTAINERS)} "
             f"containers ({containers:,} workload containers), every level; baseline: no right-sizing series; "
             f"median of {args.rounds} rounds")
    report("exposition", args.profile, title, rows,
           {"workloads": workloads, "workload_containers": containers, "pods": len(pods), "rounds": args.rounds,
            "verdicts": verdicts, "figures": figures}, columns=("this value", "no right-sizing"))


if __name__ == "__main__":
    main()
