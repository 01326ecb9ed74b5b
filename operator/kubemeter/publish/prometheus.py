"""Prometheus exposition: the latest snapshot of each policy as gauges, and the operator's own health metrics.

Window statistics (avg, max, percentiles) are not exported: Prometheus computes them from the gauges
(``avg_over_time``, ``max_over_time``, ``quantile_over_time``) over any range, and a ``quantile`` label is
reserved for summaries. Request utilization is ``usage / requests`` in PromQL for the same reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from kubemeter.compute.snapshot import Snapshot, Totals, WorkloadResult

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
    _Family("pods", "Number of {pods}.", lambda r: r.pods, lambda t: t.pods),
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
    "workload": ("policy", "namespace", "workload_kind", "workload"),
    "namespace": ("policy", "namespace"),
    "node": ("policy", "node"),
    "cluster": ("policy",),
}


def _level_families(level: str) -> list[tuple[str, Callable[[Any], float | None]]]:
    """(family name suffix, value getter) of the families a level has."""
    if level == "workload":
        return [(family.name, family.of_workload) for family in _FAMILIES]
    return [(family.name, family.of_totals) for family in _FAMILIES if family.of_totals is not None]


def _rows(level: str, policy: str, snapshot: Snapshot) -> Iterator[tuple[list[str], WorkloadResult | Totals]]:
    """(label values, figures) of every series a snapshot has at one level."""
    if level == "workload":
        for ref, result in snapshot.workloads.items():
            yield [policy, ref.namespace, ref.kind, ref.name], result
    elif level == "namespace":
        for namespace, totals in snapshot.namespaces.items():
            yield [policy, namespace], totals
    elif level == "node":
        for node, totals in snapshot.nodes.items():
            yield [policy, node], totals
    else:
        yield [policy], snapshot.cluster


class SnapshotCollector:
    """A prometheus_client custom collector over the latest snapshot of each policy.

    Every scrape is built afresh from the current snapshots, so the series of a workload that went away,
    or of a removed policy, vanish at once. Values that are ``None`` (not measured) are omitted, not 0.
    ``set_snapshot`` and ``collect`` may run on different threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[str, tuple[Snapshot, frozenset[str]]] = {}

    def set_snapshot(self, policy: str, snapshot: Snapshot, levels: Collection[str]) -> None:
        """Publish ``snapshot`` as ``policy``'s series at ``levels`` (of workload, namespace, node, cluster)."""
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown aggregation levels {sorted(unknown)}: expected some of {list(LEVELS)}")
        with self._lock:
            self._policies[policy] = (snapshot, frozenset(levels))

    def remove_policy(self, policy: str) -> None:
        with self._lock:
            self._policies.pop(policy, None)

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so a registry can reject clashing names up front."""
        return iter(self._families().values())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            policies = list(self._policies.items())
        families = self._families()
        for policy, (snapshot, levels) in policies:
            for level in LEVELS:
                if level not in levels:
                    continue
                getters = [(families[(level, name)], value) for name, value in _level_families(level)]
                for labels, figures in _rows(level, policy, snapshot):
                    for family, value_of in getters:
                        value = value_of(figures)
                        if value is not None:
                            family.add_metric(labels, value)
        return iter(families.values())

    @staticmethod
    def _families() -> dict[tuple[str, str], GaugeMetricFamily]:
        helps = {family.name: family.help for family in _FAMILIES}
        return {
            (level, name): GaugeMetricFamily(
                f"kubemeter_{level}_{name}", helps[name].format(**_HELP_WORDS[level]), labels=_LABELS[level])
            for level in LEVELS
            for name, _ in _level_families(level)
        }


# Per-node scrapes: from a fast local kubelet up to the default 10 s timeout (and beyond, if configured).
_SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Whole cycles: scrape + compute + publish, bounded by the interval (>= 10 s).
_CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class OperatorMetrics:
    """The operator's own health metrics, registered on ``registry``; used through prometheus_client's API,
    e.g. ``metrics.scrape_errors.labels(policy=p, node=n, reason="timeout").inc()``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scrape_duration = Histogram(
            "kubemeter_scrape_duration_seconds", "Time to scrape and decode one kubelet, in seconds.",
            ["policy"], registry=registry, buckets=_SCRAPE_BUCKETS)
        self.scrape_errors = Counter(
            "kubemeter_scrape_errors_total", "Kubelet scrapes that failed, by node and reason.",
            ["policy", "node", "reason"], registry=registry)
        self.cycle_duration = Histogram(
            "kubemeter_cycle_duration_seconds", "Time of one policy cycle (scrape, compute, publish), in seconds.",
            ["policy"], registry=registry, buckets=_CYCLE_BUCKETS)
        self.watch_events = Counter(
            "kubemeter_watch_events_total", "Watch events received, by resource and event type.",
            ["resource", "type"], registry=registry)
        self.status_writes = Counter(
            "kubemeter_status_writes_total", "Status writes to the API server, by result.",
            ["result"], registry=registry)
        self.nodes = Gauge(
            "kubemeter_nodes", "Nodes of a policy in its last cycle: selected, scraped or failed.",
            ["policy", "state"], registry=registry)
        # For "is this policy still cycling?" alerts: time() - last_cycle > 3 * interval.
        self.last_cycle = Gauge(
            "kubemeter_policy_last_cycle_timestamp_seconds", "Unix time at which the policy's last cycle ended.",
            ["policy"], registry=registry)
        self.interval = Gauge(
            "kubemeter_policy_interval_seconds", "The policy's scrape interval, in seconds.",
            ["policy"], registry=registry)

    def forget_policy(self, policy: str) -> None:
        """Drop a deleted policy's series (they would otherwise be exported until the operator restarts)."""
        for metric in (self.scrape_duration, self.scrape_errors, self.cycle_duration, self.nodes, self.last_cycle,
                       self.interval):
            metric.remove_by_labels({"policy": policy})


def build_registry() -> tuple[CollectorRegistry, SnapshotCollector, OperatorMetrics]:
    """A registry holding a snapshot collector and the operator metrics (and nothing process-global)."""
    registry = CollectorRegistry()
    collector = SnapshotCollector()
    registry.register(collector)
    return registry, collector, OperatorMetrics(registry)
