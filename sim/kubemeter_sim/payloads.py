"""Render kubelet bodies byte-for-byte in the style of the real captures in tests/fixtures/kubelet/.

``/metrics/resource`` is client_golang's text exposition: families sorted by name, series sorted by
label values, Go ``strconv.FormatFloat(v, 'g', -1, 64)`` numbers, millisecond sample timestamps.
``/stats/summary`` is go-restful's ``json.MarshalIndent(v, "", " ")`` without a trailing newline.

Speed matters (a 110-pod node in a few ms): label strings are precomputed by the caller and the
summary JSON of each pod is a cached template of static text with numbered holes for the numbers.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


# -- readings: what the kubelet measured, the input to rendering ------------------------------------------

@dataclass(slots=True)
class ContainerReading:
    name: str
    labels: str
    """Precomputed ``{container="..",namespace="..",pod=".."}``; see :func:`container_labels`."""
    cpu_seconds: float
    cpu_nano_cores: float
    memory_working_set_bytes: float
    timestamp: float
    start_time: float
    memory_limit_bytes: float | None = None


@dataclass(slots=True)
class PodReading:
    namespace: str
    name: str
    uid: str
    labels: str
    """Precomputed ``{namespace="..",pod=".."}``; see :func:`pod_labels`."""
    start_time: float
    containers: list[ContainerReading]
    cpu_seconds: float
    cpu_nano_cores: float
    memory_working_set_bytes: float
    timestamp: float
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    ephemeral_storage_bytes: int = 0
    volumes: tuple[str, ...] = ()
    memory_limit_bytes: float | None = None
    """Set when every container has a memory limit: the pod cgroup then reports ``availableBytes``."""


@dataclass(slots=True)
class NodeReading:
    name: str
    start_time: float
    cpu_seconds: float
    cpu_nano_cores: float
    memory_working_set_bytes: float
    memory_capacity_bytes: float
    timestamp: float
    pods: list[PodReading] = field(default_factory=list)
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def container_labels(namespace: str, pod: str, container: str) -> str:
    return (f'{{container="{_escape_label(container)}",namespace="{_escape_label(namespace)}",'
            f'pod="{_escape_label(pod)}"}}')


def pod_labels(namespace: str, pod: str) -> str:
    return f'{{namespace="{_escape_label(namespace)}",pod="{_escape_label(pod)}"}}'


# -- kubelet versions ----------------------------------------------------------------------------------------

def parse_version(version: str) -> tuple[int, int]:
    """``"v1.30.2"`` / ``"1.30.0-eks-1234"`` -> ``(1, 30)``."""
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def metrics_are_stable(version: tuple[int, int]) -> bool:
    """Resource metrics went GA in 1.29: ``[STABLE]`` help, ``resource_scrape_error``, untimed start time."""
    return version >= (1, 29)


# -- Go number formatting ------------------------------------------------------------------------------------

def go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)``: the shortest digits that round-trip, in exponent form
    when the decimal exponent is < -4 or >= 21 -- except that with the shortest precision Go uses
    exponent form from 6 on (``eprec = 6``), hence ``4.0628224e+07`` but ``6197.005020909``.

    Python's ``repr`` gives the same shortest digits; the fast paths cover what payloads hold.
    """
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e6:
        return str(int(value)) if value.is_integer() else repr(value)
    if 1e6 <= magnitude < 1e16:
        whole, _, fraction = repr(value).partition(".")
        sign, whole = ("-", whole[1:]) if whole[0] == "-" else ("", whole)
        digits = (whole + fraction).rstrip("0")
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e+{len(whole) - 1:02d}"
    return _go_float_general(value)


def _go_float_general(value: float) -> str:
    """Zero, non-finite values, and magnitudes outside [1e-4, 1e16)."""
    if value == 0:
        return "0"
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    exp10 = point - 1  # below 1e-4 or from 1e16 on, so always exponent form
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{head}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"


# -- /metrics/resource ---------------------------------------------------------------------------------------

_FAMILY_HELP = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": ("gauge", "Current working set of the container in bytes"),
    "container_start_time_seconds": ("gauge", "Start time of the container since unix epoch in seconds"),
    "node_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": ("gauge", "Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": ("gauge", "Current working set of the pod in bytes"),
    "scrape_error": ("gauge", "1 if there was an error while getting container metrics, 0 otherwise"),
}


