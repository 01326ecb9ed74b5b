"""Decoder for the kubelet's Prometheus text endpoints: ``/metrics/resource`` and ``/metrics/cadvisor``.

Only the families kubemeter needs are read; every other line is skipped after a dict lookup on its
metric name, so the 1.4 MB cadvisor payload costs little more than splitting it into lines.

Decisions (the rate stage and the tests rely on them):

* ``timestamp`` is the series' own millisecond timestamp (OpenMetrics, recognised by its ``# EOF``
  line: seconds). A sample without one keeps ``timestamp=None``; the rate stage then uses the
  scrape time. ``container_start_time_seconds`` never sets ``timestamp``: in 1.28-era kubelets its
  timestamp is the start time itself, not the time of the reading.
* NaN and +/-Inf mean "no usable value": the field becomes ``None``.
* Duplicate series (never sent by a healthy kubelet): the last one wins.
* ``/metrics/cadvisor`` series are told apart by their labels: ``container`` and ``pod`` both
  non-empty is a container; ``container=""`` with a ``pod`` and an empty ``name`` (no runtime
  container id) is the pod cgroup (its ``id`` path gives the pod UID); ``id="/"`` is the node (root
  cgroup). Pause containers (``container=""`` with a ``name``), system slices and per-CPU rows
  (``cpu`` other than ``total``) are ignored.
* ``scrape_error`` / ``resource_scrape_error`` is not a sample; read it with :func:`kubelet_scrape_error`.
"""

from __future__ import annotations

import re

from kubemeter.scrape.samples import MAX_QUANTITY, DecodeError
from kubemeter.types import ContainerSample, NodeMetrics, NodeSample, PodSample

_CONTAINER, _POD, _NODE, _SCRAPE_ERROR = 0, 1, 2, 3
_CPU, _MEMORY, _START = 0, 1, 2

# metric name -> (level, field): every family the decoder reads; any other name is skipped unparsed.
_FAMILIES: dict[str, tuple[int, int]] = {
    "container_cpu_usage_seconds_total": (_CONTAINER, _CPU),
    "container_memory_working_set_bytes": (_CONTAINER, _MEMORY),
    "container_start_time_seconds": (_CONTAINER, _START),
    "pod_cpu_usage_seconds_total": (_POD, _CPU),
    "pod_memory_working_set_bytes": (_POD, _MEMORY),
    "node_cpu_usage_seconds_total": (_NODE, _CPU),
    "node_memory_working_set_bytes": (_NODE, _MEMORY),
    # Not samples (the field is unused), but proof that the body is a kubelet resource payload even
    # with nothing running; kubelet_scrape_error() reads their value.
    "scrape_error": (_SCRAPE_ERROR, _CPU),
    "resource_scrape_error": (_SCRAPE_ERROR, _CPU),
}
# The exact text before the first quote of the kubelet's own label sets -> (level, field).
_FAST_HEADS = {
    name + ("{container=" if level == _CONTAINER else "{namespace="): (level, field)
    for name, (level, field) in _FAMILIES.items()
    if level in (_CONTAINER, _POD)
}
_INF = float("inf")

# Slow path only (escaped label values, tabs, odd spacing): one label ``name="value"`` and its comma.
_LABEL = re.compile(r'[ \t]*([^\s=,{}"]+)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*,?')
_LABELS_END = re.compile(r"[ \t]*\}")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n"}
_SCRAPE_ERROR_LINE = re.compile(
    r"^(?:resource_|container_)?scrape_error(?:\{[^}\n]*\})?[ \t]+([^ \t\r\n]+)", re.MULTILINE
)

_Sample = ContainerSample | PodSample | NodeSample


