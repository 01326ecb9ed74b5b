"""Wire-level behaviour of the simulated API server: auth, discovery, lists, watches, tables, faults."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from kubemeter_sim.apiserver.server import ApiServer


async def open_watch(http, path: str, token: str = "admin-token") -> aiohttp.ClientResponse:
    response = await http.session.get(http.base + path, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    return response


async def next_event(response: aiohttp.ClientResponse, timeout: float = 5.0) -> dict:
    line = await asyncio.wait_for(response.content.readline(), timeout)
    assert line, "watch stream ended"
    return json.loads(line)


async def create_configmap(http, name: str, labels: dict | None = None, namespace: str = "default") -> dict:
    status, _, body = await http.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", json={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}})
    assert status == 201, body
    return body


async def test_health_and_version_are_public_and_resources_need_a_token(apiserver_http) -> None:
    assert (await apiserver_http.request("GET", "/healthz", token=None))[0] == 200
    status, _, version = await apiserver_http.request("GET", "/version", token=None)
    assert status == 200 and version["gitVersion"].startswith("v1.")
    for token in (None, "wrong"):
        status, headers, body = await apiserver_http.request("GET", "/api/v1/pods", token=token)
        assert status == 401 and headers["Content-Type"].startswith("application/json")
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_rbac_forbidden_body_and_allowed_rules(apiserver: ApiServer, apiserver_http) -> None:
    apiserver.add_token("sa", [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["get"]}],
        user="system:serviceaccount:kubemeter:kubemeter")
    status, _, body = await apiserver_http.request("GET", "/api/v1/pods", token="sa")
    assert status == 403
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'pods is forbidden: User "system:serviceaccount:kubemeter:kubemeter" cannot list '
                               'resource "pods" in API group "" at the cluster scope',
                    "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}
    status, _, body = await apiserver_http.request("GET", "/apis/apps/v1/namespaces/default/deployments/db",
                                                   token="sa")
    assert status == 403 and body["message"] == (
        'deployments.apps "db" is forbidden: User "system:serviceaccount:kubemeter:kubemeter" cannot get resource '
        '"deployments" in API group "apps" in the namespace "default"')
    assert body["details"] == {"name": "db", "group": "apps", "kind": "deployments"}
    status, _, _ = await apiserver_http.request("GET", "/apis/apps/v1/namespaces/default/deployments/web",
                                                token="sa")
    assert status == 404  # allowed, just not there
    assert (await apiserver_http.request("GET", "/api/v1", token="sa"))[0] == 200  # discovery always allowed
    assert apiserver.authorize("sa", "get", "", "nodes", "metrics", "n1") == (
        True, "system:serviceaccount:kubemeter:kubemeter")
    assert apiserver.authorize("sa", "get", "", "nodes", "stats", "n1")[0] is False
    assert apiserver.authorize("sa", "get", "", "pods", "status", "p", "default")[0] is False
    assert apiserver.authorize("nobody", "get", "", "pods") == (False, "")


async def test_discovery_updates_when_a_crd_is_created(apiserver_http, widget_crd: dict) -> None:
    _, _, core = await apiserver_http.request("GET", "/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["kind"] == "Pod" and by_name["pods"]["shortNames"] == ["po"]
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert by_name["nodes/proxy"]["kind"] == "NodeProxyOptions"
    assert (await apiserver_http.request("GET", "/apis/example.com/v1"))[0] == 404
    status, _, _ = await apiserver_http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                                json=widget_crd)
    assert status == 201
    _, _, groups = await apiserver_http.request("GET", "/apis")
    assert {"name": "example.com", "versions": [{"groupVersion": "example.com/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}} in groups["groups"]
    _, _, widgets = await apiserver_http.request("GET", "/apis/example.com/v1")
    assert [r["name"] for r in widgets["resources"]] == ["widgets", "widgets/status"]


async def test_paging_with_continue_and_expired_token(apiserver: ApiServer, apiserver_http) -> None:
    for index in range(5):
        await create_configmap(apiserver_http, f"cm-{index}")
    names: list[str] = []
    path = "/api/v1/namespaces/default/configmaps?limit=2"
    _, _, page = await apiserver_http.request("GET", path)
    assert page["metadata"]["remainingItemCount"] == 3
    names += [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        _, _, page = await apiserver_http.request("GET", f"{path}&continue={page['metadata']['continue']}")
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == [f"cm-{i}" for i in range(5)]
    _, _, first = await apiserver_http.request("GET", path)
    await create_configmap(apiserver_http, "later")
    apiserver.expire_resource_versions()
    status, _, body = await apiserver_http.request("GET", f"{path}&continue={first['metadata']['continue']}")
    assert status == 410 and body["reason"] == "Expired"
    assert body["message"].startswith("The provided continue parameter is too old")


async def test_watch_resumes_from_resource_version_and_translates_selector_changes(apiserver_http) -> None:
    start = await create_configmap(apiserver_http, "before")
    rv = start["metadata"]["resourceVersion"]
    await create_configmap(apiserver_http, "a", {"app": "x"})
    response = await open_watch(apiserver_http, f"/api/v1/namespaces/default/configmaps?watch=true"
                                                f"&resourceVersion={rv}&labelSelector=app%3Dx")
    async with response:
        replayed = await next_event(response)
        assert (replayed["type"], replayed["object"]["metadata"]["name"]) == ("ADDED", "a")
        merge = "application/merge-patch+json"
        path = "/api/v1/namespaces/default/configmaps/a"
        await apiserver_http.request("PATCH", path, data='{"data":{"k":"v"}}', content_type=merge)
        await apiserver_http.request("PATCH", path, data='{"metadata":{"labels":{"app":"y"}}}', content_type=merge)
        await apiserver_http.request("PATCH", path, data='{"metadata":{"labels":{"app":"x"}}}', content_type=merge)
        await apiserver_http.request("DELETE", path)
        events = [await next_event(response) for _ in range(4)]
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED", "ADDED", "DELETED"]
    # Leaving the selector: DELETED carries the previous state at the new resourceVersion.
    assert events[1]["object"]["metadata"]["labels"] == {"app": "x"}
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4


async def test_watch_from_too_old_resource_version_gets_410_inside_the_stream(apiserver: ApiServer,
                                                                               apiserver_http) -> None:
    created = await create_configmap(apiserver_http, "a")
    await create_configmap(apiserver_http, "b")
    apiserver.expire_resource_versions()
    rv = created["metadata"]["resourceVersion"]
    response = await open_watch(apiserver_http, f"/api/v1/configmaps?watch=true&resourceVersion={rv}")
    async with response:
        event = await next_event(response)
        assert event["type"] == "ERROR"
        assert event["object"] == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": f"too old resource version: {rv} ({apiserver.store.resource_version})",
                                   "reason": "Expired", "code": 410}
        assert await response.content.readline() == b""


async def test_initial_events_bookmarks_and_timeout(apiserver_http) -> None:
    await create_configmap(apiserver_http, "a")
    response = await open_watch(apiserver_http, "/api/v1/namespaces/default/configmaps?watch=true"
                                                "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                                "&allowWatchBookmarks=true&timeoutSeconds=1")
    async with response:
        added, end = await next_event(response), await next_event(response)
        assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "a")
        assert end["type"] == "BOOKMARK" and end["object"]["kind"] == "ConfigMap"
        assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        await create_configmap(apiserver_http, "elsewhere", namespace="kube-public")  # moves the resourceVersion
        periodic = await next_event(response)        # bookmark_interval is 0.2 s in the fixture
        assert periodic["type"] == "BOOKMARK" and "annotations" not in periodic["object"]["metadata"]
        while line := await asyncio.wait_for(response.content.readline(), 5):
            assert json.loads(line)["type"] == "BOOKMARK"
    status, _, body = await apiserver_http.request("GET", "/api/v1/configmaps?watch=true&sendInitialEvents=true")
    assert status == 422 and [c["field"] for c in body["details"]["causes"]] == ["resourceVersionMatch"]


async def test_no_bookmark_while_nothing_moves_past_where_the_watch_started(apiserver_http) -> None:
    created = await create_configmap(apiserver_http, "still")
    rv = created["metadata"]["resourceVersion"]
    response = await open_watch(apiserver_http, f"/api/v1/namespaces/default/configmaps?watch=true"
                                                f"&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1")
    async with response:
        assert await asyncio.wait_for(response.content.readline(), 5) == b""


async def test_drop_watches_ends_streams_and_clients_can_rewatch(apiserver: ApiServer, apiserver_http) -> None:
    response = await open_watch(apiserver_http, "/api/v1/namespaces/default/configmaps?watch=true")
    rv = apiserver.store.resource_version
    assert apiserver.open_watches == 1
    await apiserver.drop_watches()
    assert apiserver.open_watches == 0
    async with response:
        assert await asyncio.wait_for(response.content.read(), 5) == b""
    await create_configmap(apiserver_http, "after-drop")
    again = await open_watch(apiserver_http, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")
    async with again:
        event = await next_event(again)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "after-drop")


async def test_custom_resource_table_uses_printer_columns(apiserver_http, widget_crd: dict) -> None:
    await apiserver_http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=widget_crd)
    base = "/apis/example.com/v1/namespaces/default/widgets"
    await apiserver_http.request("POST", base, json={"apiVersion": "example.com/v1", "kind": "Widget",
                                                     "metadata": {"name": "w"}, "spec": {"size": 3}})
    await apiserver_http.request("PATCH", base + "/w/status", content_type="application/merge-patch+json",
                                 data='{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, _, table = await apiserver_http.request("GET", base, headers={"Accept": accept})
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:3] == ["w", 3, "True"] and cells[3].endswith("s")
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["rows"][0]["object"]["metadata"]["name"] == "w"


async def test_fieldvalidation_dry_run_and_patch_media_types(apiserver_http, widget_crd: dict) -> None:
    await apiserver_http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=widget_crd)
    base = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 3, "colour": "red"}}
    status, _, body = await apiserver_http.request("POST", base + "?fieldValidation=Strict", json=widget)
    assert status == 400 and 'unknown field "spec.colour"' in body["message"]
    status, _, _ = await apiserver_http.request("POST", base + "?dryRun=All", json=widget)
    assert status == 201 and (await apiserver_http.request("GET", base + "/w"))[0] == 404
    status, headers, created = await apiserver_http.request("POST", base + "?fieldValidation=Warn", json=widget)
    assert status == 201 and "colour" not in created["spec"] and 'unknown field' in headers["Warning"]
    status, _, body = await apiserver_http.request("PATCH", base + "/w", data="{}",
                                                   content_type="application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    status, _, body = await apiserver_http.request("PUT", base + "/w", json={**created, "spec": {"size": 0}})
    assert status == 422 and body["reason"] == "Invalid"


async def test_faults_status_hang_and_count(apiserver: ApiServer, apiserver_http) -> None:
    handle = apiserver.inject_fault(status=429, retry_after=3, path=r"^/api/v1/pods$", count=1)
    status, headers, body = await apiserver_http.request("GET", "/api/v1/pods")
    assert status == 429 and headers["Retry-After"] == "3" and body["reason"] == "TooManyRequests"
    assert (await apiserver_http.request("GET", "/api/v1/pods"))[0] == 200  # count exhausted
    assert handle.hits == 1
    hang = apiserver.inject_fault(hang=True, method="GET", path="/api/v1/nodes")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(apiserver_http.request("GET", "/api/v1/nodes"), 0.3)
    hang.remove()
    assert (await apiserver_http.request("GET", "/api/v1/nodes"))[0] == 200
    handle.remove()
    unavailable = apiserver.inject_fault(status=503, method="POST")
    assert (await apiserver_http.request("GET", "/api/v1/nodes"))[0] == 200
    assert (await apiserver_http.request("POST", "/api/v1/namespaces", json={"metadata": {"name": "x"}}))[0] == 503
    unavailable.remove()


async def test_restart_keeps_port_and_state(apiserver: ApiServer, apiserver_http) -> None:
    await create_configmap(apiserver_http, "kept")
    url = apiserver.url
    response = await open_watch(apiserver_http, "/api/v1/configmaps?watch=true&resourceVersion=1")
    await apiserver.restart()
    assert apiserver.url == url
    with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
        await asyncio.wait_for(response.content.read(), 5)
    response.close()
    status, _, body = await apiserver_http.request("GET", "/api/v1/namespaces/default/configmaps/kept")
    assert status == 200 and body["metadata"]["name"] == "kept"


async def test_node_proxy_is_authorized_and_routed(apiserver: ApiServer, apiserver_http) -> None:
    from aiohttp import web
    apiserver.store.create("v1", "nodes", {"metadata": {"name": "n1"}})
    seen: list[tuple[str, str]] = []

    async def proxy(node: str, path: str, request: web.Request) -> web.StreamResponse:
        seen.append((node, path))
        return web.Response(text="metric 1\n")
    apiserver.node_proxy = proxy
    apiserver.add_token("reader", [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}], user="r")
    status, _, text = await apiserver_http.request("GET", "/api/v1/nodes/n1/proxy/metrics/resource", token="reader")
    assert (status, text, seen) == (200, "metric 1\n", [("n1", "/metrics/resource")])
    apiserver.add_token("nosy", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}], user="nosy")
    status, _, body = await apiserver_http.request("GET", "/api/v1/nodes/n1/proxy/metrics", token="nosy")
    assert status == 403 and 'cannot get resource "nodes/proxy"' in body["message"]
    assert (await apiserver_http.request("GET", "/api/v1/nodes/n2/proxy/metrics", token="reader"))[0] == 404


async def test_impersonation_takes_the_users_rules_and_needs_the_right_to_impersonate(apiserver: ApiServer,
                                                                                      apiserver_http) -> None:
    apiserver.add_token("bob", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}], user="bob")
    as_bob, as_alice = {"Impersonate-User": "bob"}, {"Impersonate-User": "alice"}
    assert (await apiserver_http.request("GET", "/api/v1/pods", headers=as_bob))[0] == 200
    status, _, body = await apiserver_http.request("GET", "/api/v1/pods", headers=as_alice)
    assert status == 403 and 'User "alice" cannot list resource "pods"' in body["message"]
    status, _, body = await apiserver_http.request("GET", "/api/v1/pods", token="bob", headers=as_alice)
    assert (status, body["message"]) == (403, 'users "alice" is forbidden: User "bob" cannot impersonate resource '
                                              '"users" in API group "" at the cluster scope')


async def test_access_reviews_answer_from_the_rbac_rules(apiserver: ApiServer, apiserver_http) -> None:
    user = "system:serviceaccount:kubemeter:kubemeter"
    apiserver.add_token("sa", [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}], user=user)

    async def review(kind: str, spec: dict, token: str) -> bool:
        status, _, body = await apiserver_http.request(
            "POST", f"/apis/authorization.k8s.io/v1/{kind.lower()}s", token=token,
            json={"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})
        assert status == 201 and body["kind"] == kind
        return body["status"]["allowed"]
    metrics = {"verb": "get", "resource": "nodes", "subresource": "metrics", "name": "n1"}
    assert await review("SubjectAccessReview", {"user": user, "resourceAttributes": metrics}, "admin-token")
    assert not await review("SubjectAccessReview", {"user": user, "resourceAttributes": {
        **metrics, "subresource": "stats"}}, "admin-token")
    # Anyone may ask about themselves; the answer is theirs.
    assert await review("SelfSubjectAccessReview", {"resourceAttributes": metrics}, "sa")
    assert not await review("SelfSubjectAccessReview", {"resourceAttributes": {"verb": "list", "resource": "pods"}},
                            "sa")


async def test_deletecollection_with_label_selector(apiserver_http) -> None:
    for name, labels in (("a", {"tier": "cache"}), ("b", {"tier": "cache"}), ("c", {"tier": "db"})):
        await create_configmap(apiserver_http, name, labels)
    status, _, removed = await apiserver_http.request(
        "DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dcache")
    assert status == 200 and removed["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in removed["items"]] == ["a", "b"]
    _, _, left = await apiserver_http.request("GET", "/api/v1/namespaces/default/configmaps")
    assert [i["metadata"]["name"] for i in left["items"]] == ["c"]


async def test_large_list_is_complete_and_in_key_order(apiserver: ApiServer, apiserver_http) -> None:
    """Lists this long are encoded off the event loop; the answer must not change for it."""
    names = [f"cm-{index:05d}" for index in range(2500)]
    for name in reversed(names):
        apiserver.store.create("v1", "configmaps", {"metadata": {"name": name, "namespace": "default"}})
    status, _, listing = await apiserver_http.request("GET", "/api/v1/configmaps")
    assert status == 200 and [i["metadata"]["name"] for i in listing["items"]] == names
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    _, _, table = await apiserver_http.request("GET", "/api/v1/namespaces/default/configmaps", headers=accept)
    assert [row["cells"][0] for row in table["rows"]] == names