@lru_cache(maxsize=4)
def _headers(stable: bool) -> dict[str, str]:
    stability = "[STABLE]" if stable else "[ALPHA]"
    headers = {}
    for family, (kind, text) in _FAMILY_HELP.items():
        name = "resource_scrape_error" if family == "scrape_error" and stable else family
        headers[family] = f"# HELP {name} {stability} {text}\n# TYPE {name} {kind}\n"
    return headers


def _ms(timestamp: float) -> str:
    return str(int(timestamp * 1000))


def render_metrics_resource(node: NodeReading, version: tuple[int, int]) -> bytes:
    """The ``/metrics/resource`` body of ``node``, as the kubelet of ``version`` writes it."""
    stable = metrics_are_stable(version)
    headers = _headers(stable)
    containers = sorted(((c.labels, c) for pod in node.pods for c in pod.containers), key=lambda item: item[0])
    pods = sorted(((p.labels, p) for p in node.pods), key=lambda item: item[0])
    out: list[str] = []
    if containers:
        out.append(headers["container_cpu_usage_seconds_total"])
        out.extend(f"container_cpu_usage_seconds_total{labels} {go_float(c.cpu_seconds)} {_ms(c.timestamp)}\n"
                   for labels, c in containers)
        out.append(headers["container_memory_working_set_bytes"])
        out.extend(f"container_memory_working_set_bytes{labels} {go_float(c.memory_working_set_bytes)} "
                   f"{_ms(c.timestamp)}\n" for labels, c in containers)
        out.append(headers["container_start_time_seconds"])
        if stable:
            out.extend(f"container_start_time_seconds{labels} {go_float(c.start_time)}\n" for labels, c in containers)
        else:
            out.extend(f"container_start_time_seconds{labels} {go_float(c.start_time)} {_ms(c.start_time)}\n"
                       for labels, c in containers)
    out.append(headers["node_cpu_usage_seconds_total"])
    out.append(f"node_cpu_usage_seconds_total {go_float(node.cpu_seconds)} {_ms(node.timestamp)}\n")
    out.append(headers["node_memory_working_set_bytes"])
    out.append(f"node_memory_working_set_bytes {go_float(node.memory_working_set_bytes)} {_ms(node.timestamp)}\n")
    if pods:
        out.append(headers["pod_cpu_usage_seconds_total"])
        out.extend(f"pod_cpu_usage_seconds_total{labels} {go_float(p.cpu_seconds)} {_ms(p.timestamp)}\n"
                   for labels, p in pods)
        out.append(headers["pod_memory_working_set_bytes"])
        out.extend(f"pod_memory_working_set_bytes{labels} {go_float(p.memory_working_set_bytes)} "
                   f"{_ms(p.timestamp)}\n" for labels, p in pods)
    # "resource_scrape_error" and "scrape_error" both sort after "pod_*".
    out.append(headers["scrape_error"])
    out.append(f"{'resource_scrape_error' if stable else 'scrape_error'} 0\n")
    return "".join(out).encode()


# -- /stats/summary ------------------------------------------------------------------------------------------

_HOLE = re.compile(r'"@@(\d+)@@"')


class _Template:
    """JSON text with numbered holes, filled by one C-level ``%`` formatting."""

    __slots__ = ("_format", "_order", "_in_order")

    def __init__(self, skeleton: Any, indent_level: int) -> None:
        text = json.dumps(skeleton, indent=1, separators=(",", ": "), ensure_ascii=False)
        text = text.replace("\n", "\n" + " " * indent_level).replace("%", "%%")
        pieces = _HOLE.split(text)
        self._format = "%s".join(pieces[0::2])
        self._order = [int(index) for index in pieces[1::2]]
        self._in_order = self._order == sorted(self._order)

    def fill(self, values: list[str]) -> str:
        if self._in_order:
            return self._format % tuple(values)
        return self._format % tuple([values[index] for index in self._order])


