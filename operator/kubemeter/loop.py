"""PolicyLoop: one asyncio task per MetricsPolicy running watch → scrape → decode → compute → publish.

The loop owns the per-policy state that must survive between cycles (counter baselines, windows, which
nodes are failing) and nothing else; the cluster view, the HTTP client, the API client and the Prometheus
collector are shared and injected. A cycle never raises: a failing node is counted and reported, a failing
publication is logged and retried at the next cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.rates import CounterRates
from kubemeter.compute.report import CycleReport
from kubemeter.memory import release_free_memory
from kubemeter.policy import PolicySpec
from kubemeter.publish.prometheus import OperatorMetrics, SnapshotCollector
from kubemeter.scrape.client import KubeletClient, ScrapeError
from kubemeter.scrape.decode import decode
from kubemeter.scrape.resource import kubelet_scrape_error
from kubemeter.scrape.samples import DecodeError
from kubemeter.types import NodeFailure, NodeInfo, NodeMetrics, PodExtras, PodInfo, Selection, Usage
from kubemeter.watch.model import ClusterModel

log = logging.getLogger(__name__)

EventPoster = Callable[[dict, str, str, str], None]
"""(involved object {apiVersion, kind, name, namespace?, uid}, type Normal|Warning, reason, message)."""


class Publisher(Protocol):
    """Where a cycle's results go besides Prometheus (status on custom resources); see publish.status.StatusPublisher."""

    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None: ...

    def step_down(self) -> None: ...

    def cycle_failed(self, message: str, generation: int) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class LoopDeps:
    model: ClusterModel
    kubelets: KubeletClient
    collector: SnapshotCollector
    metrics: OperatorMetrics
    post_event: EventPoster
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the model holds the full initial listing: no cycle runs on a partial view."""
    active: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while this replica may publish (it holds the leader lease, or leader election is off)."""
    clock: Callable[[], float] = time.time


def _node_ref(node: NodeInfo) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}


