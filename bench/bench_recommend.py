"""Right-sizing history cost: bytes per container after a week of samples, CPU per sample and per recommendation.

Every container gets a week of samples at a 10 s interval (60,480 cycles) of a usage profile of its own: diurnal
CPU with log-normal noise and 2% bursts, memory drifting around a diurnal curve. Memory is the traced size
(tracemalloc) of the ``ContainerHistory`` objects, divided by their number; the baseline is what the same week of
raw samples would take in the arrays ``compute.window`` keeps (16 bytes a sample, two series); the target is the
design's bound (two histograms of 176 buckets of 8 bytes, plus 1 KiB). A worst case fills
every CPU bucket. CPU is process time of ``ContainerHistory.add`` and ``recommend`` without tracemalloc.

    .venv/bin/python bench/bench_recommend.py [--profile short|full]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
import tracemalloc

from common import Row, report

from kubemeter.compute.histogram import CPU_BUCKETS
from kubemeter.compute.rightsizing import DAY, ContainerHistory, recommend

INTERVAL = 10.0
WEEK_SAMPLES = int(7 * DAY / INTERVAL)
START = 1_700_006_400.0
CONTAINERS = {"short": 5, "full": 40}
STATE_LIMIT_BYTES = 2 * CPU_BUCKETS.count * 8 + 1024
"""The design's bound: two histograms of at most 176 buckets of 8 bytes, plus 1 KiB for the objects around them."""


def profile(seed: int) -> list[tuple[float, float, float]]:
    """(t, cores, bytes) of one container's week."""
    rng = random.Random(seed)
    cpu_base, memory_base = rng.uniform(0.02, 2.0), rng.uniform(50e6, 4e9)
    samples = []
    for step in range(1, WEEK_SAMPLES + 1):
        t = START + step * INTERVAL
        day = math.sin(2 * math.pi * (t - START) / DAY)
        cpu = cpu_base * (1 + 0.6 * day) * rng.lognormvariate(0.0, 0.3) * (5.0 if rng.random() < 0.02 else 1.0)
        memory = memory_base * (1 + 0.2 * day) * rng.uniform(0.97, 1.03)
        samples.append((t, cpu, memory))
    return samples


def sweep() -> list[tuple[float, float, float]]:
    """The worst case for the state's size: CPU sweeps all its buckets every day."""
    return [(START + step * INTERVAL, 0.01 * 1e5 ** (step * INTERVAL % DAY / DAY), 1e9)
            for step in range(1, WEEK_SAMPLES + 1)]


def fill(samples: list[tuple[float, float, float]]) -> ContainerHistory:
    history = ContainerHistory()
    for t, cpu, memory in samples:
        history.add(t, cpu, memory, INTERVAL)
    return history


def traced_bytes_per_history(weeks: list[list[tuple[float, float, float]]]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    histories = [fill(samples) for samples in weeks]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert all(h.last_sample == weeks[0][-1][0] for h in histories)
    return (after - before) / len(histories)


def cpu_seconds(action, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        action()
    return (time.process_time() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("short", "full"), default="full")
    args = parser.parse_args()
    containers = CONTAINERS[args.profile]
    weeks = [profile(seed) for seed in range(containers)]
    worst = sweep()

    typical_bytes = traced_bytes_per_history(weeks)
    worst_bytes = traced_bytes_per_history([worst])
    add_seconds = statistics.median(cpu_seconds(lambda s=samples: fill(s), 1) / len(samples) for samples in weeks)
    histories = [fill(samples) for samples in weeks]
    worst_history = fill(worst)
    recommend_seconds = statistics.median(cpu_seconds(lambda h=h: recommend(h), 200) for h in histories)
    worst_recommend_seconds = cpu_seconds(lambda: recommend(worst_history), 200)
    checkpoints = [json.dumps(h.to_dict()) for h in histories]
    checkpoint_bytes = statistics.mean(len(c) for c in checkpoints)
    worst_checkpoint_bytes = len(json.dumps(worst_history.to_dict()))
    checkpoint_seconds = statistics.median(
        cpu_seconds(lambda h=h: ContainerHistory.from_dict(json.loads(json.dumps(h.to_dict()))), 50)
        for h in histories)
    raw_week_bytes = WEEK_SAMPLES * 16 * 2
    buckets = statistics.mean(len(h.cpu) + len(h.memory_peaks) for h in histories)

    rows = [
        Row("bytes per container, a week at 10 s (typical)", typical_bytes, raw_week_bytes,
            f"<= {STATE_LIMIT_BYTES:,} B", typical_bytes <= STATE_LIMIT_BYTES, "B"),
        Row("bytes per container, every CPU bucket filled", worst_bytes, raw_week_bytes,
            f"<= {STATE_LIMIT_BYTES:,} B", worst_bytes <= STATE_LIMIT_BYTES, "B"),
        Row("buckets held per container (CPU + memory, typical)", buckets, 2 * CPU_BUCKETS.count, "", None),
        Row("checkpoint JSON per container (typical)", checkpoint_bytes, None, "", None, "B"),
        Row("checkpoint JSON per container (every CPU bucket)", worst_checkpoint_bytes, None, "", None, "B"),
        Row("CPU per sample added", add_seconds * 1e6, None, "", None, "us"),
        Row("CPU per recommendation (typical)", recommend_seconds * 1e6, None, "", None, "us"),
        Row("CPU per recommendation (every CPU bucket)", worst_recommend_seconds * 1e6, None, "", None, "us"),
        Row("CPU per checkpoint round trip (to_dict, JSON, from_dict)", checkpoint_seconds * 1e6, None, "", None,
            "us"),
    ]
    title = (f"Right-sizing history: {containers} containers x {WEEK_SAMPLES:,} samples (a week at "
             f"{INTERVAL:.0f} s); baseline: the week's raw samples in compute.window arrays")
    passed = report("recommend", args.profile, title, rows,
                    {"containers": containers, "samples_per_container": WEEK_SAMPLES, "interval_seconds": INTERVAL},
                    columns=("history", "raw samples"))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
