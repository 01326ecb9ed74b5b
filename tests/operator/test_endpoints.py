"""The HTTP endpoints answer what the runtime says, on loopback: /metrics, /healthz, /readyz; with delegated auth,
/metrics over HTTPS only to the bearer tokens the API server allows."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from kubernetes.client.exceptions import ApiException

from kubemeter.delegated_auth import ALLOWED_TTL, CACHE_SIZE, REVIEWS_IN_FLIGHT, DelegatedAuth
from kubemeter.endpoints import Endpoints, accepts_gzip
from kubemeter_sim.tls import CertificateAuthority, server_context, write_server_chain


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


async def test_metrics_are_compressed_for_a_client_that_accepts_gzip():
    body = b"".join(b'kubemeter_workload_pods{policy="p",workload="w%d"} 1.0\n' % i for i in range(2000))
    endpoints = Endpoints(lambda: body, lambda: None, lambda: (True, "ok (leader)"))
    port = await endpoints.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:

            async def get(accept_encoding: str) -> tuple[str | None, bytes]:
                async with session.get(f"http://127.0.0.1:{port}/metrics",
                                       headers={"Accept-Encoding": accept_encoding}) as response:
                    assert response.status == 200
                    return response.headers.get("Content-Encoding"), await response.read()

            encoding, compressed = await get("gzip")  # what Prometheus sends
            assert encoding == "gzip" and gzip.decompress(compressed) == body
            assert len(compressed) < len(body) / 10
            assert await get("identity") == (None, body)
            assert await get("gzip;q=0") == (None, body), "q=0: not acceptable"
            assert await get("gzip;q=0, identity;q=0.5") == (None, body)
            encoding, compressed = await get("br;q=1.0, *;q=0.1")  # any coding, and identity only as much
            assert encoding == "gzip" and gzip.decompress(compressed) == body
    finally:
        await endpoints.close()


@pytest.mark.parametrize(("header", "gzipped"), [
    (None, False),
    ("", False),
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("GZIP;Q=0.8", True),
    ("x-gzip", True),
    ("gzip;q=0", False),
    ("gzip; q=0.000", False),
    ("gzip;q=0.5, identity", False),  # identity preferred
    ("gzip;q=0.5, identity;q=0.5", True),
    ("deflate", False),  # not listed, no *: not acceptable
    ("*", True),
    ("*;q=0", False),  # nothing acceptable: the body as it is
    ("*;q=0.2, gzip;q=0", False),
    ("identity;q=0, *;q=0.3", True),
    ("gzip;q=2", False),  # malformed qvalues leave the element out
    ("gzip;q=high", False),
])
def test_accept_encoding_is_read_with_its_qvalues(header: str | None, gzipped: bool):
    assert accepts_gzip(header) is gzipped


class ReviewingApi:
    """The two calls DelegatedAuth makes through KubeApi, answered as an API server would for ``users`` (token ->
    (user name, whether RBAC lets that user get /metrics)); any other token is not authenticated. Records the
    review kinds sent; ``held`` keeps every call waiting until set, ``failure`` is raised instead of answering."""

    def __init__(self, users: dict[str, tuple[str, bool]]) -> None:
        self.users = users
        self.sent: list[str] = []
        self.held = asyncio.Event()
        self.held.set()
        self.failure: Exception | None = None
        self.authentication = SimpleNamespace(create_token_review=self._token_review)
        self.authorization = SimpleNamespace(create_subject_access_review=self._access_review)

    async def call(self, fn, body: dict, **kwargs):
        assert kwargs["_request_timeout"] > 0, "every review request has a timeout"
        self.sent.append(body["kind"])
        await self.held.wait()
        if self.failure is not None:
            raise self.failure
        return fn(body)

    def _token_review(self, body: dict):
        known = self.users.get(body["spec"]["token"])
        user = None
        if known:
            user = SimpleNamespace(username=known[0], groups=["system:authenticated"], uid="u", extra=None)
        return SimpleNamespace(status=SimpleNamespace(authenticated=known is not None, user=user))

    def _access_review(self, body: dict):
        spec = body["spec"]
        assert spec["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        assert spec["groups"] == ["system:authenticated"]
        allowed = any(user == spec["user"] and may for user, may in self.users.values())
        return SimpleNamespace(status=SimpleNamespace(allowed=allowed))


def serving_certificate(directory: Path) -> tuple[Path, ssl.SSLContext, ssl.SSLContext]:
    """(chain and key file, the server's TLS context, a client context trusting it) for 127.0.0.1."""
    ca = CertificateAuthority.create("kubemeter-test-metrics-ca")
    chain = write_server_chain(ca, directory / "metrics.pem", "kubemeter", ips=["127.0.0.1"])
    client = ssl.create_default_context(cadata=ca.pem.decode())
    return chain, server_context(chain), client


async def test_delegated_auth_serves_metrics_over_https_only_to_allowed_tokens_and_caches_decisions(tmp_path):
    now = [1000.0]
    api = ReviewingApi({"reader-token": ("reader", True), "other-token": ("other", False)})
    endpoints = Endpoints(lambda: b"kubemeter_up 1\n", lambda: None, lambda: (True, "ok (leader)"),
                          guard=DelegatedAuth(api, clock=lambda: now[0]))
    _, server_tls, client_tls = serving_certificate(tmp_path)
    port = await endpoints.start("127.0.0.1", 0, server_tls)
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str, authorization: str | None = None) -> tuple[int, str, dict]:
                headers = {"Authorization": authorization} if authorization else {}
                async with session.get(f"https://127.0.0.1:{port}{path}", headers=headers, ssl=client_tls) as response:
                    return response.status, await response.text(), dict(response.headers)

            status, _, headers = await get("/metrics")
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
            assert (await get("/metrics", "Basic cmVhZGVyOng="))[0] == 401
            assert api.sent == [], "no review without a bearer token"
            assert (await get("/metrics", "Bearer forged-token"))[0] == 401
            assert api.sent == ["TokenReview"], "an unauthenticated token is never authorized"
            status, text, _ = await get("/metrics", "Bearer other-token")
            assert status == 403 and 'user "other" may not get /metrics' in text
            assert (await get("/metrics", "Bearer reader-token"))[:2] == (200, "kubemeter_up 1\n")
            assert api.sent.count("TokenReview") == 3 and api.sent.count("SubjectAccessReview") == 2

            # A scraper every 15 s: answered from the cache, refusals too, until each decision's time is up.
            api.sent.clear()
            now[0] += ALLOWED_TTL - 1
            assert [(await get("/metrics", f"Bearer {token}"))[0] for token in ("reader-token", "other-token")] == [
                200, 403]
            assert [(await get("/metrics", "Bearer reader-token"))[0] for _ in range(3)] == [200] * 3
            assert api.sent == ["TokenReview", "SubjectAccessReview"], "only the refusal (30 s) was asked again"
            api.sent.clear()
            now[0] += 2
            assert (await get("/metrics", "Bearer reader-token"))[0] == 200
            assert api.sent == ["TokenReview", "SubjectAccessReview"]

            # Compressed over HTTPS too, once allowed (the client decompresses).
            async with session.get(f"https://127.0.0.1:{port}/metrics", ssl=client_tls,
                                   headers={"Authorization": "Bearer reader-token", "Accept-Encoding": "gzip"}) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                assert await response.text() == "kubemeter_up 1\n"

            # The kubelet's probes: HTTPS, no token, same port.
            assert (await get("/healthz"))[:2] == (200, "ok\n")
            assert (await get("/readyz"))[:2] == (200, "ok (leader)\n")

            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    await response.read()
    finally:
        await endpoints.close()


