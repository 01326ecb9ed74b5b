"""Format detection and the single decode entry point; also the ``kubemeter parse`` output."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from kubemeter.scrape.resource import decode_resource
from kubemeter.scrape.samples import DecodeError
from kubemeter.scrape.summary import decode_summary
from kubemeter.types import NodeMetrics

RESOURCE, SUMMARY = "resource", "summary"
_DECODERS = {RESOURCE: decode_resource, SUMMARY: decode_summary}

_SNIFF_BYTES = 4096  # detection looks at the head of the body only: it must stay O(1)
_GZIP_MAGIC = b"\x1f\x8b"
_JSON_KIND = re.compile(rb'"kind"\s*:\s*"([^"]{1,64})"')
_JSON_NODE_KEY = re.compile(rb'"node(?:Name)?"\s*:')
# A text exposition sample: metric name, optional labels, blank, a number.
_METRIC_LINE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?[ \t]+([^ \t]+)")


def detect_format(body: bytes) -> str:
    """``"resource"`` (Prometheus text: ``/metrics/resource`` or ``/metrics/cadvisor``) or
    ``"summary"`` (``/stats/summary`` JSON); raises :class:`DecodeError` saying what the body looks like."""
    head = body[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")  # a UTF-8 BOM is harmless
    if not head:
        raise DecodeError("empty body")
    if head.startswith(_GZIP_MAGIC):
        raise DecodeError("gzip-compressed data: decompress it first")
    if b"\x00" in head:
        raise DecodeError("binary data (protobuf?), not kubelet text or JSON")
    first = head[:1]
    if first == b"<":
        raise DecodeError(f"an HTML/XML page, not a kubelet payload: {_first_line(head)}")
    if first in (b"{", b"["):
        return _detect_json(head)
    return _detect_text(head, complete=len(body) <= _SNIFF_BYTES)


def decode(body: bytes, scrape_time: float, fmt: str | None = None) -> NodeMetrics:
    """Decode a kubelet body of format ``fmt`` (detected when ``None``)."""
    decoder = _DECODERS.get(fmt or detect_format(body))
    if decoder is None:
        raise DecodeError(f"unknown payload format {fmt!r}: expected one of {sorted(_DECODERS)}")
    return decoder(body, scrape_time)


def parse_json(metrics: NodeMetrics) -> dict[str, Any]:
    """The ``kubemeter parse`` document: every value the operator uses, ``None`` (null) where absent.

    ``cpuSeconds`` is the cumulative counter in core-seconds; ``timestamp`` (when the kubelet took the sample)
    and ``startTime`` are unix seconds.
    """
    node = metrics.node
    return {
        "node": {
            "name": node.name,
            "cpuSeconds": node.cpu_seconds,
            "cpuNanoCores": node.cpu_nano_cores,
            "memoryWorkingSetBytes": node.memory_working_set_bytes,
            "timestamp": node.timestamp,
        },
        "pods": [
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "uid": pod.uid,
                "cpuSeconds": pod.cpu_seconds,
                "memoryWorkingSetBytes": pod.memory_working_set_bytes,
                "networkRxBytes": pod.network_rx_bytes,
                "networkTxBytes": pod.network_tx_bytes,
                "ephemeralStorageBytes": pod.ephemeral_storage_bytes,
                "timestamp": pod.timestamp,
                "containers": [
                    {
                        "name": container.name,
                        "cpuSeconds": container.cpu_seconds,
                        "cpuNanoCores": container.cpu_nano_cores,
                        "memoryWorkingSetBytes": container.memory_working_set_bytes,
                        "timestamp": container.timestamp,
                        "startTime": container.start_time,
                    }
                    for container in pod.containers
                ],
            }
            for pod in metrics.pods
        ],
    }


def parse_file(path: str) -> dict[str, Any]:
    """Read a saved kubelet body, detect its format, decode it: the ``kubemeter parse FILE`` output."""
    body = Path(path).read_bytes()
    return parse_json(decode(body, scrape_time=time.time()))


def _detect_json(head: bytes) -> str:
    kind = _JSON_KIND.search(head)
    if kind is not None:
        name = kind.group(1).decode("utf-8", "replace")
        hint = " (the kubelet /pods endpoint)" if name == "PodList" else ""
        raise DecodeError(f"Kubernetes API JSON (kind {name}){hint}, not a kubelet /stats/summary")
    if head[:1] == b"{" and _JSON_NODE_KEY.search(head):
        return SUMMARY
    raise DecodeError(f"JSON without a 'node' object, not a kubelet /stats/summary: {_first_line(head)}")


def _detect_text(head: bytes, complete: bool) -> str:
    lines = head.decode("utf-8", "replace").splitlines()
    saw_comment = False
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            saw_comment = True
            continue
        if number == len(lines) and not complete:
            break  # a sample line cut by the sniff: judge by what came before
        match = _METRIC_LINE.match(line)
        if match is not None and _is_number(match.group(1)):
            return RESOURCE
        raise DecodeError(f"text that is not Prometheus metrics: {_first_line(line.encode())}")
    if saw_comment:  # only HELP/TYPE lines within the sniffed head (long HELP texts, big label sets)
        return RESOURCE
    raise DecodeError(f"text that is not Prometheus metrics: {_first_line(head)}")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _first_line(data: bytes) -> str:
    line = data.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
    return repr(line if len(line) <= 80 else line[:77] + "...")
