"""Where the operator's CPU goes in steady state (issue 12, part 5): py-spy on ``kubemeter run``.

A cluster (the simulator in this process, or a real control plane with ``--backend real``), one policy, the
operator in its own process; after the warm-up cycles and the WorkloadMetrics creation backlog, py-spy samples
the operator for ``--seconds`` (only threads running Python code: idle waits are not samples, so shares are
shares of the operator's CPU) and writes the raw stacks (collapsed: ``frame;frame;... count``) to ``--out``.
The summary lists the stages a cycle spends its samples in (inclusive) and the functions that are on top of
the stack most often (exclusive). Needs ``pip install py-spy`` in the virtualenv.
Run: .venv/bin/python bench/profile_operator.py --nodes 100 [--backend real] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import bench_cluster, create_policy, operator_process
from steady import POLICY, _next_cycle_end, _warm_up, creations_done

PY_SPY = Path(sys.executable).with_name("py-spy")
STAGES = (
    # (name, fragments of a frame): a sample counts in the first stage one of whose fragments a frame of its
    # stack holds (the order makes a stage that calls another's code keep the samples, e.g. status planning
    # calling the document builders); frames look like "function (package/module.py:line)"
    ("status writes: kubernetes client (thread pool, sync HTTPS)", ("kubernetes/client/", "urllib3/")),
    ("thread pool, between calls", ("concurrent/futures/thread.py",)),
    ("right-sizing (Recommender)", ("kubemeter/compute/rightsizing.py", "kubemeter/compute/histogram.py")),
    ("publish: status planning (StatusPublisher, documents)", ("kubemeter/publish/status.py",)),
    ("publish: documents, other", ("kubemeter/publish/documents.py",)),
    ("publish: /metrics exposition", ("kubemeter/publish/prometheus.py", "prometheus_client/")),
    ("aggregate (per-workload sums, windows)", ("kubemeter/compute/aggregate.py", "kubemeter/compute/window.py",
                                                "kubemeter/compute/snapshot.py")),
    ("measure (rates per container)", ("kubemeter/compute/measure.py", "kubemeter/compute/rates.py")),
    ("select (model)", ("select (kubemeter/watch/model.py",)),
    ("decode", ("kubemeter/scrape/decode.py", "kubemeter/scrape/resource.py", "kubemeter/scrape/summary.py")),
    ("scrape: HTTP client (aiohttp)", ("kubemeter/scrape/client.py", "aiohttp/")),
    ("watch: kopf and the model", ("kopf/", "kubemeter/watch/", "kubemeter/handlers.py")),
    ("release_free_memory (gc, malloc_trim)", ("kubemeter/memory.py",)),
    ("logging", ("logging/",)),
    ("event loop: TLS reads and writes", ("asyncio/sslproto.py", "ssl.py")),
    ("event loop: select", ("selectors.py",)),
    ("event loop: other", ("asyncio/",)),
)
_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::(?P<line>\d+))?\)$")


def summarize(collapsed: Path, top: int = 30) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    total = sum(count for _, count in stacks) or 1
    lines = [f"{total} samples; by stage:"]
    stages: Counter[str] = Counter()
    for frames, count in stacks:
        stage = next((name for name, fragments in STAGES
                      if any(fragment in frame for frame in frames for fragment in fragments)), "other")
        stages[stage] += count
    lines.extend(f"  {100 * count / total:5.1f}%  {name}" for name, count in stages.most_common())
    own: Counter[str] = Counter()
    for frames, count in stacks:
        match = _FRAME.match(frames[-1])
        own[f"{match['func']} ({match['file']})" if match else frames[-1]] += count
    lines.append("on top of the stack (exclusive):")
    lines.extend(f"  {100 * count / total:5.1f}%  {name}" for name, count in own.most_common(top))
    return "\n".join(lines)


async def run(nodes: int, pods_per_node: int, interval: int, seconds: int, backend: str, out: Path,
              rate: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kubemeter-profile-") as workdir:
        async with bench_cluster(nodes, pods_per_node, Path(workdir), backend) as (cluster, client, _):
            await create_policy(client, POLICY, {"interval": f"{interval}s"})
            async with operator_process(cluster.kubeconfig, Path(workdir) / "operator.log") as operator:
                await _warm_up(operator, 2, interval)
                await creations_done(cluster)
                await _next_cycle_end(operator, 3 * interval + 60)
                command = [str(PY_SPY), "record", "--pid", str(operator.pid), "--duration", str(seconds),
                           "--rate", str(rate), "--nonblocking", "--format", "raw", "--output", str(out)]
                before = operator.usage().cpu_seconds
                spy = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
                await asyncio.wait_for(spy.wait(), seconds + 60)
                cpu = operator.usage().cpu_seconds - before
    print(f"operator CPU while sampled: {cpu:.2f} s in {seconds} s ({rate} samples per CPU second expected)")
    print(summarize(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--backend", choices=("sim", "real"), default="sim")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/profile.collapsed"))
    parser.add_argument("--summarize", type=Path, help="only summarize an earlier --out file")
    options = parser.parse_args()
    if options.summarize:
        print(summarize(options.summarize))
        return
    asyncio.run(run(options.nodes, options.pods_per_node, options.interval, options.seconds, options.backend,
                    options.out, options.rate))


if __name__ == "__main__":
    main()
