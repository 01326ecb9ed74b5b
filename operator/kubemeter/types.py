"""The types that cross stages, at the bottom of the layers (see docs/architecture.md): nothing here imports
another kubemeter module.

The cluster as the watch stage models it (nodes, pods, their workloads) and what one policy cycle covers
(``Selection``); what the decoders make of a kubelet payload (``NodeMetrics``); what compute is given for one
container or pod (``Usage``, ``PodExtras``); and why a node failed (``NodeFailure``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The resolved top owner of a pod: the key all per-workload state is kept under."""

    namespace: str
    kind: str
    name: str
    api_version: str


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    cpu_request: float | None
    """Cores; ``None`` when not set."""
    cpu_limit: float | None
    memory_request: float | None
    """Bytes; ``None`` when not set."""
    memory_limit: float | None


@dataclass(slots=True)
class PodInfo:
    """The model's record of one pod, built from pod watch events."""

    uid: str
    namespace: str
    name: str
    node: str | None
    phase: str
    labels: dict[str, str]
    owner: dict | None
    """The pod's controller ownerReference (kind, name, apiVersion, uid), or ``None``."""
    containers: tuple[ContainerSpec, ...]
    """The containers that hold resources at steady state (regular containers, plus native sidecars)."""
    workload: WorkloadRef | None = None
    """Filled by the model through :func:`kubemeter.compute.owners.resolve_workload`."""


@dataclass(slots=True)
class Usage:
    """One container's measured values this cycle; ``None`` where nothing was measured (never a made-up zero)."""

    cpu_cores: float | None
    memory_bytes: float | None
    timestamp: float


@dataclass(frozen=True, slots=True)
class PodExtras:
    """Pod-level values only ``/stats/summary`` has; ``None`` where the payload has none."""

    network_rx_bytes_per_second: float | None = None
    network_tx_bytes_per_second: float | None = None
    ephemeral_storage_bytes: float | None = None


@dataclass(slots=True)
class NodeInfo:
    name: str
    uid: str
    labels: Mapping[str, str]
    address: str | None
    """InternalIP (falling back to another address type) as given in status.addresses."""
    kubelet_port: int | None


@dataclass(slots=True)
class Selection:
    """What one policy cycle covers: the kubelets to scrape and, per node, the pods to account."""

    nodes: list[NodeInfo]
    pods_by_node: dict[str, dict[tuple[str, str], PodInfo]] = field(default_factory=dict)
    pods_without_workload: list[PodInfo] = field(default_factory=list)
    """The pods of ``pods_by_node`` whose controller owner is not known (``workload`` None): scraped and counted
    in their namespace, node and cluster, in no workload."""

    def pods(self) -> Iterator[PodInfo]:
        for pods in self.pods_by_node.values():
            yield from pods.values()


@dataclass(slots=True)
class NodeFailure:
    """Why a node's scrape failed, and since when it has been failing (kept across cycles and restarts)."""

    reason: str
    message: str
    since: float


# ---- decoded kubelet payloads: what one kubelet reported at one scrape --------------------------------------
# Every numeric field is ``None`` when the payload has no value for it, never a made-up zero: a missing value
# and a real zero mean different things to the rate computation and to the user.


@dataclass(slots=True)
class ContainerSample:
    name: str
    cpu_seconds: float | None = None
    """Cumulative CPU time in core-seconds (``container_cpu_usage_seconds_total`` / ``usageCoreNanoSeconds``)."""
    cpu_nano_cores: float | None = None
    """The kubelet's own instantaneous rate (``/stats/summary`` ``usageNanoCores``); absent from ``/metrics/resource``."""
    memory_working_set_bytes: float | None = None
    timestamp: float | None = None
    """Unix seconds at which the kubelet took the sample; ``None`` when the payload carries no timestamp."""
    start_time: float | None = None
    """Container start time, unix seconds; a change means the container restarted."""


@dataclass(slots=True)
class PodSample:
    namespace: str
    name: str
    containers: list[ContainerSample] = field(default_factory=list)
    cpu_seconds: float | None = None
    memory_working_set_bytes: float | None = None
    timestamp: float | None = None
    uid: str | None = None
    network_rx_bytes: float | None = None
    """Cumulative bytes received on all pod interfaces (``/stats/summary`` only)."""
    network_tx_bytes: float | None = None
    ephemeral_storage_bytes: float | None = None
    """Ephemeral storage used by the pod (``/stats/summary`` only)."""


@dataclass(slots=True)
class NodeSample:
    name: str | None = None
    """From the payload (``/stats/summary`` ``node.nodeName``); ``/metrics/resource`` does not name its node."""
    cpu_seconds: float | None = None
    cpu_nano_cores: float | None = None
    memory_working_set_bytes: float | None = None
    timestamp: float | None = None


@dataclass(slots=True)
class NodeMetrics:
    """One decoded kubelet response."""

    node: NodeSample
    pods: list[PodSample]
