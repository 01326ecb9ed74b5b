"""A small kopf operator, run in-process against the simulated API server, sees every change across watch
drops and resourceVersion expiry, and drives a custom resource through status writes and finalizers."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Callable

import kopf
import pytest

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.server import ApiServer
from kubemeter_sim.apiserver.tls import ServingCert

ADMIN_TOKEN = "admin-token"


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until the operator has caught up (a liveness wait, not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def pod(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


@pytest.fixture
async def operator_events(apiserver: ApiServer, apiserver_cert: ServingCert,
                          widget_crd: dict) -> AsyncIterator[list[tuple]]:
    apiserver.store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)
    registry = kopf.OperatorRegistry()
    seen: list[tuple] = []

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=apiserver.url, ca_data=apiserver_cert.cert_pem, token=ADMIN_TOKEN)

    @kopf.on.event("pods", registry=registry)
    def pod_event(type: str | None, name: str, **_: object) -> None:
        seen.append(("pod", type, name))

    @kopf.on.create("example.com", "v1", "widgets", id="widget", registry=registry)
    def widget_created(name: str, spec: dict, **_: object) -> dict:
        seen.append(("widget-created", name))
        return {"size": spec.get("size")}

    @kopf.on.delete("example.com", "v1", "widgets", registry=registry)
    def widget_deleted(name: str, **_: object) -> None:
        seen.append(("widget-deleted", name))

    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.05
    settings.posting.level = logging.ERROR
    settings.networking.error_backoffs = [0.1, 0.2]
    ready = asyncio.Event()
    task = asyncio.create_task(kopf.operator(registry=registry, settings=settings, clusterwide=True,
                                             standalone=True, ready_flag=ready))
    await asyncio.wait_for(ready.wait(), 15)
    # Kopf is ready before its watches run; a first pod, seen listed or added, shows they do.
    apiserver.store.create("v1", "pods", pod("sentinel"))
    await eventually(lambda: any(e[0] == "pod" and e[2] == "sentinel" for e in seen))
    try:
        yield seen
    finally:
        # Cancelling (not the stop flag) ends kopf without its 5-second wait for every task in the loop.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_kopf_sees_pod_events_across_watch_drops_and_expiry(apiserver: ApiServer,
                                                                   operator_events: list[tuple]) -> None:
    store = apiserver.store
    store.create("v1", "pods", pod("p1"))
    await eventually(lambda: ("pod", "ADDED", "p1") in operator_events)
    store.patch("v1", "pods", "p1", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
    await eventually(lambda: ("pod", "MODIFIED", "p1") in operator_events)

    await apiserver.drop_watches()
    store.create("v1", "pods", pod("p2"))           # happens while kopf reconnects: replayed from history
    store.delete("v1", "pods", "p1", "default")
    await eventually(lambda: ("pod", "DELETED", "p1") in operator_events)
    assert ("pod", "ADDED", "p2") in operator_events
    assert ("pod", None, "p1") not in operator_events     # resumed from its resourceVersion, no re-list

    # Compaction + dropped streams: kopf's re-watch from its last resourceVersion gets an in-stream 410 and
    # re-lists (kopf reports listed objects with type None).
    store.create("v1", "pods", pod("p3"))
    await eventually(lambda: ("pod", "ADDED", "p3") in operator_events)
    # A change kopf does not watch moves the global resourceVersion past kopf's last one before compaction.
    store.create("v1", "configmaps", {"metadata": {"name": "unwatched", "namespace": "default"}})
    apiserver.expire_resource_versions()
    await apiserver.drop_watches()
    listed_before = operator_events.count(("pod", None, "p2"))
    await eventually(lambda: operator_events.count(("pod", None, "p2")) > listed_before)
    store.create("v1", "pods", pod("p4"))
    await eventually(lambda: ("pod", "ADDED", "p4") in operator_events)


async def test_kopf_handles_a_custom_resource_with_status_and_finalizer(apiserver: ApiServer,
                                                                         operator_events: list[tuple]) -> None:
    store = apiserver.store
    store.create("example.com/v1", "widgets", {"metadata": {"name": "w", "namespace": "default"},
                                               "spec": {"size": 4}})
    await eventually(lambda: ("widget-created", "w") in operator_events)

    def handled() -> bool:
        status = store.get("example.com/v1", "widgets", "w", "default").get("status", {})
        return status.get("widget") == {"size": 4}
    await eventually(handled)
    widget = store.get("example.com/v1", "widgets", "w", "default")
    assert widget["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    assert widget["metadata"]["generation"] == 1          # kopf's status/annotation writes are not spec changes

    store.delete("example.com/v1", "widgets", "w", "default")
    await eventually(lambda: ("widget-deleted", "w") in operator_events)

    def gone() -> bool:
        try:
            store.get("example.com/v1", "widgets", "w", "default")
        except ApiError as error:
            return error.code == 404
        return False
    await eventually(gone)
