"""Issue 12, part 3: kubemeter's cost beside metrics-server's, measured together on one real control plane.

For each size: a real control plane (``make controlplane``) with N fake nodes x 30 pods, metrics-server v0.8.0
beside it (``--metric-resolution`` = the policy interval, 15 s; 10 s in the short profile) and ``kubemeter run``
with one policy over the whole cluster (WorkloadMetrics and Prometheus on, the defaults). After two warm-up cycles
and once every WorkloadMetrics exists, both processes' CPU (utime + stime) and largest VmRSS are read from /proc
over the same whole intervals, with the operator's /metrics scraped once per interval as Prometheus would.
metrics-server is not queried (it answers on demand; ``kubectl top`` or an HPA would add to its figure), while
kubemeter's figure includes its status writes. The test bed's own processes are measured over the same window so
a reader can judge the noise: kube-apiserver, etcd, and this process (the fake kubelets serving both scrapers).
Run: .venv/bin/python bench/bench_vs_metrics_server.py [--profile short|full] [--sizes N ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from common import Row, bench_main, report
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.controlplane import ControlPlaneError, binaries_dir
from steady import Phase, creations_done, run_session

PROFILES = {
    "full": {"sizes": (100, 300, 1000), "pods_per_node": 30, "interval": 15, "cycles": 4},
    "short": {"sizes": (20, 60), "pods_per_node": 30, "interval": 10, "cycles": 2},
}
TEST_BED = ("kube-apiserver", "etcd")
WATCH_PEER = "kube-state-metrics"
"""Beside them when built (``make peers``), for the watch side: it holds the same pods and nodes as kubemeter's
model and serves them as series, its /metrics scraped once per interval."""
THIS_PROCESS = "test bed (fake kubelets, this process)"


def _processes(cluster: RealCluster) -> dict[str, int]:
    plane = cluster.control_plane
    peers = ("metrics-server", WATCH_PEER) if cluster.kube_state_metrics is not None else ("metrics-server",)
    return {**{name: plane.pid(name) for name in (*peers, *TEST_BED)}, THIS_PROCESS: os.getpid()}


def _watch_peer_built() -> bool:
    return os.access(binaries_dir() / WATCH_PEER, os.X_OK)


async def measure(nodes: int, pods_per_node: int, interval: int, cycles: int) -> dict:
    spec = {"interval": f"{interval}s"}
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-ms-") as workdir:
        session = await run_session(nodes, pods_per_node, spec, [Phase("steady", cycles, creations_done)],
                                    Path(workdir), backend="real", metric_resolution=interval, companions=_processes,
                                    kube_state_metrics=_watch_peer_built())
    phase = session.phases[0]
    costs = {"kubemeter": (phase.cpu_seconds, phase.rss_max_bytes)} | {
        name: (cost.cpu_seconds, cost.rss_max_bytes) for name, cost in phase.companions.items()}
    return {
        "nodes": nodes, "pods": session.pods, "containers": session.containers, "interval": interval,
        "up_seconds": session.up_seconds, "window_seconds": phase.seconds, "cycles": phase.cycles,
        "cycle_seconds_mean": statistics.fmean(phase.cycle_seconds) if phase.cycle_seconds else None,
        "processes": {name: {"millicores_per_node": cpu / phase.seconds / nodes * 1000,
                             "mb_per_node": rss / nodes / 1e6, "cpu_seconds": cpu, "rss_bytes": rss}
                      for name, (cpu, rss) in costs.items()},
    }


def rows_for(points: list[dict]) -> list[Row]:
    """Ratios first: kubemeter over metrics-server per node, then the growth, then the test bed's own cost.
    By size, whatever order the sizes ran in (the growth is from the smallest to the largest)."""
    points = sorted(points, key=lambda p: p["nodes"])
    rows: list[Row] = []
    for p in points:
        ours, theirs = p["processes"]["kubemeter"], p["processes"]["metrics-server"]
        rows.append(Row(f"CPU per node @{p['nodes']} nodes", ours["millicores_per_node"],
                        theirs["millicores_per_node"], "<= metrics-server",
                        ours["millicores_per_node"] <= theirs["millicores_per_node"], "mCPU"))
        rows.append(Row(f"RSS per node @{p['nodes']} nodes", ours["mb_per_node"], theirs["mb_per_node"],
                        "<= metrics-server", ours["mb_per_node"] <= theirs["mb_per_node"], "MB"))
    for p in points:
        watch = p["processes"].get(WATCH_PEER)
        if watch is not None:  # the watch side: what holding the same pods and nodes costs a Go process
            ours = p["processes"]["kubemeter"]
            rows.append(Row(f"CPU per node @{p['nodes']} nodes, beside {WATCH_PEER}", ours["millicores_per_node"],
                            watch["millicores_per_node"], "-", None, "mCPU"))
            rows.append(Row(f"RSS per node @{p['nodes']} nodes, beside {WATCH_PEER}", ours["mb_per_node"],
                            watch["mb_per_node"], "-", None, "MB"))
    if len(points) >= 2:
        small, large = points[0], points[-1]
        for name in ("kubemeter", "metrics-server"):
            for what, key, unit in (("CPU", "millicores_per_node", "mCPU"), ("RSS", "mb_per_node", "MB")):
                rows.append(Row(f"{name} {what}/node, {large['nodes']} vs {small['nodes']} nodes",
                                large["processes"][name][key], small["processes"][name][key], "-", None, unit))
    for p in points:
        for name in (*TEST_BED, THIS_PROCESS):
            cost = p["processes"][name]
            rows.append(Row(f"{name} CPU per node @{p['nodes']} nodes", cost["millicores_per_node"], None,
                            "- (test bed)", None, "mCPU"))
            rows.append(Row(f"{name} RSS per node @{p['nodes']} nodes", cost["mb_per_node"], None,
                            "- (test bed)", None, "MB"))
    return rows


def print_point(point: dict) -> None:
    """One size's figures as soon as it is measured: a long run cut short (hours at 1,000 nodes) keeps them."""
    print(f"  @{point['nodes']} nodes ({point['containers']} containers), up in {point['up_seconds']:.0f}s, "
          f"{point['window_seconds']:.0f}s window, {point['cycles']} cycles:", flush=True)
    for name, cost in point["processes"].items():
        print(f"    {name}: {cost['cpu_seconds']:.2f} CPU s, {cost['millicores_per_node']:.3f} mCPU/node, "
              f"{cost['rss_bytes'] / 1e6:.0f} MB, {cost['mb_per_node']:.3f} MB/node", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", metavar="NODES",
                        help="cluster sizes in nodes (default: the profile's)")


