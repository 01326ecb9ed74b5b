"""The operator's runtime: the wiring of the shared pieces (model, clients, Prometheus) and their start and stop.

Free of kopf so it can be driven directly in tests; handlers.py is the thin kopf glue that feeds it. The policy
lifecycle lives in policies.py, the HTTP endpoints in endpoints.py (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import prometheus_client
import urllib3
from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.delegated_auth import DelegatedAuth
from kubemeter.endpoints import Endpoints
from kubemeter.kube import credentials, load_configuration
from kubemeter.kubeapi import DEFAULT_REQUEST_TIMEOUT, EventRecorder, KubeApi, RateLimiter, describe
from kubemeter.leader import LeaderElector
from kubemeter.loop import EventPoster, LoopDeps
from kubemeter.memory import settle_long_lived, shrink_tls_read_buffers
from kubemeter.policies import PolicyLifecycle
from kubemeter.publish.checkpoints import METRICSCHECKPOINTS
from kubemeter.publish.documents import METRICSPOLICIES, WORKLOADMETRICS
from kubemeter.publish.prometheus import StatusWriterCollector, build_registry, exposition
from kubemeter.publish.status import delete_orphaned_objects
from kubemeter.scrape.client import DEFAULT_MAX_BODY_BYTES, KubeletClient, ScrapeError
from kubemeter.scrape.scraper import KubeletScraper
from kubemeter.tasks import cancel_and_wait
from kubemeter.watch.model import NODES, ClusterModel
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
    metrics_auth: str = "none"
    """``none``: /metrics over plain HTTP to anyone; ``delegated``: HTTPS, and only bearer tokens the API server
    authenticates (TokenReview) and authorizes for get /metrics (SubjectAccessReview)."""
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    """The metrics port's serving certificate (PEM, chain first) and its key, with metrics_auth delegated."""
    write_qps: float = 20.0
    write_burst: int = 50
    api_timeout: float = DEFAULT_REQUEST_TIMEOUT
    """Seconds an API request may take before it is abandoned and retried."""
    wedged_after: float = 600.0
    """/healthz fails once a policy's status writes (or any API request) waited this long with nothing
    finishing. Every request has a timeout, and a write's retries (6 attempts, backoffs, a server's
    Retry-After) finish within a few minutes: only a process wedged where no timeout reaches gets here, and a
    restart helps it, while an API server that answers errors is reported on the policies instead."""
    kubelet_ca: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    relist_debounce: float = 3.0
    watch_timeout: int = 300
    """Seconds a watch lasts before the server ends it (the client ends it 30 s later if the server did not).
    Whole seconds: the API server parses timeoutSeconds as an integer and refuses "300.0"."""
    leader_election: bool = False
    lease_namespace: str = "default"
    lease_name: str = "kubemeter"
    identity: str = "kubemeter"
    """This replica's name in the lease (the pod name in a cluster)."""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    """client-go's leader election timings (seconds); a standby takes over within lease_duration + retry_period."""
    shutdown_flush_timeout: float = 5.0
    """Seconds the status writes pending at shutdown get to be sent (well within a pod's 30 s grace period)."""


class StartupError(RuntimeError):
    """The operator cannot work as configured (CRDs missing, an unreadable CA bundle): it exits saying why."""


