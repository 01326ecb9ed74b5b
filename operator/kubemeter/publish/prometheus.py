"""Prometheus exposition: the latest snapshot of each policy as gauges, and the operator's own health metrics.

Window statistics (avg, max, percentiles) are not exported: Prometheus computes them from the gauges
(``avg_over_time``, ``max_over_time``, ``quantile_over_time``) over any range, and a ``quantile`` label is
reserved for summaries. Request utilization is exported, not left to ``usage / requests`` in PromQL: the
requests gauge covers every pod and container, the usage only the measured pods, so that ratio falls with
coverage; the exported one is the status's ``requestUtilization`` (``kubectl get wm`` CPU/REQ, MEM/REQ).

Right-sizing (``CycleReport.recommendations``) is exported per workload container, one family per figure as
kube-state-metrics' VPA metrics (``..._containerrecommendations_target``, ``_lowerbound``, ``_upperbound``) but
with the unit in the name and one family per resource, as the other families here: then
``kubemeter_workload_container_cpu_request_cores - kubemeter_workload_container_cpu_recommendation_target_cores``
matches series without ``ignoring()``. Namespace and cluster roll-ups sum requested minus recommended over the
containers whose request has a verdict (``WorkloadRecommendation.total_difference``).

How many per-container families a policy exports is its ``spec.recommendations.metrics``: each family is at least
as detailed as ``None`` (none: the roll-ups only), ``Differences`` (requested minus recommended, and the shortfall
of an ``under`` request below the lower bound: what the chart's dashboard and KubemeterWorkloadUnderRequested
read; the shortfall series exist for under-requested containers alone) or ``Full`` (the recommendation, its bounds,
the memory limit, the history and the requests as well). Each is a series per workload container: at 30,000 of
them, ``Full`` makes /metrics several times larger (bench/bench_exposition.py).
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from kubemeter import __version__
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import ContainerRecommendation, ResourceRecommendation, WorkloadRecommendation
from kubemeter.compute.snapshot import Snapshot, Totals, WorkloadResult
from kubemeter.policy import RECOMMENDATION_METRICS, PolicySpec
from kubemeter.types import WorkloadRef

LEVELS = ("workload", "namespace", "node", "cluster")


class _Family(NamedTuple):
    name: str
    help: str
    """Filled per level: ``{of}`` names the containers, ``{pods}`` the pods, ``{unlimited}`` says how a
    missing limit counts."""
    of_workload: Callable[[WorkloadResult], float | None]
    of_totals: Callable[[Totals], float | None] | None
    """``None``: a workload-level family only."""


_FAMILIES = (
    _Family("cpu_usage_cores", "CPU used by {of}, in cores (rate over the last scrape interval).",
            lambda r: r.cpu.usage, lambda t: t.cpu_cores),
    _Family("memory_working_set_bytes", "Memory working set of {of}, in bytes.",
            lambda r: r.memory.usage, lambda t: t.memory_bytes),
    _Family("cpu_requests_cores", "CPU requested by {of}, in cores.",
            lambda r: r.cpu.requests, lambda t: t.cpu_requests_cores),
    _Family("cpu_limits_cores", "Sum of the CPU limits of {of}, in cores; {unlimited}.",
            lambda r: r.cpu.limits, lambda t: t.cpu_limits_cores),
    _Family("memory_requests_bytes", "Memory requested by {of}, in bytes.",
            lambda r: r.memory.requests, lambda t: t.memory_requests_bytes),
    _Family("memory_limits_bytes", "Sum of the memory limits of {of}, in bytes; {unlimited}.",
            lambda r: r.memory.limits, lambda t: t.memory_limits_bytes),
    _Family("pods", "Number of {pods} (scheduled and not terminated: the pods expected to report).",
            lambda r: r.pods, lambda t: t.pods),
    # Beside the usage: a fall in coverage (pods on failing nodes) is not a fall in usage.
    _Family("pods_reporting", "Number of {pods} measured in the last cycle.",
            lambda r: r.pods_reporting, lambda t: t.pods_reporting),
    # Below _pods while a new pod waits for its first CPU rate: the usage above is then that of fewer pods.
    _Family("cpu_measured_pods", "Number of {pods} whose CPU the cpu_usage_cores series sums.",
            lambda r: r.cpu_measured_pods, lambda t: t.cpu_measured_pods),
    _Family("memory_measured_pods", "Number of {pods} whose memory the memory_working_set_bytes series sums.",
            lambda r: r.memory_measured_pods, lambda t: t.memory_measured_pods),
    _Family("cpu_request_utilization_ratio",
            "CPU used by the measured pods of the workload over their containers' CPU requests (the status's "
            "cpu.requestUtilization); absent unless every measured container has a request.",
            lambda r: r.cpu.request_utilization, None),
    _Family("memory_request_utilization_ratio",
            "Memory working set of the measured pods of the workload over their containers' memory requests (the "
            "status's memory.requestUtilization); absent unless every measured container has a request.",
            lambda r: r.memory.request_utilization, None),
    _Family("network_receive_bytes_per_second", "Bytes per second received by {pods} (summary endpoint).",
            lambda r: r.network_rx_bytes_per_second, None),
    _Family("network_transmit_bytes_per_second", "Bytes per second sent by {pods} (summary endpoint).",
            lambda r: r.network_tx_bytes_per_second, None),
    _Family("ephemeral_storage_bytes", "Ephemeral storage used by {pods}, in bytes (summary endpoint).",
            lambda r: r.ephemeral_storage_bytes, None),
)
_HELP_WORDS = {
    "workload": {"of": "the workload's containers", "pods": "the workload's pods selected by the policy",
                 "unlimited": "absent when one of them has no limit"},
    **{
        level: {"of": f"the selected containers {where}", "pods": f"the selected pods {where}",
                "unlimited": "containers without one count 0"}
        for level, where in (("namespace", "in the namespace"), ("node", "on the node"), ("cluster", "in the cluster"))
    },
}
_LABELS = {
    # The API group tells apart kinds of one name from two groups (two CRDs both called Rollout, say).
    "workload": ("policy", "namespace", "workload_kind", "workload", "workload_api_group"),
    "namespace": ("policy", "namespace"),
    "node": ("policy", "node"),
    "cluster": ("policy",),
}


class _ContainerFamily(NamedTuple):
    name: str
    """``kubemeter_workload_container_<name>``, labelled as the workload families plus ``container``."""
    help: str
    value: Callable[[ContainerRecommendation], float | None]
    detail: str = "Full"
    """The least ``spec.recommendations.metrics`` (of :data:`RECOMMENDATION_METRICS`) that exports it."""


_PER_CONTAINER = " One series per workload container (a container name of a workload) with a history."


def _bound(recommended: ResourceRecommendation | None, bound: str) -> float | None:
    return None if recommended is None else getattr(recommended, bound)


def _requested_minus_recommended(container: ContainerRecommendation, resource: str) -> float | None:
    """Over the container's pods, where its request has a verdict: its part of ``total_difference``, negated."""
    difference = container.workload_difference(resource)
    return None if difference is None else -difference


