"""The operator's one Kubernetes API client, shared by watch (re-lists), leader election, publish, Events and the
/metrics token reviews.

Calls to the API server go through one client-side rate limiter, off the event loop, with retries.

The ``kubernetes`` client blocks, so calls run in threads, at most ``concurrency`` at once; the one frequent request,
a status patch (a WorkloadMetrics per workload that moved, up to the write QPS), is sent on the event loop with aiohttp
instead (``AsyncStatusPatch``): a thread and the blocking client cost over twice its CPU (bench/README.md, issue 12). Every call
(reads included, as client-go counts them) waits for a token from the shared bucket, so the operator never
exceeds its configured QPS whatever the number of policies. Every request has a timeout (a server that accepts
a request and never answers would otherwise hold a thread and its caller for good). 429, 5xx, connection
errors and timeouts are retried with exponential backoff and jitter (honouring Retry-After); anything else is
the caller's to handle.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from kubemeter.kube import FIELD_MANAGER, SSLContexts, credentials, user_agent
from kubemeter.names import MAX_NAME, cut_with_hash
from kubemeter.timefmt import format_span, rfc3339

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds an API request may take, answer included. The operator's requests are single objects and list pages
(500 items), answered within a second by a healthy server; client-go leaves it unbounded, kubectl too."""
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CONFLICT = frozenset({409})
"""Retryable too for a patch without preconditions (no resourceVersion): the API server retries such a patch on
its own conflicts and answers 409 only once those retries ran out under contention, so sending it again is safe.
Never for a create, where 409 means AlreadyExists."""
_WRITES = ("create_", "patch_", "replace_")
"""The kubernetes client's write methods (its names are generated: verb first), which get the field manager."""


class RateLimiter:
    """Token bucket: ``qps`` tokens per second, at most ``burst`` saved up."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("rate limiter needs qps > 0 and burst >= 1")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # one waiter at a time keeps the order fair (FIFO)
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
                self._last = now
                if self._tokens >= 1 - 1e-9:  # a refill that should make exactly one token may round just below
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.qps)


def _retry_after(exc: ApiException) -> float | None:
    try:
        return float((exc.headers or {}).get("Retry-After"))
    except (TypeError, ValueError):
        return None


class AsyncStatusPatch:
    """``patch_namespaced_custom_object_status`` of the kubernetes client, on the event loop: the same request (the
    credentials of the same configuration, a token refreshed as the client would, the field manager as a query
    parameter), sent with aiohttp on kept-alive connections; errors as the client raises them (``ApiException``
    with status, reason, body and headers). Through a proxy, or with a TLS server name or hostname check of the
    configuration's own, it falls back to the blocking client, on a thread."""

    def __init__(self, config: kubernetes.client.Configuration, blocking: Callable[..., Any],
                 user_agent_header: str, connections: int) -> None:
        self._config, self._blocking = config, blocking
        self._headers = {"User-Agent": user_agent_header, "Accept": "application/json"}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._contexts = SSLContexts()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def patch_namespaced_custom_object_status(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: object, *,
        _content_type: str | None = None, _request_timeout: float | None = None, field_manager: str | None = None,
    ) -> object:
        config = self._config
        if config.proxy or getattr(config, "tls_server_name", None) or config.assert_hostname is not None:
            return await asyncio.to_thread(
                self._blocking, group, version, namespace, plural, name, body, _content_type=_content_type,
                _request_timeout=_request_timeout, field_manager=field_manager)
        creds = credentials(config)
        path = "/".join(quote(part, safe="") for part in ("apis", group, version, "namespaces", namespace, plural,
                                                          name, "status"))
        content_type = _content_type or ("application/json-patch+json" if isinstance(body, list)
                                         else "application/merge-patch+json")
        headers = {"Content-Type": content_type}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        context = self._contexts.get(creds.ca_path, creds.cert_path, creds.key_path, not creds.insecure)
        async with asyncio.timeout(_request_timeout):
            async with self._session_now().patch(
                f"{creds.server}/{path}", data=json.dumps(body), headers=headers, ssl=context,
                params={"fieldManager": field_manager} if field_manager else None, allow_redirects=False,
            ) as response:
                data = await response.read()
        if not 200 <= response.status < 300:
            exc = ApiException(status=response.status, reason=response.reason)
            exc.body, exc.headers = data.decode("utf-8", "replace"), response.headers
            raise exc
        return json.loads(data) if data else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _CustomObjects(kubernetes.client.CustomObjectsApi):
    """The client's custom objects API, with status patches sent on the event loop (see AsyncStatusPatch)."""

    def __init__(self, client: kubernetes.client.ApiClient, status: Callable[..., Awaitable[object]]) -> None:
        super().__init__(client)
        self.patch_namespaced_custom_object_status = status