class PolicyLoop:
    def __init__(
        self,
        name: str,
        spec: PolicySpec,
        generation: int,
        deps: LoopDeps,
        publisher: Publisher,
        failures: dict[str, NodeFailure] | None = None,
    ) -> None:
        """``failures``: the failing nodes a previous run reported (see publish.documents.failed_nodes)."""
        self.name = name
        self.spec, self.generation = spec, generation
        self.deps = deps
        self.publisher = publisher
        self.aggregator = Aggregator(spec.window, spec.percentiles)
        self.cpu_rates = CounterRates()
        self.network_rates = CounterRates()
        self.failures: dict[str, NodeFailure] = dict(failures or {})
        self._node_times: dict[str, float] = {}
        """Each node's newest sample timestamp: the kubelet's clock must not step back between scrapes."""
        self.last_report: CycleReport | None = None
        self.cycles_published = 0
        self._wake = asyncio.Event()
        # Cycles share counter baselines and the window: one started from outside the loop (tests)
        # must wait for the running one, or its rates would be taken against half-updated state.
        self._cycle_lock = asyncio.Lock()

    def configure(self, spec: PolicySpec, generation: int) -> None:
        """A new spec; it applies from the next cycle, which starts at once when the interval changed."""
        if spec.window != self.spec.window or spec.percentiles != self.spec.percentiles:
            self.aggregator.reconfigure(spec.window, spec.percentiles)
        if spec.interval != self.spec.interval or spec.endpoint != self.spec.endpoint:
            self._wake.set()
        self.spec, self.generation = spec, generation

    async def run(self) -> None:
        await self.deps.synced.wait()
        next_start = time.monotonic()
        while True:
            await self.deps.active.wait()
            self._wake.clear()  # before the cycle: a spec change arriving during it must still wake the next
            try:
                await self.run_cycle()
            except Exception as exc:  # the loop must outlive any bug in one cycle, and say so in status
                log.exception("policy %s: cycle failed", self.name)
                self.deps.metrics.cycle_failures.labels(policy=self.name).inc()
                if self.deps.active.is_set():
                    self.publisher.cycle_failed(f"the last cycle failed: {type(exc).__name__}: {exc}", self.generation)
            release_free_memory()  # the cycle's payloads and snapshot: not kept as resident memory until the next
            next_start = max(next_start + self.spec.interval, time.monotonic() + 0.1)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_start - time.monotonic()))
                next_start = time.monotonic()
            except TimeoutError:
                pass

    async def run_cycle(self) -> CycleReport:
        async with self._cycle_lock:
            return await self._cycle()

    async def _cycle(self) -> CycleReport:
        spec, deps = self.spec, self.deps
        started_mono, started = time.monotonic(), deps.clock()
        selection = deps.model.select(spec)
        usage: dict[str, dict[str, Usage]] = {}
        extras: dict[str, PodExtras] = {}
        failures: dict[str, NodeFailure] = {}
        semaphore = asyncio.Semaphore(spec.concurrency)
        # The timeout bounds the whole scrape phase too: a node that waited for a slot gets what is left, so
        # hanging kubelets never push the aggregation and publication of the others past start + timeout.
        deadline = started_mono + spec.timeout

        async def one(node: NodeInfo) -> None:
            async with semaphore:
                error = await self._scrape_node(spec, deadline, node, selection, usage, extras)
            if error is not None:
                previous = self.failures.get(node.name)
                failures[node.name] = NodeFailure(error.reason, error.message, previous.since if previous else started)

        await asyncio.gather(*(one(node) for node in selection.nodes))
        self._report_transitions(selection, failures)
        self.failures = failures
        now = deps.clock()
        snapshot = self.aggregator.cycle(now, selection.pods(), usage, extras if spec.endpoint == "summary" else None)
        # Baselines of pods that left the selection go at once (CronJob churn must not pile them up); those of
        # selected pods survive a failed scrape, up to a few intervals.
        live = {pod.uid for pod in selection.pods()}
        horizon = now - 3 * spec.interval - spec.timeout
        for rates in (self.cpu_rates, self.network_rates):
            rates.prune(horizon, lambda key: key[0] in live)
        report = CycleReport(
            started=started,
            duration=time.monotonic() - started_mono,
            selection=selection,
            snapshot=snapshot,
            scraped=len(selection.nodes) - len(failures),
            failures=failures,
        )
        if not deps.active.is_set():  # stepped down during the cycle: publishing would race the new leader
            self.failures = {}
            return report
        if spec.prometheus:
            deps.collector.set_snapshot(self.name, snapshot, spec.levels)
        else:
            deps.collector.remove_policy(self.name)
        metrics = deps.metrics
        metrics.cycle_duration.labels(policy=self.name).observe(report.duration)
        for state, count in (("selected", len(selection.nodes)), ("scraped", report.scraped), ("failed", len(failures))):
            metrics.nodes.labels(policy=self.name, state=state).set(count)
        metrics.last_cycle.labels(policy=self.name).set(deps.clock())
        metrics.interval.labels(policy=self.name).set(spec.interval)
        self.last_report = report
        await self.publisher.publish(report, spec, self.generation)
        self.cycles_published += 1
        return report

    async def _scrape_node(
        self,
        spec: PolicySpec,
        deadline: float,
        node: NodeInfo,
        selection: Selection,
        usage: dict[str, dict[str, Usage]],
        extras: dict[str, PodExtras],
    ) -> ScrapeError | None:
        began = time.monotonic()
        # What is left of the cycle's scrape phase: all of `timeout` for a node that got a slot at once, less
        # for one that waited, so none stretches the cycle (and the publication of all the others).
        timeout = deadline - began
        try:
            if timeout <= 0:
                raise ScrapeError("timeout", f"the cycle's deadline passed before node {node.name} could be scraped")
            body = await self.deps.kubelets.fetch(
                node, spec.endpoint, spec.via, timeout, insecure=spec.insecure_skip_tls_verify
            )
            scrape_time = self.deps.clock()
            metrics = decode(body, scrape_time, spec.endpoint)
            self._check_clock(node.name, metrics.node.timestamp)
        except ScrapeError as exc:
            error = exc
        except DecodeError as exc:
            error = ScrapeError("decode", f"cannot decode {spec.endpoint} payload from node {node.name}: {exc}")
        else:
            self._measure(spec, metrics, scrape_time, selection.pods_by_node.get(node.name, {}), usage, extras)
            error = None
            # The flag's families sort last in /metrics/resource: reading the tail avoids a scan of the body.
            if spec.endpoint == "resource" and kubelet_scrape_error(body[-1024:]):
                # The kubelet says its own collection partly failed: keep what it served, count the fact.
                self.deps.metrics.scrape_errors.labels(policy=self.name, node=node.name, reason="kubelet_reported").inc()
        metrics = self.deps.metrics
        metrics.scrape_duration.labels(policy=self.name).observe(time.monotonic() - began)
        if error is not None:
            metrics.scrape_errors.labels(policy=self.name, node=node.name, reason=error.reason).inc()
        return error

    def _check_clock(self, node: str, timestamp: float | None) -> None:
        """Samples taken "before" the previous scrape's give no sound rate: the node is reported as failing
        for this scrape (a skewed but steady clock is fine: rates use the kubelet's own timestamps)."""
        if timestamp is None:
            return
        previous = self._node_times.get(node)
        self._node_times[node] = timestamp
        # One second of slack: /stats/summary times have second precision, /metrics/resource milliseconds.
        if previous is not None and timestamp < previous - 1.0:
            raise ScrapeError(
                "clock_backwards",
                f"node {node} sent samples {previous - timestamp:.3f}s older than the previous scrape's: "
                "its clock stepped back",
            )

    def _measure(
        self,
        spec: PolicySpec,
        metrics: NodeMetrics,
        scrape_time: float,
        pods: dict[tuple[str, str], PodInfo],
        usage: dict[str, dict[str, Usage]],
        extras: dict[str, PodExtras],
    ) -> None:
        """Turn one node's samples into per-container usage for the selected pods."""
        observe = self.cpu_rates.observe
        interval = spec.interval
        for sample in metrics.pods:
            pod = pods.get((sample.namespace, sample.name))
            if pod is None or (sample.uid and sample.uid != pod.uid):
                continue  # not selected, or an older pod of the same name (StatefulSet) still reported
            containers: dict[str, Usage] = {}
            for c in sample.containers:
                at = c.timestamp or scrape_time
                cpu = None
                if c.cpu_seconds is not None:
                    cpu = observe((pod.uid, c.name), c.cpu_seconds, at, c.start_time, interval, scrape_time)
                containers[c.name] = Usage(cpu, c.memory_working_set_bytes, at)
            usage[pod.uid] = containers
            if spec.endpoint == "summary":
                extras[pod.uid] = self._pod_extras(pod.uid, sample, scrape_time, interval)

    def _pod_extras(self, uid: str, sample, scrape_time: float, interval: float) -> PodExtras:
        at = sample.timestamp or scrape_time

        def rate(direction: str, value: float | None) -> float | None:
            if value is None:
                return None
            return self.network_rates.observe((uid, direction), value, at, None, interval, scrape_time)

        return PodExtras(
            network_rx_bytes_per_second=rate("rx", sample.network_rx_bytes),
            network_tx_bytes_per_second=rate("tx", sample.network_tx_bytes),
            ephemeral_storage_bytes=sample.ephemeral_storage_bytes,
        )

    def _report_transitions(self, selection: Selection, failures: dict[str, NodeFailure]) -> None:
        """Events only when a node starts or stops failing (or changes reason): never one per cycle."""
        nodes = {n.name: n for n in selection.nodes}
        for name, failure in failures.items():
            before = self.failures.get(name)
            if before is None or before.reason != failure.reason:
                log.warning("policy %s: node %s failing (%s): %s", self.name, name, failure.reason, failure.message)
                self.deps.post_event(
                    _node_ref(nodes[name]),
                    "Warning",
                    "ScrapeFailed",
                    f"policy {self.name}: {failure.reason}: {failure.message}",
                )
        for name in self.failures.keys() - failures.keys():
            if name in nodes:
                log.info("policy %s: node %s recovered", self.name, name)
                self.deps.post_event(
                    _node_ref(nodes[name]), "Normal", "ScrapeRecovered", f"policy {self.name}: kubelet answers again"
                )

    def step_down(self) -> None:
        """This replica lost the lease: its gauges would go stale next to the new leader's, and its queued writes
        would race them, and its cycle health series (last cycle time, node counts) would look like a stalled
        policy. A later term starts afresh, as after a restart (objects adopted again, Events anew)."""
        self.deps.collector.remove_policy(self.name)
        self.deps.metrics.forget_policy(self.name)
        self.failures = {}
        self.publisher.step_down()

    async def close(self) -> None:
        self.deps.collector.remove_policy(self.name)
        self.deps.metrics.forget_policy(self.name)
        await self.publisher.close()