def decode_resource(body: bytes | str, scrape_time: float) -> NodeMetrics:
    """Decode a ``/metrics/resource`` (or ``/metrics/cadvisor``) body; raises :class:`DecodeError`.

    ``scrape_time`` is not copied into the samples: a sample without its own timestamp keeps
    ``timestamp=None`` so the rate stage can tell "kubelet time" from "our time".
    """
    del scrape_time  # part of the common decoder signature; see the docstring
    text = _as_text(body)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    # OpenMetrics timestamps are seconds; the classic text format's are milliseconds.
    divisor = 1.0 if text[-64:].rstrip().endswith("# EOF") else 1000.0
    builder = _Builder()
    containers, pods, families = builder.containers, builder.pods, _FAMILIES
    # Without a backslash anywhere, every quote delimits a label value: the fast path may split on quotes.
    fast_heads = _FAST_HEADS if "\\" not in text else {}
    found = False
    inf, negative_inf, most = _INF, -_INF, MAX_QUANTITY
    target: _Sample | None
    for line in text.split("\n"):
        # Fast path: the kubelet's own label sets (container,namespace,pod / namespace,pod) by position.
        parts = line.split('"')
        fast = fast_heads.get(parts[0])
        tail = None
        if fast is not None:
            level, field = fast
            if level == _CONTAINER:
                if len(parts) == 7 and parts[2] == ",namespace=" and parts[4] == ",pod=" and parts[6][:1] == "}":
                    key = (parts[3], parts[5], parts[1])
                    target = containers.get(key) or builder.container(*key)
                    tail = parts[6][1:]
            elif len(parts) == 5 and parts[2] == ",pod=" and parts[4][:1] == "}":
                if parts[1] and parts[3]:
                    target = pods.get((parts[1], parts[3])) or builder.pod(parts[1], parts[3])
                else:
                    target = None
                tail = parts[4][1:]
        if tail is None:
            if not line or line[0] == "#":
                continue
            brace = line.find("{")
            if brace > 0 and line[:brace] not in families and " " not in line[:brace]:
                continue  # a family kubemeter does not read: most of /metrics/cadvisor
            resolved = _resolve_unusual_line(line, builder)
            if resolved is None:
                continue
            field, target, tail = resolved
        found = True
        if target is None:
            continue
        tokens = tail.split()
        try:
            value: float | None = float(tokens[0])
            timestamp = float(tokens[1]) / divisor if len(tokens) > 1 and tokens[1] != "#" else None
        except (IndexError, ValueError):
            raise DecodeError(f"malformed sample value in {_excerpt(line)}") from None
        if not 0.0 <= value <= most:  # type: ignore[operator]  # samples.plausible, inlined on the hot path
            value = None
        if timestamp is not None and not negative_inf < timestamp < inf:
            timestamp = None
        if field == _CPU:
            target.cpu_seconds = value
            if timestamp is not None:
                target.timestamp = timestamp
        elif field == _MEMORY:
            target.memory_working_set_bytes = value
            # CPU and memory of one container come from one stats read; the CPU reading's time wins.
            if target.timestamp is None:
                target.timestamp = timestamp
        elif isinstance(target, ContainerSample):  # cadvisor also has start times of pod and root cgroups
            # Its timestamp, when present, is the start time again (1.28), not the time of a reading.
            target.start_time = value
    if not found:
        raise DecodeError("no kubelet resource metrics (container_/pod_/node_ cpu or memory) in the text")
    return NodeMetrics(node=builder.node, pods=list(pods.values()))


def kubelet_scrape_error(body: bytes | str) -> bool | None:
    """Whether the kubelet says its own scrape failed (``scrape_error`` / ``resource_scrape_error`` /
    cadvisor ``container_scrape_error`` non-zero); ``None`` when the payload has no such series.

    A kubelet that reports 1 still serves what it collected, so this is a warning, not a decode failure.
    """
    text = _as_text(body)
    reported: bool | None = None
    for match in _SCRAPE_ERROR_LINE.finditer(text):
        try:
            value = float(match.group(1))
        except ValueError:
            continue
        reported = bool(reported) or value != 0
    return reported


def _as_text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8-sig")  # a byte order mark would hide the first line's name
    except UnicodeDecodeError as exc:
        raise DecodeError(f"metrics text is not UTF-8 (byte {exc.start}): binary or compressed data?") from None


def _resolve_unusual_line(line: str, builder: _Builder) -> tuple[int, _Sample | None, str] | None:
    """Field, target and value text of a line off the fast path (no labels, cadvisor label sets,
    escapes, odd blanks); ``None`` when it is not a family kubemeter reads."""
    line = line.lstrip()
    if not line or line[0] == "#":
        return None
    name_end = len(line)
    for separator in ("{", " ", "\t"):
        found = line.find(separator, 0, name_end)
        if found >= 0:
            name_end = found
    family = _FAMILIES.get(line[:name_end])
    if family is None:
        return None
    rest = line[name_end:].lstrip(" \t")
    labels: dict[str, str] = {}
    if rest[:1] == "{":
        if "\\" in rest or "\t" in rest:
            labels, rest = _labels_slow(rest, 0)
        else:
            labels, rest = _labels_split(rest[1:].split('"'), line)
    return family[1], builder.target(family[0], labels), rest