class KubeApi:
    def __init__(
        self,
        config: kubernetes.client.Configuration,
        limiter: RateLimiter,
        *,
        concurrency: int = 8,
        max_attempts: int = 6,
        base_backoff: float = 0.2,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        on_call: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        config.connection_pool_maxsize = max(config.connection_pool_maxsize or 0, concurrency)
        # urllib3 would send a GET whose answer timed out again, three times, multiplying the timeout; here
        # each attempt is one request, and call() retries with backoff.
        config.retries = urllib3.util.Retry(total=3, read=0)
        self.client = kubernetes.client.ApiClient(config)
        self.client.user_agent = user_agent(f"kubernetes-python/{kubernetes.__version__}")
        blocking = kubernetes.client.CustomObjectsApi(self.client)
        self._status_patch = AsyncStatusPatch(
            config, blocking.patch_namespaced_custom_object_status,
            user_agent(f"aiohttp/{aiohttp.__version__}"), concurrency)
        self.custom = _CustomObjects(self.client, self._status_patch.patch_namespaced_custom_object_status)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.authentication = kubernetes.client.AuthenticationV1Api(self.client)
        self.authorization = kubernetes.client.AuthorizationV1Api(self.client)
        self.limiter = limiter
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff
        self._on_call = on_call or (lambda result: None)
        self._sleep = sleep
        self.request_timeout = request_timeout
        self._started: dict[int, float] = {}  # request number -> when it was sent (monotonic)
        self.requests = 0
        """Requests sent, retries included (for the benchmarks' requests-per-cycle figure)."""

    async def call(
        self, fn: Callable[..., T], *args: Any, also_retry: frozenset[int] = frozenset(), **kwargs: Any
    ) -> T:
        """Run the blocking client call ``fn`` off the event loop (a coroutine function: on it); retry 429, 5xx and connection errors (and
        ``also_retry``) with jittered exponential backoff or the server's Retry-After, each attempt taking a token.
        Each attempt has the request timeout, or the ``_request_timeout`` the caller gives. A write names
        kubemeter its field manager."""
        timeout = kwargs.pop("_request_timeout", self.request_timeout)
        if getattr(fn, "__name__", "").startswith(_WRITES):
            kwargs.setdefault("field_manager", FIELD_MANAGER)
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            self.requests += 1
            number = self.requests
            try:
                async with self._slots:
                    self._started[number] = time.monotonic()
                    if inspect.iscoroutinefunction(fn):
                        result = await fn(*args, _request_timeout=timeout, **kwargs)
                    else:
                        result = await asyncio.to_thread(fn, *args, _request_timeout=timeout, **kwargs)
            except ApiException as exc:
                if (exc.status not in RETRYABLE_STATUS and exc.status not in also_retry) or (
                    attempt == self._max_attempts
                ):
                    self._on_call(_result_label(exc.status))
                    raise
                delay = _retry_after(exc)
                self._on_call("retried")
            except (urllib3.exceptions.HTTPError, OSError, aiohttp.ClientError) as exc:
                timed_out = _timed_out(exc)
                if timed_out:
                    log.warning("API request %s had no answer within %s (attempt %d of %d)",
                                getattr(fn, "__name__", "call"), format_span(timeout), attempt, self._max_attempts)
                if attempt == self._max_attempts:
                    self._on_call("timeout" if timed_out else "error")
                    raise
                if not timed_out:
                    log.debug("API call failed (%s), retrying", exc)
                delay = None
                self._on_call("retried")
            else:
                self._on_call("success")
                return result
            finally:
                self._started.pop(number, None)
            backoff = self._base_backoff * 2 ** (attempt - 1)
            # Jitter spreads the retries of writes that failed together, so they do not come back together.
            await self._sleep(delay if delay is not None else backoff * (0.5 + random.random()))

    def oldest_request_age(self) -> float:
        """Seconds the oldest request still waiting for its answer has waited (0 when none waits). Beyond
        the request timeout, a request's thread is wedged where no timeout reaches."""
        return time.monotonic() - min(self._started.values()) if self._started else 0.0

    async def close(self) -> None:
        await self._status_patch.close()
        self.client.close()


def _timed_out(exc: BaseException) -> bool:
    """A request timeout, as urllib3 raises it (or wraps it, once its own retries of a read ran out), or asyncio."""
    return isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)) or isinstance(
        getattr(exc, "reason", None), urllib3.exceptions.TimeoutError
    )


