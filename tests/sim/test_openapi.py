"""OpenAPI v3 documents: what kubectl 1.32 reads to decide on server-side validation, patch type and explain."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubemeter_sim.apiserver.openapi import definition_name, openapi_v3_document, openapi_v3_root

SPEC_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "interval": {"type": "string", "description": "How often the kubelets are scraped.",
                 "pattern": "^[0-9]+(s|m)$"},
    "source": {"type": "object", "properties": {"timeout": {"type": "string"}}},
}, "x-kubernetes-validations": [{"rule": "!has(self.source) || !has(self.source.timeout) || "
                                          "self.source.timeout != self.interval", "message": "timeout equals interval"}]}}}


@dataclass(frozen=True)
class FakeType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    schema: dict[str, Any] | None = None
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


POLICY = FakeType("kubemeter.io", "v1alpha1", "metricspolicies", "MetricsPolicy", False, frozenset({"status"}),
                  SPEC_SCHEMA)
METRICS = FakeType("kubemeter.io", "v1alpha1", "workloadmetrics", "WorkloadMetrics", True, frozenset({"status"}),
                   {"type": "object"})
PODS = FakeType("", "v1", "pods", "Pod", True, frozenset({"status"}))
DEPLOYMENTS = FakeType("apps", "v1", "deployments", "Deployment", True, frozenset({"status", "scale"}))
ALL = [POLICY, METRICS, PODS, DEPLOYMENTS]


def patch_operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {path: item["patch"] for path, item in document["paths"].items() if "patch" in item}


def test_root_lists_each_group_version_with_a_content_hash() -> None:
    root = openapi_v3_root(ALL)
    assert sorted(root["paths"]) == ["api/v1", "apis/apps/v1", "apis/kubemeter.io/v1alpha1"]
    url = root["paths"]["apis/kubemeter.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/kubemeter.io/v1alpha1?hash=")
    changed = FakeType(**{**POLICY.__dict__, "schema": {"type": "object"}})
    assert openapi_v3_root([changed, METRICS])["paths"]["apis/kubemeter.io/v1alpha1"]["serverRelativeURL"] != url
    assert openapi_v3_root(ALL)["paths"]["apis/apps/v1"] == openapi_v3_root([DEPLOYMENTS])["paths"]["apis/apps/v1"]


def test_every_patch_operation_offers_field_validation_for_its_kind() -> None:
    document = openapi_v3_document("kubemeter.io", "v1alpha1", ALL)
    patches = patch_operations(document)
    assert sorted(patches) == [
        "/apis/kubemeter.io/v1alpha1/metricspolicies/{name}",
        "/apis/kubemeter.io/v1alpha1/metricspolicies/{name}/status",
        "/apis/kubemeter.io/v1alpha1/namespaces/{namespace}/workloadmetrics/{name}",
        "/apis/kubemeter.io/v1alpha1/namespaces/{namespace}/workloadmetrics/{name}/status",
    ]
    for path, operation in patches.items():
        kind = "MetricsPolicy" if "metricspolicies" in path else "WorkloadMetrics"
        assert operation["x-kubernetes-group-version-kind"] == {"group": "kubemeter.io", "kind": kind,
                                                               "version": "v1alpha1"}
        assert {"name": "fieldValidation", "in": "query"}.items() <= next(
            p for p in operation["parameters"] if p["name"] == "fieldValidation").items()
        assert "application/strategic-merge-patch+json" not in operation["requestBody"]["content"]


def test_collections_items_and_cluster_wide_lists_are_described() -> None:
    document = openapi_v3_document("kubemeter.io", "v1alpha1", ALL)
    paths = document["paths"]
    assert set(paths["/apis/kubemeter.io/v1alpha1/metricspolicies"]) >= {"get", "post", "delete"}
    assert set(paths["/apis/kubemeter.io/v1alpha1/metricspolicies/{name}"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/apis/kubemeter.io/v1alpha1/workloadmetrics"]) == {"get", "parameters"}
    create = paths["/apis/kubemeter.io/v1alpha1/metricspolicies"]["post"]
    assert "fieldValidation" in [p["name"] for p in create["parameters"]]


def test_kind_schemas_carry_the_crd_schema_and_their_gvk() -> None:
    schemas = openapi_v3_document("kubemeter.io", "v1alpha1", ALL)["components"]["schemas"]
    policy = schemas["io.kubemeter.v1alpha1.MetricsPolicy"]
    assert policy["x-kubernetes-group-version-kind"] == [
        {"group": "kubemeter.io", "kind": "MetricsPolicy", "version": "v1alpha1"}]
    assert policy["properties"]["spec"]["properties"]["interval"]["pattern"] == "^[0-9]+(s|m)$"
    assert set(policy["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert policy["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert schemas["io.kubemeter.v1alpha1.MetricsPolicyList"]["x-kubernetes-group-version-kind"][0]["kind"] == (
        "MetricsPolicyList")
    assert SPEC_SCHEMA["properties"].keys() == {"spec"}  # the CRD's own schema is not modified


def test_builtin_kinds_use_the_real_definition_names() -> None:
    core = openapi_v3_document("", "v1", ALL)
    assert "io.k8s.api.core.v1.Pod" in core["components"]["schemas"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in core["paths"]
    assert definition_name("apps", "v1", "Deployment", builtin=True) == "io.k8s.api.apps.v1.Deployment"
    assert definition_name("rbac.authorization.k8s.io", "v1", "Role", builtin=True) == "io.k8s.api.rbac.v1.Role"


def test_only_the_requested_group_version_is_described() -> None:
    paths = openapi_v3_document("apps", "v1", ALL)["paths"]
    assert paths and all(path.startswith("/apis/apps/v1/") for path in paths)


# ---- kubectl 1.32 against the simulated API server --------------------------------------------------------------

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "metricspolicies.kubemeter.io"},
    "spec": {"group": "kubemeter.io", "scope": "Cluster",
             "names": {"kind": "MetricsPolicy", "listKind": "MetricsPolicyList", "plural": "metricspolicies",
                       "singular": "metricspolicy", "shortNames": ["mp"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": SPEC_SCHEMA}}]},
}


def manifest(spec: str) -> str:
    return f"apiVersion: kubemeter.io/v1alpha1\nkind: MetricsPolicy\nmetadata: {{name: p}}\nspec: {spec}\n"


@pytest.fixture
async def kubectl(tmp_path: Path) -> Any:
    from kubemeter_sim.apiserver.server import ApiServer

    binary = shutil.which("kubectl")
    assert binary, "kubectl is part of the test bed"
    async with ApiServer() as server:
        server.store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)

        async def run(*args: str, stdin: str = "") -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                binary, "--server", server.url, "--cache-dir", str(tmp_path / "cache"), *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            output, _ = await process.communicate(stdin.encode())
            return process.returncode or 0, output.decode()

        yield run


async def test_kubectl_leaves_validation_to_the_server_and_shows_its_errors(kubectl: Any) -> None:
    assert await kubectl("create", "-f", "-", stdin=manifest("{interval: 30s, foo: 1}")) == (
        1, 'Error from server (BadRequest): error when creating "STDIN": MetricsPolicy in version "v1alpha1" cannot '
           'be handled as a MetricsPolicy: strict decoding error: unknown field "spec.foo"\n')
    assert await kubectl("create", "-f", "-", stdin=manifest("{interval: 30x}")) == (
        1, 'The MetricsPolicy "p" is invalid: spec.interval: Invalid value: "30x": spec.interval in body '
           "should match '^[0-9]+(s|m)$'\n")
    assert await kubectl("create", "-f", "-", stdin=manifest("{interval: 30s}")) == (
        0, "metricspolicy.kubemeter.io/p created\n")


async def test_kubectl_apply_patches_custom_resources_with_a_merge_patch(kubectl: Any) -> None:
    assert (await kubectl("apply", "-f", "-", stdin=manifest("{interval: 30s}")))[0] == 0
    code, output = await kubectl("apply", "-f", "-", stdin=manifest("{interval: 1m, source: {timeout: 1m}}"))
    assert (code, output) == (1, 'The MetricsPolicy "p" is invalid: spec: Invalid value: timeout equals interval\n')
    assert await kubectl("apply", "-f", "-", stdin=manifest("{interval: 1m}")) == (
        0, "metricspolicy.kubemeter.io/p configured\n")


async def test_kubectl_explain_reads_the_crd_schema(kubectl: Any) -> None:
    code, output = await kubectl("explain", "mp.spec.interval")
    assert code == 0
    assert "FIELD: interval <string>" in output and "How often the kubelets are scraped." in output