def _shortfall(container: ContainerRecommendation, resource: str) -> float | None:
    """Lower bound minus request, per pod, of a request whose verdict is ``under`` (not merely below the lower bound:
    a request under the histogram's first bucket is ``fit``, see ``rightsizing.verdict``); ``None`` otherwise."""
    if getattr(container, f"{resource}_verdict") != "under":
        return None
    return getattr(container.recommendation, resource).lower_bound - getattr(container, f"{resource}_request")


def _recommendation_families() -> tuple[_ContainerFamily, ...]:
    families = []
    for resource, unit, what in (("cpu", "cores", "CPU request, in cores"), ("memory", "bytes",
                                                                               "memory request, in bytes")):
        for bound, word in (("target", "target"), ("lower_bound", "lower bound"), ("upper_bound", "upper bound")):
            families.append(_ContainerFamily(
                f"{resource}_recommendation_{bound}_{unit}",
                f"Recommended {what}, per pod: the {word} (spec.recommendations; the bounds widen while the history "
                f"is short).{_PER_CONTAINER}",
                lambda c, r=resource, b=bound: _bound(getattr(c.recommendation, r), b)))
    return (*families,
            _ContainerFamily("memory_limit_recommendation_bytes",
                             "Recommended memory limit, per pod, in bytes: the highest memory peak plus the margin."
                             + _PER_CONTAINER, lambda c: c.recommendation.memory_limit),
            _ContainerFamily("recommendation_history_seconds",
                             "Seconds of usage history behind the recommendation (its confidence)." + _PER_CONTAINER,
                             lambda c: c.history_seconds),
            _ContainerFamily("cpu_request_cores",
                             "CPU request of the container, per pod (the value most of its pods have), in cores; absent "
                             "when unset." + _PER_CONTAINER, lambda c: c.cpu_request),
            _ContainerFamily("memory_request_bytes",
                             "Memory request of the container, per pod (the value most of its pods have), in bytes; "
                             "absent when unset." + _PER_CONTAINER, lambda c: c.memory_request),
            _ContainerFamily("cpu_requested_minus_recommended_cores",
                             "CPU requested minus the recommended target, over the container's pods, in cores (negative: "
                             "under-requested); absent while the request is unset or learning." + _PER_CONTAINER,
                             lambda c: _requested_minus_recommended(c, "cpu"), "Differences"),
            _ContainerFamily("memory_requested_minus_recommended_bytes",
                             "Memory requested minus the recommended target, over the container's pods, in bytes "
                             "(negative: under-requested); absent while the request is unset or learning."
                             + _PER_CONTAINER, lambda c: _requested_minus_recommended(c, "memory"), "Differences"),
            _ContainerFamily("cpu_request_shortfall_cores",
                             "CPU lower bound minus request, per pod, in cores, of a container whose request is under "
                             "(below the recommendation's lower bound, with the history spec.recommendations."
                             "minHistory asks for): likely throttled. One series per such workload container.",
                             lambda c: _shortfall(c, "cpu"), "Differences"),
            _ContainerFamily("memory_request_shortfall_bytes",
                             "Memory lower bound minus request, per pod, in bytes, of a container whose request is "
                             "under (below the recommendation's lower bound, with the history spec.recommendations."
                             "minHistory asks for): likely evicted or OOM-killed under memory pressure. One series "
                             "per such workload container.", lambda c: _shortfall(c, "memory"), "Differences"),
            )


