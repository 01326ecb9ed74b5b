"""What one compute cycle produces: per-workload figures and namespace / node / cluster totals.

Immutable; named tuples because a cycle builds hundreds of thousands of them (4x cheaper to make than
frozen dataclasses).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kubemeter.compute.window import percentiles_of
from kubemeter.types import WorkloadRef


class ResourceFigures(NamedTuple):
    """One resource (CPU in cores, memory in bytes) of a workload or of one of its container names.

    ``usage``: sum over the pods measured whole this cycle (see ``WorkloadResult.cpu_measured_pods``), ``None``
    when none was.
    ``avg``, ``max``, ``percentiles`` (percentile as configured -> value): over the per-cycle usage sums
    inside the window; ``None``/empty when it holds none. Percentiles interpolate linearly between the
    closest ranks, as Prometheus ``quantile_over_time`` does.
    ``requests``: sum of the requests that are set, ``None`` when no container sets one.
    ``limits``: sum of the limits, ``None`` when any container has none (it may use the whole node, so a
    finite sum would understate the bound).
    ``request_utilization``: usage / requests over the same reporting containers; ``None`` unless every one
    of them has a request (as the HorizontalPodAutoscaler requires).
    """

    usage: float | None
    avg: float | None
    max: float | None
    percentiles: dict[float, float]
    requests: float | None
    limits: float | None
    request_utilization: float | None


RAW_FIGURES = 5
"""Length of a resource's raw figures: (usage, requests, limits, request_utilization, window values)."""


def resource_figures(raw: tuple, percentiles: Sequence[float]) -> ResourceFigures:
    """ResourceFigures from raw figures, the window statistics computed here."""
    usage, requests, limits, utilization, window = raw
    if window is None:
        return ResourceFigures(usage, None, None, {}, requests, limits, utilization)
    return ResourceFigures(usage, math.fsum(window) / len(window), max(window), percentiles_of(window, percentiles),
                           requests, limits, utilization)


class ContainerFigures(NamedTuple):
    """One container name summed over a workload's pods."""

    cpu: ResourceFigures
    memory: ResourceFigures


class WorkloadResult(NamedTuple):
    workload: WorkloadRef
    pods: int
    pods_reporting: int
    """Pods whose kubelet reported them this cycle."""
    cpu_measured_pods: int
    """Pods whose CPU ``cpu.usage`` sums: those reported with a value for every container reported. Fewer than
    ``pods_reporting`` while a new container waits for its first rate: the usage is then partial, and the
    window statistics leave that cycle out."""
    memory_measured_pods: int
    """The same for memory."""
    samples: int
    """Cycles with a measurement inside the window."""
    cpu: ResourceFigures
    memory: ResourceFigures
    container_values: dict[str, tuple]
    """Container name -> its CPU then memory raw figures in one plain tuple; read :attr:`containers`.
    (Most snapshots' per-container figures are never read, and plain tuples of numbers and arrays cost
    the garbage collector nothing.)"""
    network_rx_bytes_per_second: float | None
    """Sums over the pods that have them (``/stats/summary`` only), else ``None``."""
    network_tx_bytes_per_second: float | None
    ephemeral_storage_bytes: float | None
    percentile_levels: tuple[float, ...]

    @property
    def containers(self) -> dict[str, ContainerFigures]:
        """Container name -> its figures summed over the workload's pods (computed on each read)."""
        levels = self.percentile_levels
        return {
            name: ContainerFigures(resource_figures(raw[:RAW_FIGURES], levels),
                                   resource_figures(raw[RAW_FIGURES:], levels))
            for name, raw in self.container_values.items()
        }


class Totals(NamedTuple):
    """A namespace, node or the cluster. Usage sums the pods measured whole, as a workload's does (how many:
    ``*_measured_pods``), and is ``None`` when none was; requests and limits are the sums of those that are
    set, like ``kubectl describe node`` "Allocated resources"."""

    pods: int
    pods_reporting: int
    """Pods with at least one container measured this cycle."""
    cpu_cores: float | None
    memory_bytes: float | None
    cpu_measured_pods: int
    memory_measured_pods: int
    cpu_requests_cores: float
    cpu_limits_cores: float
    memory_requests_bytes: float
    memory_limits_bytes: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: float
    workloads: dict[WorkloadRef, WorkloadResult]
    namespaces: dict[str, Totals]
    nodes: dict[str, Totals]
    cluster: Totals

    def top_workloads(self, n: int) -> list[WorkloadResult]:
        """The ``n`` heaviest workloads by current CPU usage, then memory; unmeasured ones last."""
        return heapq.nlargest(n, self.workloads.values(), key=_weight)


def _weight(result: WorkloadResult) -> tuple[float, float]:
    cpu, memory = result.cpu.usage, result.memory.usage
    return (-math.inf if cpu is None else cpu, -math.inf if memory is None else memory)
