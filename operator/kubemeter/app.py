"""The operator's runtime: the shared pieces (model, clients, Prometheus, HTTP endpoints) and the policy loops.

Free of kopf so it can be driven directly in tests; handlers.py is the thin kopf glue that feeds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import prometheus_client
import urllib3
from aiohttp import web
from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.kube import credentials, load_configuration
from kubemeter.kubeapi import EventRecorder, KubeApi, RateLimiter, describe
from kubemeter.leader import LeaderElector
from kubemeter.loop import EventPoster, LoopDeps, PolicyLoop
from kubemeter.memory import settle_long_lived, shrink_tls_read_buffers
from kubemeter.policy import PolicyError, parse_policy
from kubemeter.publish.prometheus import PrometheusPublisher, build_registry, exposition
from kubemeter.publish.documents import METRICSPOLICIES, WORKLOADMETRICS, failed_nodes
from kubemeter.publish.status import StatusPublisher
from kubemeter.scrape.client import DEFAULT_MAX_BODY_BYTES, KubeletClient, ScrapeError
from kubemeter.scrape.scraper import KubeletScraper
from kubemeter.tasks import cancel_and_wait
from kubemeter.watch.model import ClusterModel
from kubemeter.watch.relister import Relister

log = logging.getLogger(__name__)

LISTING_SETTLE_TIMEOUT = 300.0
"""How long start-up waits for kopf's first listing of pods before settling memory anyway (no pods at all)."""


@dataclass(slots=True)
class RunSettings:
    kubeconfig: str | None = None
    context: str | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    """0 picks a free port (tests); the chosen one is in Runtime.metrics_port."""
    write_qps: float = 20.0
    write_burst: int = 50
    kubelet_ca: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    relist_debounce: float = 3.0
    events_namespace: str = "default"
    leader_election: bool = False
    lease_namespace: str = "default"
    lease_name: str = "kubemeter"
    identity: str = "kubemeter"
    """This replica's name in the lease (the pod name in a cluster)."""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    """client-go's leader election timings (seconds); a standby takes over within lease_duration + retry_period."""


class StartupError(RuntimeError):
    """The operator cannot work as configured (CRDs missing, an unreadable CA bundle): it exits saying why."""


@dataclass(slots=True)
class _Policy:
    uid: str
    generation: int
    publisher: StatusPublisher
    loop: PolicyLoop | None = None
    task: asyncio.Task | None = None


def _policy_ref(meta: Mapping) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "name": meta["name"], "uid": meta.get("uid")}


