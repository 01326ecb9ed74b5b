"""KubeApi's retries: what is retried, how long it waits, and that every attempt goes through the rate limiter.

The sleeps are recorded instead of slept, so the backoff is checked by value, not by the clock.
"""

from __future__ import annotations

import asyncio

import aiohttp
import kubernetes
import pytest
import urllib3
from kubemeter.kubeapi import CONFLICT, AsyncStatusPatch, KubeApi, RateLimiter, describe
from kubernetes.client.exceptions import ApiException


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(qps=1e9, burst=1_000_000)
        self.tokens = 0

    async def acquire(self) -> None:
        self.tokens += 1
        await super().acquire()


def api_with(limiter: RateLimiter, delays: list[float], results: list[str] | None = None,
             host: str = "https://127.0.0.1:1", **options) -> KubeApi:
    """``host``: by default never contacted (the calls are plain functions)."""
    async def record(seconds: float) -> None:
        delays.append(seconds)

    config = kubernetes.client.Configuration()
    config.host = host
    on_call = results.append if results is not None else None
    return KubeApi(config, limiter, sleep=record, on_call=on_call, **options)


def failing(*statuses: int, retry_after: str | None = None):
    """A call that fails with these statuses in turn, then returns "done"."""
    pending = list(statuses)

    def call(**_request_options) -> str:
        if pending:
            exc = ApiException(status=pending.pop(0), reason="injected")
            exc.headers = {"Retry-After": retry_after} if retry_after is not None else {}
            raise exc
        return "done"

    return call


async def test_each_attempt_takes_a_token_and_the_backoff_doubles_with_jitter():
    limiter, delays, results = CountingLimiter(), [], []
    api = api_with(limiter, delays, results, base_backoff=1.0, max_attempts=6)
    assert await api.call(failing(503, 500, 502, 504, 429)) == "done"
    assert limiter.tokens == 6 and api.requests == 6
    assert results == ["retried"] * 5 + ["success"]
    for attempt, delay in enumerate(delays):
        assert 0.5 * 2**attempt <= delay < 1.5 * 2**attempt, (attempt, delay)


async def test_writes_that_fail_together_do_not_retry_together():
    delays: list[float] = []
    api = api_with(CountingLimiter(), delays, base_backoff=1.0)
    assert await asyncio.gather(*(api.call(failing(503)) for _ in range(50))) == ["done"] * 50
    assert len(delays) == 50 and all(0.5 <= d < 1.5 for d in delays)
    assert max(delays) - min(delays) > 0.5  # spread over the jitter range, not one instant


async def test_retry_after_from_the_server_is_obeyed():
    delays: list[float] = []
    api = api_with(CountingLimiter(), delays)
    assert await api.call(failing(429, retry_after="3")) == "done"
    assert delays == [3.0]


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
async def test_client_errors_are_not_retried(status):
    limiter, delays, results = CountingLimiter(), [], []
    api = api_with(limiter, delays, results)
    with pytest.raises(ApiException) as raised:
        await api.call(failing(status))
    assert raised.value.status == status and limiter.tokens == 1 and delays == []
    assert len(results) == 1 and results[0] != "retried"


async def test_a_conflict_is_retried_only_where_the_caller_says_it_is_safe():
    delays: list[float] = []
    api = api_with(CountingLimiter(), delays)
    assert await api.call(failing(409, 409), also_retry=CONFLICT) == "done"
    assert len(delays) == 2


async def test_it_gives_up_after_max_attempts_and_says_so():
    limiter, delays, results = CountingLimiter(), [], []
    api = api_with(limiter, delays, results, max_attempts=3)
    with pytest.raises(ApiException):
        await api.call(failing(503, 503, 503, 503))
    assert limiter.tokens == 3 and len(delays) == 2 and results == ["retried", "retried", "error"]


async def test_connection_errors_are_retried():
    delays: list[float] = []
    attempts = []

    def refused(**_request_options) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("connection refused")
        return "done"

    api = api_with(CountingLimiter(), delays)
    assert await api.call(refused) == "done" and len(delays) == 2


