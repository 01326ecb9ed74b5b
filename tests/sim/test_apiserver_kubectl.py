"""kubectl 1.32, unmodified, against the simulated API server (HTTPS + bearer token)."""
from __future__ import annotations

import asyncio
import json

from kubemeter_sim.apiserver.server import ApiServer

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1", env: [{name: A, value: "1"}, {name: B, value: "2"}]}
      - {name: side, image: busybox}
"""


async def ok(kubectl, *args: str, stdin: str | None = None) -> str:
    code, out, err = await kubectl(*args, stdin=stdin)
    assert code == 0, err
    return out


async def get_json(kubectl, *args: str) -> dict:
    return json.loads(await ok(kubectl, "get", *args, "-o", "json"))


async def test_get_all_namespaces_and_raw(apiserver: ApiServer, kubectl) -> None:
    apiserver.store.create("v1", "nodes", {"metadata": {"name": "node-1", "labels": {
        "node-role.kubernetes.io/control-plane": ""}}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"}}})
    apiserver.store.create("v1", "pods", {"metadata": {"name": "coredns", "namespace": "kube-system"},
                                          "spec": {"containers": [{"name": "c", "image": "coredns"}]}})
    out = await ok(kubectl, "get", "pods", "-A")
    assert out.split("\n")[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out.split("\n")[1].split()[:4] == ["kube-system", "coredns", "0/1", "Pending"]
    nodes = (await ok(kubectl, "get", "nodes")).split("\n")[1].split()
    assert nodes[:3] == ["node-1", "Ready", "control-plane"] and nodes[-1] == "v1.32.0"
    namespaces = json.loads(await ok(kubectl, "get", "--raw", "/api/v1/namespaces"))
    assert namespaces["kind"] == "NamespaceList" and len(namespaces["items"]) == 4


async def test_apply_create_then_update_is_a_strategic_merge(apiserver: ApiServer, kubectl) -> None:
    assert "deployment.apps/web created" in await ok(kubectl, "apply", "-f", "-", stdin=DEPLOYMENT)
    updated = DEPLOYMENT.replace('"nginx:1"', '"nginx:2"').replace('value: "2"', 'value: "3"')
    assert "deployment.apps/web configured" in await ok(kubectl, "apply", "-f", "-", stdin=updated)
    deployment = await get_json(kubectl, "deployment", "web")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:2"), ("side", "busybox")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert deployment["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in deployment["metadata"]["annotations"]
    assert "unchanged" in await ok(kubectl, "apply", "-f", "-", stdin=updated)


async def test_create_patch_label_and_delete_wait(kubectl) -> None:
    await ok(kubectl, "create", "-f", "-", stdin=DEPLOYMENT)
    code, _, err = await kubectl("create", "-f", "-", stdin=DEPLOYMENT)
    assert code != 0 and 'deployments.apps "web" already exists' in err
    await ok(kubectl, "patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"paused":true}}')
    await ok(kubectl, "patch", "deployment", "web", "--type=json",
             "-p", '[{"op":"replace","path":"/spec/replicas","value":5}]')
    await ok(kubectl, "patch", "deployment", "web",
             "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:2"}]}}}}')
    code, _, err = await kubectl("patch", "deployment", "web", "--type=json",
                                 "-p", '[{"op":"test","path":"/spec/replicas","value":9}]')
    # as from the real server: the reason stays on the server's side
    assert code != 0 and "the server rejected our request due to an error in our request" in err
    await ok(kubectl, "label", "deployment", "web", "tier=frontend")
    await ok(kubectl, "scale", "deployment", "web", "--replicas=7")
    deployment = await get_json(kubectl, "deployment", "web")
    assert deployment["spec"]["paused"] is True and deployment["spec"]["replicas"] == 7
    assert [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]] == ["nginx:1", "busybox:2"]
    assert deployment["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    assert (await ok(kubectl, "get", "deployments", "-l", "tier=frontend", "-o", "name")).strip() == \
        "deployment.apps/web"
    assert 'deployment.apps "web" deleted' in await ok(kubectl, "delete", "deployment", "web", "--wait")
    code, _, err = await kubectl("get", "deployment", "web")
    assert code != 0 and 'deployments.apps "web" not found' in err


async def test_get_watch_prints_changes(apiserver: ApiServer, kubectl, tmp_path) -> None:
    store = apiserver.store
    store.create("v1", "pods", {"metadata": {"name": "p1", "namespace": "default"},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}})
    config = next(tmp_path.glob("kubeconfig"))
    process = await asyncio.create_subprocess_exec(
        "kubectl", f"--kubeconfig={config}", "get", "pods", "-w", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        header = await asyncio.wait_for(process.stdout.readline(), 10)
        first = await asyncio.wait_for(process.stdout.readline(), 10)
        assert header.split()[:3] == [b"NAME", b"READY", b"STATUS"] and first.split()[0] == b"p1"
        store.create("v1", "pods", {"metadata": {"name": "p2", "namespace": "default"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}})
        store.patch("v1", "pods", "p2", {"status": {"phase": "Running"}}, namespace="default",
                    subresource="status")
        lines = [await asyncio.wait_for(process.stdout.readline(), 10) for _ in range(2)]
        assert [line.split()[0] for line in lines] == [b"p2", b"p2"]
        assert [line.split()[2] for line in lines] == [b"Pending", b"Running"]
    finally:
        process.kill()
        await process.wait()


async def test_custom_resource_printer_columns(kubectl, widget_crd: dict) -> None:
    await ok(kubectl, "apply", "-f", "-", stdin=json.dumps(widget_crd))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 2}}
    await ok(kubectl, "apply", "-f", "-", stdin=json.dumps(widget))
    # Updating a custom resource with apply is a JSON merge patch (the server refuses strategic merge for CRs).
    await ok(kubectl, "apply", "-f", "-", stdin=json.dumps({**widget, "spec": {"size": 3}}))
    assert (await get_json(kubectl, "widget", "w1"))["metadata"]["generation"] == 2
    await ok(kubectl, "patch", "widget", "w1", "--subresource=status", "--type=merge",
             "-p", '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    lines = (await ok(kubectl, "get", "wd")).strip().split("\n")
    assert lines[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert lines[1].split()[:3] == ["w1", "3", "True"]
    code, _, err = await kubectl("create", "-f", "-", stdin=json.dumps(
        {**widget, "metadata": {"name": "w2"}, "spec": {"size": 0}}))
    assert code != 0 and "Invalid" in err and "spec.size" in err
    assert 'widget.example.com "w1" deleted' in await ok(kubectl, "delete", "widget", "w1", "--wait")


async def test_generator_commands_that_send_protobuf(kubectl) -> None:
    """`kubectl create namespace|configmap|secret` encode their object as protobuf, not JSON."""
    await ok(kubectl, "create", "namespace", "team")
    await ok(kubectl, "create", "configmap", "settings", "-n", "team", "--from-literal=mode=fast")
    await ok(kubectl, "create", "secret", "generic", "creds", "-n", "team", "--from-literal=password=s3cret")
    assert (await get_json(kubectl, "configmap", "settings", "-n", "team"))["data"] == {"mode": "fast"}
    assert (await get_json(kubectl, "secret", "creds", "-n", "team"))["data"] == {"password": "czNjcmV0"}
    namespace = await get_json(kubectl, "namespace", "team")
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert namespace["status"]["phase"] == "Active"
    assert (await ok(kubectl, "auth", "can-i", "delete", "pods", "-n", "team")).strip() == "yes"