_CONTAINER_FAMILIES = _recommendation_families()
_DETAIL_RANK = {detail: rank for rank, detail in enumerate(RECOMMENDATION_METRICS)}
_ROLLUPS = (("cpu", "cpu_requested_minus_recommended_cores", "CPU", "cores"),
            ("memory", "memory_requested_minus_recommended_bytes", "Memory", "bytes"))
"""Namespace and cluster: (resource, family name, word, unit)."""


def _workload_labels(policy: str, ref: WorkloadRef) -> list[str]:
    return [policy, ref.namespace, ref.kind, ref.name, ref.api_version.rpartition("/")[0]]


def _rows(level: str, policy: str, snapshot: Snapshot) -> Iterator[tuple[list[str], WorkloadResult | Totals]]:
    """(label values, figures) of every series a snapshot has at one level."""
    if level == "workload":
        for ref, result in snapshot.workloads.items():
            yield _workload_labels(policy, ref), result
    elif level == "namespace":
        for namespace, totals in snapshot.namespaces.items():
            yield [policy, namespace], totals
    elif level == "node":
        for node, totals in snapshot.nodes.items():
            yield [policy, node], totals
    else:
        yield [policy], snapshot.cluster


def _escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _help_text(level: str, family: _Family) -> str:
    return _escape_help(family.help.format(**_HELP_WORDS[level]))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels_text(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in zip(names, values))


def _family_text(metric: str, help_text: str, samples: list[str]) -> list[str]:
    """A gauge family's lines, or none without a sample."""
    return [f"# HELP {metric} {help_text}\n# TYPE {metric} gauge\n", *samples] if samples else []


_Recommendations = Mapping[WorkloadRef, WorkloadRecommendation]


def exported_container_families(detail: str) -> tuple[str, ...]:
    """The per-container family names (``kubemeter_workload_container_...``) of a ``spec.recommendations.metrics``."""
    return tuple(f"kubemeter_workload_container_{family.name}" for family in _CONTAINER_FAMILIES
                 if _DETAIL_RANK[family.detail] <= _DETAIL_RANK[detail])


def _container_text(policies: list[tuple[str, _Recommendations, str]]) -> list[str]:
    """(policy, recommendations, its spec.recommendations.metrics) -> the per-container families' lines."""
    names = (*_LABELS["workload"], "container")
    rows = [(_labels_text(names, [*_workload_labels(policy, ref), name]), container, _DETAIL_RANK[detail])
            for policy, recommendations, detail in policies
            if _DETAIL_RANK[detail] > 0  # None: no family, no label text to build
            for ref, workload in recommendations.items()
            for name, container in workload.containers.items()]
    out: list[str] = []
    for family in _CONTAINER_FAMILIES:
        metric = f"kubemeter_workload_container_{family.name}"
        least = _DETAIL_RANK[family.detail]
        out += _family_text(metric, _escape_help(family.help), [
            f"{metric}{{{labels}}} {float(value)!r}\n" for labels, container, rank in rows
            if rank >= least and (value := family.value(container)) is not None])
    return out


