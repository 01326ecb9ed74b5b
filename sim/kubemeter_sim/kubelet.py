"""Simulated kubelets: one per node, HTTPS on its own loopback address, serving what a real kubelet serves.

Each kubelet listens on ``<node InternalIP>:<port>`` (distinct ``127.x.y.z`` addresses, one shared port,
as on a real cluster where every kubelet listens on 10250), authenticates bearer tokens and authorizes
them through the API server like ``--authorization-mode=Webhook``, and serves ``/metrics/resource``,
``/stats/summary``, ``/pods`` and ``/healthz``. All kubelets share one aiohttp runner with one TCP site
per node; a request is routed to its kubelet by the local address it arrived on.

Usage comes from :mod:`kubemeter_sim.profiles`; samples are taken on a cadvisor-like housekeeping tick
per container (own phase per cgroup), so timestamps differ between series as in real payloads.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import math
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

from aiohttp import web
from kubernetes.utils.quantity import parse_quantity

from kubemeter_sim import payloads
from kubemeter_sim.faults import Fault, failure_response, forbidden_text, send_body
from kubemeter_sim.payloads import ContainerReading, NodeReading, PodReading
from kubemeter_sim.profiles import PROFILE_KINDS, ProfileKind, UsageProfile, make_profile, seed_for

PROFILE_ANNOTATION = "sim.kubemeter.io/profile"
"""``steady`` for every container, or ``app=leak,sidecar=idle`` per container name."""
USAGE_SCALE_ANNOTATION = "sim.kubemeter.io/usage-scale"
"""A pod's usage as a multiple of its containers' requests, e.g. ``3`` (memory at most 110% of its request, as
always); unset, each container's is drawn from its seed, 10% to 130%. For workloads with a known right-sizing
verdict."""
_DEFAULT_KINDS: tuple[ProfileKind, ...] = ("steady", "diurnal", "bursty", "idle")
_POD_CGROUP_CORES = 0.0004
"""The pod cgroup also pays for the pause container and conmon-like overhead."""
_SYSTEM_CORES = 0.06
_SYSTEM_MEMORY_BYTES = 620e6
SCRAPE_PATHS = ("/metrics/resource", "/stats/summary")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a request to the kubelet presented: a bearer token, or a client certificate the kubelet verified
    against its client CA (user from the CN, groups from the O's, as kube-apiserver reads them)."""

    token: str = ""
    cert_user: str = ""
    cert_groups: tuple[str, ...] = ()


class Authorizer(Protocol):
    """``(allowed, user)`` for ``get nodes/<subresource>``; user "" means unauthenticated. May be a coroutine
    (a real cluster's kubelet asks the API server: TokenReview, SubjectAccessReview)."""

    def __call__(self, credentials: ClientCredentials, verb: str, group: str, resource: str, subresource: str = "",
                 name: str = "", namespace: str = "") -> tuple[bool, str] | Awaitable[tuple[bool, str]]: ...


def request_credentials(request: web.Request) -> ClientCredentials:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    if token or not peer:
        return ClientCredentials(token=token)
    subject = [attribute for rdn in peer.get("subject", ()) for attribute in rdn]
    return ClientCredentials(cert_user=next((v for k, v in subject if k == "commonName"), ""),
                             cert_groups=tuple(v for k, v in subject if k == "organizationName"))


RestartCallback = Callable[[str, str, str, int, float], None]
"""(namespace, pod name, container name, new restart count, new start time): report an OOM kill."""


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=4096)
def _parse_quantity(value: str) -> float:
    return float(parse_quantity(value))


def _quantity(resources: dict[str, Any], kind: str, resource: str) -> float | None:
    value = (resources.get(kind) or {}).get(resource)
    return _parse_quantity(value) if value is not None else None


def _profile_kinds(annotation: str | None) -> dict[str, ProfileKind]:
    if not annotation:
        return {}
    if "=" not in annotation:
        return {"*": annotation}  # type: ignore[dict-item]
    pairs = (item.split("=", 1) for item in annotation.split(",") if item)
    return {name.strip(): kind.strip() for name, kind in pairs}  # type: ignore[misc]


def _usage_scale(meta: dict[str, Any]) -> float | None:
    text = (meta.get("annotations") or {}).get(USAGE_SCALE_ANNOTATION)
    if text is None:
        return None
    scale = float(text)
    if not 0.0 < scale < math.inf:
        raise ValueError(f"pod {meta['namespace']}/{meta['name']}: {USAGE_SCALE_ANNOTATION} must be a positive number")
    return scale


