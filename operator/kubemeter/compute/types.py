"""The compute stage's inputs: pods as the cluster model knows them and what they used this cycle."""

from __future__ import annotations

from dataclasses import dataclass


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