def _requested_minus_recommended_parts(recommendations: _Recommendations) -> dict[str, dict[str, list[float]]]:
    """Resource -> namespace -> each workload's requested minus recommended (minus its ``total_difference``), for
    the workloads that have one; computed once for the namespace and the cluster roll-ups."""
    parts: dict[str, dict[str, list[float]]] = {resource: {} for resource, *_ in _ROLLUPS}
    for ref, workload in recommendations.items():
        for resource, by_namespace in parts.items():
            difference = workload.total_difference(resource)
            if difference is not None:
                by_namespace.setdefault(ref.namespace, []).append(-difference)
    return parts


def _rollup_text(level: str, policies: list[tuple[str, dict[str, dict[str, list[float]]]]]) -> list[str]:
    """Requested minus recommended per namespace or per cluster (of :func:`_requested_minus_recommended_parts`)."""
    out: list[str] = []
    for resource, name, word, unit in _ROLLUPS:
        if level == "namespace":
            sums = [((policy, namespace), math.fsum(values)) for policy, parts in policies
                    for namespace, values in parts[resource].items()]
        else:
            sums = [((policy,), math.fsum(v for values in parts[resource].values() for v in values))
                    for policy, parts in policies if parts[resource]]
        where = "in the namespace" if level == "namespace" else "in the cluster"
        metric = f"kubemeter_{level}_{name}"
        help_text = (f"{word} requested minus the recommended targets, in {unit}, over the workload containers {where} "
                     "whose request has a verdict (not unset or learning): positive is requested beyond need.")
        out += _family_text(metric, help_text, [f"{metric}{{{_labels_text(_LABELS[level], key)}}} {value!r}\n"
                                                for key, value in sums])
    return out


class SnapshotCollector:
    """The latest snapshot of each policy, as Prometheus text exposition.

    Rendered directly rather than through prometheus_client's generic collector path, which validates and
    escapes every one of tens of thousands of label sets on every scrape; here the text is built once per
    snapshot (label names are fixed and valid by construction, values escaped as the format requires) and
    served from cache until the next cycle. Series of a workload that went away, or of a removed policy,
    vanish with the next snapshot. Values that are ``None`` (not measured) are omitted, not 0.
    ``set_snapshot`` and ``exposition`` may run on different threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[str, tuple[Snapshot, frozenset[str], _Recommendations, str]] = {}
        self._rendered: bytes | None = None

    def set_snapshot(self, policy: str, snapshot: Snapshot, levels: Collection[str],
                     recommendations: _Recommendations | None = None, recommendation_metrics: str = "Full") -> None:
        """Publish ``snapshot`` as ``policy``'s series at ``levels`` (of workload, namespace, node, cluster), and
        its ``recommendations``: per workload container at the workload level (the families of
        ``recommendation_metrics``, see :data:`RECOMMENDATION_METRICS`), summed at the namespace and cluster
        levels."""
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown aggregation levels {sorted(unknown)}: expected some of {list(LEVELS)}")
        if recommendation_metrics not in _DETAIL_RANK:
            raise ValueError(f"unknown recommendation metrics {recommendation_metrics!r}: expected one of "
                             f"{list(RECOMMENDATION_METRICS)}")
        with self._lock:
            # A copy: the recommender drops forgotten workloads from the mapping it returned.
            self._policies[policy] = (snapshot, frozenset(levels), dict(recommendations or {}), recommendation_metrics)
            self._rendered = None

    def remove_policy(self, policy: str) -> None:
        with self._lock:
            self._policies.pop(policy, None)
            self._rendered = None

    def exposition(self) -> bytes:
        """The text format (version 0.0.4) of every policy's series."""
        with self._lock:
            if self._rendered is not None:
                return self._rendered
            policies = list(self._policies.items())
        out: list[str] = []
        rollup_parts: dict[str, dict[str, dict[str, list[float]]]] = {}
        for level in LEVELS:
            names = _LABELS[level]
            rows = [
                (_labels_text(names, labels), figures)
                for policy, (snapshot, levels, *_) in policies
                if level in levels
                for labels, figures in _rows(level, policy, snapshot)
            ]
            for family in _FAMILIES:
                value_of = family.of_workload if level == "workload" else family.of_totals
                if value_of is None:
                    continue
                metric = f"kubemeter_{level}_{family.name}"
                out += _family_text(metric, _help_text(level, family), [
                    f"{metric}{{{labels}}} {float(value)!r}\n" for labels, figures in rows
                    if (value := value_of(figures)) is not None])
            recommending = [(policy, recommendations, detail)
                            for policy, (_, levels, recommendations, detail) in policies
                            if level in levels and recommendations]
            if level == "workload":
                out += _container_text(recommending)
            elif level in ("namespace", "cluster"):
                for policy, recommendations, _ in recommending:  # once per policy, for both levels
                    if policy not in rollup_parts:
                        rollup_parts[policy] = _requested_minus_recommended_parts(recommendations)
                out += _rollup_text(level, [(policy, rollup_parts[policy]) for policy, *_ in recommending])
        rendered = "".join(out).encode()
        with self._lock:
            if self._policies.keys() == dict(policies).keys():
                self._rendered = rendered
        return rendered