class _Holes:
    """Hands out hole markers in the order their values will be appended at render time."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        marker = f"@@{self.count}@@"
        self.count += 1
        return marker


_SECONDS_CACHE: dict[int, str] = {}


def _rfc3339(timestamp: float) -> str:
    """metav1.Time JSON: whole seconds, UTC, quoted."""
    second = int(timestamp)
    text = _SECONDS_CACHE.get(second)
    if text is None:
        if len(_SECONDS_CACHE) > 100_000:
            _SECONDS_CACHE.clear()
        text = _SECONDS_CACHE[second] = time.strftime('"%Y-%m-%dT%H:%M:%SZ"', time.gmtime(second))
    return text


_FS_CAPACITY = 1081100128256
_FS_INODES = 67108864
_IFACE_NAMES = ("tunl0", "gre0", "eth0")


def _psi(hole: _Holes) -> dict[str, Any]:
    return {"full": {"total": hole(), "avg10": 0, "avg60": 0, "avg300": 0},
            "some": {"total": hole(), "avg10": 0, "avg60": 0, "avg300": 0}}


def _fs(hole: _Holes) -> dict[str, Any]:
    return {"time": hole(), "availableBytes": hole(), "capacityBytes": _FS_CAPACITY, "usedBytes": hole(),
            "inodesFree": hole(), "inodes": _FS_INODES, "inodesUsed": hole()}


def _fs_values(timestamp: float, used_bytes: int, fs_used: int) -> list[str]:
    inodes_used = used_bytes // 4096 + 1
    return [_rfc3339(timestamp), str(_FS_CAPACITY - fs_used - used_bytes), str(used_bytes),
            str(_FS_INODES - inodes_used - 320000), str(inodes_used)]


def _cpu_memory_skeleton(hole: _Holes, with_available: bool, with_psi: bool) -> tuple[dict, dict]:
    cpu: dict[str, Any] = {"time": hole(), "usageNanoCores": hole(), "usageCoreNanoSeconds": hole()}
    memory: dict[str, Any] = {"time": hole()}
    if with_available:
        memory["availableBytes"] = hole()
    memory.update({"usageBytes": hole(), "workingSetBytes": hole(), "rssBytes": hole(),
                   "pageFaults": hole(), "majorPageFaults": hole()})
    if with_psi:
        cpu["psi"] = _psi(hole)
        memory["psi"] = _psi(hole)
    return cpu, memory


def _cpu_memory_values(timestamp: float, cpu_seconds: float, nano_cores: float, working_set: float,
                       limit: float | None, with_psi: bool) -> list[str]:
    ts = _rfc3339(timestamp)
    ws = int(working_set)
    values = [ts, str(int(nano_cores)), str(int(cpu_seconds * 1e9)), ts]
    if limit is not None:
        values.append(str(max(0, int(limit) - ws)))
    # Page cache makes usage exceed the working set; rss sits a little below it.
    values += [str(ws + ws // 50), str(ws), str(ws - ws // 20), str(int(cpu_seconds * 1500) + ws // 4096),
               str(int(cpu_seconds) // 600)]
    if with_psi:
        stall = str(int(cpu_seconds * 1e4))
        values += [stall, stall, "0", "0"]
    return values


@dataclass(frozen=True, slots=True)
class _SummaryStyle:
    swap: bool
    """``swap`` objects from 1.30 on."""
    io_psi: bool
    """``io`` objects and ``psi`` under cpu/memory from 1.34 on (KubeletPSI beta)."""
    full: bool
    """False for ``?only_cpu_and_memory=true`` (metrics-server's query): names, start times, cpu, memory."""

    @classmethod
    def of(cls, version: tuple[int, int], cpu_and_memory_only: bool) -> "_SummaryStyle":
        return cls(swap=version >= (1, 30), io_psi=version >= (1, 34), full=not cpu_and_memory_only)


def _io(hole: _Holes) -> dict[str, Any]:
    return {"time": hole(), "psi": {"full": {"total": 0, "avg10": 0, "avg60": 0, "avg300": 0},
                                    "some": {"total": 0, "avg10": 0, "avg60": 0, "avg300": 0}}}


def _network_skeleton(hole: _Holes) -> dict[str, Any]:
    interfaces = []
    for name in _IFACE_NAMES:
        if name == "eth0":
            interfaces.append({"name": name, "rxBytes": hole(), "rxErrors": 0, "txBytes": hole(), "txErrors": 0})
        else:
            interfaces.append({"name": name, "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0})
    return {"time": hole(), "name": "eth0", "rxBytes": hole(), "rxErrors": 0, "txBytes": hole(), "txErrors": 0,
            "interfaces": interfaces}


def _network_values(timestamp: float, rx: int, tx: int) -> list[str]:
    return [str(rx), str(tx), _rfc3339(timestamp), str(rx), str(tx)]


@lru_cache(maxsize=65536)
def _container_template(name: str, with_limit: bool, style: _SummaryStyle) -> _Template:
    hole = _Holes()
    start = hole()
    cpu, memory = _cpu_memory_skeleton(hole, with_limit, style.io_psi)
    skeleton: dict[str, Any] = {"name": name, "startTime": start, "cpu": cpu, "memory": memory}
    if not style.full:
        return _Template(skeleton, 4)
    if style.io_psi:
        skeleton["io"] = _io(hole)
    skeleton["rootfs"] = _fs(hole)
    skeleton["logs"] = _fs(hole)
    if style.swap:
        skeleton["swap"] = {"time": hole(), "swapAvailableBytes": 0, "swapUsageBytes": 0}
    return _Template(skeleton, 4)


@lru_cache(maxsize=65536)
def _pod_template(namespace: str, name: str, uid: str, volumes: tuple[str, ...], with_limit: bool,
                  style: _SummaryStyle) -> _Template:
    hole = _Holes()
    start = hole()
    containers = hole()
    cpu, memory = _cpu_memory_skeleton(hole, with_limit, style.io_psi)
    skeleton: dict[str, Any] = {"podRef": {"name": name, "namespace": namespace, "uid": uid},
                                "startTime": start, "containers": containers, "cpu": cpu, "memory": memory}
    if not style.full:
        return _Template(skeleton, 2)
    if style.io_psi:
        skeleton["io"] = _io(hole)
    skeleton["network"] = _network_skeleton(hole)
    if volumes:
        skeleton["volume"] = [dict(_fs(hole), name=volume) for volume in volumes]
    skeleton["ephemeral-storage"] = _fs(hole)
    skeleton["process_stats"] = {"process_count": hole()}
    if style.swap:
        skeleton["swap"] = {"time": hole(), "swapUsageBytes": 0}
    return _Template(skeleton, 2)


def _render_container(c: ContainerReading, style: _SummaryStyle) -> str:
    template = _container_template(c.name, c.memory_limit_bytes is not None, style)
    ts = c.timestamp
    values = [_rfc3339(c.start_time)]
    values += _cpu_memory_values(ts, c.cpu_seconds, c.cpu_nano_cores, c.memory_working_set_bytes,
                                 c.memory_limit_bytes, style.io_psi)
    if not style.full:
        return template.fill(values)
    if style.io_psi:
        values.append(_rfc3339(ts))
    fs_time = ts - (int(c.start_time) % 47)  # filesystem stats are collected on a slower cycle
    values += _fs_values(fs_time, 36864, 35431321600)
    values += _fs_values(fs_time, 4096 * (1 + int(c.cpu_seconds) % 64), 35431321600)
    if style.swap:
        values.append(_rfc3339(ts))
    return template.fill(values)


def _render_pod(p: PodReading, style: _SummaryStyle) -> str:
    template = _pod_template(p.namespace, p.name, p.uid, p.volumes, p.memory_limit_bytes is not None, style)
    ts = p.timestamp
    if p.containers:
        inner = ",\n    ".join(_render_container(c, style) for c in p.containers)
        containers = "[\n    " + inner + "\n   ]"
    else:
        containers = "[]"
    values = [_rfc3339(p.start_time), containers]
    values += _cpu_memory_values(ts, p.cpu_seconds, p.cpu_nano_cores, p.memory_working_set_bytes,
                                 p.memory_limit_bytes, style.io_psi)
    if not style.full:
        return template.fill(values)
    if style.io_psi:
        values.append(_rfc3339(ts))
    values += _network_values(ts - 3, p.network_rx_bytes, p.network_tx_bytes)
    fs_time = ts - (int(p.start_time) % 53)
    for _ in p.volumes:
        values += _fs_values(fs_time, 12288, 35431321600)
    values += _fs_values(fs_time, p.ephemeral_storage_bytes, 35431321600)
    values.append(str(len(p.containers) * 2))
    if style.swap:
        values.append(_rfc3339(ts))
    return template.fill(values)


@lru_cache(maxsize=16)
def _node_template(name: str, style: _SummaryStyle) -> _Template:
    hole = _Holes()
    system_containers = []
    for system in ("kubelet", "pods"):
        entry: dict[str, Any] = {"name": system, "startTime": hole()}
        entry["cpu"], entry["memory"] = _cpu_memory_skeleton(hole, system == "pods", style.io_psi)
        if style.io_psi and style.full:
            entry["io"] = _io(hole)
        if style.swap and style.full:
            entry["swap"] = {"time": hole(), "swapUsageBytes": 0}
        system_containers.append(entry)
    start = hole()
    cpu, memory = _cpu_memory_skeleton(hole, True, style.io_psi)
    skeleton: dict[str, Any] = {"nodeName": name, "systemContainers": system_containers, "startTime": start,
                                "cpu": cpu, "memory": memory}
    if not style.full:
        return _Template(skeleton, 1)
    if style.io_psi:
        skeleton["io"] = _io(hole)
    skeleton["network"] = _network_skeleton(hole)
    skeleton["fs"] = _fs(hole)
    skeleton["runtime"] = {"imageFs": _fs(hole), "containerFs": _fs(hole)}
    skeleton["rlimit"] = {"time": hole(), "maxpid": 125722, "curproc": hole()}
    if style.swap:
        skeleton["swap"] = {"time": hole(), "swapAvailableBytes": 0, "swapUsageBytes": 0}
    return _Template(skeleton, 1)


def _render_node(node: NodeReading, style: _SummaryStyle) -> str:
    ts = node.timestamp
    capacity = node.memory_capacity_bytes
    pods_cpu = sum(p.cpu_seconds for p in node.pods)
    pods_rate = sum(p.cpu_nano_cores for p in node.pods)
    pods_memory = sum(p.memory_working_set_bytes for p in node.pods)
    kubelet_cpu = (ts - node.start_time) * 0.018
    values: list[str] = []
    for start, cpu_seconds, rate, memory, limit in (
            (node.start_time + 5, kubelet_cpu, 18e6, 45109248.0, None),
            (node.start_time, pods_cpu, pods_rate, pods_memory, capacity)):
        values.append(_rfc3339(start))
        values += _cpu_memory_values(ts, cpu_seconds, rate, memory, limit, style.io_psi)
        if style.io_psi and style.full:
            values.append(_rfc3339(ts))
        if style.swap and style.full:
            values.append(_rfc3339(ts))
    values.append(_rfc3339(node.start_time))
    values += _cpu_memory_values(ts, node.cpu_seconds, node.cpu_nano_cores, node.memory_working_set_bytes,
                                 capacity, style.io_psi)
    if not style.full:
        return _node_template(node.name, style).fill(values)
    if style.io_psi:
        values.append(_rfc3339(ts))
    values += _network_values(ts, node.network_rx_bytes, node.network_tx_bytes)
    values += _fs_values(ts, 35431321600, 0)
    values += _fs_values(ts, 2433445888, 35431321600)
    values += _fs_values(ts, 2433445888, 35431321600)
    values += [_rfc3339(ts + 9), str(400 + 12 * len(node.pods))]
    if style.swap:
        values.append(_rfc3339(ts))
    return _node_template(node.name, style).fill(values)


def render_stats_summary(node: NodeReading, version: tuple[int, int], *, cpu_and_memory_only: bool = False) -> bytes:
    """The ``/stats/summary`` body of ``node``, as the kubelet of ``version`` writes it."""
    style = _SummaryStyle.of(version, cpu_and_memory_only)
    head = '{\n "node": ' + _render_node(node, style) + ',\n "pods": '
    if not node.pods:
        return (head + "[]\n}").encode()
    pods = ",\n  ".join(_render_pod(p, style) for p in node.pods)
    return (head + "[\n  " + pods + "\n ]\n}").encode()