class Runtime:
    def __init__(self, settings: RunSettings, post_event: EventPoster | None = None) -> None:
        self.settings = settings
        self.config = load_configuration(settings.kubeconfig, settings.context)
        self.model = ClusterModel()
        self.registry, self.collector, self.metrics = build_registry()
        self.api = KubeApi(self.config, RateLimiter(settings.write_qps, settings.write_burst))
        self.kubelets = KubeletClient(
            lambda: credentials(self.config),
            kubelet_ca_path=settings.kubelet_ca,
            max_body_bytes=settings.max_body_bytes,
        )
        self.relister = Relister(self.model, self.api, debounce=settings.relist_debounce)
        self.events = EventRecorder(self.api, settings.events_namespace, instance=settings.identity)
        self.post_event: EventPoster = post_event or self.events.post
        self.deps = LoopDeps(
            model=self.model,
            scraper=KubeletScraper(self.kubelets),
            metrics=self.metrics,
            post_event=lambda *args: self.post_event(*args),
            synced=self.relister.synced,
        )
        self.policies: dict[str, _Policy] = {}
        self.metrics_port: int | None = None
        self._http: web.AppRunner | None = None
        self.elector: LeaderElector | None = None
        self._elector_task: asyncio.Task | None = None
        self._seed_task: asyncio.Task | None = None
        self._watch_counters: dict[tuple[str, str | None], prometheus_client.Counter] = {}
        if settings.leader_election:
            self.elector = LeaderElector(
                self.api,
                settings.lease_namespace,
                settings.lease_name,
                settings.identity,
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
                on_stopped_leading=self._step_down,
            )
            self.deps.active = self.elector.leading

    def _step_down(self) -> None:
        for policy in self.policies.values():
            if policy.loop is not None:
                policy.loop.step_down()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def preflight(self) -> None:
        """Fail fast on what would otherwise fail silently or on every cycle.

        The CRDs: kopf resolves its resources once at start-up (it may not watch CRDs, see handlers.configure),
        so an operator started before them would wait forever; exiting gets it restarted, and it works once they
        are installed. The kubelet CA bundle: unreadable, every scrape would fail. The metrics port: taken, kopf
        would retry its start-up handler forever. Serving /metrics and the probes starts here.
        """
        try:
            self.kubelets.check_kubelet_ca()
        except ScrapeError as exc:
            raise StartupError(f"--kubelet-ca: {exc.message}") from None
        try:
            served = await self.api.call(self.api.custom.get_api_resources, GROUP, VERSION)
            names = {resource.name for resource in served.resources}
        except ApiException as exc:
            if exc.status != 404:
                raise StartupError(f"cannot read the API server's discovery: {describe(exc)}") from None
            names = set()
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # after KubeApi's retries
            raise StartupError(f"cannot reach the API server at {self.config.host}: {describe(exc)}") from None
        missing = [f"{plural}.{GROUP}/{VERSION}" for plural in (METRICSPOLICIES, WORKLOADMETRICS) if plural not in names]
        if missing:
            raise StartupError(
                f"the API server does not serve {', '.join(missing)}: install the CRDs "
                "(kubectl apply -f crds/, or the Helm chart) and the operator starts with its next restart"
            )
        try:
            await self._start_http()
        except OSError as exc:
            address = f"{self.settings.metrics_host}:{self.settings.metrics_port}"
            raise StartupError(f"cannot serve /metrics on {address}: {exc.strerror or exc}") from None

    async def start(self) -> None:
        """Seed the model in the background (after preflight): kopf starts its watches at once, and policy
        cycles wait for the seed (``synced``)."""
        shrink_tls_read_buffers()  # before the first kubelet (and API server) connection opens
        self._seed_task = asyncio.create_task(self._seed(), name="seed")
        if self.elector is None:
            self.deps.active.set()
        else:
            self._elector_task = asyncio.create_task(self.elector.run(), name="leader-election")

    async def _seed(self) -> None:
        while True:
            try:
                await self.relister.seed()
                break
            except Exception:  # RBAC or a restarting API server: not ready until it works
                log.exception("initial listing failed; retrying in 5s")
                await asyncio.sleep(5)
        log.info(
            "model synced: %d nodes, %d pods, %d namespaces",
            len(self.model.nodes),
            self.model.pod_count,
            len(self.model.namespaces),
        )
        # The start-up's peak is kopf's listing (every listed pod queued at once): settle after it.
        try:
            await asyncio.wait_for(self.relister.pods_listed.wait(), timeout=LISTING_SETTLE_TIMEOUT)
        except TimeoutError:
            pass
        settle_long_lived()

    async def stop(self) -> None:
        for name in list(self.policies):
            await self.stop_policy(name)
        for task in (self._elector_task, self._seed_task):
            await cancel_and_wait(task)
        await self.relister.close()
        await self.kubelets.close()
        if self._http is not None:
            await self._http.cleanup()
        await self.events.close()
        self.api.close()

    # ---- HTTP: /metrics, /healthz, /readyz ---------------------------------------------------------
    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_ready)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, self.settings.metrics_host, self.settings.metrics_port)
        await site.start()
        self.metrics_port = self._http.addresses[0][1]  # the real port when 0 was asked

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body = exposition(self.registry, self.collector)
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def _serve_health(self, request: web.Request) -> web.Response:
        dead = [name for name, p in self.policies.items() if p.task is not None and p.task.done()]
        if dead:
            return web.Response(status=500, text=f"policy loops stopped: {', '.join(dead)}\n")
        return web.Response(text="ok\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        if not self.relister.synced.is_set():
            return web.Response(status=503, text="initial listing in progress\n")
        # A standby replica is ready too: it holds a warm model and takes over when the leader goes.
        role = "leader" if self.deps.active.is_set() else "standby"
        return web.Response(text=f"ok ({role})\n")

    # ---- watch events --------------------------------------------------------------------------
    def watch_event(self, resource: str, event: Mapping) -> None:
        event_type = event.get("type")
        counter = self._watch_counters.get((resource, event_type))
        if counter is None:
            counter = self._watch_counters[(resource, event_type)] = self.metrics.watch_events.labels(
                resource=resource, type=event_type or "LISTED"
            )
        counter.inc()
        self.relister.saw_event(resource, event_type)  # first: a listing's audit must include its first object
        self.model.apply(resource, event_type, event["object"])

    async def policy_event(self, event_type: str | None, obj: Mapping) -> None:
        meta = obj["metadata"]
        name, uid, generation = meta["name"], meta.get("uid", ""), meta.get("generation", 0)
        current = self.policies.get(name)
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            await self.stop_policy(name)
            return
        if current is not None and current.uid != uid:  # deleted and re-created while we were not looking
            await self.stop_policy(name)
            current = None
        if current is not None and current.generation == generation:
            return  # our own status write, or a metadata change: nothing to apply
        if current is None:
            current = self.policies[name] = _Policy(uid, generation, self._publisher(name, uid))
            current.publisher.adopt_policy_status(obj.get("status"))
        current.generation = generation
        try:
            spec = parse_policy(obj.get("spec"))
        except PolicyError as exc:
            kept = " (the last valid spec keeps running)" if current.loop is not None else ""
            log.warning("policy %s is invalid: %s%s", name, exc, kept)
            current.publisher.invalid(f"{exc}{kept}", generation, running=current.loop is not None)
            self.post_event(_policy_ref(meta), "Warning", "InvalidPolicy", str(exc))
            return
        if current.loop is None:
            # Prometheus first: the gauges are up to date before the status writes start queueing.
            publishers = (PrometheusPublisher(name, self.collector, self.metrics), current.publisher)
            failures = failed_nodes(obj.get("status"))
            current.loop = PolicyLoop(name, spec, generation, self.deps, publishers, failures=failures)
            current.task = asyncio.create_task(current.loop.run(), name=f"policy-{name}")
            standby = "" if self.deps.active.is_set() else "; a standby: it scrapes once it leads"
            log.info("policy %s: started (every %ss, %s via %s%s)", name, spec.interval, spec.endpoint, spec.via, standby)
        else:
            current.loop.configure(spec, generation)
            log.info("policy %s: spec generation %s applies from the next cycle", name, generation)

    def _publisher(self, name: str, uid: str) -> StatusPublisher:
        writes = self.metrics.status_writes
        return StatusPublisher(self.api, name, uid, clock=time.time, on_write=lambda r: writes.labels(result=r).inc())

    async def stop_policy(self, name: str) -> None:
        policy = self.policies.pop(name, None)
        if policy is None:
            return
        if policy.task is not None:
            await cancel_and_wait(policy.task)
        if policy.loop is not None:
            await policy.loop.close()
        else:
            await policy.publisher.close()
        log.info("policy %s: stopped", name)
