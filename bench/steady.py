"""A steady-state session: a cluster (the simulator in this process, or a real control plane with its fake
nodes in this process), ``kubemeter run`` in another process, one policy.

After ``warmup`` cycles (the first ones create every WorkloadMetrics and have no CPU rates yet), each
phase runs its setup (e.g. a fault), lets one cycle pass, then measures a window of ``cycles`` whole
intervals. The loop starts a cycle every interval, so a window of K intervals holds K cycles' work whatever
its phase. The operator's /metrics is scraped once per interval in the window (as Prometheus would), which
also yields each cycle's duration; CPU and RSS come from /proc; API requests from the simulated server's
handler (not counted on a real control plane: its handler cannot be wrapped, and its own /metrics count every
client together); WorkloadMetrics status changes from the simulator's store, or a watch of the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing

import aiohttp
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    OperatorProcess, Request, RequestLog, bench_cluster, container_count, counting_requests, create_policy,
    metric_sum, object_count, operator_process, process_usage, wait_until,
)
from kubemeter import GROUP, VERSION
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import Rest, RestError, collection

POLICY = "bench"
WORKLOAD_METRICS = (f"{GROUP}/{VERSION}", "workloadmetrics")
log = logging.getLogger(__name__)
_WATCH_EVENTS = re.compile(r'^kubemeter_watch_events_total\{resource="([^"]*)",type="([^"]*)"\} (\S+)$', re.M)
SETTLE_CHECKS = 30
SETTLE_CHECK_SECONDS = 15.0
KEY_FIELDS = ("pods", "podsReporting", "stale", "cpuRequests", "cpuLimits", "memoryRequests", "memoryLimits",
              "sizing")
"""Values whose every change justifies a write; ``sizing`` is the right-sizing verdicts per container."""


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """One WorkloadMetrics status as the API server stored it."""

    at: float
    name: str
    values: dict


def _status_values(status: dict) -> dict:
    cpu, memory = status.get("cpu") or {}, status.get("memory") or {}
    sized = (status.get("recommendation") or {}).get("containers") or ()
    return {"pods": status.get("pods"), "podsReporting": status.get("podsReporting"), "stale": status.get("stale"),
            "cpu": cpu.get("usageCores"), "memory": memory.get("workingSetBytes"),
            "cpuRequests": cpu.get("requestsCores"), "cpuLimits": cpu.get("limitsCores"),
            "memoryRequests": memory.get("requestsBytes"), "memoryLimits": memory.get("limitsBytes"),
            "sizing": tuple((c["name"], (c.get("cpu") or {}).get("verdict"), (c.get("memory") or {}).get("verdict"))
                            for c in sized),
            "cpuTargets": tuple((c.get("cpu") or {}).get("targetCores") for c in sized),
            "memoryTargets": tuple((c.get("memory") or {}).get("targetBytes") for c in sized),
            "lastUpdated": status.get("lastUpdated")}


class StatusWrites:
    """Every change of a WorkloadMetrics status (whoever wrote it), seen from the simulator's store, or from a
    watch of the real API server (each then recorded when its event arrives, milliseconds after the write)."""

    def __init__(self, cluster: Cluster | RealCluster) -> None:
        self.writes: list[StatusWrite] = []
        self._last: dict[str, dict] = {}
        self._watch: asyncio.Task[None] | None = None
        if cluster.backend == "real":
            self._watch = asyncio.create_task(self._follow(cluster.rest), name="bench-status-writes")
        else:
            cluster.store.add_listener(self._on_change)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def _on_change(self, change_type: str, rtype, obj: dict) -> None:
        if rtype.plural == WORKLOAD_METRICS[1]:
            self._record(change_type, obj)

    async def _follow(self, rest: Rest) -> None:
        path, version = collection(*WORKLOAD_METRICS), ""
        while True:
            try:
                if not version:  # from now on: the session starts this before any WorkloadMetrics exists
                    version = (await rest.get(path, limit="1"))["metadata"]["resourceVersion"]
                async for event in rest.watch(path, version):
                    if event["type"] == "ERROR":  # expired: changes before the new version are not seen
                        log.warning("status writes: watch expired (%s); some changes may be missed", event["object"])
                        version = ""
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._record(event["type"], event["object"])
            except RestError as error:  # refused (410 for a version already compacted): from a new version
                log.warning("status writes: watch refused (%s); some changes may be missed", error)
                version = ""
                await asyncio.sleep(1.0)
            except (OSError, TimeoutError, RuntimeError, ValueError) as error:  # aiohttp's errors are OSErrors
                log.warning("status writes: watch failed (%s); watching again", error)
                await asyncio.sleep(1.0)

    def _record(self, change_type: str, obj: dict) -> None:
        if change_type != "MODIFIED" or not obj.get("status"):
            return
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        values = _status_values(obj["status"])
        if self._last.get(key) != values:
            self._last[key] = values
            self.writes.append(StatusWrite(time.monotonic(), key, values))


@dataclass(frozen=True, slots=True)
class ProcessCost:
    cpu_seconds: float
    rss_max_bytes: int


Companions = Callable[[Cluster | RealCluster], dict[str, int]]
"""Names and pids of processes to measure beside the operator (metrics-server, the test bed's own)."""


@dataclass
class Phase:
    name: str
    cycles: int
    setup: Callable[[Cluster | RealCluster], Awaitable[None]] | None = None


@dataclass
class PhaseResult:
    name: str
    seconds: float
    cycles: int
    cycle_seconds: list[float]
    cpu_seconds: float
    rss_max_bytes: int
    companions: dict[str, ProcessCost]
    """The other processes measured over the same window (see ``run_session``), by name."""
    requests: list[Request]
    status_writes: list[StatusWrite]
    metrics: str
    """The last /metrics text of the window."""
    watch_events_per_second: dict[str, float]
    """Watch events the operator handled in the window, by resource and type."""


@dataclass
class Session:
    backend: str
    nodes: int
    pods: int
    containers: int
    interval: float
    up_seconds: float
    """Starting the cluster until the scenario was settled (every pod running) and the CRDs installed."""
    phases: list[PhaseResult] = field(default_factory=list)
    status_history: list[StatusWrite] = field(default_factory=list)
    requests: RequestLog = field(default_factory=RequestLog)


async def creations_done(cluster: Cluster | RealCluster) -> None:
    """Wait until the number of WorkloadMetrics is stable over a check: the creation backlog of the first
    cycles (two requests per workload at the operator's QPS) is over. Bounded: at 1,000 nodes (~10,000
    workloads at 20 QPS) it lasts longer than a benchmark should wait; the window then starts anyway."""
    before = -1
    for _ in range(SETTLE_CHECKS):
        count = await object_count(cluster, *WORKLOAD_METRICS)
        if count == before:
            return
        before = count
        await asyncio.sleep(SETTLE_CHECK_SECONDS)
    print(f"  note: {before} WorkloadMetrics and still being created; measuring during the backlog", flush=True)


def watch_events(text: str) -> dict[str, float]:
    """kubemeter_watch_events_total by "resource type"."""
    return {f"{m.group(1)} {m.group(2)}": float(m.group(3)) for m in _WATCH_EVENTS.finditer(text)}


async def _measure(operator: OperatorProcess, interval: float, cycles: int,
                   pids: dict[str, int]) -> tuple[float, list[float], str, dict[str, int]]:
    """Scrape once per interval for ``cycles`` intervals: (seconds, cycle durations, last /metrics, max RSS of
    each of ``pids``, read at the same moments)."""
    started = time.monotonic()
    durations: list[float] = []
    count, total = await operator.cycles(POLICY)
    rss = {name: process_usage(pid).rss_bytes for name, pid in pids.items()}
    text = ""
    for index in range(1, cycles + 1):
        await asyncio.sleep(max(0.0, started + index * interval - time.monotonic()))
        text = await operator.metrics()
        rss = {name: max(rss[name], process_usage(pid).rss_bytes) for name, pid in pids.items()}
        if not text:  # no answer within the client timeout: the next scrape covers these cycles
            continue
        new_count = int(metric_sum(text, "kubemeter_cycle_duration_seconds_count", policy=POLICY))
        new_total = metric_sum(text, "kubemeter_cycle_duration_seconds_sum", policy=POLICY)
        if new_count > count:  # usually one cycle per interval; the mean when a scrape caught several
            durations.extend([(new_total - total) / (new_count - count)] * (new_count - count))
        count, total = new_count, new_total
    return time.monotonic() - started, durations, text, rss


async def _next_cycle_end(operator: OperatorProcess, timeout: float) -> int:
    before, _ = await operator.cycles(POLICY)

    async def advanced() -> int:
        count, _ = await operator.cycles(POLICY)
        return count if count > before else 0

    return await wait_until(advanced, timeout, "the next policy cycle", interval=0.25)


async def _warm_up(operator: OperatorProcess, warmup: int, interval: float) -> None:
    """Start-up (import, LIST of every pod, kopf's listing) is bounded by a generous deadline."""
    async def warmed_up() -> bool:
        count, _ = await operator.cycles(POLICY)
        return count >= warmup

    await wait_until(warmed_up, 600 + warmup * 3 * interval, f"{warmup} warm-up cycles", interval=1.0)
    print(f"  operator warmed up ({warmup} cycles), RSS {operator.usage().rss_bytes / 1e6:.0f} MB", flush=True)


async def _run_phase(operator: OperatorProcess, cluster: Cluster | RealCluster, phase: Phase, interval: float,
                     requests: RequestLog, writes: StatusWrites, companions: dict[str, int]) -> PhaseResult:
    # Measure from the end of a cycle that started after the setup.
    if phase.setup is not None:
        await phase.setup(cluster)
        await _next_cycle_end(operator, 3 * interval + 60)
    await _next_cycle_end(operator, 3 * interval + 60)
    events_before = watch_events(await operator.metrics())
    pids = {"operator": operator.pid, **companions}
    before = {name: process_usage(pid).cpu_seconds for name, pid in pids.items()}
    start = time.monotonic()
    seconds, durations, text, rss = await _measure(operator, interval, phase.cycles, pids)
    cpu = {name: process_usage(pid).cpu_seconds - before[name] for name, pid in pids.items()}
    print(f"  phase {phase.name}: {len(durations)} cycles, "
          f"{cpu['operator']:.1f} CPU s in {seconds:.0f}s", flush=True)
    return PhaseResult(
        phase.name, seconds, len(durations), durations, cpu["operator"], rss["operator"],
        {name: ProcessCost(cpu[name], rss[name]) for name in companions}, requests.between(start, start + seconds),
        [w for w in writes.writes if start <= w.at < start + seconds], text,
        {key: (value - events_before.get(key, 0.0)) / seconds
         for key, value in watch_events(text).items() if value > events_before.get(key, 0.0)})


@contextlib.asynccontextmanager
async def scraped_by_prometheus(cluster: Cluster | RealCluster, interval: float) -> AsyncIterator[None]:
    """kube-state-metrics' /metrics fetched once per interval while the session runs, when it is beside the
    cluster: most of what it costs is building that answer (kubemeter's is scraped by the phases themselves)."""
    peer = getattr(cluster, "kube_state_metrics", None)
    if peer is None:
        yield
        return

    async def scrape_forever() -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await peer.scrape(timeout=interval)
            await asyncio.sleep(interval)

    task = asyncio.create_task(scrape_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_session(nodes: int, pods_per_node: int, policy_spec: dict, phases: list[Phase], workdir: Path,
                      *, warmup: int = 2, write_qps: float = 20.0, backend: str = "sim",
                      metric_resolution: float | None = None, companions: Companions | None = None,
                      kube_state_metrics: bool = False) -> Session:
    """``metric_resolution``: metrics-server beside a real control plane; ``kube_state_metrics``: that too, its
    /metrics scraped once per interval as Prometheus would; ``companions``: other processes whose CPU and largest
    RSS each phase measures over the operator's window."""
    interval = float(policy_spec["interval"].rstrip("s"))
    with counting_requests() as requests:
        async with bench_cluster(nodes, pods_per_node, workdir, backend, metric_resolution=metric_resolution,
                                 kube_state_metrics=kube_state_metrics) as (cluster, client, up_seconds), \
                scraped_by_prometheus(cluster, interval):
            with closing(StatusWrites(cluster)) as writes:
                pods, containers = await container_count(cluster)
                session = Session(backend, nodes, pods, containers, interval, up_seconds, requests=requests)
                await create_policy(client, POLICY, policy_spec)
                async with operator_process(cluster.kubeconfig, workdir / "operator.log", write_qps) as operator:
                    await _warm_up(operator, warmup, interval)
                    for phase in phases:
                        session.phases.append(await _run_phase(operator, cluster, phase, interval, requests, writes,
                                                               companions(cluster) if companions else {}))
                session.status_history = writes.writes
    return session