class Runtime:
    def __init__(self, settings: RunSettings, post_event: EventPoster | None = None) -> None:
        self.settings = settings
        self.config = load_configuration(settings.kubeconfig, settings.context)
        self.model = ClusterModel()
        self.registry, self.collector, self.metrics = build_registry()
        self.api = KubeApi(self.config, RateLimiter(settings.write_qps, settings.write_burst),
                           request_timeout=settings.api_timeout)
        self.kubelets = KubeletClient(
            lambda: credentials(self.config),
            kubelet_ca_path=settings.kubelet_ca,
            max_body_bytes=settings.max_body_bytes,
        )
        self.relister = Relister(self.model, self.api, debounce=settings.relist_debounce)
        self.events = EventRecorder(self.api, instance=settings.identity)
        self.post_event: EventPoster = post_event or self.events.post
        self.deps = LoopDeps(
            model=self.model,
            scraper=KubeletScraper(self.kubelets),
            metrics=self.metrics,
            post_event=lambda *args: self.post_event(*args),
            synced=self.relister.synced,
        )
        self.lifecycle = PolicyLifecycle(self.api, self.deps, self.collector)
        self.registry.register(StatusWriterCollector(self.lifecycle.writer_states))
        self.endpoints = Endpoints(
            lambda: exposition(self.registry, self.collector),
            self._health,
            self._readiness,
            guard=DelegatedAuth(self.api) if settings.metrics_auth == "delegated" else None,
        )
        self.metrics_port: int | None = None
        self.elector: LeaderElector | None = None
        self._elector_task: asyncio.Task | None = None
        self._seed_task: asyncio.Task | None = None
        self._orphans_task: asyncio.Task | None = None
        self._health_problem: str | None = None
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
                on_stopped_leading=self.lifecycle.step_down,
            )
            self.deps.active = self.elector.leading
        self.metrics.leading.set_function(lambda: float(self.deps.active.is_set()))

    # ---- lifecycle ---------------------------------------------------------------------------
    async def preflight(self) -> None:
        """Fail fast on what would otherwise fail silently or on every cycle.

        The CRDs: kopf resolves its resources once at start-up (it may not watch CRDs, see handlers.configure),
        so an operator started before them would wait forever; exiting gets it restarted, and it works once they
        are installed. The kubelet CA bundle: unreadable, every scrape would fail. The metrics port's certificate
        (delegated metrics auth): unreadable, nothing could scrape. The metrics port: taken, kopf would retry its
        start-up handler forever. Serving /metrics and the probes starts here.
        """
        try:
            self.kubelets.check_kubelet_ca()
        except ScrapeError as exc:
            raise StartupError(f"--kubelet-ca: {exc.message}") from None
        tls = self._metrics_tls()
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
        if METRICSCHECKPOINTS not in names:
            # Not fatal: `helm upgrade` installs no new CRD (see README, "Checkpoints"); the histories then start
            # afresh at every restart.
            log.warning("the API server does not serve %s.%s/%s: right-sizing histories are not checkpointed and "
                        "start afresh at every restart; install the CRDs (kubectl apply -f crds/)",
                        METRICSCHECKPOINTS, GROUP, VERSION)
            self.lifecycle.checkpoints_served = False
        if missing:
            raise StartupError(
                f"the API server does not serve {', '.join(missing)}: install the CRDs "
                "(kubectl apply -f crds/, or the Helm chart) and the operator starts with its next restart"
            )
        try:
            self.metrics_port = await self.endpoints.start(self.settings.metrics_host, self.settings.metrics_port, tls)
        except OSError as exc:
            address = f"{self.settings.metrics_host}:{self.settings.metrics_port}"
            raise StartupError(f"cannot serve /metrics on {address}: {exc.strerror or exc}") from None

    def _metrics_tls(self) -> ssl.SSLContext | None:
        if self.settings.metrics_auth != "delegated":
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.settings.tls_cert_file, self.settings.tls_private_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"--tls-cert-file / --tls-private-key-file: cannot load {self.settings.tls_cert_file} and "
                f"{self.settings.tls_private_key_file}: {exc.strerror or exc}"
            ) from None
        return context

    async def start(self) -> None:
        """Seed the model in the background (after preflight): kopf starts its watches at once, and policy
        cycles wait for the seed (``synced``)."""
        shrink_tls_read_buffers()  # before the first kubelet (and API server) connection opens
        self._seed_task = asyncio.create_task(self._seed(), name="seed")
        self._orphans_task = asyncio.create_task(self._delete_orphans(), name="delete-orphans")
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

    async def _delete_orphans(self) -> None:
        """Once leading: remove the WorkloadMetrics and MetricsCheckpoints of policies deleted with their dependents
        orphaned."""
        await self.deps.active.wait()
        plurals = (WORKLOADMETRICS, METRICSCHECKPOINTS) if self.lifecycle.checkpoints_served else (WORKLOADMETRICS,)
        while True:
            try:
                await delete_orphaned_objects(self.api, plurals)
                return
            except Exception:
                log.exception("removing the objects of deleted policies failed; retrying in 5s")
                await asyncio.sleep(5)

    async def stop(self) -> None:
        """Stop publishing first (the policy loops, their status writers), then give the lease up, so a standby
        takes over at once; then the rest. Each step that can take time says so in the log."""
        leading = self.elector is not None and self.deps.active.is_set()
        log.info("stopping: the policy loops (%d) and their status writers, then %sthe HTTP server",
                 len(self.lifecycle.policies), "the leader lease, " if leading else "")
        await self.lifecycle.stop_all(flush_within=self.settings.shutdown_flush_timeout)
        for task in (self._elector_task, self._seed_task, self._orphans_task):
            await cancel_and_wait(task)  # the elector releases the lease it holds (see LeaderElector.run)
        await self.relister.close()
        await self.kubelets.close()
        if self.events.posting:
            log.info("stopping: waiting for %d Events being posted", self.events.posting)
        await self.events.close()
        await self.endpoints.close()
        log.info("stopping: HTTP server closed")
        await self.api.close()

    # ---- what /healthz and /readyz answer ------------------------------------------------------
    def _health(self) -> str | None:
        problems = []
        dead = self.lifecycle.stopped_loops()
        if dead:
            problems.append(f"policy loops stopped: {', '.join(dead)}")
        limit = self.settings.wedged_after
        stalled = self.lifecycle.stalled_writers(limit)
        if stalled:
            problems.append(f"status writes of {', '.join(stalled)} made no progress for over {limit:g}s")
        if self.api.oldest_request_age() > limit:
            problems.append(f"an API request has waited for over {limit:g}s (its timeout is {self.api.request_timeout:g}s)")
        problem = "; ".join(problems) or None
        if problem != self._health_problem:
            if problem is not None:
                log.error("not healthy: %s", problem)
            else:
                log.info("healthy again")
            self._health_problem = problem
        return problem

    def _readiness(self) -> tuple[bool, str]:
        if not self.relister.synced.is_set():
            return False, "initial listing in progress"
        # A standby replica is ready too: it holds a warm model and takes over when the leader goes.
        return True, f"ok ({'leader' if self.deps.active.is_set() else 'standby'})"

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
        if resource == NODES and event_type == "DELETED":
            self.metrics.forget_node(event["object"]["metadata"]["name"])
