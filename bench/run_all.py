"""Run every benchmark, one process each, and summarise: ``make bench`` runs the short profile.

    .venv/bin/python bench/run_all.py [--profile short|full] [--only NAME ...]

Each script prints its own table and writes bench/results/<name>.json; a script exits non-zero when a
target failed. Every script is bounded in time; this runner adds a hard limit per script on top.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

from common import BENCH, PYTHON


@dataclass(frozen=True, slots=True)
class Bench:
    name: str
    script: str
    short_args: tuple[str, ...]
    full_args: tuple[str, ...]
    limit_seconds: int
    """Killed beyond this (full profile; the short profile gets a third)."""


BENCHES = (
    Bench("decode", "bench_decode.py", (), (), 600),
    Bench("compute", "bench_compute.py", (), (), 600),
    Bench("recommend", "bench_recommend.py", ("--profile", "short"), ("--profile", "full"), 600),
    Bench("exposition", "bench_exposition.py", ("--profile", "short"), ("--profile", "full"), 900),
    Bench("sim_apiserver", "bench_sim_apiserver.py", ("--nodes", "200", "--watchers", "1", "10", "--changes", "500",
                                                     "--http-creates", "500"), (), 900),
    Bench("sim_kubelet", "bench_sim_kubelet.py", (), (), 600),
    Bench("operator", "bench_operator.py", ("--profile", "short"), ("--profile", "full"), 2400),
    Bench("ingest", "bench_ingest.py", ("--profile", "short"), ("--profile", "full"), 1800),
    Bench("cycle", "bench_cycle.py", ("--profile", "short"), ("--profile", "full"), 1800),
    Bench("api_load", "bench_api_load.py", ("--profile", "short"), ("--profile", "full"), 1800),
    # The full profile's 1,000 fake nodes on a real control plane (30,000 pods) take most of this to settle.
    Bench("vs_metrics_server", "bench_vs_metrics_server.py", ("--profile", "short"), ("--profile", "full"), 7200),
)


def run(bench: Bench, profile: str) -> tuple[str, float]:
    args = bench.short_args if profile == "short" else bench.full_args
    limit = bench.limit_seconds if profile == "full" else bench.limit_seconds // 3
    print(f"\n=== {bench.name} ({bench.script} {' '.join(args)}) ===", flush=True)
    started = time.monotonic()
    try:
        code = subprocess.run([PYTHON, str(BENCH / bench.script), *args], timeout=limit).returncode
    except subprocess.TimeoutExpired:
        return f"TIMEOUT after {limit}s", time.monotonic() - started
    outcome = {0: "pass"}.get(code, "FAIL (a target missed)" if code == 1 else f"ERROR (exit {code})")
    return outcome, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("short", "full"), default="short")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    outcomes = [(bench, *run(bench, args.profile)) for bench in chosen]
    print(f"\n=== summary ({args.profile} profile; tables above, JSON in bench/results/) ===")
    width = max(len(b.name) for b in chosen)
    for bench, outcome, seconds in outcomes:
        print(f"{bench.name:<{width}}  {seconds:6.0f}s  {outcome}")
    sys.exit(0 if all(outcome == "pass" for _, outcome, _ in outcomes) else 1)


if __name__ == "__main__":
    main()
