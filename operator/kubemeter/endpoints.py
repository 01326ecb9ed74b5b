"""The operator's HTTP endpoints on one port: ``/metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz``.

What each answers is given as a function, so the server knows nothing of the runtime: ``health`` returns why
the operator is not alive (``None`` when it is), ``ready`` whether it is ready and what to say.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
from aiohttp import web


class Endpoints:
    def __init__(
        self,
        exposition: Callable[[], bytes],
        health: Callable[[], str | None],
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        self._exposition, self._health, self._ready = exposition, health, ready
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Serve on ``host:port``; returns the port bound (a free one when 0 was asked). Raises OSError."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._exposition(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def _serve_health(self, request: web.Request) -> web.Response:
        problem = self._health()
        if problem is not None:
            return web.Response(status=500, text=f"{problem}\n")
        return web.Response(text="ok\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        ready, text = self._ready()
        return web.Response(status=200 if ready else 503, text=f"{text}\n")
