"""Decoder for the kubelet's ``/stats/summary`` JSON (``k8s.io/kubelet/pkg/apis/stats/v1alpha1``).

Decisions (the rate stage and the tests rely on them):

* Timestamps are the kubelet's RFC 3339 ``time`` fields: a container's and a pod's from its ``cpu``
  reading (the memory reading's when there is no cpu). Without one, ``timestamp`` stays ``None`` and
  the rate stage uses the scrape time. ``0001-01-01T00:00:00Z`` (Go's zero time) means unset: ``None``.
* A missing field, ``null`` or a non-finite number is ``None``, never zero; ``"containers": null``
  is a pod without containers. Init containers are kept (zero usage is a real reading).
* Duplicate container entries in one pod (kubelet 1.16 with docker-in-minikube lists every container
  twice: same name and start time, two readings of the same cgroup a few seconds apart): one entry is
  kept, never a sum. The kept one has the latest ``startTime`` (the current instance after a restart),
  then the largest cumulative CPU: the counter only grows, so that is the most recent reading, and it
  keeps the series monotonic from one scrape to the next even when the kubelet's timestamps are
  truncated to whole seconds and tie. Its cpu and memory are taken together, never mixed.
* Pod network rx/tx is the sum over ``network.interfaces`` (multi-NIC pods carry traffic off the
  default interface); the top-level ``rxBytes``/``txBytes`` (the default interface only) are used when
  the pod lists no interface values. hostNetwork pods report the node's interfaces, bridges included.
* Pod ephemeral storage is ``ephemeral-storage.usedBytes``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kubemeter.scrape.samples import DecodeError, plausible
from kubemeter.types import ContainerSample, NodeMetrics, NodeSample, PodSample

_INF = float("inf")
_JSON_NUMBER_TYPES = (int, float)
_GO_ZERO_TIME_PREFIX = "0001-01-01T00:00:00"


def decode_summary(body: bytes | str, scrape_time: float) -> NodeMetrics:
    """Decode a ``/stats/summary`` body; raises :class:`DecodeError` for anything else.

    ``scrape_time`` is not copied into the samples: see the module docstring.
    """
    del scrape_time  # part of the common decoder signature
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DecodeError(f"/stats/summary is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("node"), dict):
        raise DecodeError("JSON without a top-level 'node' object: not a kubelet /stats/summary")
    pods = document.get("pods")
    if pods is None:  # a node with nothing scheduled
        pods = []
    elif not isinstance(pods, list):
        raise DecodeError("/stats/summary 'pods' is not a list")
    times = _TimeParser()
    try:
        return NodeMetrics(node=_node(document["node"], times), pods=[_pod(pod, times) for pod in pods])
    except (AttributeError, TypeError) as exc:  # a field of the wrong JSON type somewhere
        raise DecodeError(f"/stats/summary has an unexpected structure: {exc}") from None


def _node(node: dict[str, Any], times: _TimeParser) -> NodeSample:
    cpu = node.get("cpu") or {}
    memory = node.get("memory") or {}
    name = node.get("nodeName")
    return NodeSample(
        name=name if isinstance(name, str) else None,
        cpu_seconds=_core_seconds(cpu.get("usageCoreNanoSeconds")),
        cpu_nano_cores=_number(cpu.get("usageNanoCores")),
        memory_working_set_bytes=_number(memory.get("workingSetBytes")),
        timestamp=times.parse(cpu.get("time") or memory.get("time")),
    )


def _pod(pod: dict[str, Any], times: _TimeParser) -> PodSample:
    ref = pod.get("podRef") or {}
    namespace, name, uid = ref.get("namespace"), ref.get("name"), ref.get("uid")
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise DecodeError(f"/stats/summary pod without podRef namespace/name: {ref!r:.120}")
    cpu = pod.get("cpu") or {}
    memory = pod.get("memory") or {}
    rx, tx = _network(pod.get("network") or {})
    return PodSample(
        namespace=namespace,
        name=name,
        containers=_containers(pod.get("containers") or [], times),
        cpu_seconds=_core_seconds(cpu.get("usageCoreNanoSeconds")),
        memory_working_set_bytes=_number(memory.get("workingSetBytes")),
        timestamp=times.parse(cpu.get("time") or memory.get("time")),
        uid=uid if isinstance(uid, str) else None,
        network_rx_bytes=rx,
        network_tx_bytes=tx,
        ephemeral_storage_bytes=_number((pod.get("ephemeral-storage") or {}).get("usedBytes")),
    )


def _containers(entries: list[dict[str, Any]], times: _TimeParser) -> list[ContainerSample]:
    by_name: dict[str, ContainerSample] = {}
    for entry in entries:
        sample = _container(entry, times)
        kept = by_name.get(sample.name)
        if kept is None or _recency(sample) > _recency(kept):
            by_name[sample.name] = sample  # a replaced duplicate keeps its first-seen position
    return list(by_name.values())


def _container(entry: dict[str, Any], times: _TimeParser) -> ContainerSample:
    name = entry.get("name")
    if not isinstance(name, str):
        raise DecodeError(f"/stats/summary container without a name: {entry!r:.120}")
    cpu = entry.get("cpu") or {}
    memory = entry.get("memory") or {}
    return ContainerSample(
        name=name,
        cpu_seconds=_core_seconds(cpu.get("usageCoreNanoSeconds")),
        cpu_nano_cores=_number(cpu.get("usageNanoCores")),
        memory_working_set_bytes=_number(memory.get("workingSetBytes")),
        timestamp=times.parse(cpu.get("time") or memory.get("time")),
        start_time=times.parse(entry.get("startTime")),
    )


def _recency(sample: ContainerSample) -> tuple[float, float, float]:
    """Order of duplicate entries: the current instance first, then its latest reading."""
    start, cpu, ts = sample.start_time, sample.cpu_seconds, sample.timestamp
    return (
        -_INF if start is None else start,
        -_INF if cpu is None else cpu,
        -_INF if ts is None else ts,
    )


def _network(network: dict[str, Any]) -> tuple[float | None, float | None]:
    # Summed as given (exact for integers), checked once at the end: 1.30+ lists ten interfaces per pod.
    # A non-number makes the addition raise TypeError, reported by decode_summary as a DecodeError.
    rx_total = tx_total = None
    for interface in network.get("interfaces") or []:
        rx, tx = interface.get("rxBytes"), interface.get("txBytes")
        if rx is not None:
            rx_total = rx if rx_total is None else rx_total + rx
        if tx is not None:
            tx_total = tx if tx_total is None else tx_total + tx
    if rx_total is None and tx_total is None:  # no interface values: the default interface's
        rx_total, tx_total = network.get("rxBytes"), network.get("txBytes")
    return _number(rx_total), _number(tx_total)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in _JSON_NUMBER_TYPES:  # type(), not isinstance(): True is not a number here
        raise DecodeError(f"/stats/summary: expected a number, got {value!r:.60}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range is no more usable than +Inf
        return None
    return number if plausible(number) else None


def _core_seconds(nanoseconds: Any) -> float | None:
    number = _number(nanoseconds)
    return None if number is None else number / 1e9


class _TimeParser:
    """RFC 3339 to unix seconds, memoised: one summary repeats a few dozen distinct times."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, float | None] = {}

    def parse(self, text: Any) -> float | None:
        if text is None:
            return None
        seconds = self._cache.get(text)
        if seconds is None and text not in self._cache:
            seconds = self._cache[text] = _rfc3339_seconds(text)
        return seconds


def _rfc3339_seconds(text: Any) -> float | None:
    if not isinstance(text, str):
        raise DecodeError(f"/stats/summary: expected an RFC 3339 time, got {text!r:.60}")
    if text.startswith(_GO_ZERO_TIME_PREFIX):
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:  # RFC 3339 requires an offset; the kubelet writes UTC
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise DecodeError(f"/stats/summary: invalid RFC 3339 time {text!r:.60}") from None