# Per-node scrapes: from a fast local kubelet up to the default 10 s timeout (and beyond, if configured).
_SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Whole cycles: scrape + compute + publish, bounded by the interval (>= 10 s).
_CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class OperatorMetrics:
    """The operator's own health metrics, registered on ``registry``; used through prometheus_client's API,
    e.g. ``metrics.scrape_errors.labels(policy=p, node=n, reason="timeout").inc()``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        build_info = Gauge("kubemeter_build_info", "Always 1: the operator's version and Python's, as labels.",
                           ["version", "python_version"], registry=registry)
        build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        # Read at every scrape through the runtime's set_function: which replica of several is working.
        self.leading = Gauge(
            "kubemeter_is_leader", "1 when this replica runs the policies (it holds the Lease, or leader election is "
            "off), 0 on a standby.", registry=registry)
        self.scrape_duration = Histogram(
            "kubemeter_scrape_duration_seconds", "Time to scrape and decode one kubelet, in seconds.",
            ["policy"], registry=registry, buckets=_SCRAPE_BUCKETS)
        self.scrape_errors = Counter(
            "kubemeter_scrape_errors_total", "Kubelet scrapes that failed, by node and reason.",
            ["policy", "node", "reason"], registry=registry)
        self.cycle_duration = Histogram(
            "kubemeter_cycle_duration_seconds", "Time of one policy cycle (scrape, compute, publish), in seconds.",
            ["policy"], registry=registry, buckets=_CYCLE_BUCKETS)
        self.cycle_failures = Counter(
            "kubemeter_cycle_failures_total", "Policy cycles that ended in an error (a bug; see the log) before publishing.",
            ["policy"], registry=registry)
        self.watch_events = Counter(
            "kubemeter_watch_events_total", "Watch events received, by resource and event type.",
            ["resource", "type"], registry=registry)
        self.status_writes = Counter(
            "kubemeter_status_writes_total", "Status writes to the API server, by result.",
            ["result"], registry=registry)
        self.checkpoints = Counter(
            "kubemeter_checkpoints_total",
            "Right-sizing checkpoints (MetricsCheckpoints) by result: written, deleted, restored, adopted (an earlier "
            "version's, owned by its WorkloadMetrics, now by the policy), malformed (found at a restore and left as it "
            "is: see the log) or failed (a write or delete, after retries).",
            ["policy", "result"], registry=registry)
        self.nodes = Gauge(
            "kubemeter_nodes", "Nodes of a policy in its last cycle: selected, scraped or failed.",
            ["policy", "state"], registry=registry)
        self.unresolved_pods = Gauge(
            "kubemeter_unresolved_pods",
            "Pods of a policy whose controller owner cannot be found (a removed API version, or never created): "
            "counted in their namespace, node and the cluster, in no workload; the policy's status.unresolvedPods "
            "names them.",
            ["policy"], registry=registry)
        # For "is this policy still cycling?" alerts: time() - last_cycle > 3 * interval.
        self.last_cycle = Gauge(
            "kubemeter_policy_last_cycle_timestamp_seconds", "Unix time at which the policy's last cycle ended.",
            ["policy"], registry=registry)
        self.interval = Gauge(
            "kubemeter_policy_interval_seconds", "The policy's scrape interval, in seconds.",
            ["policy"], registry=registry)

    def forget_node(self, node: str) -> None:
        """Drop a deleted node's error counts: nodes come and go (autoscaling), and each would otherwise leave a
        series per policy and reason until the operator restarts."""
        self.scrape_errors.remove_by_labels({"node": node})

    def forget_policy(self, policy: str) -> None:
        """Drop a deleted policy's series (they would otherwise be exported until the operator restarts)."""
        for metric in (self.scrape_duration, self.scrape_errors, self.cycle_duration, self.cycle_failures, self.nodes,
                       self.checkpoints, self.unresolved_pods, self.last_cycle, self.interval):
            metric.remove_by_labels({"policy": policy})


