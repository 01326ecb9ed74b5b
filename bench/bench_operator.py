"""Target 2: the operator process's CPU and memory per node, at several cluster sizes.

For each size: a fresh simulated cluster (this process) and ``kubemeter run`` (its own process), one
policy with a 15 s interval (10 s in the short profile). After two warm-up cycles and once every
WorkloadMetrics was created (steady state), CPU = utime + stime of the operator over whole intervals /
wall time / nodes; memory = its largest VmRSS in that window / nodes. Status writes and one /metrics
scrape per cycle are inside the window. The limits are judged at 1,000 nodes; smaller sizes give the curve.
Run: .venv/bin/python bench/bench_operator.py [--profile short|full]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Row, bench_main, report
from steady import Phase, creations_done, run_session

PROFILES = {
    "full": {"sizes": (100, 300, 1000), "pods_per_node": 30, "interval": 15, "cycles": 4},
    "short": {"sizes": (20, 60), "pods_per_node": 30, "interval": 10, "cycles": 2},
}
TARGET_NODES = 1000
"""The size the limits are set for (issue 5: 1,000 nodes x 30 pods); the short profile only shows the curve."""
MILLICORES_PER_NODE = 0.5
MB_PER_NODE = 1.0
LINEAR = 1.25
"""Per-node cost at the largest size may exceed that at the smallest by this factor and still count as linear."""


async def measure(nodes: int, pods_per_node: int, interval: int, cycles: int) -> dict:
    spec = {"interval": f"{interval}s", "source": {"timeout": f"{max(2, interval // 3)}s"}}
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        session = await run_session(nodes, pods_per_node, spec, [Phase("steady", cycles, creations_done)],
                                    Path(workdir))
    phase = session.phases[0]
    return {
        "nodes": nodes, "pods": session.pods, "containers": session.containers, "interval": interval,
        "window_seconds": phase.seconds, "cycles": phase.cycles, "cycle_seconds": phase.cycle_seconds,
        "cpu_seconds": phase.cpu_seconds, "cpu_seconds_per_cycle": phase.cpu_seconds * interval / phase.seconds,
        "millicores_per_node": phase.cpu_seconds / phase.seconds / nodes * 1000,
        "rss_bytes": phase.rss_max_bytes, "mb_per_node": phase.rss_max_bytes / nodes / 1e6,
        "watch_events_per_second": phase.watch_events_per_second,
        "status_writes_per_cycle": len(phase.status_writes) / max(1, phase.cycles),
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
    small, large = points[0], points[-1]
    growth = (large["rss_bytes"] - small["rss_bytes"]) / (large["nodes"] - small["nodes"]) / 1e6
    rows.append(Row("RSS per added node (marginal)", growth, None, "-", None, "MB"))
    rows.append(Row("CPU/node scaling, largest vs smallest", large["millicores_per_node"],
                    small["millicores_per_node"], f"ratio <= {LINEAR}",
                    large["millicores_per_node"] <= LINEAR * small["millicores_per_node"], "mCPU"))
    rows.append(Row("RSS/node scaling, largest vs smallest", large["mb_per_node"], small["mb_per_node"],
                    f"ratio <= {LINEAR}", large["mb_per_node"] <= LINEAR * small["mb_per_node"], "MB"))
    return rows


async def run(profile: str) -> bool:
    settings = PROFILES[profile]
    points = []
    for nodes in settings["sizes"]:
        print(f"operator cost at {nodes} nodes x {settings['pods_per_node']} pods ...", flush=True)
        points.append(await measure(nodes, settings["pods_per_node"], settings["interval"], settings["cycles"]))
    sizes = ", ".join(f"{p['nodes']} nodes/{p['containers']} containers" for p in points)
    title = (f"Operator process cost per node ({profile} profile: interval {settings['interval']}s, "
             f"{settings['cycles']} measured cycles after 2 warm-up cycles; {sizes})")
    return report("operator", profile, title, rows_for(points), {"profile": profile, "points": points})


if __name__ == "__main__":
    bench_main(__doc__, run)
