"""Target 2: the operator process's CPU and memory per node, at several cluster sizes.

For each size: a fresh cluster and ``kubemeter run`` (its own process), one policy with a 15 s interval (10 s
in the short profile). After two warm-up cycles and once every WorkloadMetrics was created (steady state),
CPU = utime + stime of the operator over whole intervals / wall time / nodes; memory = its largest VmRSS in
that window / nodes. Status writes and one /metrics scrape per cycle are inside the window. The limits are
judged at 1,000 nodes; smaller sizes give the curve.

The cluster is the simulator (``--control-plane sim``, the default, in this process), a real control plane
(``real``: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built by ``make controlplane``,
the fake nodes in this process), or each size on both in turn (``both``: the table puts them side by side,
real / simulator, so the simulator's figures can be checked). Real sizes default to 100 and 300 nodes.
Run: .venv/bin/python bench/bench_operator.py [--profile short|full] [--control-plane sim|real|both]
     [--sizes N ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import BACKENDS, Row, bench_main, report
from kubemeter_sim.real.controlplane import ControlPlaneError
from steady import Phase, creations_done, run_session

PROFILES = {
    "full": {"sizes": (100, 300, 1000), "pods_per_node": 30, "interval": 15, "cycles": 4},
    "short": {"sizes": (20, 60), "pods_per_node": 30, "interval": 10, "cycles": 2},
}
REAL_SIZES = {"full": (100, 300), "short": (20, 60)}
"""Sizes on a real control plane unless --sizes says otherwise: issue 11's comparison (1,000 fake nodes, 30,000
pods, would take a real control plane on 2 cores longer than a benchmark run should)."""
TARGET_NODES = 1000
"""The size the limits are set for (issue 5: 1,000 nodes x 30 pods); the short profile only shows the curve."""
MILLICORES_PER_NODE = 0.5
MB_PER_NODE = 1.0
LINEAR = 1.25
"""Per-node cost at the largest size may exceed that at the smallest by this factor and still count as linear."""


async def measure(nodes: int, pods_per_node: int, interval: int, cycles: int, backend: str = "sim") -> dict:
    spec = {"interval": f"{interval}s", "source": {"timeout": f"{max(2, interval // 3)}s"}}
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        session = await run_session(nodes, pods_per_node, spec, [Phase("steady", cycles, creations_done)],
                                    Path(workdir), backend=backend)
    phase = session.phases[0]
    return {
        "backend": backend, "nodes": nodes, "pods": session.pods, "containers": session.containers,
        "interval": interval, "up_seconds": session.up_seconds,
        "window_seconds": phase.seconds, "cycles": phase.cycles, "cycle_seconds": phase.cycle_seconds,
        "cycle_seconds_mean": statistics.fmean(phase.cycle_seconds) if phase.cycle_seconds else None,
        "cpu_seconds": phase.cpu_seconds, "cpu_seconds_per_cycle": phase.cpu_seconds * interval / phase.seconds,
        "millicores_per_node": phase.cpu_seconds / phase.seconds / nodes * 1000,
        "millicores_per_1000_containers": phase.cpu_seconds / phase.seconds / session.containers * 1e6,
        "rss_bytes": phase.rss_max_bytes, "mb_per_node": phase.rss_max_bytes / nodes / 1e6,
        "watch_events_per_second": phase.watch_events_per_second,
        # Per interval (one cycle starts in each): the window may end just before the last cycle ends.
        "status_writes_per_cycle": len(phase.status_writes) * interval / phase.seconds,
    }


def rows_for(points: list[dict]) -> list[Row]:
    rows: list[Row] = []
    for p in points:
        # The limits hold at the target's size; smaller clusters show the curve (fixed costs weigh more there).
        judged = p["nodes"] >= TARGET_NODES
        cpu, mb = p["millicores_per_node"], p["mb_per_node"]
        rows.append(Row(f"CPU per node @{p['nodes']} nodes", cpu, None,
                        f"<= {MILLICORES_PER_NODE} mCPU" if judged else "- (curve)",
                        cpu <= MILLICORES_PER_NODE if judged else None, "mCPU"))
        rows.append(Row(f"RSS per node @{p['nodes']} nodes", mb, None,
                        f"<= {MB_PER_NODE} MB" if judged else "- (curve)", mb <= MB_PER_NODE if judged else None, "MB"))
    if len(points) < 2:
        return rows
    small, large = points[0], points[-1]
    growth = (large["rss_bytes"] - small["rss_bytes"]) / (large["nodes"] - small["nodes"]) / 1e6
    rows.append(Row("RSS per added node (marginal)", growth, None, "-", None, "MB"))
    rows.append(Row("CPU/node scaling, largest vs smallest", large["millicores_per_node"],
                    small["millicores_per_node"], f"ratio <= {LINEAR}",
                    large["millicores_per_node"] <= LINEAR * small["millicores_per_node"], "mCPU"))
    rows.append(Row("RSS/node scaling, largest vs smallest", large["mb_per_node"], small["mb_per_node"],
                    f"ratio <= {LINEAR}", large["mb_per_node"] <= LINEAR * small["mb_per_node"], "MB"))
    return rows


async def measure_or_error(nodes: int, pods_per_node: int, interval: int, cycles: int, backend: str) -> dict:
    """The point, or on a real control plane what stopped it (not settled in time, a component exited): the
    run goes on with the other sizes and backends, and the table says what failed."""
    if backend == "sim":
        return await measure(nodes, pods_per_node, interval, cycles)
    try:
        return await measure(nodes, pods_per_node, interval, cycles, backend)
    except (TimeoutError, ControlPlaneError, RuntimeError) as error:
        print(f"  {backend} @{nodes} nodes failed: {error}", flush=True)
        return {"backend": backend, "nodes": nodes, "error": str(error)}


def failure_rows(points: list[dict]) -> list[Row]:
    return [Row(f"{p['backend']} @{p['nodes']} nodes: {p['error'][:200]}", None, None, "runs", False)
            for p in points if "error" in p]


COMPARED = (
    ("operator CPU per node", "millicores_per_node", "mCPU", 1.0),
    ("operator RSS per node", "mb_per_node", "MB", 1.0),
    ("operator CPU per 1,000 containers", "millicores_per_1000_containers", "mCPU", 1.0),
    ("operator CPU per cycle", "cpu_seconds_per_cycle", "s", 1.0),
    ("max VmRSS", "rss_bytes", "MB", 1e-6),
    ("cycle duration (mean)", "cycle_seconds_mean", "s", 1.0),
    ("WorkloadMetrics status writes per interval", "status_writes_per_cycle", "", 1.0),
    ("containers", "containers", "", 1.0),
    ("cluster up and settled (every pod running)", "up_seconds", "s", 1.0),
)


def comparison_rows(points: list[dict]) -> list[Row]:
    """Per size, real beside simulated (ratio real / simulated); for information, no targets."""
    rows: list[Row] = []
    for nodes in dict.fromkeys(p["nodes"] for p in points):
        at = {p["backend"]: p for p in points if p["nodes"] == nodes and "error" not in p}
        for what, key, unit, scale in COMPARED:
            real, sim = (at[b].get(key) if b in at else None for b in ("real", "sim"))
            rows.append(Row(f"{what} @{nodes} nodes", None if real is None else real * scale,
                            None if sim is None else sim * scale, "-", None, unit))
        real_events, sim_events = (sum(at[b]["watch_events_per_second"].values()) if b in at else None
                                   for b in ("real", "sim"))
        rows.append(Row(f"watch events the operator handled @{nodes} nodes", real_events, sim_events, "-", None,
                        "/s"))
    return rows + failure_rows(points)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--control-plane", choices=(*BACKENDS, "both"), default="sim",
                        help="sim: the simulator (default); real: a real control plane (make controlplane); "
                             "both: each size on the simulator, then on the real control plane, side by side")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="NODES",
                        help="cluster sizes in nodes (default: the profile's; 100 300 on a real control plane)")


async def run(profile: str, control_plane: str = "sim", sizes: list[int] | None = None) -> bool:
    settings = PROFILES[profile]
    backends = BACKENDS if control_plane == "both" else (control_plane,)
    sizes = sizes or (settings["sizes"] if control_plane == "sim" else REAL_SIZES[profile])
    points = []
    for nodes in sizes:
        for backend in backends:
            print(f"operator cost at {nodes} nodes x {settings['pods_per_node']} pods ({backend}) ...", flush=True)
            points.append(await measure_or_error(nodes, settings["pods_per_node"], settings["interval"],
                                                 settings["cycles"], backend))
    measured = [p for p in points if "error" not in p]
    shown = ", ".join(f"{p['nodes']} nodes/{p['containers']} containers ({p['backend']})" for p in measured)
    on = {"sim": "simulator", "real": "real control plane", "both": "real control plane vs simulator"}[control_plane]
    title = (f"Operator process cost per node, {on} ({profile} profile: interval {settings['interval']}s, "
             f"{settings['cycles']} measured cycles after 2 warm-up cycles; {shown})")
    details = {"profile": profile, "control_plane": control_plane, "points": points}
    if control_plane == "both":
        return report("operator_real_vs_sim", profile, title, comparison_rows(points), details,
                      columns=("real", "simulator"))
    rows = rows_for(measured) + failure_rows(points)
    return report("operator" if control_plane == "sim" else "operator_real", profile, title, rows, details)


if __name__ == "__main__":
    bench_main(__doc__, run, add_arguments)
