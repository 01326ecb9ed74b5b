"""The official kubernetes Python client, unmodified (it is synchronous: run it in a thread)."""
from __future__ import annotations

import asyncio

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from kubemeter_sim.apiserver.server import ApiServer


def pod_body(name: str, labels: dict | None = None) -> kubernetes.client.V1Pod:
    return kubernetes.client.V1Pod(
        metadata=kubernetes.client.V1ObjectMeta(name=name, labels=labels or {}),
        spec=kubernetes.client.V1PodSpec(containers=[kubernetes.client.V1Container(name="app", image="nginx")]))


async def test_crud_and_errors(kube_api_client) -> None:
    core = kubernetes.client.CoreV1Api(kube_api_client)
    created = await asyncio.to_thread(core.create_namespaced_pod, "default", pod_body("a", {"app": "web"}))
    assert created.metadata.uid and created.status.phase == "Pending"
    read = await asyncio.to_thread(core.read_namespaced_pod, "a", "default")
    assert read.spec.containers[0].image == "nginx"
    patched = await asyncio.to_thread(core.patch_namespaced_pod, "a", "default",
                                      {"metadata": {"labels": {"tier": "fe"}}},
                                      _content_type="application/merge-patch+json")
    assert patched.metadata.labels == {"app": "web", "tier": "fe"}
    read.metadata.annotations = {"note": "stale"}
    with pytest.raises(ApiException) as conflict:
        await asyncio.to_thread(core.replace_namespaced_pod, "a", "default", read)
    assert conflict.value.status == 409
    with pytest.raises(ApiException) as exists:
        await asyncio.to_thread(core.create_namespaced_pod, "default", pod_body("a"))
    assert exists.value.status == 409 and "AlreadyExists" in exists.value.body
    status = await asyncio.to_thread(core.patch_namespaced_pod_status, "a", "default",
                                     [{"op": "replace", "path": "/status/phase", "value": "Running"}])
    assert status.status.phase == "Running"
    await asyncio.to_thread(core.delete_namespaced_pod, "a", "default")
    with pytest.raises(ApiException) as gone:
        await asyncio.to_thread(core.read_namespaced_pod, "a", "default")
    assert gone.value.status == 404


async def test_list_with_selectors_and_paging(apiserver: ApiServer, kube_api_client) -> None:
    core = kubernetes.client.CoreV1Api(kube_api_client)
    for index in range(7):
        apiserver.store.create("v1", "pods", {"metadata": {"name": f"p{index}", "namespace": "default",
                                                           "labels": {"parity": "even" if index % 2 == 0 else "odd"}},
                                              "spec": {"containers": [{"name": "c", "image": "x"}],
                                                       "nodeName": f"n{index % 3}"}})
    evens = await asyncio.to_thread(core.list_namespaced_pod, "default", label_selector="parity=even")
    assert [p.metadata.name for p in evens.items] == ["p0", "p2", "p4", "p6"]
    on_n1 = await asyncio.to_thread(core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in on_n1.items] == ["p1", "p4"]
    names, token = [], None
    while True:
        page = await asyncio.to_thread(core.list_namespaced_pod, "default", limit=3, _continue=token)
        names += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"p{i}" for i in range(7)]
    with pytest.raises(ApiException) as bad:
        await asyncio.to_thread(core.list_namespaced_pod, "default", field_selector="spec.image=x")
    assert bad.value.status == 400


async def test_watch_stream_resumes_from_resource_version(apiserver: ApiServer, kube_api_client) -> None:
    core = kubernetes.client.CoreV1Api(kube_api_client)
    listing = await asyncio.to_thread(core.list_namespaced_config_map, "default")
    rv = listing.metadata.resource_version
    for name in ("a", "b"):
        apiserver.store.create("v1", "configmaps", {"metadata": {"name": name, "namespace": "default"}})
    apiserver.store.delete("v1", "configmaps", "a", "default")

    def collect() -> list[tuple[str, str]]:
        events = []
        for event in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default",
                                                      resource_version=rv, timeout_seconds=1):
            events.append((event["type"], event["object"].metadata.name))
        return events
    assert await asyncio.to_thread(collect) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


async def test_watch_after_expiry_raises_410(apiserver: ApiServer, kube_api_client) -> None:
    core = kubernetes.client.CoreV1Api(kube_api_client)
    listing = await asyncio.to_thread(core.list_namespaced_config_map, "default")
    apiserver.store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    apiserver.expire_resource_versions()

    def watch_old() -> None:
        for _ in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default",
                                                  resource_version=listing.metadata.resource_version):
            pass
    with pytest.raises(ApiException) as expired:
        await asyncio.to_thread(watch_old)
    assert expired.value.status == 410 and "too old resource version" in expired.value.reason


async def test_custom_objects_api(kube_api_client, widget_crd: dict) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(kube_api_client)
    await asyncio.to_thread(extensions.create_custom_resource_definition, widget_crd)
    custom = kubernetes.client.CustomObjectsApi(kube_api_client)
    created = await asyncio.to_thread(custom.create_namespaced_custom_object, "example.com", "v1", "default",
                                      "widgets", {"apiVersion": "example.com/v1", "kind": "Widget",
                                                  "metadata": {"name": "w"}, "spec": {"size": 2}})
    assert created["metadata"]["generation"] == 1
    status = await asyncio.to_thread(custom.patch_namespaced_custom_object_status, "example.com", "v1", "default",
                                     "widgets", "w", {"status": {"seen": True}})
    assert status["status"] == {"seen": True}
    with pytest.raises(ApiException) as invalid:
        await asyncio.to_thread(custom.patch_namespaced_custom_object, "example.com", "v1", "default", "widgets",
                                "w", {"spec": {"size": 0}})
    assert invalid.value.status == 422
    await asyncio.to_thread(custom.delete_namespaced_custom_object, "example.com", "v1", "default", "widgets", "w")
    listing = await asyncio.to_thread(custom.list_namespaced_custom_object, "example.com", "v1", "default",
                                      "widgets")
    assert listing["items"] == []


async def test_an_integer_beyond_int64_is_rejected_as_invalid_not_a_server_error(kube_api_client, widget_crd) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(kube_api_client)
    await asyncio.to_thread(extensions.create_custom_resource_definition, widget_crd)
    custom = kubernetes.client.CustomObjectsApi(kube_api_client)
    with pytest.raises(ApiException) as invalid:
        await asyncio.to_thread(custom.create_namespaced_custom_object, "example.com", "v1", "default", "widgets",
                                {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                                 "spec": {"size": 99999999999999999999}})
    assert invalid.value.status == 422 and "spec.size in body must be of type integer" in invalid.value.body
