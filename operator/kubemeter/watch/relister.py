"""Keeping the ClusterModel complete: the initial paged LIST, and a re-list when kopf's listings show a gap.

kopf feeds the model with watch events, but after an expired resourceVersion (410) kopf lists again and
never reports the objects deleted during the gap. Its listings show up as events of type None; when they
stop for ``debounce`` seconds, the Relister checks whether the model holds objects that no event since
the listing began has named. Only then (objects deleted during the gap, or between the seed LIST and
kopf's first listing; or a listing that paused longer than ``debounce``) does it send its own paged LIST
of that resource and drop what is gone. So a start-up costs one LIST of each resource besides kopf's,
and a watch gap at most one more, never one per cycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import kubernetes
from kubemeter.kubeapi import KubeApi
from kubemeter.tasks import cancel_and_wait
from kubemeter.watch.model import JOBS, NAMESPACES, NODES, PODS, REPLICASETS, ClusterModel
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

PAGE_SIZE = 500
# Order matters for the first sync: owners and nodes before the pods that refer to them.
RESOURCES = (NAMESPACES, NODES, REPLICASETS, JOBS, PODS)


def _list_functions(api: KubeApi) -> dict[str, Callable]:
    apps = kubernetes.client.AppsV1Api(api.client)
    batch = kubernetes.client.BatchV1Api(api.client)
    return {
        NAMESPACES: api.core.list_namespace,
        NODES: api.core.list_node,
        REPLICASETS: apps.list_replica_set_for_all_namespaces,
        JOBS: batch.list_job_for_all_namespaces,
        PODS: api.core.list_pod_for_all_namespaces,
    }


class Relister:
    def __init__(self, model: ClusterModel, api: KubeApi, *, debounce: float = 3.0) -> None:
        self.model = model
        self.api = api
        self.debounce = debounce
        self.synced = asyncio.Event()
        self.relists = 0
        self.dropped = 0
        self.audits: Counter[str] = Counter()
        """Resource -> kopf listings of it checked against the model."""
        self.pods_listed = asyncio.Event()
        """kopf's first listing of pods (the largest) has been handled and checked."""
        self._list = _list_functions(api)
        self._listing_seen: dict[str, float] = {}
        """Resource -> when kopf last delivered one of its listed objects (an event of type None)."""
        self._watcher: asyncio.Task | None = None

    async def _pages(self, resource: str) -> AsyncIterator[list[dict]]:
        """A paged LIST as raw JSON pages (no model classes: 30,000 pods must stay cheap)."""
        fn = self._list[resource]
        token: str | None = None
        while True:
            kwargs = {"limit": PAGE_SIZE, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            response = await self.api.call(fn, **kwargs)
            page = json.loads(response.data)
            yield page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    async def relist(self, resource: str) -> int:
        """List ``resource`` in full and make the model match; returns how many stale objects went.

        Pages are applied as they come and only their keys are kept, so a LIST of 30,000 pods never holds
        them all in memory at once (pymalloc keeps such a peak as resident memory for good).
        """
        while True:
            self.model.begin_relist(resource)
            listed: set[tuple[str, str]] = set()
            try:
                async for page in self._pages(resource):
                    self.model.apply_listed(resource, page, listed)
                break
            except ApiException as exc:
                self.model.replace_abandoned(resource)
                if exc.status != 410:  # an expired continue token: start the listing over
                    raise
                log.info("listing %s: continue token expired, listing again", resource)
            except BaseException:
                self.model.replace_abandoned(resource)
                raise
        dropped = self.model.finish_relist(resource, listed)
        self.relists += 1
        self.dropped += dropped
        if dropped:
            log.info("re-list of %s dropped %d objects deleted during a watch gap", resource, dropped)
        return dropped

    async def seed(self) -> None:
        """The first full listing. It runs while kopf makes its own, so neither waits for the other.

        Audits start before it: kopf's listings are checked even while the seed fails (missing RBAC, an API
        server still starting), so the keys they collect never pile up; their re-lists wait for the seed.
        """
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_listings(), name="relist-watcher")
        for resource in RESOURCES:
            await self.relist(resource)
        self.synced.set()

    def saw_event(self, resource: str, event_type: str | None) -> None:
        """Called for every watch event; costs one dict write, as it runs for every pod of a listing."""
        if event_type is None:
            if resource not in self._listing_seen:
                self.model.begin_audit(resource)
            self._listing_seen[resource] = time.monotonic()

    async def _watch_listings(self) -> None:
        """Audit a resource once kopf's listing of it (type None events) has been quiet for ``debounce``,
        and re-list it when the model holds objects that the listing did not contain.

        This also covers kopf's first listing, which may end after the seed: an object deleted between
        the two LISTs would otherwise stay in the model.
        """
        gaps: set[str] = set()  # resources to re-list, once the seed is done (never alongside its LIST)
        while True:
            await asyncio.sleep(self.debounce / 3)
            now = time.monotonic()
            for resource, seen in list(self._listing_seen.items()):
                if now - seen >= self.debounce:
                    del self._listing_seen[resource]
                    unlisted = self.model.end_audit(resource)
                    self.audits[resource] += 1
                    if resource == PODS:
                        self.pods_listed.set()
                    if unlisted:
                        log.info("%d %s absent from kopf's listing: listing them to confirm", unlisted, resource)
                        gaps.add(resource)
            if self.synced.is_set():
                while gaps:
                    await self._relist_logged(gaps.pop())

    async def _relist_logged(self, resource: str) -> None:
        try:
            await self.relist(resource)
        except Exception:
            log.exception("re-list of %s failed; the next watch gap or restart repairs the model", resource)

    async def close(self) -> None:
        await cancel_and_wait(self._watcher)