async def test_a_request_the_server_never_answers_times_out_and_is_retried(caplog):
    """A server that accepts the connection and the request and never answers (a wedged apiserver, a cut
    that left the TCP connection up): each attempt ends after the request timeout, is logged, and retried;
    while one waits, its age is visible (what /healthz looks at)."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    delays, results = [], []
    api = api_with(CountingLimiter(), delays, results, max_attempts=2, request_timeout=0.5,
                   host=f"http://127.0.0.1:{port}")
    ages = []

    async def watch_age() -> None:
        while True:
            ages.append(api.oldest_request_age())
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_age())
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            await api.call(api.core.read_namespace, "default")
    finally:
        watcher.cancel()
        server.close()
        for writer in accepted:
            writer.close()
    assert asyncio.get_running_loop().time() - started < 10
    assert len(accepted) >= 2 and results == ["retried", "timeout"]
    assert max(ages) >= 0.3 and api.oldest_request_age() == 0.0
    assert "had no answer within 0.5s (attempt 1 of 2)" in caplog.text


def test_a_failed_call_is_described_with_the_api_servers_message():
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = '{"kind":"Status","message":"WorkloadMetrics.kubemeter.io \\"x\\" is invalid: metadata.name: Invalid"}'
    assert describe(exc) == '422 Unprocessable Entity: WorkloadMetrics.kubemeter.io "x" is invalid: metadata.name: Invalid'
    assert describe(ApiException(status=503, reason="Service Unavailable")) == "503 Service Unavailable"


def test_other_errors_are_described_on_one_line():
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(OSError("connection\n  refused")) == "connection refused"


async def test_a_status_patch_is_sent_from_the_event_loop_as_the_client_would_and_fails_as_it_does():
    """The status patch (KubeApi's one request sent with aiohttp, not the blocking client): the same request (path,
    JSON patch, field manager, bearer token), a 503 retried, a refusal raised as the client's ApiException with
    the server's message, a wrong address retried as a connection error."""
    from aiohttp import web

    seen: list[tuple[str, str, str, str, object]] = []
    answers = [(503, {"message": "busy"}), (200, {"status": {"pods": 1}}), (422, {"message": "status.pods: Invalid"})]

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.query.get("fieldManager", ""),
                     request.headers.get("Authorization", ""), await request.json()))
        code, body = answers.pop(0)
        return web.json_response({"kind": "Status", **body} if code >= 400 else body, status=code,
                                 content_type="application/json")

    app = web.Application()
    app.router.add_patch("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    delays, results = [], []
    api = api_with(CountingLimiter(), delays, results, host=f"http://127.0.0.1:{port}")
    api.client.configuration.api_key = {"authorization": "Bearer secret"}
    patch = [{"op": "add", "path": "/status", "value": {"pods": 1}}]
    try:
        fn = api.custom.patch_namespaced_custom_object_status
        answer = await api.call(fn, "kubemeter.io", "v1alpha1", "ns", "workloadmetrics", "wm", patch,
                                _content_type="application/json-patch+json")
        assert answer == {"status": {"pods": 1}}
        with pytest.raises(ApiException) as refused:
            await api.call(fn, "kubemeter.io", "v1alpha1", "ns", "workloadmetrics", "wm", patch)
        assert refused.value.status == 422
        assert describe(refused.value) == "422 Unprocessable Entity: status.pods: Invalid"
    finally:
        await api.close()
        await runner.cleanup()
    path = "/apis/kubemeter.io/v1alpha1/namespaces/ns/workloadmetrics/wm/status"
    assert seen == [("PATCH", path, "kubemeter", "Bearer secret", patch)] * 3
    assert results == ["retried", "success", "invalid"] and len(delays) == 1

    closed = api_with(CountingLimiter(), delays := [], max_attempts=2, host="http://127.0.0.1:1")
    with pytest.raises(aiohttp.ClientError):
        await closed.call(closed.custom.patch_namespaced_custom_object_status, "g", "v", "ns", "p", "n", patch)
    await closed.close()
    assert len(delays) == 1


async def test_a_status_patch_through_a_proxy_falls_back_to_the_blocking_client():
    """aiohttp would not take the kubeconfig's proxy (nor a TLS server name of its own): the client sends it."""
    sent = []

    def blocking(*args, **kwargs):
        sent.append((args, kwargs["field_manager"]))
        return {"status": {}}

    config = kubernetes.client.Configuration()
    config.host, config.proxy = "https://127.0.0.1:1", "http://127.0.0.1:2"
    patch = AsyncStatusPatch(config, blocking, "kubemeter/test", connections=1)
    answer = await patch.patch_namespaced_custom_object_status("g", "v", "ns", "p", "n", [], field_manager="m")
    await patch.close()
    assert answer == {"status": {}} and sent == [(("g", "v", "ns", "p", "n", []), "m")]
