"""Differential fidelity: the same requests sent to the simulator and to a real kube-apiserver (v1.37, built by
``make controlplane``), both with admin credentials, and what a client sees compared: status codes, Status bodies
(reason, code, message, the causes' field paths), defaulting, the status subresource, watch event sequences, Table
columns, garbage collection, selectors and pagination.

Values that legitimately differ between two servers (uids, resourceVersions, timestamps, generated name suffixes,
continue tokens, managedFields: see the README's simulator section) are normalised before comparing; everything
else must be equal. Each test runs one scenario on both backends at once and compares the two results.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from kubemeter import GROUP, VERSION
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from tests.packaging.test_crd_schemas import INVALID_POLICIES

REPO = Path(__file__).resolve().parents[2]
JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
POLICIES = f"/apis/{GROUP}/{VERSION}/metricspolicies"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GC_DEADLINE = 60.0
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Reply:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)


class Backend:
    """Raw HTTP to one API server as its admin, so every answer is seen as sent."""

    def __init__(self, name: str, url: str, context: ssl.SSLContext, headers: dict[str, str]) -> None:
        self.name = name
        self.url = url
        self._context = context
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._context))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
                   content_type: str = JSON, accept: str = JSON, headers: dict[str, str] | None = None,
                   data: str | None = None) -> Reply:
        assert self._session is not None
        sent = {**self._headers, "Content-Type": content_type, "Accept": accept, **(headers or {})}
        payload = data if data is not None else (None if body is None else json.dumps(body))
        async with self._session.request(method, self.url + path, data=payload, params=params, headers=sent,
                                         timeout=aiohttp.ClientTimeout(total=60)) as response:
            text = await response.text()
            try:
                document: Any = json.loads(text) if text else None
            except ValueError:
                document = text
            return Reply(response.status, document, response.headers.getall("Warning", []))

    async def ok(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        reply = await self.call(method, path, body, **options)
        assert reply.status < 300, (self.name, method, path, reply.status, reply.body)
        return reply.body

    async def namespace(self, name: str) -> str:
        await self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    async def leases(self, namespace: str, *names: str) -> str:
        """A new namespace with these Leases in it; the path of its Leases."""
        path = leases(await self.namespace(namespace))
        for name in names:
            await self.ok("POST", path, lease(name))
        return path

    async def watch(self, path: str, params: dict[str, str], *, events: int | None = None,
                    timeout: float = 20.0) -> list[dict[str, Any]]:
        """The events of one watch: until ``events`` arrived, or until the server ends the stream."""
        assert self._session is not None
        query = {"watch": "true", **params}
        found: list[dict[str, Any]] = []
        async with self._session.get(self.url + path, params=query, headers={**self._headers, "Accept": JSON},
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            assert response.status == 200, (self.name, response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    found.append(json.loads(line))
                    if events is not None and len(found) == events:
                        break
        return found


@dataclass
class Backends:
    sim: Backend
    real: Backend

    async def each(self, scenario: Callable[[Backend], Awaitable[Any]]) -> tuple[Any, Any]:
        """The scenario on both servers at once: (what the simulator showed, what the real server showed)."""
        return tuple(await asyncio.gather(scenario(self.sim), scenario(self.real)))  # type: ignore[return-value]

    async def same(self, scenario: Callable[[Backend], Awaitable[Any]]) -> Any:
        sim, real = await self.each(scenario)
        assert sim == real, "the simulator differs from the real server:\n" + "\n".join(differences(sim, real))
        return real


def differences(sim: Any, real: Any, path: str = "") -> list[str]:
    """Where two results differ, one line each: ``path: sim=... real=...``."""
    if isinstance(sim, dict) and isinstance(real, dict):
        return [line for key in {**sim, **real} for line in differences(
            sim.get(key, "<absent>"), real.get(key, "<absent>"), f"{path}.{key}")]
    if isinstance(sim, (list, tuple)) and isinstance(real, (list, tuple)) and len(sim) == len(real):
        return [line for index, (a, b) in enumerate(zip(sim, real)) for line in differences(a, b, f"{path}[{index}]")]
    if sim == real:
        return []
    return [f"{path or '.'}: sim={json.dumps(sim, default=str)} real={json.dumps(real, default=str)}"]


async def _install_crds(backend: Backend, crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        await backend.ok("POST", CRDS, crd)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    for crd in crds:
        spec = crd["spec"]
        path = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
        while (await backend.call("GET", path)).status != 200:
            assert loop.time() < deadline, f"{backend.name}: {path} not served within 60s"
            await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backends(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Backends]:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    async with Cluster(nodes=1, scenario="empty", workdir=tmp_path_factory.mktemp("sim")) as sim_cluster, \
            RealCluster(nodes=1, scenario="empty", workdir=tmp_path_factory.mktemp("real")) as real_cluster:
        sim_context = ssl.create_default_context(cafile=str(sim_cluster.ca_path))
        sim = Backend("sim", sim_cluster.url, sim_context, {"Authorization": f"Bearer {sim_cluster.token}"})
        pki = real_cluster.control_plane.pki
        real_context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        real_context.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
        real = Backend("real", real_cluster.url, real_context, {})
        for backend in (sim, real):
            await backend.open()
        try:
            await asyncio.gather(_install_crds(sim, crds), _install_crds(real, crds))
            yield Backends(sim, real)
        finally:
            for backend in (sim, real):
                await backend.close()


# ---- normalisation ------------------------------------------------------------------------------------------
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VOLATILE = {"uid": "<uid>", "resourceVersion": "<rv>", "creationTimestamp": "<time>",
             "deletionTimestamp": "<time>", "lastTransitionTime": "<time>", "continue": "<token>"}


def normal(value: Any) -> Any:
    """``value`` with what legitimately differs between two servers replaced by placeholders."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key == "managedFields":
                continue
            result[key] = _VOLATILE[key] if key in _VOLATILE and item not in (None, "") else normal(item)
        return result
    if isinstance(value, list):
        return [normal(item) for item in value]
    if isinstance(value, str):
        return _UID.sub("<uid>", value)
    return value


