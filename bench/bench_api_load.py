"""Target 5: the operator's load on the API server, per cycle, by verb and resource.

A simulated cluster (this process, where every request is recorded) and ``kubemeter run`` (its own process,
``--write-qps`` set low enough to matter), one policy (interval 15 s, minStatusChange 0.05, maxStatusAge 5m).
Measured over steady-state cycles, once the first ones created every WorkloadMetrics (at the QPS limit):
- each WorkloadMetrics status write must be justified: first write, a count/request/limit or a right-sizing
  verdict changed, CPU, memory or a recommended target moved by more than minStatusChange relative to the last
  written value, or that write is older than maxStatusAge; so writes <= workloads whose values moved (the
  policy's own status is written every cycle, moved or not: one write per interval, shown for information);
- writes, over the whole run, conform to a token bucket of --write-qps and burst 50 (never above the QPS);
- no request to pods or nodes besides the watches opened at start-up.
Run: .venv/bin/python bench/bench_api_load.py [--profile short|full]
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from common import Request, RequestLog, Row, bench_main, report
from steady import KEY_FIELDS, Phase, StatusWrite, creations_done, run_session

PROFILES = {
    "full": {"nodes": 300, "pods_per_node": 30, "cycles": 4, "write_qps": 20.0},
    "short": {"nodes": 30, "pods_per_node": 30, "cycles": 2, "write_qps": 20.0},
}
INTERVAL = 15
THRESHOLD = 0.05
MAX_AGE_SECONDS = 300
BURST = 50
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
WATCHED_ONLY = ("/pods", "/nodes")


def _time(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


def _moved(before: float | None, after: float | None) -> bool:
    if (before is None) != (after is None):
        return True
    return before is not None and abs(after - before) > THRESHOLD * abs(before) * (1 - 1e-9)


def justified(write: StatusWrite, previous: StatusWrite) -> bool:
    old, new = previous.values, write.values
    if any(old[key] != new[key] for key in KEY_FIELDS):
        return True
    if any(_moved(old[key], new[key]) for key in ("cpu", "memory")):
        return True
    # A right-sizing target (per container, the verdicts being the same) that moved as a usage does.
    if any(_moved(before, after) for key in ("cpuTargets", "memoryTargets") for before, after in zip(old[key], new[key])):
        return True
    return _time(new["lastUpdated"]) - _time(old["lastUpdated"]) >= MAX_AGE_SECONDS


def unjustified_writes(history: list[StatusWrite], window: list[StatusWrite]) -> list[tuple[StatusWrite, StatusWrite]]:
    """(previous, write) for each write in ``window`` that moved nothing since the previous one."""
    in_window = {id(w) for w in window}
    last: dict[str, StatusWrite] = {}
    bad = []
    for write in history:
        previous = last.get(write.name)
        if id(write) in in_window and previous is not None and not justified(write, previous):
            bad.append((previous, write))
        last[write.name] = write
    return bad


def bucket_overdraft(times: list[float], qps: float, burst: int) -> float:
    """How many requests beyond what a token bucket (qps, burst) allows, at worst (<= 0: conforming)."""
    tokens, last, worst = float(burst), times[0] if times else 0.0, 0.0
    for at in times:
        tokens = min(burst, tokens + (at - last) * qps) - 1
        last = at
        worst = max(worst, -tokens)
    return worst


def peak_per_second(times: list[float]) -> int:
    peak, first = 0, 0
    for index, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        peak = max(peak, index - first + 1)
    return peak


async def run(profile: str) -> bool:
    settings = PROFILES[profile]
    spec = {"interval": f"{INTERVAL}s", "source": {"timeout": "5s"},
            "output": {"minStatusChange": str(THRESHOLD), "maxStatusAge": f"{MAX_AGE_SECONDS}s"}}
    with tempfile.TemporaryDirectory(prefix="kubemeter-bench-") as workdir:
        session = await run_session(settings["nodes"], settings["pods_per_node"], spec,
                                    [Phase("steady", settings["cycles"], creations_done)], Path(workdir),
                                    write_qps=settings["write_qps"])
    phase = session.phases[0]
    cycles = max(1, phase.cycles)
    writes: list[Request] = [r for r in phase.requests if r.verb in WRITE_VERBS]
    # The whole run, creation backlog included; kopf posts Events on its own, outside the operator's limiter.
    limited = [r.at for r in session.requests.requests if r.verb in WRITE_VERBS and r.resource != "/events"]
    unjustified = unjustified_writes(session.status_history, phase.status_writes)
    status_patches = sum(1 for r in writes if r.resource == "kubemeter.io/workloadmetrics/status")
    policy_patches = sum(1 for r in writes if r.resource == "kubemeter.io/metricspolicies/status")
    forbidden = [r for r in phase.requests if r.resource.startswith(WATCHED_ONLY) and r.verb != "watch"]
    overdraft = bucket_overdraft(limited, settings["write_qps"], BURST)
    rows = [
        Row("WorkloadMetrics status writes per cycle", status_patches / cycles,
            (len(phase.status_writes) - len(unjustified)) / cycles, "<= moved workloads (baseline)",
            not unjustified, "writes"),
        Row("writes without a moved value", len(unjustified), None, "= 0", not unjustified),
        Row("MetricsPolicy status writes per cycle", policy_patches / cycles, None, "1 (every cycle)", None),
        Row("writes beyond the token bucket (whole run)", max(0.0, overdraft), None,
            f"<= 4 (writers in flight) at {settings['write_qps']:g} QPS, burst {BURST}", overdraft <= 4),
        Row("peak writes in 1 s (whole run)", peak_per_second(limited), settings["write_qps"], "-", None),
        Row("pod/node requests besides watches", len(forbidden), None, "= 0", not forbidden),
    ]
    per_cycle = {key: count / cycles for key, count in RequestLog.by_verb(phase.requests).most_common()}
    rows += [Row(f"per cycle: {key}", value, None, "-", None) for key, value in per_cycle.items()]
    title = (f"API server load ({profile} profile): {session.nodes} nodes, {session.pods:,} pods, interval "
             f"{INTERVAL}s, minStatusChange {THRESHOLD}, --write-qps {settings['write_qps']:g}; "
             f"{phase.cycles} steady cycles; baseline of the first row: status changes that moved a value")
    details = {"profile": profile, **settings, "cycles": phase.cycles, "requests_per_cycle": per_cycle,
               "unjustified_examples": [{"name": w.name, "previous": p.values, "write": w.values}
                                        for p, w in unjustified[:5]],
               "forbidden_examples": [f"{r.verb} {r.resource}" for r in forbidden[:5]]}
    return report("api_load", profile, title, rows, details)


if __name__ == "__main__":
    bench_main(__doc__, run)