def _labels_split(parts: list[str], line: str) -> tuple[dict[str, str], str]:
    """Labels of a line without backslashes, split on quotes: values sit at the odd indexes."""
    labels: dict[str, str] = {}
    last = len(parts) - 1
    i = 0
    while True:
        key_part = parts[i]
        close = key_part.find("}")
        if close >= 0:  # a key part cannot hold "}", so this is the end of the label set
            if key_part[:close].strip(" ,"):
                raise DecodeError(f"malformed labels in {_excerpt(line)}")
            return labels, key_part[close + 1 :]
        key_part = key_part.rstrip(" ")  # blanks around "=" are allowed, as Go's text parser allows them
        if i + 2 > last or not key_part.endswith("="):  # a value needs a key part after it
            raise DecodeError(f"malformed labels in {_excerpt(line)}")
        labels[key_part[:-1].strip(", ")] = parts[i + 1]
        i += 2


def _labels_slow(line: str, brace: int) -> tuple[dict[str, str], str]:
    """Labels with escapes (``\\\\``, ``\\"``, ``\\n``) or tabs; linear, one regex match per label."""
    labels: dict[str, str] = {}
    pos = brace + 1
    while True:
        end = _LABELS_END.match(line, pos)
        if end is not None:
            return labels, line[end.end() :]
        match = _LABEL.match(line, pos)
        if match is None:
            raise DecodeError(f"malformed labels in {_excerpt(line)}")
        value = match.group(2)
        if "\\" in value:
            # Unknown escapes stay as written, as the Prometheus client parser keeps them.
            value = _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), value)
        labels[match.group(1)] = value
        pos = match.end()


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= 120 else line[:117] + "...")


class _Builder:
    """The samples of one body, keyed by pod and container, in first-seen order."""

    __slots__ = ("node", "pods", "containers")

    def __init__(self) -> None:
        self.node = NodeSample()
        self.pods: dict[tuple[str, str], PodSample] = {}
        self.containers: dict[tuple[str, str, str], ContainerSample] = {}

    def pod(self, namespace: str, name: str) -> PodSample:
        pod = self.pods.get((namespace, name))
        if pod is None:
            pod = self.pods[(namespace, name)] = PodSample(namespace=namespace, name=name)
        return pod

    def container(self, namespace: str, pod: str, name: str) -> ContainerSample | None:
        if not (namespace and pod and name) or name == "POD":  # "POD": dockershim's pause container
            return None
        sample = self.containers.get((namespace, pod, name))
        if sample is None:
            sample = self.containers[(namespace, pod, name)] = ContainerSample(name=name)
            self.pod(namespace, pod).containers.append(sample)
        return sample

    def target(self, level: int, labels: dict[str, str]) -> _Sample | None:
        """Where a series with these labels belongs; ``None`` for series kubemeter ignores."""
        if level == _NODE:
            return self.node
        if level == _SCRAPE_ERROR:
            return None
        namespace = labels.get("namespace", "")
        pod = labels.get("pod", "")
        if level == _POD:
            return self.pod(namespace, pod) if namespace and pod else None
        if level != _CONTAINER or labels.get("cpu", "total") != "total":  # cadvisor per-CPU rows
            return None
        container = labels.get("container", "")
        if container:
            return self.container(namespace, pod, container)
        if "id" not in labels:
            return None
        # /metrics/cadvisor cgroups that are not containers: the pod's own (no runtime id in "name")
        # and the root. The pause container has a "name"; system slices have no pod.
        if namespace and pod and not labels.get("name"):
            sample = self.pod(namespace, pod)
            sample.uid = _pod_uid(labels["id"]) or sample.uid
            return sample
        return self.node if labels["id"] == "/" else None


def _pod_uid(cgroup: str) -> str | None:
    """The pod UID in a pod cgroup path: ``.../pod<uid>`` (cgroupfs driver) or
    ``.../kubepods-<qos>-pod<uid with _ for ->.slice`` (systemd driver)."""
    leaf = cgroup.rpartition("/")[2]
    if leaf.startswith("pod"):
        return leaf[3:] or None
    if leaf.endswith(".slice") and "-pod" in leaf:
        return leaf[leaf.rindex("-pod") + 4 : -6].replace("_", "-") or None
    return None
