"""Two trees' operators side by side on one cluster (issue 12, part 5): the operator's CPU per node of a git revision
(``--base``, exported to a temporary directory) and of this tree, run alternately, one at a time, for ``--rounds``
rounds against the same cluster (the simulator, or a real control plane with ``--backend real``).

Each run: ``kubemeter run`` started (the base tree's through PYTHONPATH), 2 warm-up cycles and one more cycle, then
``--cycles`` whole intervals measured (CPU from /proc, as bench_operator.py), then stopped. The WorkloadMetrics of
the first run stay, so later runs adopt them (as a restarted operator does) instead of creating them: the first
run of each round pays no creations either, as the benchmark waits for the creations of a first, unmeasured run.
Median per tree and the ratio this tree / base.
Run: .venv/bin/python bench/bench_trees.py --base 207aa4f --nodes 100 --backend real [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import bench_cluster, create_policy, operator_process, process_usage
from steady import POLICY, _next_cycle_end, _warm_up, creations_done

ROOT = Path(__file__).resolve().parent.parent


def export(revision: str, target: Path) -> Path:
    """The operator package of ``revision``, as files under ``target`` (no worktree)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "operator"], check=True,
                             capture_output=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=60)
    return target / "operator"


async def one_run(kubeconfig: Path, log: Path, pythonpath: str | None, interval: int, cycles: int) -> float:
    """Operator CPU seconds per second over ``cycles`` whole intervals after warm-up."""
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        async with operator_process(kubeconfig, log) as operator:
            await _warm_up(operator, 2, interval)
            await _next_cycle_end(operator, 3 * interval + 60)
            before, started = process_usage(operator.pid).cpu_seconds, time.monotonic()
            await asyncio.sleep(cycles * interval)
            return (process_usage(operator.pid).cpu_seconds - before) / (time.monotonic() - started)
    finally:
        os.environ.pop("PYTHONPATH", None)


async def run(base: str, nodes: int, pods_per_node: int, interval: int, cycles: int, rounds: int,
              backend: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kubemeter-trees-") as workdir:
        base_path = str(export(base, Path(workdir)))
        trees = {base: base_path, "this tree": None}
        async with bench_cluster(nodes, pods_per_node, Path(workdir) / "cluster", backend) as (cluster, client, _):
            await create_policy(client, POLICY, {"interval": f"{interval}s"})
            async with operator_process(cluster.kubeconfig, Path(workdir) / "first.log") as operator:
                await _warm_up(operator, 2, interval)  # creates the WorkloadMetrics, unmeasured
                await creations_done(cluster)
            results: dict[str, list[float]] = {name: [] for name in trees}
            for round_ in range(1, rounds + 1):
                order = list(trees.items()) if round_ % 2 else list(trees.items())[::-1]
                for name, path in order:
                    cpu = await one_run(cluster.kubeconfig, Path(workdir) / f"{round_}-{len(results[name])}.log",
                                        path, interval, cycles)
                    results[name].append(cpu)
                    print(f"  round {round_}, {name}: {1000 * cpu / nodes:.3f} mCPU per node", flush=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{backend}, {nodes} nodes x {pods_per_node} pods, interval {interval}s, {cycles} intervals per run, "
          f"{rounds} rounds:")
    for name, median in medians.items():
        print(f"  {name}: {1000 * median / nodes:.3f} mCPU per node (median; runs "
              + ", ".join(f"{1000 * value / nodes:.3f}" for value in results[name]) + ")")
    print(f"  ratio this tree / {base}: {medians['this tree'] / medians[base]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="a git revision")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=("sim", "real"), default="sim")
    options = parser.parse_args()
    asyncio.run(run(options.base, options.nodes, options.pods_per_node, options.interval, options.cycles,
                    options.rounds, options.backend))


if __name__ == "__main__":
    main()
