"""Kubelet misbehaviour to inject, and how each one looks on the wire.

A :class:`Fault` is set per node (``Cluster.node_fault(name, fault)``) and applies equally to direct
HTTPS scrapes and to the API server's ``nodes/{name}/proxy`` path. Listener-level faults (``refused``,
``tls``) are carried out by the kubelet's listener; this module does the HTTP-level ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from kubemeter.timefmt import parse_duration

FaultKind = Literal[
    "latency", "timeout", "http500", "refused", "garbage", "truncated", "oversized", "tls",
    "unauthorized", "forbidden", "redirect", "clock_skew", "backwards", "flapping",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency", "timeout", "http500", "refused", "garbage", "truncated", "oversized", "tls",
    "unauthorized", "forbidden", "redirect", "clock_skew", "backwards", "flapping",
)

_DEFAULT_SECONDS: dict[str, float] = {"latency": 2.0, "clock_skew": 300.0, "backwards": 600.0}
OVERSIZED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of misbehaviour.

    ``seconds`` is the delay (``latency``), the clock offset (``clock_skew``, may be negative) or how far
    each scrape's timestamps fall behind the previous one (``backwards``). ``size_bytes`` is the body size
    of ``oversized``.
    """

    kind: FaultKind
    seconds: float = 0.0
    size_bytes: int = OVERSIZED_BYTES

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if not self.seconds and self.kind in _DEFAULT_SECONDS:
            object.__setattr__(self, "seconds", _DEFAULT_SECONDS[self.kind])

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """``timeout``, ``latency=3s``, ``clock_skew=-5m``, ``oversized=1048576`` (the CLI form)."""
        kind, _, argument = text.partition("=")
        kind = kind.strip().replace("-", "_")
        if not argument:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "oversized":
            return cls(kind, size_bytes=int(argument))
        magnitude = argument.lstrip("-")
        try:
            seconds = float(magnitude)
        except ValueError:
            seconds = parse_duration(magnitude)
        return cls(kind, seconds=-seconds if argument.startswith("-") else seconds)  # type: ignore[arg-type]

    @property
    def spoils_body(self) -> bool:
        """The client does not get the body the kubelet rendered."""
        return self.kind in ("garbage", "truncated", "oversized")

    def timestamp_offset(self, scrape_number: int) -> float:
        """Seconds to add to every sample timestamp of the ``scrape_number``-th scrape (from 1)."""
        if self.kind == "clock_skew":
            return self.seconds
        if self.kind == "backwards":
            return -self.seconds * scrape_number
        return 0.0


def forbidden_text(user: str, verb: str, subresource: str) -> str:
    """The kubelet's own 403 body (pkg/kubelet/server/auth.go)."""
    return f"Forbidden (user={user}, verb={verb}, resource=nodes, subresource={subresource})"


async def failure_response(fault: Fault, scrape_number: int, user: str, subresource: str,
                           shutdown: asyncio.Event) -> web.Response | None:
    """The response replacing the real one before any body is produced, or ``None`` to go on.

    ``latency`` only delays; ``timeout`` never answers (the client must give up) until ``shutdown`` is set,
    so that servers in front of the kubelet (the API server's proxy) can stop without waiting.
    """
    if fault.kind == "latency":
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(shutdown.wait(), fault.seconds)
    elif fault.kind == "timeout":
        await shutdown.wait()
        return web.Response(status=503, text="kubelet is shutting down")
    elif fault.kind == "http500" or (fault.kind == "flapping" and scrape_number % 2 == 0):
        return web.Response(status=500, text="Internal Error: failed to get node info: simulated failure")
    elif fault.kind == "unauthorized":
        return web.Response(status=401, text="Unauthorized")
    elif fault.kind == "forbidden":
        return web.Response(status=403, text=forbidden_text(user, "get", subresource))
    elif fault.kind == "redirect":
        # A compromised node sending the client elsewhere; followed, it would get the kubelet's "ok" as a payload.
        return web.Response(status=302, headers={"Location": "/healthz"})
    return None


async def send_body(fault: Fault | None, request: web.Request, body: bytes, content_type: str) -> web.StreamResponse:
    """Send ``body``, or what the fault makes of it: garbage, a truncated body, or an oversized one."""
    if fault is None or not fault.spoils_body:
        return web.Response(body=body, content_type=content_type, charset="utf-8" if "json" not in content_type else None)
    response = web.StreamResponse(status=200)
    response.content_type = content_type
    if fault.kind == "garbage":
        noise = random.Random(len(body)).randbytes(max(64, min(len(body), 4096)))
        response.content_length = len(noise)
        await response.prepare(request)
        await response.write(noise)
    elif fault.kind == "truncated":
        # Content-Length promises the whole body; the connection is cut half way through it.
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return response
    else:
        response.content_length = fault.size_bytes
        await response.prepare(request)
        chunk = (body or b"#\n") * (1 + 1024 * 1024 // max(1, len(body)))
        remaining = fault.size_bytes
        while remaining > 0:
            piece = chunk[:remaining]
            await response.write(piece)
            remaining -= len(piece)
    await response.write_eof()
    return response
