"""kopf glue, and nothing else: every handler hands its event to the Runtime.

Pods, nodes, namespaces, ReplicaSets and Jobs are followed with ``@kopf.on.event`` only: no index (its
initial listing is quadratic in kopf 1.45), no state in annotations, no finalizers, and handlers return
None so kopf never patches the watched objects. MetricsPolicy is followed the same way: the operator keeps
no finalizer on it, so deleting a policy never hangs, running operator or not, and the garbage collector
removes its WorkloadMetrics through their owner references.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import threading

import kopf

from kubemeter import GROUP, VERSION
from kubemeter.app import Runtime
from kubemeter.kube import credentials, user_agent
from kubemeter.kubeapi import CLUSTER_EVENTS_NAMESPACE
from kubemeter.watch.model import JOBS, NAMESPACES, NODES, PODS, REPLICASETS

WATCHED = {
    PODS: ("", "v1", "pods"),
    NODES: ("", "v1", "nodes"),
    NAMESPACES: ("", "v1", "namespaces"),
    REPLICASETS: ("apps", "v1", "replicasets"),
    JOBS: ("batch", "v1", "jobs"),
}


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: the operator has event handlers only, and kopf computes the diff for change handlers.

    kopf still builds one for every event (a deep copy of the object's essence, then a scan of it for
    progress fields) and throws it away: about a fifth of the CPU of listing 30,000 pods. This storage
    builds an empty essence, remembers nothing and never writes to the object.
    """

    def build(self, *, body: kopf.Body, extra_fields: object = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class IdentifiedConnection(kopf.ConnectionInfo):
    """kopf's connection, its requests naming kubemeter like the operator's own: kopf takes its session's headers
    from ``as_http_headers`` and sets its own User-Agent (``kopf/<version>``) only where they have none."""

    def as_http_headers(self) -> dict[str, str]:
        return {**super().as_http_headers(), "User-Agent": KOPF_USER_AGENT}


KOPF_USER_AGENT = user_agent(f"kopf/{importlib.metadata.version('kopf')}")


def configure(settings: kopf.OperatorSettings, watch_timeout: int) -> None:
    # Only the events the operator posts on purpose; per-object handler logs stay in the log.
    settings.posting.level = logging.WARNING
    # Watches are re-opened every few minutes, as client-go does, and the client ends one the server did not
    # end in time, so a silently dead stream or a watch request never answered cannot last.
    settings.watching.server_timeout = watch_timeout
    settings.watching.client_timeout = watch_timeout + min(30, watch_timeout)
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # kopf lists in one response by default: 30,000 pods parsed at once is a memory peak the allocator keeps.
    settings.watching.chunk_size = 500
    # Least privilege: kopf's dynamic CRD observer needs list/watch on customresourcedefinitions, which
    # the operator has no other use for. The resources are resolved once at start-up instead (the chart
    # installs the CRDs before the operator starts).
    settings.scanning.disabled = True
    settings.persistence.diffbase_storage = NoDiffBase()


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: object) -> None:
        runtime: Runtime = memo.runtime
        configure(settings, runtime.settings.watch_timeout)
        await runtime.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: object) -> None:
        await memo.runtime.stop()

    @kopf.on.login(registry=registry)
    def login(memo: kopf.Memo, **_: object) -> kopf.ConnectionInfo:
        runtime: Runtime = memo.runtime
        creds = credentials(runtime.config)
        return IdentifiedConnection(
            server=creds.server,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            scheme="Bearer" if creds.token else None,
            token=creds.token,
            certificate_path=creds.cert_path,
            private_key_path=creds.key_path,
            default_namespace=CLUSTER_EVENTS_NAMESPACE,  # kopf's Events about MetricsPolicies go there too
        )

    def watch(resource: str, group: str, version: str, plural: str) -> None:
        @kopf.on.event(group, version, plural, registry=registry, id=f"watch-{plural}")
        async def on_event(event: kopf.RawEvent, memo: kopf.Memo, **_: object) -> None:
            memo.runtime.watch_event(resource, event)

    for resource, (group, version, plural) in WATCHED.items():
        watch(resource, group, version, plural)

    @kopf.on.event(GROUP, VERSION, "metricspolicies", registry=registry, id="policy")
    async def on_policy(event: kopf.RawEvent, memo: kopf.Memo, **_: object) -> None:
        await memo.runtime.lifecycle.policy_event(event.get("type"), event["object"])

    return registry



async def run_operator(
    runtime: Runtime, stop_flag: asyncio.Event | threading.Event | None = None, **kwargs: object
) -> None:
    """Run kopf with kubemeter's handlers until ``stop_flag`` is set, SIGINT or SIGTERM arrives (kopf handles them
    when it runs in the main thread), or the task is cancelled.

    Raises StartupError at once if the operator cannot work as configured (see Runtime.preflight)."""
    await runtime.preflight()
    try:
        await kopf.operator(
            registry=build_registry(),
            clusterwide=True,
            standalone=True,
            memo=kopf.Memo(runtime=runtime),
            stop_flag=stop_flag,
            **kwargs,
        )
    except asyncio.CancelledError:
        # kopf ends a requested stop by cancelling its own root task: that is a clean exit, not an error.
        if stop_flag is None or not stop_flag.is_set():
            raise
