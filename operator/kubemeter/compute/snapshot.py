"""What one compute cycle produces: per-workload figures and namespace / node / cluster totals.

Immutable; named tuples because a cycle builds hundreds of thousands of them (4x cheaper to make than
frozen dataclasses).
"""

from __future__ import annotations

import heapq
import math
from array import array
from dataclasses import dataclass
from typing import NamedTuple

from kubemeter.compute.types import WorkloadRef
from kubemeter.compute.window import percentiles_of


class ResourceFigures(NamedTuple):
    """One resource (CPU in cores, memory in bytes) of a workload or of one of its container names.

    ``usage``: sum over the containers that reported this cycle, ``None`` when none did.
    ``requests``: sum of the requests that are set, ``None`` when no container sets one.
    ``limits``: sum of the limits, ``None`` when any container has none (it may use the whole node, so a
    finite sum would understate the bound).
    ``request_utilization``: usage / requests over the same reporting containers; ``None`` unless every one
    of them has a request (as the HorizontalPodAutoscaler requires).
    ``window``: the per-cycle usage sums inside the window, oldest first (``None`` when there are none);
    ``avg``, ``max`` and ``percentiles`` (keyed by ``percentile_levels``) are computed from it when read,
    as most snapshots are never asked for them.
    """

    usage: float | None
    requests: float | None
    limits: float | None
    request_utilization: float | None
    window: array | None
    percentile_levels: tuple[float, ...]

    @property
    def samples(self) -> int:
        return len(self.window) if self.window is not None else 0

    @property
    def avg(self) -> float | None:
        return math.fsum(self.window) / len(self.window) if self.window is not None else None

    @property
    def max(self) -> float | None:
        return max(self.window) if self.window is not None else None

    @property
    def percentiles(self) -> dict[float, float]:
        return percentiles_of(self.window, self.percentile_levels) if self.window is not None else {}


def split_figures(values: tuple) -> tuple[ResourceFigures, ResourceFigures]:
    """The CPU and memory ResourceFigures whose fields ``values`` holds one after the other."""
    half = len(ResourceFigures._fields)
    return ResourceFigures(*values[:half]), ResourceFigures(*values[half:])


class ContainerFigures(NamedTuple):
    """One container name summed over a workload's pods."""

    cpu: ResourceFigures
    memory: ResourceFigures


class WorkloadResult(NamedTuple):
    workload: WorkloadRef
    pods: int
    pods_reporting: int
    """Pods with at least one container measured this cycle."""
    samples: int
    """Cycles with a measurement inside the window."""
    cpu: ResourceFigures
    memory: ResourceFigures
    container_values: dict[str, tuple]
    """Container name -> the CPU then the memory ResourceFigures fields, as one plain tuple; read
    :attr:`containers`. (Plain tuples of numbers and arrays are untracked by the garbage collector, and a
    snapshot holds three or more per workload, most never read.)"""
    network_rx_bytes_per_second: float | None
    """Sums over the pods that have them (``/stats/summary`` only), else ``None``."""
    network_tx_bytes_per_second: float | None
    ephemeral_storage_bytes: float | None

    @property
    def containers(self) -> dict[str, ContainerFigures]:
        """Container name -> its figures summed over the workload's pods (built on each read)."""
        return {name: ContainerFigures(*split_figures(values)) for name, values in self.container_values.items()}


class Totals(NamedTuple):
    """A namespace, node or the cluster. Usage is ``None`` when no pod reported; requests and limits are the
    sums of those that are set, like ``kubectl describe node`` "Allocated resources"."""

    pods: int
    cpu_cores: float | None
    memory_bytes: float | None
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
