"""The operator's HTTP endpoints on one port: ``/metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz``.

What each answers is given as a function, so the server knows nothing of the runtime: ``health`` returns why
the operator is not alive (``None`` when it is), ``ready`` whether it is ready and what to say.

With ``--metrics-auth=delegated`` the port is HTTPS (``tls``) and ``/metrics`` answers only requests whose bearer
token the API server allows to ``get /metrics`` (``guard``); the probes stay unauthenticated on the same port, as
in metrics-server and kube-state-metrics (the kubelet probes HTTPS without verifying the certificate or sending a
token), so a pod needs no second port.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import prometheus_client
from aiohttp import web

from kubemeter.delegated_auth import DelegatedAuth

REFUSAL_HEADERS = {401: {"WWW-Authenticate": 'Bearer realm="kubemeter"'}, 429: {"Retry-After": "1"}}


def _qualities(header: str) -> dict[str, float]:
    """Content coding (lower case) -> its qvalue in an Accept-Encoding header (RFC 9110 12.5.3); an element whose
    qvalue is malformed is left out."""
    found: dict[str, float] = {}
    for element in header.split(","):
        coding, *parameters = (part.strip() for part in element.split(";"))
        if not coding:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            found[coding.lower()] = max(quality, found.get(coding.lower(), 0.0))
    return found


def accepts_gzip(header: str | None) -> bool:
    """Whether a response to a request with this Accept-Encoding header is gzipped: gzip (or ``*``) has a qvalue
    above 0 and at least identity's when identity is named (or ``*`` is). ``q=0`` means not acceptable; without the
    header, or when the client refuses both, the body goes as it is (identity is acceptable unless refused)."""
    if not header:
        return False
    qualities = _qualities(header)
    anything = qualities.get("*")
    gzip = qualities.get("gzip", qualities.get("x-gzip", anything if anything is not None else 0.0))
    # identity unlisted is acceptable, yet no preference over a coding the client names
    identity = qualities.get("identity", anything if anything is not None else 0.0)
    return gzip > 0.0 and gzip >= identity


class Endpoints:
    def __init__(
        self,
        exposition: Callable[[], bytes],
        health: Callable[[], str | None],
        ready: Callable[[], tuple[bool, str]],
        guard: DelegatedAuth | None = None,
    ) -> None:
        self._exposition, self._health, self._ready = exposition, health, ready
        self._guard = guard
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Serve on ``host:port`` (HTTPS with ``tls``); returns the port bound (a free one when 0 was asked).
        Raises OSError."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=tls)
        await site.start()
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        if self._guard is not None:
            decision = await self._guard.check(request.headers.get("Authorization"))
            if decision.status != 200:
                return web.Response(status=decision.status, text=f"{decision.reason}\n",
                                    headers=REFUSAL_HEADERS.get(decision.status))
        response = web.Response(body=self._exposition(),
                                headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})
        # Compressed as the client's Accept-Encoding allows (Prometheus asks for gzip): a large cluster's
        # exposition is tens of megabytes of repetitive text.
        if accepts_gzip(request.headers.get("Accept-Encoding")):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _serve_health(self, request: web.Request) -> web.Response:
        problem = self._health()
        if problem is not None:
            return web.Response(status=500, text=f"{problem}\n")
        return web.Response(text="ok\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        ready, text = self._ready()
        return web.Response(status=200 if ready else 503, text=f"{text}\n")