def status_of(reply: Reply) -> dict[str, Any]:
    """What a client reads from an error answer: code, and the Status' reason, code, message and causes."""
    body = reply.body if isinstance(reply.body, dict) else {"text": reply.body}
    details = body.get("details") or {}
    return normal({
        "http": reply.status, "kind": body.get("kind"), "status": body.get("status"), "reason": body.get("reason"),
        "code": body.get("code"), "message": body.get("message", body.get("text")),
        "details": {k: v for k, v in details.items() if k != "uid"},
    })


async def answers(b: Backend, *requests: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What a client sees (``status_of``) for each (method, path, options of ``Backend.call``), in order."""
    return [status_of(await b.call(method, path, **options)) for method, path, options in requests]


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "metadata": {"name": name}, "spec": spec}


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **({"data": data} if data else {})}


def lease(name: str, labels: dict[str, str] | None = None, holder: str = "a") -> dict[str, Any]:
    """Leases for lists and watches: the real controllers put ConfigMaps (kube-root-ca.crt) and ServiceAccounts
    into every namespace, but nothing creates Leases outside kube-node-lease."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"holderIdentity": holder}}


def leases(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def workload_metrics(name: str) -> dict[str, Any]:
    """For bookmark timing: a resource nothing in the background writes. (A bookmark's resourceVersion is the
    resource's across namespaces, and the fake nodes renew their Leases in kube-node-lease every 10 s.)"""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics", "metadata": {"name": name},
            "spec": {"policy": "fid", "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}}


def workload_metrics_path(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/workloadmetrics"


# ---- error answers --------------------------------------------------------------------------------------------
async def test_not_found_answers_agree(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[dict[str, Any]]:
        return [status_of(await b.call("GET", path)) for path in (
            "/api/v1/namespaces/default/pods/missing",
            "/api/v1/namespaces/default/configmaps/missing",
            "/apis/apps/v1/namespaces/default/deployments/missing",
            f"{POLICIES}/missing",
            "/api/v1/namespaces/no-such-namespace/configmaps/missing",
            "/api/v1/namespaces/default/nothings",
            "/apis/no.such.group/v1/things",
        )]
    await backends.same(scenario)


async def test_already_exists_and_a_stale_resource_version_conflict_agree(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[dict[str, Any]]:
        namespace = await b.namespace("fid-conflict")
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        created = await b.ok("POST", path, configmap("cm", a="1"))
        again = await b.call("POST", path, configmap("cm", a="1"))
        await b.ok("PUT", f"{path}/cm", {**created, "data": {"a": "2"}})
        stale = await b.call("PUT", f"{path}/cm", {**created, "data": {"a": "3"}})
        made = await b.ok("POST", POLICIES, policy("fid-conflict", {}))
        policy_again = await b.call("POST", POLICIES, policy("fid-conflict", {}))
        await b.ok("PUT", f"{POLICIES}/fid-conflict", {**made, "spec": {"interval": "1m"}})
        policy_stale = await b.call("PUT", f"{POLICIES}/fid-conflict", {**made, "spec": {"interval": "2m"}})
        merge_stale = await b.call("PATCH", f"{path}/cm", {"metadata": {"resourceVersion": created["metadata"][
            "resourceVersion"]}, "data": {"a": "4"}}, content_type="application/merge-patch+json")
        return [status_of(r) for r in (again, stale, policy_again, policy_stale, merge_stale)]
    await backends.same(scenario)


async def test_invalid_built_in_objects_are_refused_alike(backends: Backends) -> None:
    pods = [
        {"metadata": {"name": "no-containers"}, "spec": {"containers": []}},
        {"metadata": {"name": "no-image"}, "spec": {"containers": [{"name": "app"}]}},
        {"metadata": {"name": "bad-container"}, "spec": {"containers": [{"name": "App_1", "image": "x"}]}},
        {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "app", "image": "x"}]}},
        {"metadata": {"name": "bad-label", "labels": {"-x": "y"}}, "spec": {"containers": [
            {"name": "app", "image": "x"}]}},
    ]

    async def scenario(b: Backend) -> list[dict[str, Any]]:
        namespace = await b.namespace("fid-invalid")
        replies = [await b.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod) for pod in pods]
        replies.append(await b.call("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                    {"metadata": {"name": "x" * 254}}))
        # A pod template whose labels the selector does not match (a chart's labels overriding its selector's).
        template = {"metadata": {"labels": {"app": "other", "tier": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "x"}]}}
        for kind, extra in (("deployments", {}), ("replicasets", {}), ("daemonsets", {}),
                            ("statefulsets", {"serviceName": "s"})):
            replies.append(await b.call("POST", f"/apis/apps/v1/namespaces/{namespace}/{kind}", {
                "metadata": {"name": "mismatch"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template, **extra}}))
        matching = await b.ok("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", {
            "metadata": {"name": "matching"},
            "spec": {"selector": {"matchLabels": {"app": "other"}}, "template": template}})
        replies.append(await b.call(
            "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{matching['metadata']['name']}",
            {"spec": {"template": {"metadata": {"labels": {"app": "else"}}}}},
            content_type="application/merge-patch+json"))
        return [status_of(r) for r in replies]
    await backends.same(scenario)


@pytest.mark.parametrize(("spec", "field", "message"), INVALID_POLICIES)
async def test_invalid_policies_are_refused_with_the_same_status(backends: Backends, spec: dict[str, Any],
                                                                 field: str, message: str) -> None:
    async def scenario(b: Backend) -> dict[str, Any]:
        reply = await b.call("POST", POLICIES, policy("invalid", spec), params={"dryRun": "All"})
        return status_of(reply)
    seen = await backends.same(scenario)
    assert seen["http"] == 422
    assert any(c.get("field") == field and message.lower() in c["message"].lower()
               for c in seen["details"]["causes"]), seen


async def test_forbidden_answers_for_an_impersonated_user_without_rbac_agree(backends: Backends) -> None:
    alice = {"Impersonate-User": "alice"}

    async def scenario(b: Backend) -> list[dict[str, Any]]:
        return await answers(
            b, ("GET", "/api/v1/namespaces/default/pods", {"headers": alice}),
            ("GET", "/api/v1/namespaces/default/pods/web", {"headers": alice}),
            ("GET", "/api/v1/nodes", {"headers": alice}),
            ("POST", POLICIES, {"body": policy("alice", {}), "headers": alice}),
            ("GET", "/api/v1/nodes/sim-control-plane/proxy/metrics", {"headers": alice}))
    await backends.same(scenario)


async def test_methods_a_resource_does_not_allow_are_refused_alike(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[dict[str, Any]]:
        namespace = await b.namespace("fid-method")
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        await b.ok("POST", path, configmap("cm"))
        return await answers(
            b, ("PUT", path, {"body": configmap("cm")}), ("POST", f"{path}/cm", {"body": configmap("cm")}),
            ("PATCH", path, {"body": {}, "content_type": "application/merge-patch+json"}),
            ("DELETE", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {}))
    await backends.same(scenario)


async def test_unsupported_media_types_and_bad_patches_are_refused_alike(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[dict[str, Any]]:
        namespace = await b.namespace("fid-patch")
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        await b.ok("POST", path, configmap("cm", a="1"))
        await b.ok("POST", POLICIES, policy("fid-patch", {}))
        json_patch = "application/json-patch+json"
        return await answers(
            b, ("PATCH", f"{path}/cm", {"data": '{"data":{}}', "content_type": "text/plain"}),
            ("POST", path, {"data": "name: x", "content_type": "text/plain"}),
            ("PATCH", f"{POLICIES}/fid-patch", {"body": {"spec": {}},
                                                "content_type": "application/strategic-merge-patch+json"}),
            ("PATCH", f"{path}/cm", {"data": "{not json", "content_type": "application/merge-patch+json"}),
            ("PATCH", f"{path}/cm", {"body": [{"op": "remove", "path": "/data/missing"}], "content_type": json_patch}),
            ("PATCH", f"{path}/cm", {"body": [{"op": "test", "path": "/data/a", "value": "2"}],
                                     "content_type": json_patch}))
    await backends.same(scenario)


def fidelity_crd(kind: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A cluster-scoped CRD of ``kind`` in fidelity.example.com whose root schema has ``properties``."""
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.fidelity.example.com"},
        "spec": {"group": "fidelity.example.com", "scope": "Cluster",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": properties}}}]}}


async def test_a_crd_whose_default_fails_its_cel_rules_is_refused_alike(backends: Backends) -> None:
    """A structural default is checked against the CEL rules of its node, without nested defaults applied: the
    real server refused our own MetricsPolicy CRD for it once (``no such key: source``)."""
    crd = fidelity_crd("Gadget", {"spec": {
        "type": "object", "default": {},
        "x-kubernetes-validations": [{"rule": "size(self.source) > 0", "message": "source must not be empty"}],
        "properties": {"source": {"type": "string", "default": "here"}}}})

    rising = copy.deepcopy(crd)
    rising["metadata"]["name"] = "risers.fidelity.example.com"
    rising["spec"]["names"] = {"plural": "risers", "singular": "riser", "kind": "Riser"}
    spec = rising["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["default"] = {"count": 1}
    spec["properties"] = {"count": {"type": "integer"}}
    spec["x-kubernetes-validations"] = [{"rule": "self.count > oldSelf.count", "message": "count must rise"}]

    async def scenario(b: Backend) -> list[dict[str, Any]]:
        return [status_of(await b.call("POST", CRDS, crd)), status_of(await b.call("POST", CRDS, rising))]
    seen = await backends.same(scenario)
    assert [s["http"] for s in seen] == [422, 422], seen


async def test_a_crd_whose_list_map_key_an_item_may_lack_is_refused_alike(backends: Backends) -> None:
    """A key of an x-kubernetes-list-type map must be required or defaulted: the real server refused the policy
    status's per-namespace right-sizing list for it once."""
    items = {"type": "object", "properties": {"namespace": {"type": "string"}, "count": {"type": "integer"}}}
    crd = fidelity_crd("Ledger", {"status": {"type": "object", "properties": {"rows": {
        "type": "array", "items": items, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["namespace"]}}}})
    keyed = copy.deepcopy(crd)
    keyed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["rows"][
        "items"]["required"] = ["namespace"]

    async def scenario(b: Backend) -> list[dict[str, Any]]:
        refused = status_of(await b.call("POST", CRDS, crd))
        accepted = await b.call("POST", CRDS, keyed)
        await b.call("DELETE", f"{CRDS}/ledgers.fidelity.example.com")
        return [refused, {"http": accepted.status}]
    seen = await backends.same(scenario)
    assert [s["http"] for s in seen] == [422, 201], seen


async def test_unknown_fields_are_refused_with_strict_and_warned_about_otherwise(backends: Backends) -> None:
    """kubectl sends fieldValidation=Strict; clients that send nothing get a Warning header."""
    body = {**policy("fid-fields", {"interval": "1m", "bogus": 1}), "extra": True}

    async def scenario(b: Backend) -> list[Any]:
        strict = await b.call("POST", POLICIES, body, params={"fieldValidation": "Strict", "dryRun": "All"})
        warned = await b.call("POST", POLICIES, body, params={"dryRun": "All"})
        ignored = await b.call("POST", POLICIES, body, params={"fieldValidation": "Ignore", "dryRun": "All"})
        return [status_of(strict), warned.status, sorted(warned.warnings), sorted(warned.body["spec"]),
                ignored.warnings]
    await backends.same(scenario)


async def test_writes_to_missing_objects_and_namespaces_are_not_found(backends: Backends) -> None:
    """A WorkloadMetrics deleted behind kubemeter's back shows as a 404 on its next status patch."""
    merge = "application/merge-patch+json"

    async def scenario(b: Backend) -> list[dict[str, Any]]:
        namespace = await b.namespace("fid-missing")
        wm = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/workloadmetrics/gone"
        return await answers(
            b, ("PATCH", f"{wm}/status", {"body": {"status": {"pods": 1}}, "content_type": merge}),
            ("PATCH", f"{POLICIES}/gone/status", {"body": {"status": {"pods": 1}}, "content_type": merge}),
            ("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/gone", {}),
            ("POST", "/api/v1/namespaces/fid-never-made/configmaps", {"body": configmap("x")}))
    await backends.same(scenario)


async def test_generated_names_and_namespace_deletion_answer_alike(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-names")
        generated = await b.ok("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                               {"metadata": {"generateName": "cm-"}})
        name = generated["metadata"]["name"]
        doomed = await b.namespace("fid-doomed")
        deleted = await b.ok("DELETE", f"/api/v1/namespaces/{doomed}")
        protected = await b.call("DELETE", "/api/v1/namespaces/kube-system")
        return [re.fullmatch(r"cm-[a-z0-9]{5}", name) is not None, generated["metadata"]["generateName"],
                {k: normal(deleted.get(k)) for k in ("kind", "spec", "status")},
                sorted(k for k in deleted["metadata"] if k != "managedFields"), status_of(protected)]
    await backends.same(scenario)


async def test_events_as_kubemeter_writes_them_are_stored_alike(backends: Backends) -> None:
    event = {"metadata": {"name": "node-7.scrape"}, "involvedObject": {"kind": "Node", "name": "node-7",
                                                                          "apiVersion": "v1"},
             "reason": "ScrapeFailed", "message": "timeout", "type": "Warning", "count": 1,
             "source": {"component": "kubemeter"}, "firstTimestamp": "2026-12-02T10:00:00Z",
             "lastTimestamp": "2026-12-02T10:00:00Z"}

    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-events")
        refused = await b.call("POST", f"/api/v1/namespaces/{namespace}/events", event)
        created = await b.ok("POST", "/api/v1/namespaces/default/events", {
            **event, "metadata": {"name": f"{b.name}.scrape"}})
        return [status_of(refused), normal({**created, "metadata": {k: v for k, v in created["metadata"].items()
                                                                    if k != "name"}})]
    await backends.same(scenario)


# ---- defaulting ---------------------------------------------------------------------------------------------
async def test_policy_defaults_agree(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        empty = await b.ok("POST", POLICIES, policy("defaults", {}), params={"dryRun": "All"})
        partial = await b.ok("POST", POLICIES, policy("partial", {"source": {"endpoint": "summary"},
                                                                  "aggregation": {"percentiles": []}}),
                             params={"dryRun": "All"})
        # An interval alone, at the minimum or long: no timeout or window defaulted that could contradict it.
        intervals = [await b.ok("POST", POLICIES, policy(f"every-{interval}", {"interval": interval}),
                                params={"dryRun": "All"}) for interval in ("10s", "1h")]
        return [normal(empty), normal(partial), *map(normal, intervals)]
    await backends.same(scenario)


async def test_a_jobs_generated_selector_agrees(backends: Backends) -> None:
    """Without manualSelector the API server selects a Job's pods by a controller-uid label it adds to the template
    (kubectl's SELECTOR column, and what the job controller's pods carry)."""
    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace("fid-job-selector")
        job = await b.ok("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": {"template": {
                "metadata": {"labels": {"app": "once"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}},
            params={"dryRun": "All"})
        return normal({"selector": job["spec"]["selector"], "labels": job["spec"]["template"]["metadata"]["labels"]})
    await backends.same(scenario)


async def test_pod_defaults_kubemeter_reads_agree(backends: Backends) -> None:
    """Requests defaulted from limits are what kubemeter sums; the QoS class is what it shows."""
    containers = [{"name": "limits-only", "image": "x", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
                  {"name": "requests", "image": "x", "resources": {"requests": {"cpu": "100m"}}},
                  {"name": "none", "image": "x"}]

    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace("fid-pod-defaults")
        pod = await b.ok("POST", f"/api/v1/namespaces/{namespace}/pods",
                         {"metadata": {"name": "p"}, "spec": {"containers": containers}}, params={"dryRun": "All"})
        spec = pod["spec"]
        return {"resources": [c.get("resources") for c in spec["containers"]],
                "qosClass": pod["status"].get("qosClass"), "phase": pod["status"].get("phase"),
                **{k: spec.get(k) for k in ("restartPolicy", "dnsPolicy", "schedulerName",
                                            "terminationGracePeriodSeconds", "nodeName")},
                "generation": pod["metadata"].get("generation")}
    await backends.same(scenario)


async def test_a_node_as_a_kubelet_registers_it_reads_back_alike(backends: Backends) -> None:
    """The Node fields kubemeter reads (addresses, kubelet port, labels, conditions, capacity) as created."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fid-node", "labels": {
        "kubernetes.io/hostname": "fid-node", "node-role.kubernetes.io/worker": ""}},
        "spec": {"taints": [{"key": "example.com/fidelity", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.9.0.1"},
                                 {"type": "Hostname", "address": "fid-node"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                   "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                   "allocatable": {"cpu": "1900m", "memory": "3Gi", "pods": "110"},
                   "nodeInfo": {"kubeletVersion": "v1.37.2", "osImage": "fidelity", "kernelVersion": "6.1",
                                "containerRuntimeVersion": "fake://1", "machineID": "", "systemUUID": "",
                                "bootID": "", "kubeProxyVersion": "", "operatingSystem": "linux",
                                "architecture": "amd64"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready",
                                   "lastHeartbeatTime": "2026-12-02T10:00:00Z",
                                   "lastTransitionTime": "2026-12-02T10:00:00Z"}]}}

    async def scenario(b: Backend) -> Any:
        created = await b.ok("POST", "/api/v1/nodes", node, params={"dryRun": "All"})
        # The real admission (TaintNodesByCondition) adds the not-ready taint, which its node-lifecycle
        # controller takes off again once the node is Ready; the simulator has neither (see the README).
        created["spec"]["taints"] = [t for t in created["spec"]["taints"]
                                     if t["key"] != "node.kubernetes.io/not-ready"]
        return normal(created)
    await backends.same(scenario)


# ---- status subresource, generation ----------------------------------------------------------------------------
async def test_status_subresource_rules_and_generation_agree(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        name = "fid-status"
        seen = []
        created = await b.ok("POST", POLICIES, {**policy(name, {"interval": "1m"}), "status": {"pods": 3}})
        seen.append(("create", created["metadata"]["generation"], created.get("status")))
        merge = "application/merge-patch+json"
        through_main = await b.ok("PATCH", f"{POLICIES}/{name}", {"status": {"pods": 5}}, content_type=merge)
        seen.append(("status via main", through_main["metadata"]["generation"], through_main.get("status")))
        through_status = await b.ok("PATCH", f"{POLICIES}/{name}/status",
                                    {"spec": {"interval": "2m"}, "status": {"pods": 7}}, content_type=merge)
        seen.append(("spec via status", through_status["metadata"]["generation"], through_status["spec"]["interval"],
                     through_status.get("status")))
        labelled = await b.ok("PATCH", f"{POLICIES}/{name}", {"metadata": {"labels": {"a": "b"}}}, content_type=merge)
        seen.append(("label", labelled["metadata"]["generation"]))
        changed = await b.ok("PATCH", f"{POLICIES}/{name}", {"spec": {"interval": "3m"}}, content_type=merge)
        seen.append(("spec", changed["metadata"]["generation"], changed.get("status")))
        same = await b.ok("PATCH", f"{POLICIES}/{name}", {"spec": {"interval": "3m"}}, content_type=merge)
        seen.append(("no-op", same["metadata"]["generation"],
                     same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]))
        put = await b.ok("PUT", f"{POLICIES}/{name}/status", {**same, "spec": {"interval": "4m"},
                                                              "status": {"pods": 9}})
        seen.append(("put status", put["metadata"]["generation"], put["spec"]["interval"], put.get("status")))
        return seen
    await backends.same(scenario)


async def test_configmap_and_namespace_have_no_generation_but_deployments_do(backends: Backends) -> None:
    deployment = {"metadata": {"name": "d"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}

    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-generation")
        cm = await b.ok("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap("cm"))
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        created = await b.ok("POST", path, {**deployment, "status": {"replicas": 4}})
        scaled = await b.ok("PATCH", f"{path}/d", {"spec": {"replicas": 1}},
                            content_type="application/merge-patch+json")
        return [cm["metadata"].get("generation"), created["metadata"].get("generation"), created.get("status"),
                scaled["metadata"].get("generation")]
    await backends.same(scenario)


# ---- watch ---------------------------------------------------------------------------------------------------
def _events(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], e["object"]["metadata"].get("name"), e["object"].get("spec")) for e in events]


async def test_a_watch_sees_added_modified_deleted_and_resumes_from_a_resource_version(backends: Backends) -> None:
    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace("fid-watch")
        path = leases(namespace)
        start = (await b.ok("GET", path))["metadata"]["resourceVersion"]
        watching = asyncio.create_task(b.watch(path, {"resourceVersion": start}, events=3))
        await asyncio.sleep(0.5)
        created = await b.ok("POST", path, lease("w", holder="1"))
        await b.ok("PATCH", f"{path}/w", {"spec": {"holderIdentity": "2"}}, content_type="application/merge-patch+json")
        await b.ok("DELETE", f"{path}/w")
        live = await asyncio.wait_for(watching, 20)
        resumed = await b.watch(path, {"resourceVersion": created["metadata"]["resourceVersion"]}, events=2)
        from_start = await b.watch(path, {"resourceVersion": start}, events=3)
        labelled = await b.watch(path, {"resourceVersion": start, "labelSelector": "x=y", "timeoutSeconds": "1"})
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in live]
        return {"live": _events(live), "resumed": _events(resumed), "replayed": _events(from_start),
                "filtered": _events(labelled), "increasing": rvs == sorted(rvs) and len(set(rvs)) == 3}
    await backends.same(scenario)


async def test_a_watch_timeout_that_is_no_integer_is_refused_alike(backends: Backends) -> None:
    """kopf sends timeoutSeconds as given: a float setting made "300.0", which the simulator took and the real
    server refuses (Go's ParseInt), so every watch of the operator failed on the real server only."""
    async def scenario(b: Backend) -> list[dict[str, Any]]:
        path = leases(await b.namespace("fid-watch-timeout"))
        return await answers(b, *(("GET", path, {"params": {"watch": "true", "timeoutSeconds": value}})
                                  for value in ("2.5", "300.0", " 3", "x")))
    await backends.same(scenario)


def _bookmark(event: dict[str, Any]) -> dict[str, Any]:
    """What a bookmark carries for a client: its kind and metadata (the real server sends an empty object of the
    kind, the simulator only these)."""
    obj = event["object"]
    return normal({"kind": obj["kind"], "apiVersion": obj["apiVersion"], "metadata": obj["metadata"]})


async def test_a_bookmark_arrives_before_the_watch_times_out_once_the_resource_moved(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace, elsewhere = await b.namespace("fid-bookmark"), await b.namespace("fid-bookmark-elsewhere")
        path = leases(namespace)
        start = (await b.ok("GET", path))["metadata"]["resourceVersion"]
        params = {"resourceVersion": start, "allowWatchBookmarks": "true", "timeoutSeconds": "4"}
        quiet = asyncio.create_task(b.watch(path, params))
        moved = asyncio.create_task(b.watch(path, params))
        await asyncio.sleep(0.5)
        await b.ok("POST", leases(elsewhere), lease("other"))   # not in the watched namespace
        quiet_events, moved_events = await quiet, await moved
        # one bookmark a tick of the server's timer in the last two seconds: how many is timing, what is not
        return [sorted({json.dumps([e["type"], _bookmark(e)]) for e in moved_events}),
                # past the watch's start (not necessarily the other Lease's: a fake node may renew its own first)
                all(int(e["object"]["metadata"]["resourceVersion"]) > int(start) for e in moved_events),
                bool(quiet_events) == bool(moved_events)]
    seen = await backends.same(scenario)
    assert [json.loads(shape)[0] for shape in seen[0]] == ["BOOKMARK"], seen


async def test_no_bookmark_while_the_resource_stands_still(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-no-bookmark")
        path = workload_metrics_path(namespace)
        start = (await b.ok("POST", path, workload_metrics("still")))["metadata"]["resourceVersion"]
        return await b.watch(path, {"resourceVersion": start, "allowWatchBookmarks": "true", "timeoutSeconds": "3"})
    assert await backends.same(scenario) == []


async def test_initial_events_end_with_an_annotated_bookmark(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        path = await b.leases("fid-initial", "a", "b")
        events = await b.watch(path, {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
                                      "allowWatchBookmarks": "true"}, events=3)
        refused = await b.call("GET", path, params={"watch": "true", "sendInitialEvents": "true"})
        return [[(e["type"], _bookmark(e) if e["type"] == "BOOKMARK" else e["object"]["metadata"]["name"])
                 for e in events], status_of(refused)]
    await backends.same(scenario)


async def test_an_old_resource_version_still_in_the_window_replays_every_change(backends: Backends) -> None:
    """A watch from resourceVersion 1 replays the resource's whole history, and a continue token stays good
    while more is written: the real server's watch cache keeps every event of a small resource (etcd compaction
    does not touch it), so neither answers 410 here. The simulator's 410 (its ``expire_resource_versions``,
    the ERROR event and the expired continue token) is checked in tests/sim; see the README."""
    async def scenario(b: Backend) -> list[Any]:
        path = await b.leases("fid-history", "x", "y")
        first = await b.ok("GET", path, params={"limit": "1"})
        await b.ok("DELETE", f"{path}/x")
        events = await b.watch(path, {"resourceVersion": "1", "timeoutSeconds": "1"})
        rest = await b.ok("GET", path, params={"limit": "1", "continue": first["metadata"]["continue"]})
        return [_events(events), [i["metadata"]["name"] for i in first["items"] + rest["items"]]]
    await backends.same(scenario)


# ---- tables ----------------------------------------------------------------------------------------------------
def _table(document: dict[str, Any]) -> dict[str, Any]:
    # Column descriptions are the API's field documentation, which the simulator does not carry (kubectl shows
    # none of it); names, types, formats and priorities are what a client renders. Times since something (a
    # Job's Duration too) differ by when each server was asked.
    columns = [{k: v for k, v in c.items() if k != "description"} for c in document["columnDefinitions"]]
    ages = [i for i, c in enumerate(columns) if c["name"] in ("Age", "Duration")]
    rows = [[(f"<{columns[i]['name'].lower()}>" if i in ages and cell else cell) for i, cell in enumerate(r["cells"])]
            for r in document["rows"]]
    return {"kind": document["kind"], "apiVersion": document["apiVersion"], "columns": columns, "rows": rows,
            "objects": [normal(r.get("object")) for r in document["rows"]]}


async def test_table_output_agrees_for_pods_nodes_and_our_resources(backends: Backends) -> None:
    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace("fid-table")
        await b.ok("POST", f"/api/v1/namespaces/{namespace}/pods", {"metadata": {"name": "p"}, "spec": {
            "nodeName": "nowhere", "containers": [{"name": "c", "image": "x"}]}})
        await b.ok("POST", POLICIES, policy("fid-table", {"interval": "15s"}))
        await b.ok("PATCH", f"{POLICIES}/fid-table/status", {"status": {
            "nodes": {"selected": 2, "scraped": 1, "failed": 1}, "workloads": 4,
            "cluster": {"cpu": "250m", "memory": "64Mi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "CycleComplete", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
            content_type="application/merge-patch+json")
        wm = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/workloadmetrics"
        await b.ok("POST", wm, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics",
                                "metadata": {"name": "deployment-web"}, "spec": {
                                    "policy": "fid-table", "workload": {"apiVersion": "apps/v1",
                                                                        "kind": "Deployment", "name": "web"}}})
        await b.ok("PATCH", f"{wm}/deployment-web/status", {"status": {
            "pods": 3, "cpu": {"usage": "120m", "requestUtilization": 0.5},
            "memory": {"usage": "12Mi"}}}, content_type="application/merge-patch+json")
        return {
            "pods": _table(await b.ok("GET", f"/api/v1/namespaces/{namespace}/pods", accept=TABLE)),
            "pod": _table(await b.ok("GET", f"/api/v1/namespaces/{namespace}/pods/p", accept=TABLE)),
            "nodes": _table(await b.ok("GET", "/api/v1/nodes", accept=TABLE,
                                       params={"fieldSelector": "metadata.name=nowhere"}))["columns"],
            "policies": _table(await b.ok("GET", POLICIES, accept=TABLE,
                                          params={"fieldSelector": "metadata.name=fid-table"})),
            "workloadmetrics": _table(await b.ok("GET", wm, accept=TABLE, params={"includeObject": "None"})),
        }
    await backends.same(scenario)


def _template(labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    # Tolerating every taint: the DaemonSet runs on each node of both backends, control plane included.
    return {"metadata": {"labels": labels}, "spec": {
        "containers": [{"name": "app", "image": "registry.example/app:1.2"}, {"name": "proxy", "image": "envoy:1"}],
        "tolerations": [{"operator": "Exists"}], **spec}}


def _selector(app: str) -> dict[str, Any]:
    """Labels and an expression, so the Selector column shows both forms in the API server's order."""
    return {"matchLabels": {"app": app}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}


# Every field a real API server defaults is given, so that both servers hold the same spec; the counts are those
# each one's controllers reach (the real ones, or the simulator's), polled until they settle.
WORKLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "deployments": ("apps/v1", {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": _selector("web"), "template": _template({"app": "web", "tier": "a"})}}),
    "replicasets": ("apps/v1", {"kind": "ReplicaSet", "metadata": {"name": "cache"}, "spec": {
        "replicas": 2, "selector": _selector("cache"), "template": _template({"app": "cache", "tier": "a"})}}),
    "statefulsets": ("apps/v1", {"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": _selector("db"),
        "template": _template({"app": "db", "tier": "a"})}}),
    "daemonsets": ("apps/v1", {"kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {
        "selector": _selector("agent"),
        "template": _template({"app": "agent", "tier": "a"}, nodeSelector={"kubernetes.io/os": "linux"})}}),
    "jobs": ("batch/v1", {"kind": "Job", "metadata": {"name": "once"}, "spec": {
        "completions": 1, "parallelism": 1, "manualSelector": True, "selector": _selector("once"),
        "template": _template({"app": "once", "tier": "a"}, restartPolicy="Never")}}),
    "cronjobs": ("batch/v1", {"kind": "CronJob", "metadata": {"name": "yearly"}, "spec": {
        "schedule": "0 0 1 1 *", "timeZone": "Etc/UTC", "suspend": True, "jobTemplate": {"spec": {
            "template": _template({"app": "yearly"}, restartPolicy="OnFailure")}}}}),
}


def _settled(kind: str, cells: list[Any]) -> bool:
    """Whether a workload's counts are those its controllers reach: every replica ready, the Job started."""
    if kind in ("deployments", "statefulsets"):
        return cells[1] == "2/2" and (kind == "statefulsets" or cells[3] == 2)
    if kind == "replicasets":
        return cells[3] == 2
    if kind == "daemonsets":
        return cells[1] > 0 and cells[1:6] == [cells[1]] * 5
    if kind == "jobs":
        return bool(cells[3])  # a Duration once it has started
    return True


async def test_table_output_agrees_for_every_workload_kind(backends: Backends) -> None:
    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace("fid-workload-tables")
        tables = {}
        loop = asyncio.get_running_loop()
        for kind, (group_version, body) in WORKLOADS.items():
            path = f"/apis/{group_version}/namespaces/{namespace}/{kind}"
            await b.ok("POST", path, {"apiVersion": group_version, **body})
            deadline = loop.time() + 60
            while not _settled(kind, (document := await b.ok("GET", f"{path}/{body['metadata']['name']}",
                                                            accept=TABLE))["rows"][0]["cells"]):
                assert loop.time() < deadline, (b.name, kind, document["rows"][0]["cells"])
                await asyncio.sleep(0.2)
            tables[kind] = _table(document)
            tables[kind].pop("objects")
        return tables
    tables = await backends.same(scenario)
    images = ["app,proxy", "registry.example/app:1.2,envoy:1"]
    selector = "app={},tier in (a,b)"
    assert {kind: table["rows"] for kind, table in tables.items()} == {
        "deployments": [["web", "2/2", 2, 2, "<age>", *images, selector.format("web")]],
        "replicasets": [["cache", 2, 2, 2, "<age>", *images, selector.format("cache")]],
        "statefulsets": [["db", "2/2", "<age>", *images]],
        "daemonsets": [["agent", *[tables["daemonsets"]["rows"][0][1]] * 5, "kubernetes.io/os=linux", "<age>",
                        *images, selector.format("agent")]],
        "jobs": [["once", "Running", "0/1", "<duration>", "<age>", *images, selector.format("once")]],
        "cronjobs": [["yearly", "0 0 1 1 *", "Etc/UTC", "True", 0, "<none>", "<age>", *images, "<none>"]],
    }


# ---- garbage collection ----------------------------------------------------------------------------------------
async def _gone(b: Backend, path: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GC_DEADLINE
    while loop.time() < deadline:
        if (await b.call("GET", path)).status == 404:
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.parametrize("propagation", ["Background", "Foreground", "Orphan"])
async def test_deleting_an_owner_collects_its_dependents(backends: Backends, propagation: str) -> None:
    async def scenario(b: Backend) -> dict[str, Any]:
        namespace = await b.namespace(f"fid-gc-{propagation.lower()}")
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        owner = await b.ok("POST", path, configmap("owner"))
        reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        for name in ("dep-1", "dep-2"):
            await b.ok("POST", path, {**configmap(name), "metadata": {"name": name, "ownerReferences": [
                {**reference, "blockOwnerDeletion": True}]}})
        deleted = await b.ok("DELETE", f"{path}/owner", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                          "propagationPolicy": propagation})
        owner_gone = await _gone(b, f"{path}/owner")
        if propagation == "Orphan":
            await asyncio.sleep(1)
            left = (await b.ok("GET", path))["items"]
            return {"deleted": normal(deleted), "owner gone": owner_gone, "left": sorted(
                (i["metadata"]["name"], i["metadata"].get("ownerReferences")) for i in left
                if i["metadata"]["name"].startswith("dep-"))}
        dependents_gone = [await _gone(b, f"{path}/{name}") for name in ("dep-1", "dep-2")]
        return {"deleted": normal(deleted), "owner gone": owner_gone, "dependents gone": dependents_gone}
    await backends.same(scenario)


async def test_a_policy_deleted_takes_its_workload_metrics_with_it(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-gc-policy")
        owner = await b.ok("POST", POLICIES, policy("fid-gc", {}))
        wm = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/workloadmetrics"
        await b.ok("POST", wm, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics", "metadata": {
            "name": "pod-x", "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy",
                                                  "name": "fid-gc", "uid": owner["metadata"]["uid"],
                                                  "controller": True}]},
            "spec": {"policy": "fid-gc", "workload": {"apiVersion": "v1", "kind": "Pod", "name": "x"}}})
        deleted = await b.call("DELETE", f"{POLICIES}/fid-gc")
        return [status_of(deleted), await _gone(b, f"{wm}/pod-x")]
    await backends.same(scenario)


# ---- server-side apply (helm 4 installs with it) ------------------------------------------------------------
APPLY = "application/apply-patch+yaml"


async def test_server_side_apply_creates_updates_and_needs_a_field_manager(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-apply")
        path = f"/api/v1/namespaces/{namespace}/configmaps/applied"
        manager = {"fieldManager": "helm"}
        created = await b.call("PATCH", path, configmap("applied", a="1"), content_type=APPLY, params=manager)
        updated = await b.call("PATCH", path, configmap("applied", a="2", b="3"), content_type=APPLY, params=manager)
        unnamed = await b.call("PATCH", path, configmap("applied", a="4"), content_type=APPLY)
        applied_policy = await b.call("PATCH", f"{POLICIES}/fid-apply", policy("fid-apply", {"interval": "1m"}),
                                      content_type=APPLY, params=manager)
        return [(created.status, normal(created.body)), (updated.status, normal(updated.body)), status_of(unnamed),
                (applied_policy.status, normal(applied_policy.body))]
    await backends.same(scenario)


# ---- selectors and pagination -------------------------------------------------------------------------------
async def test_label_and_field_selectors_select_alike(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-select")
        path = leases(namespace)
        for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}), ("c", {})):
            await b.ok("POST", path, lease(name, labels))
        selected = []
        for params in ({"labelSelector": "tier=web"}, {"labelSelector": "tier!=web"},
                       {"labelSelector": "tier in (web,db),env"}, {"labelSelector": "!tier"},
                       {"fieldSelector": "metadata.name=b"}, {"fieldSelector": "metadata.name!=b"},
                       {"fieldSelector": f"metadata.namespace={namespace}", "labelSelector": "env=prod"}):
            items = (await b.ok("GET", path, params=params))["items"]
            selected.append(sorted(i["metadata"]["name"] for i in items))
        bad = [status_of(await b.call("GET", path, params=params)) for params in (
            {"fieldSelector": "spec.nodeName=x"}, {"fieldSelector": "metadata.name"})]
        bad.append(status_of(await b.call("GET", "/api/v1/pods", params={"fieldSelector": "spec.nothing=x"})))
        malformed = [status_of(await b.call("GET", path, params={"labelSelector": text})) for text in (
            "a in (b", "=x", "!a=b", "a b", "a,", "a in b", "a=(", "a=b=c", "a in (b c)", "a<x", "-x=y", "a=-b",
            "a!!=b")]
        odd_but_valid = [sorted(i["metadata"]["name"] for i in (await b.ok("GET", path, params={
            "labelSelector": text}))["items"]) for text in ("tier in (web,,db)", "tier notin ()", "env in (in)")]
        pods = [status_of(await b.call("GET", "/api/v1/pods", params={"fieldSelector": selector}))["http"] for
                selector in ("spec.nodeName=x", "status.phase!=Running", "spec.restartPolicy=Always")]
        return [selected, bad, malformed, odd_but_valid, pods]
    await backends.same(scenario)


async def test_list_resource_version_semantics_agree(backends: Backends) -> None:
    """resourceVersion and resourceVersionMatch on a LIST: what each combination returns or why it is refused."""
    async def scenario(b: Backend) -> list[Any]:
        path = await b.leases("fid-list-rv", "a", "b")
        earlier = (await b.ok("GET", path))["metadata"]["resourceVersion"]
        await b.ok("POST", path, lease("c"))
        current = (await b.ok("GET", path))["metadata"]["resourceVersion"]
        then = await b.ok("GET", path, params={"resourceVersion": earlier, "resourceVersionMatch": "Exact"})
        seen = [[i["metadata"]["name"] for i in then["items"]]]
        for params in ({"resourceVersion": "0"}, {"resourceVersion": "0", "limit": "2"},
                       {"resourceVersion": current, "resourceVersionMatch": "NotOlderThan"},
                       {"resourceVersion": current, "resourceVersionMatch": "Exact"},
                       {"resourceVersion": current, "resourceVersionMatch": "Exact", "limit": "2"}):
            page = await b.ok("GET", path, params=params)
            seen.append(([i["metadata"]["name"] for i in page["items"]], bool(page["metadata"].get("continue"))))
        refused = await answers(
            b, ("GET", path, {"params": {"resourceVersionMatch": "NotOlderThan"}}),
            ("GET", path, {"params": {"resourceVersion": "0", "resourceVersionMatch": "Exact"}}),
            ("GET", path, {"params": {"resourceVersion": "x"}}),
            ("GET", path, {"params": {"limit": "x"}}),
            ("GET", path, {"params": {"resourceVersion": current, "resourceVersionMatch": "Sometime"}}))
        return [seen, refused]
    await backends.same(scenario)


async def test_the_pages_of_a_list_show_one_moment_while_objects_change(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        path = await b.leases("fid-snapshot", "a", "b", "c")
        first = await b.ok("GET", path, params={"limit": "1"})
        await b.ok("DELETE", f"{path}/c")
        await b.ok("POST", path, lease("d"))
        await b.ok("PATCH", f"{path}/b", {"spec": {"holderIdentity": "changed"}},
                   content_type="application/merge-patch+json")
        rest = await b.ok("GET", path, params={"continue": first["metadata"]["continue"]})
        return [[(i["metadata"]["name"], i["spec"]["holderIdentity"]) for i in first["items"] + rest["items"]],
                first["metadata"]["resourceVersion"] == rest["metadata"]["resourceVersion"]]
    await backends.same(scenario)


async def test_list_items_carry_apiversion_and_kind_only_for_custom_resources(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-items")
        await b.ok("POST", leases(namespace), lease("l"))
        await b.ok("POST", POLICIES, policy("fid-items", {}))
        built_in = (await b.ok("GET", leases(namespace)))["items"]
        custom = (await b.ok("GET", POLICIES, params={"fieldSelector": "metadata.name=fid-items"}))["items"]
        got = await b.ok("GET", f"{leases(namespace)}/l")
        return [sorted(built_in[0]), sorted(custom[0]), sorted(got)]
    await backends.same(scenario)


async def test_lists_page_with_limit_and_continue(backends: Backends) -> None:
    async def scenario(b: Backend) -> list[Any]:
        namespace = await b.namespace("fid-pages")
        path = leases(namespace)
        for index in range(5):
            await b.ok("POST", path, lease(f"l-{index}", {"even": str(index % 2 == 0).lower()}))
        pages, token = [], None
        while True:
            params = {"limit": "2", **({"continue": token} if token else {})}
            page = await b.ok("GET", path, params=params)
            pages.append(([i["metadata"]["name"] for i in page["items"]],
                          page["metadata"].get("remainingItemCount"), bool(page["metadata"].get("continue"))))
            token = page["metadata"].get("continue")
            if not token:
                break
        selected = await b.ok("GET", path, params={"limit": "2", "labelSelector": "even=true"})
        bad = status_of(await b.call("GET", path, params={"limit": "2", "continue": "garbage"}))
        # after this prefix: the JSON decoder's own complaint (Go's and Python's words)
        bad["message"] = bad["message"].partition("continue key is not valid: ")[0]
        return [pages, [i["metadata"]["name"] for i in selected["items"]],
                selected["metadata"].get("remainingItemCount"), bad]
    await backends.same(scenario)
