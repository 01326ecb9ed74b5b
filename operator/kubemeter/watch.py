"""Keeping the ClusterModel complete: the initial paged LIST, and a re-list whenever kopf re-lists.

kopf feeds the model with watch events, but after an expired resourceVersion (410) kopf lists again and
never reports the objects deleted during the gap. Its re-listing shows up as events of type None after
the initial sync; when they stop for ``debounce`` seconds, the Relister sends its own paged LIST of that
resource and drops what is gone. The same rule covers objects deleted between the seed LIST and kopf's
first listing. These LISTs happen only at start-up and after a watch gap, never per cycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import kubernetes
from kubernetes.client.exceptions import ApiException

from kubemeter.model import JOBS, NAMESPACES, NODES, PODS, REPLICASETS, ClusterModel
from kubemeter.publish.api import KubeApi

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
        self._list = _list_functions(api)
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()

    async def list_all(self, resource: str) -> list[dict]:
        """A consistent paged LIST (raw JSON, no model classes: 30,000 pods must stay cheap)."""
        fn = self._list[resource]
        while True:
            items: list[dict] = []
            token: str | None = None
            try:
                while True:
                    kwargs = {"limit": PAGE_SIZE, "_preload_content": False}
                    if token:
                        kwargs["_continue"] = token
                    response = await self.api.call(fn, **kwargs)
                    page = json.loads(response.data)
                    items.extend(page.get("items") or ())
                    token = (page.get("metadata") or {}).get("continue")
                    if not token:
                        return items
            except ApiException as exc:
                if exc.status != 410:  # an expired continue token: start the listing over
                    raise
                log.info("listing %s: continue token expired, listing again", resource)

    async def relist(self, resource: str) -> int:
        self.model.begin_relist(resource)
        try:
            objects = await self.list_all(resource)
        except BaseException:
            self.model.replace_abandoned(resource)
            raise
        dropped = self.model.replace(resource, objects)
        self.relists += 1
        self.dropped += dropped
        if dropped:
            log.info("re-list of %s dropped %d objects deleted during a watch gap", resource, dropped)
        return dropped

    async def seed(self) -> None:
        for resource in RESOURCES:
            await self.relist(resource)
        self.synced.set()

    def saw_event(self, resource: str, event_type: str | None) -> None:
        """Called for every watch event: listings (type None) after the sync schedule a re-list."""
        if event_type is not None or not self.synced.is_set():
            return
        pending = self._pending.pop(resource, None)
        if pending is not None:
            pending.cancel()
        loop = asyncio.get_running_loop()
        self._pending[resource] = loop.call_later(self.debounce, self._start_relist, resource)

    def _start_relist(self, resource: str) -> None:
        self._pending.pop(resource, None)
        task = asyncio.create_task(self._relist_logged(resource))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relist_logged(self, resource: str) -> None:
        try:
            await self.relist(resource)
        except Exception:
            log.exception("re-list of %s failed; the next watch gap or restart repairs the model", resource)

    async def close(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