@dataclass(slots=True)
class ContainerRuntime:
    name: str
    labels: str
    profile: UsageProfile
    anchor_start: float
    """Start time the profile's OOM cycle counts from (the last start the API server told us about)."""
    anchor_restarts: int
    reported_restarts: int
    tick_phase: float
    memory_limit_bytes: float | None
    _integral_cache: tuple[float, float] = (math.nan, 0.0)

    def integral_at_start(self, start: float) -> float:
        cached_start, value = self._integral_cache
        if cached_start != start:
            value = self.profile.cpu_integral(start)
            self._integral_cache = (start, value)
        return value


@dataclass(slots=True)
class PodRuntime:
    namespace: str
    name: str
    uid: str
    labels: str
    start_time: float
    containers: list[ContainerRuntime]
    volumes: tuple[str, ...]
    memory_limit_bytes: float | None
    tick_phase: float
    memory_skew: float
    """The pod cgroup's working set relative to the sum of its containers (sampled apart, both ways)."""
    network_bytes_per_second: float


@dataclass(frozen=True, slots=True)
class ServedPoint:
    cpu_seconds: float
    memory_working_set_bytes: float
    timestamp: float
    start_time: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one successful scrape served: ``containers[(namespace, pod, container)]``."""

    served_at: float
    endpoint: str
    containers: dict[tuple[str, str, str], ServedPoint]


@dataclass
class Kubelet:
    node_name: str
    ip: str
    port: int
    version: str
    authorize: Authorizer
    seed: int = 0
    boot_time: float = field(default_factory=lambda: time.time() - 3 * 86400)
    memory_capacity_bytes: float = 16 * 1024**3
    housekeeping_interval: float = 10.0
    on_restart: RestartCallback | None = None
    clock: Callable[[], float] = time.time
    pods: dict[str, PodRuntime] = field(default_factory=dict)
    pod_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault: Fault | None = None
    scrape_number: int = 0
    snapshots: deque[Snapshot] = field(default_factory=lambda: deque(maxlen=2))

    def __post_init__(self) -> None:
        self.shutdown = asyncio.Event()
        """Set when the kubelet stops: releases requests held by ``timeout`` and ``latency`` faults."""
        self.version_tuple = payloads.parse_version(self.version)
        self.node_phase = (seed_for(self.seed, self.node_name) % 1000) / 1000 * self.housekeeping_interval

    # -- pods --------------------------------------------------------------------------------------------
    def sync_pod(self, pod: dict[str, Any]) -> None:
        """Follow one pod object from the API server (ADDED/MODIFIED)."""
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        uid = meta["uid"]
        if spec.get("nodeName") != self.node_name:
            self.forget_pod(uid)
            return
        self.pod_objects[uid] = pod
        if status.get("phase") != "Running":
            self.pods.pop(uid, None)
            return
        previous = self.pods.get(uid)
        known = {c.name: c for c in previous.containers} if previous else {}
        kinds = _profile_kinds((meta.get("annotations") or {}).get(PROFILE_ANNOTATION))
        statuses = {s["name"]: s for s in status.get("containerStatuses") or []}
        containers = []
        for container_spec in spec.get("containers") or []:
            name = container_spec["name"]
            container_status = statuses.get(name) or {}
            running = (container_status.get("state") or {}).get("running")
            if not running or container_status.get("started") is False:
                continue
            restarts = int(container_status.get("restartCount", 0))
            current = known.get(name)
            if current is None or restarts > current.reported_restarts:
                current = self._new_container(meta, container_spec, kinds, parse_time(running["startedAt"]), restarts)
            containers.append(current)
        if not containers:
            self.pods.pop(uid, None)
            return
        pod_seed = seed_for(self.seed, meta["namespace"], meta["name"])
        limits = [c.memory_limit_bytes for c in containers]
        self.pods[uid] = PodRuntime(
            namespace=meta["namespace"], name=meta["name"], uid=uid,
            labels=payloads.pod_labels(meta["namespace"], meta["name"]),
            start_time=parse_time(status.get("startTime") or meta.get("creationTimestamp")),
            containers=containers,
            volumes=tuple(v["name"] for v in spec.get("volumes") or [] if "hostPath" not in v),
            memory_limit_bytes=sum(limits) if all(limit is not None for limit in limits) else None,  # type: ignore[misc]
            tick_phase=(pod_seed % 997) / 997 * self.housekeeping_interval,
            memory_skew=((pod_seed >> 10) % 61 - 30) / 1000,
            network_bytes_per_second=200 + (pod_seed >> 20) % 20000,
        )

    def forget_pod(self, uid: str) -> None:
        """The pod was deleted or moved away from this node."""
        self.pods.pop(uid, None)
        self.pod_objects.pop(uid, None)

    def _new_container(self, meta: dict[str, Any], container_spec: dict[str, Any], kinds: dict[str, ProfileKind],
                       started_at: float, restarts: int) -> ContainerRuntime:
        name, namespace, pod_name = container_spec["name"], meta["namespace"], meta["name"]
        resources = container_spec.get("resources") or {}
        limit = _quantity(resources, "limits", "memory")
        cpu_request = _quantity(resources, "requests", "cpu")
        memory_request = _quantity(resources, "requests", "memory")
        container_seed = seed_for(self.seed, namespace, pod_name, name)
        kind = kinds.get(name) or kinds.get("*") or _DEFAULT_KINDS[container_seed % len(_DEFAULT_KINDS)]
        if kind not in PROFILE_KINDS:
            raise ValueError(f"pod {namespace}/{pod_name}: unknown usage profile {kind!r}")
        scale = _usage_scale(meta) or 0.1 + (container_seed >> 8) % 1000 / 1000 * 1.2  # 10 % .. 130 % of the request
        profile = make_profile(
            kind, seed=container_seed, memory_limit_bytes=limit,
            cpu_cores=cpu_request * scale if cpu_request and kind != "idle" else None,
            memory_bytes=min(memory_request * scale, memory_request * 1.1) if memory_request and kind != "idle" else None,
        )
        return ContainerRuntime(
            name=name, labels=payloads.container_labels(namespace, pod_name, name), profile=profile,
            anchor_start=started_at, anchor_restarts=restarts, reported_restarts=restarts,
            tick_phase=(container_seed % 991) / 991 * self.housekeeping_interval, memory_limit_bytes=limit)

    # -- readings -----------------------------------------------------------------------------------------
    def tick(self, now: float, phase: float) -> float:
        """The last housekeeping instant at or before ``now`` for a cgroup with this phase."""
        interval = self.housekeeping_interval
        return math.floor((now - phase) / interval) * interval + phase

    def read(self, now: float | None = None, timestamp_offset: float = 0.0) -> NodeReading:
        """Everything this kubelet would report at ``now`` (values at each cgroup's last housekeeping)."""
        now = self.clock() if now is None else now
        interval = self.housekeeping_interval
        pods: list[PodReading] = []
        for pod in self.pods.values():
            containers: list[ContainerReading] = []
            pod_ts = self.tick(now, pod.tick_phase)
            pod_cpu = pod_memory = pod_rate = 0.0
            for c in pod.containers:
                ts = self.tick(now, c.tick_phase)
                start = self._current_start(pod, c, ts)
                if ts <= start:
                    continue  # started after the last housekeeping: cadvisor has no stats yet
                profile = c.profile
                at_ts = profile.cpu_integral(ts)
                cpu = math.floor((at_ts - c.integral_at_start(start)) * 1e9) / 1e9  # cgroups count nanoseconds
                window_start = max(start, ts - interval)
                rate = (at_ts - profile.cpu_integral(window_start)) / (ts - window_start)
                containers.append(ContainerReading(
                    name=c.name, labels=c.labels, cpu_seconds=cpu, cpu_nano_cores=rate * 1e9,
                    memory_working_set_bytes=profile.memory_working_set(start, ts), timestamp=ts + timestamp_offset,
                    start_time=start, memory_limit_bytes=c.memory_limit_bytes))
                # The pod cgroup outlives container restarts, so its counter counts from the first start.
                pod_cpu += profile.cpu_integral(pod_ts) - profile.cpu_integral(min(pod.start_time, pod_ts))
                pod_memory += profile.memory_working_set(start, pod_ts)
                pod_rate += rate
            if not containers:
                continue
            age = max(0.0, pod_ts - pod.start_time)
            pod_cpu = math.floor((pod_cpu + _POD_CGROUP_CORES * age) * 1e9) / 1e9
            network = int(pod.network_bytes_per_second * age)
            pods.append(PodReading(
                namespace=pod.namespace, name=pod.name, uid=pod.uid, labels=pod.labels, start_time=pod.start_time,
                containers=containers, cpu_seconds=pod_cpu, cpu_nano_cores=(pod_rate + _POD_CGROUP_CORES) * 1e9,
                memory_working_set_bytes=float(int(pod_memory * (1 + pod.memory_skew) + 319488) // 4096 * 4096),
                timestamp=pod_ts + timestamp_offset, network_rx_bytes=network, network_tx_bytes=network // 3,
                ephemeral_storage_bytes=36864 * len(containers) + 4096 * (int(age) % 97),
                volumes=pod.volumes, memory_limit_bytes=pod.memory_limit_bytes))
        node_ts = self.tick(now, self.node_phase)
        uptime = node_ts - self.boot_time
        return NodeReading(
            name=self.node_name, start_time=self.boot_time,
            cpu_seconds=sum(p.cpu_seconds for p in pods) + _SYSTEM_CORES * uptime,
            cpu_nano_cores=(sum(p.cpu_nano_cores for p in pods) + _SYSTEM_CORES * 1e9),
            memory_working_set_bytes=sum(p.memory_working_set_bytes for p in pods) + _SYSTEM_MEMORY_BYTES,
            memory_capacity_bytes=self.memory_capacity_bytes, timestamp=node_ts + timestamp_offset, pods=pods,
            network_rx_bytes=int(uptime * 90_000), network_tx_bytes=int(uptime * 30_000))

    def _current_start(self, pod: PodRuntime, c: ContainerRuntime, t: float) -> float:
        start, restarts = c.profile.current_start(c.anchor_start, t)
        count = c.anchor_restarts + restarts
        if count > c.reported_restarts:
            c.reported_restarts = count
            if self.on_restart is not None:
                self.on_restart(pod.namespace, pod.name, c.name, count, start)
        return start

    def check_restarts(self, now: float | None = None) -> None:
        """Report OOM kills that happened by ``now`` even if nobody scrapes (``kubectl get pods`` shows them)."""
        now = self.clock() if now is None else now
        for pod in list(self.pods.values()):
            for c in pod.containers:
                if c.profile.oom_period() is not None:
                    self._current_start(pod, c, now)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def render(self, path: str, now: float, query: Mapping[str, str] = MappingProxyType({}), *,
               remember: bool = True) -> tuple[bytes, str] | None:
        """Body and content type of ``path``, or ``None`` when the kubelet has no such endpoint.

        ``remember`` keeps what a scrape served in :attr:`snapshots` (not when a fault spoils the body).
        """
        if path == "/healthz":
            return b"ok", "text/plain"
        if path == "/pods":
            body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(self.pod_objects.values())}
            return json.dumps(body, separators=(",", ":")).encode() + b"\n", "application/json"
        if path not in SCRAPE_PATHS:
            return None
        offset = self.fault.timestamp_offset(self.scrape_number) if self.fault else 0.0
        reading = self.read(now, offset)
        if remember:
            self._remember(reading, now, path)
        if path == "/metrics/resource":
            return payloads.render_metrics_resource(reading, self.version_tuple), "text/plain; version=0.0.4"
        cpu_and_memory_only = query.get("only_cpu_and_memory", "").lower() == "true"
        return (payloads.render_stats_summary(reading, self.version_tuple, cpu_and_memory_only=cpu_and_memory_only),
                "application/json")

    def _remember(self, reading: NodeReading, now: float, path: str) -> None:
        points = {(p.namespace, p.name, c.name): ServedPoint(c.cpu_seconds, c.memory_working_set_bytes, c.timestamp,
                                                            c.start_time)
                  for p in reading.pods for c in p.containers}
        self.snapshots.append(Snapshot(served_at=now, endpoint=path, containers=points))

    async def serve(self, request: web.Request, path: str, *, via_proxy: bool) -> web.StreamResponse:
        """Answer ``path``; direct requests are authenticated and authorized, proxied ones already were."""
        subresource = "stats" if path.startswith("/stats") else "metrics" if path.startswith("/metrics") else "proxy"
        user = "system:kube-apiserver" if via_proxy else ""
        if not via_proxy:
            credentials = request_credentials(request)
            allowed, user = False, ""
            if credentials.token or credentials.cert_user:
                decision = self.authorize(credentials, "get", "", "nodes", subresource, self.node_name)
                allowed, user = await decision if inspect.isawaitable(decision) else decision
            if not user:
                return web.Response(status=401, text="Unauthorized")
            if not allowed:
                return web.Response(status=403, text=forbidden_text(user, "get", subresource))
        if path in SCRAPE_PATHS:
            self.scrape_number += 1
        fault = self.fault
        if fault is not None:
            failure = await failure_response(fault, self.scrape_number, user, subresource, self.shutdown)
            if failure is not None:
                return failure
        rendered = self.render(path, self.clock(), request.query, remember=fault is None or not fault.spoils_body)
        if rendered is None:
            return web.Response(status=404, text="404 page not found\n")
        body, content_type = rendered
        return await send_body(fault, request, body, content_type)


def _proxy_error(message: str) -> web.Response:
    """What the API server answers when it cannot reach the kubelet behind ``nodes/proxy``."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": f"error trying to reach service: {message}", "reason": "ServiceUnavailable", "code": 503}
    return web.json_response(status, status=503)


async def _like_go_net_http(_request: web.Request, response: web.StreamResponse) -> None:
    """The kubelet (Go net/http) sends no Server header."""
    response.headers.pop("Server", None)


class KubeletFleet:
    """All kubelets of a cluster behind one aiohttp runner, one TLS site per node."""

    def __init__(self, rogue_context: ssl.SSLContext) -> None:
        self._rogue_context = rogue_context
        self._kubelets_by_ip: dict[str, Kubelet] = {}
        self._sites: dict[str, web.TCPSite] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(_like_go_net_http)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5,
                                     handler_cancellation=True)

    async def start(self) -> None:
        await self._runner.setup()

    async def close(self) -> None:
        for kubelet in self._kubelets_by_ip.values():
            kubelet.shutdown.set()
        await self._runner.cleanup()

    def kubelet_at(self, ip: str) -> Kubelet | None:
        return self._kubelets_by_ip.get(ip)

    async def add(self, kubelet: Kubelet, context: ssl.SSLContext) -> None:
        """Start serving ``kubelet`` on its address with ``context`` (its own serving certificate)."""
        context.sni_callback = self._sni_callback(kubelet)
        self._kubelets_by_ip[kubelet.ip] = kubelet
        self._contexts[kubelet.ip] = context
        await self._listen(kubelet)

    async def remove(self, kubelet: Kubelet) -> None:
        kubelet.shutdown.set()
        await self._unlisten(kubelet)
        self._kubelets_by_ip.pop(kubelet.ip, None)
        self._contexts.pop(kubelet.ip, None)

    async def set_fault(self, kubelet: Kubelet, fault: Fault | None) -> None:
        """Apply ``fault`` (``None`` heals); ``refused`` closes the listener and every open connection."""
        kubelet.fault = fault
        kubelet.scrape_number = 0
        if fault is not None and fault.kind == "refused":
            await self._unlisten(kubelet)
        elif kubelet.ip not in self._sites and kubelet.ip in self._kubelets_by_ip:
            await self._listen(kubelet)
        if fault is not None and fault.kind == "tls":
            self._drop_connections(kubelet.ip)  # pooled connections would skip the new handshake

    async def _listen(self, kubelet: Kubelet) -> None:
        site = web.TCPSite(self._runner, kubelet.ip, kubelet.port, ssl_context=self._contexts[kubelet.ip],
                           backlog=512, reuse_address=True)
        await site.start()
        self._sites[kubelet.ip] = site

    async def _unlisten(self, kubelet: Kubelet) -> None:
        site = self._sites.pop(kubelet.ip, None)
        if site is not None:
            await site.stop()
        self._drop_connections(kubelet.ip)

    def _drop_connections(self, ip: str) -> None:
        server = self._runner.server
        for handler in server.connections if server else ():
            transport = handler.transport
            if transport is not None and (transport.get_extra_info("sockname") or ("",))[0] == ip:
                transport.close()

    def _sni_callback(self, kubelet: Kubelet) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
        def pick_certificate(connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext) -> None:
            if kubelet.fault is not None and kubelet.fault.kind == "tls":
                connection.context = self._rogue_context
        return pick_certificate

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        kubelet = self._kubelets_by_ip.get(sockname[0]) if sockname else None
        if kubelet is None:
            return web.Response(status=404, text="404 page not found\n")
        return await kubelet.serve(request, request.path, via_proxy=False)

    async def proxy(self, kubelet: Kubelet, path: str, request: web.Request) -> web.StreamResponse:
        """The API server's ``nodes/{name}/proxy/{path}``: the same kubelet, the same faults."""
        fault = kubelet.fault
        if fault is not None and fault.kind == "refused":
            return _proxy_error(f"dial tcp {kubelet.ip}:{kubelet.port}: connect: connection refused")
        if fault is not None and fault.kind == "tls":
            return _proxy_error("tls: failed to verify certificate: x509: certificate signed by unknown authority")
        return await kubelet.serve(request, "/" + path.lstrip("/"), via_proxy=True)
