"""The HTTP endpoints answer what the runtime says, on loopback: /metrics, /healthz, /readyz."""

from __future__ import annotations

import aiohttp

from kubemeter.endpoints import Endpoints


async def test_probes_answer_with_the_status_and_reason_they_are_given():
    state = {"problem": None, "ready": (False, "initial listing in progress")}
    endpoints = Endpoints(lambda: b"kubemeter_up 1\n", lambda: state["problem"], lambda: state["ready"])
    port = await endpoints.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str, str]:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    return response.status, response.headers["Content-Type"], await response.text()

            status, content_type, body = await get("/metrics")
            assert (status, body) == (200, "kubemeter_up 1\n") and content_type.startswith("text/plain")
            assert (await get("/healthz"))[::2] == (200, "ok\n")
            assert (await get("/readyz"))[::2] == (503, "initial listing in progress\n")
            state.update(problem="policy loops stopped: p", ready=(True, "ok (standby)"))
            assert (await get("/healthz"))[::2] == (500, "policy loops stopped: p\n")
            assert (await get("/readyz"))[::2] == (200, "ok (standby)\n")
    finally:
        await endpoints.close()