async def run(profile: str, sizes: list[int] | None = None) -> bool:
    settings = PROFILES[profile]
    points, failures = [], []
    for nodes in sizes or settings["sizes"]:
        print(f"kubemeter and metrics-server at {nodes} nodes x {settings['pods_per_node']} pods ...", flush=True)
        try:
            points.append(await measure(nodes, settings["pods_per_node"], settings["interval"], settings["cycles"]))
            print_point(points[-1])
        except (TimeoutError, ControlPlaneError, RuntimeError) as error:  # the other sizes still run
            print(f"  @{nodes} nodes failed: {error}", flush=True)
            failures.append(Row(f"@{nodes} nodes: {str(error)[:200]}", None, None, "runs", False))
    points.sort(key=lambda p: p["nodes"])
    shown = ", ".join(f"{p['nodes']} nodes/{p['containers']} containers" for p in points)
    title = (f"kubemeter vs metrics-server, per node, one real control plane ({profile} profile: interval and "
             f"resolution {settings['interval']}s, {settings['cycles']} measured intervals after 2 warm-up cycles; "
             f"{shown})")
    return report("vs_metrics_server", profile, title, rows_for(points) + failures,
                  {"profile": profile, "points": points}, columns=("kubemeter", "metrics-server"))


if __name__ == "__main__":
    bench_main(__doc__, run, add_arguments)
