"""The typed output of the decoders: what one kubelet reported at one scrape.

Every numeric field is ``None`` when the payload has no value for it, never a made-up zero: a missing
value and a real zero mean different things to the rate computation and to the user. A value no kubelet can
mean (negative, NaN, infinite, or beyond MAX_QUANTITY) counts as missing too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


MAX_QUANTITY = 2.0**53
"""The largest value kept: 8 PiB, or 285 million years of CPU time, and exact as a float. Sums of a few
thousand of them stay within the int64 the WorkloadMetrics schema holds; a larger value is corruption."""


def plausible(value: float) -> bool:
    """Whether a decoded counter or gauge can be a real reading (NaN fails every comparison)."""
    return 0.0 <= value <= MAX_QUANTITY


class DecodeError(ValueError):
    """A kubelet payload that cannot be decoded: malformed, truncated or of an unknown format."""


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