class WriterState(NamedTuple):
    policy: str
    pending: int
    stalled_seconds: float


class StatusWriterCollector:
    """Each policy's status writer, read when scraped: how many writes wait, and for how long none finished
    while some waited (a stuck writer shows as a growing figure; alert on it before /healthz fails)."""

    def __init__(self, states: Callable[[], Iterable[WriterState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "kubemeter_status_writes_pending", "Status writes of the policy queued or being sent.", labels=["policy"])
        stalled = GaugeMetricFamily(
            "kubemeter_status_writer_stalled_seconds",
            "Seconds the policy's status writes have waited with none finishing (0 when none waits).",
            labels=["policy"])
        for state in self._states():
            pending.add_metric([state.policy], state.pending)
            stalled.add_metric([state.policy], state.stalled_seconds)
        yield pending
        yield stalled


class PrometheusPublisher:
    """Publishes one policy's cycles on ``/metrics``: its snapshot's series and the cycle health series."""

    def __init__(
        self, policy: str, collector: SnapshotCollector, metrics: OperatorMetrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self.collector, self.metrics = collector, metrics
        self.clock = clock

    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None:
        if spec.prometheus:
            self.collector.set_snapshot(self.policy, report.snapshot, spec.levels, report.recommendations,
                                        spec.recommendation_metrics)
        else:
            self.collector.remove_policy(self.policy)
        metrics, policy = self.metrics, self.policy
        metrics.cycle_duration.labels(policy=policy).observe(report.duration)
        # Exported at 0 from the first completed cycle on: a counter that appears only at its first failure
        # (at 1) shows Prometheus no increase, and an alert on increase() would miss that failure.
        metrics.cycle_failures.labels(policy=policy)
        nodes = len(report.selection.nodes)
        for state, count in (("selected", nodes), ("scraped", report.scraped), ("failed", len(report.failures))):
            metrics.nodes.labels(policy=policy, state=state).set(count)
        metrics.unresolved_pods.labels(policy=policy).set(len(report.unresolved))
        metrics.last_cycle.labels(policy=policy).set(self.clock())
        metrics.interval.labels(policy=policy).set(spec.interval)

    def cycle_failed(self, message: str, generation: int) -> None:
        """The figures are no longer current: withdrawn (absent means unknown) until a cycle publishes again.
        The cycle health series stay: the loop counts the failure (kubemeter_cycle_failures_total), and the
        last cycle timestamp stops moving, which is what the staleness alert looks at."""
        self.collector.remove_policy(self.policy)

    async def start_term(self) -> None:
        """Nothing to read back: the gauges are this process's."""

    def step_down(self) -> None:
        """The gauges would go stale next to the new leader's, and the cycle health series (last cycle time,
        node counts) would look like a stalled policy."""
        self._withdraw()

    async def close(self) -> None:
        self._withdraw()

    def _withdraw(self) -> None:
        self.collector.remove_policy(self.policy)
        self.metrics.forget_policy(self.policy)


def build_registry() -> tuple[CollectorRegistry, SnapshotCollector, OperatorMetrics]:
    """A registry of its own (not prometheus_client's global one) with the operator metrics and the standard
    process_* (CPU, memory, file descriptors) and python_* (version, garbage collector) ones, and a snapshot
    collector."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry, SnapshotCollector(), OperatorMetrics(registry)


def exposition(registry: CollectorRegistry, collector: SnapshotCollector) -> bytes:
    """What ``/metrics`` serves: the operator's own metrics, then every policy's series."""
    return generate_latest(registry) + collector.exposition()