def describe(exc: BaseException) -> str:
    """One line for a log: ``422 Unprocessable Entity: <the API server's message>`` for an ApiException (whose
    own text spans lines, headers included, while its reason phrase alone says nothing of why)."""
    if not isinstance(exc, ApiException):
        return " ".join(str(exc).split()) or type(exc).__name__
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def _result_label(status: int) -> str:
    return {404: "not_found", 409: "conflict", 422: "invalid", 403: "forbidden"}.get(status) or (
        "throttled" if status == 429 else "error"
    )


CLUSTER_EVENTS_NAMESPACE = "default"
"""Where Events about cluster-scoped objects live (client-go's recorder and kopf post them there too)."""


def event_name(involved: str, nanoseconds: int) -> str:
    """client-go's Event name, ``<involved object's name>.<hex time>`` (unique per object and time), with the
    name part cut and a hash of the whole name added where the result would be longer than an object name may
    be (client-go's is then no valid object name: the simulator refuses it, as other objects' names)."""
    stamp = f"{nanoseconds:x}"
    room = MAX_NAME - len(stamp) - 1
    part = involved if len(involved) <= room else cut_with_hash(involved, room, involved)
    return f"{part}.{stamp}"


class EventRecorder:
    """Posts core/v1 Events through the operator's API client, so its rate limiter and retries apply.

    Shaped like client-go's recorder: an Event about a cluster-scoped object (a Node, a MetricsPolicy) lives in
    ``default`` with no namespace in its involvedObject; the API server refuses it in any other namespace
    (``involvedObject.namespace: Invalid value: "": does not match event.namespace``). Posting runs in the
    background and never raises: an Event is worth a log line, never a failed cycle.
    """

    MAX_MESSAGE = 1024  # the API server rejects longer Event messages

    def __init__(self, api: KubeApi, component: str = "kubemeter", instance: str = "") -> None:
        self.api = api
        self.component, self.instance = component, instance
        self._tasks: set[asyncio.Task] = set()

    def post(self, ref: dict, type_: str, reason: str, message: str) -> None:
        """``ref``: {apiVersion, kind, name, uid, namespace (namespaced objects only)}."""
        task = asyncio.get_running_loop().create_task(self._create(ref, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _body(self, ref: dict, type_: str, reason: str, message: str, now: float) -> dict:
        involved = {k: ref[k] for k in ("apiVersion", "kind", "name", "namespace", "uid") if ref.get(k)}
        if len(message) > self.MAX_MESSAGE:
            message = message[: self.MAX_MESSAGE - 3] + "..."
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(ref["name"], time.time_ns()),
                "namespace": ref.get("namespace") or CLUSTER_EVENTS_NAMESPACE,
            },
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }

    async def _create(self, ref: dict, type_: str, reason: str, message: str) -> None:
        body = self._body(ref, type_, reason, message, time.time())
        try:
            await self.api.call(self.api.core.create_namespaced_event, body["metadata"]["namespace"], body)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            log.warning("cannot post %s event %s about %s %s: %s", type_, reason, ref.get("kind"), ref.get("name"), exc)

    @property
    def posting(self) -> int:
        """Events still being posted."""
        return len(self._tasks)

    async def close(self) -> None:
        """Wait for the Events still being posted (at shutdown)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
