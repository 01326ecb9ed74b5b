"""PolicyLoop: one asyncio task per MetricsPolicy running watch → scrape → decode → compute → publish.

The loop owns the per-policy state that must survive between cycles (counter baselines, windows, which
nodes are failing) and nothing else; each stage is behind a small seam and injected: the cluster model
(watch), a Scraper (scrape and decode), a UsageMeter and an Aggregator (compute), Publishers (publish). A cycle never raises: a failing node is counted and reported, a failing
publication is logged and retried at the next cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.measure import UsageMeter
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import Recommender, WorkloadRecommendation
from kubemeter.compute.snapshot import Snapshot
from kubemeter.logcontext import log_context
from kubemeter.memory import release_free_memory
from kubemeter.policy import PolicySpec
from kubemeter.publish.prometheus import OperatorMetrics
from kubemeter.publish.publisher import Publisher
from kubemeter.scrape.client import ScrapeError
from kubemeter.scrape.scraper import Scraper, ScrapeSource
from kubemeter.timefmt import rfc3339
from kubemeter.types import NodeFailure, NodeInfo, PodExtras, PodInfo, Selection, Usage, WorkloadRef
from kubemeter.watch.model import ClusterModel

log = logging.getLogger(__name__)

# A kubelet's sample times may run ahead of the time that passed here between two of its scrapes by the age of
# the earlier sample (cAdvisor's housekeeping: 10-15 s, longer on a loaded node) and the difference of the two
# answers' latencies (under the timeout, so under an interval). Three intervals (a minute at least) beyond it
# is none of those but a clock that jumped: a rate over that stretch would be over four times too small.
_CLOCK_JUMP_INTERVALS = 3
_CLOCK_JUMP_MIN_SECONDS = 60.0

EventPoster = Callable[[dict, str, str, str], None]
"""(involved object {apiVersion, kind, name, namespace?, uid}, type Normal|Warning, reason, message)."""


@dataclass(slots=True)
class LoopDeps:
    model: ClusterModel
    scraper: Scraper
    metrics: OperatorMetrics
    """The scrape stage's own health series (durations, errors by reason) and the cycle failure counter."""
    post_event: EventPoster
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the model holds the full initial listing: no cycle runs on a partial view."""
    active: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while this replica may publish (it holds the leader lease, or leader election is off)."""
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class _Measured:
    """What the scrape phase of one cycle gathered, for compute."""

    usage: dict[str, dict[str, Usage]] = field(default_factory=dict)
    extras: dict[str, PodExtras] = field(default_factory=dict)
    failures: dict[str, NodeFailure] = field(default_factory=dict)


def _node_ref(node: NodeInfo) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}