async def test_delegated_auth_bounds_its_cache_and_its_reviews_and_never_caches_a_failed_review():
    api = ReviewingApi({f"token-{n}": (f"user-{n}", True) for n in range(CACHE_SIZE + 1)})
    guard = DelegatedAuth(api)
    for n in range(CACHE_SIZE + 1):
        assert (await guard.check(f"Bearer token-{n}")).status == 200
    api.sent.clear()
    assert (await guard.check(f"Bearer token-{CACHE_SIZE}")).status == 200
    assert api.sent == [], "the newest decisions are kept"
    assert (await guard.check("Bearer token-0")).status == 200
    assert api.sent == ["TokenReview", "SubjectAccessReview"], "the oldest one was dropped to stay in bounds"

    # New tokens cannot queue reviews without end on the rate limiter the status writes share.
    api.held.clear()
    api.sent.clear()
    pending = [asyncio.create_task(guard.check(f"Bearer new-{n}")) for n in range(REVIEWS_IN_FLIGHT)]
    await asyncio.sleep(0.05)
    busy = await guard.check("Bearer new-extra")
    assert (busy.status, len(api.sent)) == (429, REVIEWS_IN_FLIGHT)
    assert (await guard.check("Bearer token-0")).status == 200, "cached decisions are still answered"
    api.held.set()
    assert [decision.status for decision in await asyncio.gather(*pending)] == [401] * REVIEWS_IN_FLIGHT

    api.failure = ApiException(status=503, reason="Service Unavailable")
    assert (await guard.check(f"Bearer token-{CACHE_SIZE}")).status == 200, "cached"
    failed = await guard.check("Bearer token-new")
    assert failed.status == 503 and "could not review" in failed.reason
    api.failure = None
    api.users["token-new"] = ("late", True)
    assert (await guard.check("Bearer token-new")).status == 200, "the failure was not remembered"
