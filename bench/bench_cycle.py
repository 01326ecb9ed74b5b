"""Target 4: cycle latency with 2% of the kubelets timing out.

A simulated cluster (this process) and ``kubemeter run`` (its own process), one policy (interval 15 s,
per-node timeout 5 s; 10 s and 3 s in the short profile). The cycle duration
(kubemeter_cycle_duration_seconds) is measured over healthy cycles (the baseline), then again after 2% of
the kubelets were made to hang (Cluster.node_fault "timeout"). Slow nodes must not hold back the others:
in those cycles every healthy node is scraped (kubemeter_nodes{state="scraped"}) and published (a
kubemeter_node_cpu_usage_cores series each).
Run: .venv/bin/python bench/bench_cycle.py [--profile short|full]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Row, metric_sum, bench_main, report
from kubemeter_sim.cluster import Cluster
from steady import POLICY, Phase, run_session

PROFILES = {
    "full": {"nodes": 1000, "pods_per_node": 30, "cycles": 3, "interval": 15, "timeout": 5},
    "short": {"nodes": 100, "pods_per_node": 30, "cycles": 2, "interval": 10, "timeout": 3},
}
FAULTY_SHARE = 0.02
SLACK_SECONDS = 2.0


def faulty_nodes(cluster: Cluster) -> list[str]:
    """Every 50th kubelet (2%), spread over the fleet."""
    names = sorted(cluster.kubelets)
    step = round(1 / FAULTY_SHARE)
    return names[step - 1::step]


async def run(profile: str) -> bool:
    settings = PROFILES[profile]
    chosen: list[str] = []
    healthy_names: set[str] = set()

    async def inject(cluster: Cluster) -> None:
        chosen.extend(faulty_nodes(cluster))
        healthy_names.update(set(cluster.kubelets) - set(chosen))
        for name in chosen:
            await cluster.node_fault(name, "timeout")

    interval, timeout = settings["interval"], settings["timeout"]
    spec = {"interval": f"{interval}s", "source": {"timeout": f"{timeout}s"}}
    phases = [Phase("healthy", settings["cycles"]), Phase("timeouts", settings["cycles"], inject)]
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        session = await run_session(settings["nodes"], settings["pods_per_node"], spec, phases, Path(workdir))
    healthy, faulty = session.phases
    text = faulty.metrics
    scraped = metric_sum(text, "kubemeter_nodes", policy=POLICY, state="scraped")
    failed = metric_sum(text, "kubemeter_nodes", policy=POLICY, state="failed")
    missing = sorted(healthy_names - set(_published_nodes(text)))
    worst = max(faulty.cycle_seconds, default=None)
    limit = timeout + SLACK_SECONDS
    rows = [
        Row("cycle duration, worst", worst, max(healthy.cycle_seconds, default=None), f"<= {limit:.0f} s",
            worst is not None and worst <= limit, "s"),
        Row("cycle duration, mean", _mean(faulty.cycle_seconds), _mean(healthy.cycle_seconds), "-", None, "s"),
        Row("nodes failed (timeouts)", failed, 0, f"= {len(chosen)}", failed == len(chosen), "nodes"),
        Row("healthy nodes scraped", scraped, len(healthy_names), f"= {len(healthy_names)}",
            scraped == len(healthy_names), "nodes"),
        Row("healthy nodes published", len(healthy_names) - len(missing), len(healthy_names),
            f"= {len(healthy_names)}", not missing, "nodes"),
    ]
    title = (f"Cycle latency ({profile} profile): {session.nodes} nodes, {session.pods:,} pods, "
             f"{len(chosen)} kubelets hanging, interval {interval}s, timeout {timeout}s; "
             f"baseline: the same cycles before the faults")
    details = {"profile": profile, "nodes": session.nodes, "pods": session.pods, "faulty_nodes": chosen,
               "healthy_cycle_seconds": healthy.cycle_seconds, "faulty_cycle_seconds": faulty.cycle_seconds,
               "unpublished_healthy_nodes": missing[:20]}
    return report("cycle", profile, title, rows, details)


def _published_nodes(text: str) -> list[str]:
    """Nodes with a kubemeter_node_cpu_usage_cores sample in a /metrics text."""
    prefix = "kubemeter_node_cpu_usage_cores{"
    return [line.split('node="', 1)[1].split('"', 1)[0] for line in text.splitlines()
            if line.startswith(prefix) and 'node="' in line]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    bench_main(__doc__, run)