class PolicyLoop:
    def __init__(
        self,
        name: str,
        spec: PolicySpec,
        generation: int,
        deps: LoopDeps,
        publishers: Sequence[Publisher],
        failures: dict[str, NodeFailure] | None = None,
    ) -> None:
        """``publishers``: in the order they get each cycle; ``failures``: the failing nodes a previous run
        reported (see publish.documents.failed_nodes)."""
        self.name = name
        self.spec, self.generation = spec, generation
        self.deps = deps
        self.publishers = tuple(publishers)
        self.aggregator = Aggregator(spec.window, spec.percentiles)
        self.meter = UsageMeter()
        self.recommender = Recommender(spec.recommendations) if spec.recommendations else None
        self.failures: dict[str, NodeFailure] = dict(failures or {})
        self._inherited = set(self.failures)
        """Failing nodes a previous run or leader reported, which this process has not logged yet: its first cycle
        logs each one still failing (their Event was posted already, and is not posted again)."""
        self._without_workload: set[str] = set()
        """The uids of the pods the previous cycle selected without a known workload."""
        self._node_times: dict[str, tuple[float, float]] = {}
        """Each node's newest sample timestamp, and when its answer arrived: between two scrapes the kubelet's
        clock must neither step back nor jump far ahead of ours."""
        self.last_report: CycleReport | None = None
        self.cycles_started = 0
        self.cycles_published = 0
        self._term_started = False
        """Whether the publishers were told this term began (see Publisher.start_term)."""
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
        if spec.recommendations is None:
            self.recommender = None
        elif self.recommender is None:
            self.recommender = Recommender(spec.recommendations)
        elif spec.recommendations != self.recommender.config:
            self.recommender.reconfigure(spec.recommendations)
        self.spec, self.generation = spec, generation

    async def run(self) -> None:
        with log_context(policy=self.name):
            await self._run()

    async def _run(self) -> None:
        await self.deps.synced.wait()
        next_start = time.monotonic()
        while True:
            await self.deps.active.wait()
            self._wake.clear()  # before the cycle: a spec change arriving during it must still wake the next
            try:
                await self.run_cycle()
            except Exception as exc:  # the loop must outlive any bug in one cycle, and say so in status
                log.exception("cycle failed", extra={"cycle": self.cycles_started})
                self.deps.metrics.cycle_failures.labels(policy=self.name).inc()
                if self.deps.active.is_set():
                    message = f"the last cycle failed: {type(exc).__name__}: {exc}"
                    for publisher in self.publishers:
                        publisher.cycle_failed(message, self.generation)
            release_free_memory()  # the cycle's payloads and snapshot: not kept as resident memory until the next
            next_start = max(next_start + self.spec.interval, time.monotonic() + 0.1)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_start - time.monotonic()))
                next_start = time.monotonic()
            except TimeoutError:
                pass

    async def run_cycle(self) -> CycleReport:
        async with self._cycle_lock:
            if self.deps.active.is_set() and not self._term_started:
                self._term_started = True  # before the first cycle of the term: the checkpoints are restored
                for publisher in self.publishers:
                    await publisher.start_term()
            self.cycles_started += 1
            with log_context(policy=self.name, cycle=self.cycles_started):
                return await self._cycle()

    async def _cycle(self) -> CycleReport:
        """watch (the model's selection) -> scrape and decode (per node) -> compute -> publish."""
        spec, deps = self.spec, self.deps
        started_mono, started = time.monotonic(), deps.clock()
        selection = deps.model.select(spec)
        measured = await self._scrape(spec, selection, started, deadline=started_mono + spec.timeout)
        self._report_transitions(selection, measured.failures)
        self.failures = measured.failures
        snapshot = self._compute(spec, selection, measured)
        recommendations, forgotten = self._recommend(spec, selection, measured, snapshot.time)
        report = CycleReport(
            started=started,
            duration=time.monotonic() - started_mono,
            selection=selection,
            snapshot=snapshot,
            scraped=len(selection.nodes) - len(measured.failures),
            failures=measured.failures,
            unresolved=self._unresolved(selection),
            recommendations=recommendations,
            histories_forgotten=forgotten,
        )
        if not deps.active.is_set():  # stepped down during the cycle: publishing would race the new leader
            self.failures = {}
            return report
        self.last_report = report
        for publisher in self.publishers:
            await publisher.publish(report, spec, self.generation)
        self.cycles_published += 1
        return report

    async def _scrape(self, spec: PolicySpec, selection: Selection, started: float, deadline: float) -> _Measured:
        """Every selected node at most ``spec.concurrency`` at a time. The timeout bounds the whole scrape phase
        too: a node that waited for a slot gets what is left, so hanging kubelets never push the aggregation and
        publication of the others past start + timeout."""
        measured = _Measured()
        source = ScrapeSource(spec.endpoint, spec.via, spec.insecure_skip_tls_verify)
        semaphore = asyncio.Semaphore(spec.concurrency)

        async def one(node: NodeInfo) -> None:
            async with semaphore:
                with log_context(node=node.name):
                    error = await self._scrape_node(spec, source, deadline, node, selection, measured)
            if error is not None:
                previous = self.failures.get(node.name)
                since = previous.since if previous else started
                measured.failures[node.name] = NodeFailure(error.reason, error.message, since)

        await asyncio.gather(*(one(node) for node in selection.nodes))
        return measured

    async def _scrape_node(
        self,
        spec: PolicySpec,
        source: ScrapeSource,
        deadline: float,
        node: NodeInfo,
        selection: Selection,
        measured: _Measured,
    ) -> ScrapeError | None:
        began = time.monotonic()
        timeout = deadline - began
        metrics = self.deps.metrics
        try:
            if timeout <= 0:
                raise ScrapeError("timeout", f"the cycle's deadline passed before node {node.name} could be scraped")
            scraped = await self.deps.scraper.scrape(node, source, timeout)
            usage: dict[str, dict[str, Usage]] = {}
            extras: dict[str, PodExtras] | None = {} if spec.endpoint == "summary" else None
            pods = selection.pods_by_node.get(node.name, {})
            # Measured before the clock check: a scrape whose clock stepped gives no usage, but its samples are
            # the baselines of the next one's rates (not a baseline from before the step).
            self.meter.measure(scraped.metrics, scraped.time, pods, spec.interval, usage, extras)
            self._check_clock(node.name, scraped.metrics.node.timestamp, scraped.time, spec.interval)
        except ScrapeError as exc:
            error = exc
            metrics.scrape_errors.labels(policy=self.name, node=node.name, reason=error.reason).inc()
        else:
            error = None
            measured.usage.update(usage)
            if extras is not None:
                measured.extras.update(extras)
            if scraped.kubelet_reported_errors:
                # The kubelet says its own collection partly failed: keep what it served, count the fact.
                metrics.scrape_errors.labels(policy=self.name, node=node.name, reason="kubelet_reported").inc()
        metrics.scrape_duration.labels(policy=self.name).observe(time.monotonic() - began)
        return error

    def _compute(self, spec: PolicySpec, selection: Selection, measured: _Measured) -> Snapshot:
        now = self.deps.clock()
        extras = measured.extras if spec.endpoint == "summary" else None
        snapshot = self.aggregator.cycle(now, selection.pods(), measured.usage, extras)
        # Baselines of pods that left the selection go at once (CronJob churn must not pile them up); those of
        # selected pods survive a failed scrape, up to a few intervals.
        self.meter.prune(now - 3 * spec.interval - spec.timeout, {pod.uid for pod in selection.pods()})
        return snapshot

    def _recommend(self, spec: PolicySpec, selection: Selection, measured: _Measured, now: float,
                   ) -> tuple[dict[WorkloadRef, WorkloadRecommendation], list[WorkloadRef]]:
        """Right-sizing: this cycle's samples into the histories, the recommendations, the workloads gone."""
        recommender = self.recommender
        if recommender is None:
            return {}, []
        recommender.observe(now, selection.pods(), measured.usage, spec.interval)
        forgotten = recommender.forget_unseen(now, max(spec.window, 3 * spec.interval))
        return recommender.recommendations(now, selection.pods(), spec.interval), forgotten

    def _unresolved(self, selection: Selection) -> list[PodInfo]:
        """The pods without a known workload at this cycle and the previous one. The watches of pods and of
        their owners are separate streams, so a new pod may be seen before its ReplicaSet or Job; an interval
        later (10 s at least) that owner is not coming: a removed API version, or never created."""
        previous = self._without_workload
        self._without_workload = {pod.uid for pod in selection.pods_without_workload}
        return [pod for pod in selection.pods_without_workload if pod.uid in previous]

    def _check_clock(self, node: str, timestamp: float | None, arrived: float, interval: float) -> None:
        """Samples taken "before" the previous scrape's, or far more after them than the time that passed
        here, give no sound rate: the node is reported as failing for this scrape (a skewed but steady clock
        is fine: rates use the kubelet's own timestamps)."""
        if timestamp is None:
            return
        previous = self._node_times.get(node)
        self._node_times[node] = (timestamp, arrived)
        if previous is None:
            return
        before, arrived_before = previous
        # One second of slack: /stats/summary times have second precision, /metrics/resource milliseconds.
        if timestamp < before - 1.0:
            raise ScrapeError(
                "clock_backwards",
                f"node {node} sent samples {before - timestamp:.3f}s older than the previous scrape's: "
                "its clock stepped back",
            )
        ahead = (timestamp - before) - (arrived - arrived_before)
        if ahead > max(_CLOCK_JUMP_INTERVALS * interval, _CLOCK_JUMP_MIN_SECONDS):
            raise ScrapeError(
                "clock_forward",
                f"node {node} sent samples {ahead:.0f}s further ahead of the previous scrape's than the time "
                "that passed between the two: its clock jumped forward",
            )

    def _report_transitions(self, selection: Selection, failures: dict[str, NodeFailure]) -> None:
        """Events only when a node starts or stops failing (or changes reason): never one per cycle. The log says it
        at those transitions too, and once for each node found still failing as a previous run or leader reported
        it (a new leader's log would otherwise never show a failure older than its term)."""
        nodes = {n.name: n for n in selection.nodes}
        inherited, self._inherited = self._inherited, set()
        for name, failure in failures.items():
            before = self.failures.get(name)
            if before is None or before.reason != failure.reason:
                log.warning("node %s failing (%s): %s", name, failure.reason, failure.message, extra={"node": name})
                self.deps.post_event(
                    _node_ref(nodes[name]),
                    "Warning",
                    "ScrapeFailed",
                    f"policy {self.name}: {failure.reason}: {failure.message}",
                )
            elif name in inherited:
                log.warning("node %s failing (%s) since %s (reported before this term): %s", name,
                            failure.reason, rfc3339(failure.since), failure.message, extra={"node": name})
        for name in self.failures.keys() - failures.keys():
            if name in nodes:
                log.info("node %s recovered", name, extra={"node": name})
                self.deps.post_event(
                    _node_ref(nodes[name]), "Normal", "ScrapeRecovered", f"policy {self.name}: kubelet answers again"
                )

    def step_down(self) -> None:
        """This replica lost the lease: every publisher withdraws (see Publisher.step_down). A later term starts
        afresh, as after a restart (objects adopted again, Events anew, the right-sizing histories restored from
        the checkpoints the other leader wrote: what this replica held is older)."""
        self.failures = {}
        self._term_started = False
        if self.recommender is not None:
            self.recommender = Recommender(self.recommender.config)
        for publisher in self.publishers:
            publisher.step_down()

    async def close(self) -> None:
        for publisher in self.publishers:
            await publisher.close()
