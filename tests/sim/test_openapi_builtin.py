"""Schemas of built-in kinds from the client models: real objects must pass untouched, typos must show."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemeter_sim.apiserver.builtin_schemas import builtin_schema, compiled_builtin_schema
from kubemeter_sim.apiserver.openapi import openapi_v3_document
from kubemeter_sim.apiserver.schema import CompiledSchema

REPO = Path(__file__).parents[2]
CAPTURES = sorted((REPO / "tests/fixtures/apiserver").glob("*.json"))


def compiled(group: str, version: str, kind: str) -> CompiledSchema:
    schema = compiled_builtin_schema(group, version, kind)
    assert schema is not None
    return schema


def captured_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in CAPTURES:
        document = json.loads(path.read_text())
        objects.extend(document.get("items", [document]))
    return objects


def test_real_captured_pods_and_nodes_pass_untouched() -> None:
    objects = captured_objects()
    assert {o["kind"] for o in objects} == {"Pod", "Node"}
    for obj in objects:
        schema = compiled("", "v1", obj["kind"])
        assert schema.unknown_fields(obj) == []
        assert schema.prepare(obj) == obj
        assert schema.validate(obj) == []


def test_a_misspelt_pod_field_is_an_unknown_field() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
           "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicey": "Always"}]}}
    assert compiled("", "v1", "Pod").unknown_fields(pod) == ["spec.containers[0].imagePullPolicey"]


def test_nulls_are_kept_and_valid_as_go_decoding_keeps_them() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "nodeName": None}}
    schema = compiled("", "v1", "Pod")
    assert schema.prepare(pod) == pod and schema.validate(pod) == []


def test_same_kind_in_two_groups_gets_each_groups_fields() -> None:
    core_event, events_event = builtin_schema("", "v1", "Event"), builtin_schema("events.k8s.io", "v1", "Event")
    assert core_event is not None and events_event is not None
    assert "message" in core_event["properties"] and "note" not in core_event["properties"]
    assert "note" in events_event["properties"]


def test_recursive_models_terminate_and_the_shipped_crds_are_well_formed() -> None:
    schema = compiled("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert schema.unknown_fields(crd) == []
        assert schema.validate(crd) == []


def test_unknown_kinds_have_no_schema() -> None:
    assert builtin_schema("example.com", "v1", "Widget") is None
    assert compiled_builtin_schema("example.com", "v1", "Widget") is None


def test_core_document_describes_pods_with_field_docs() -> None:
    from kubemeter_sim.apiserver.resources import ResourceType

    pods = ResourceType(group="", version="v1", plural="pods", singular="pod", kind="Pod", list_kind="PodList",
                        namespaced=True, subresources=frozenset({"status"}))
    pod = openapi_v3_document("", "v1", [pods])["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    node_name = pod["properties"]["spec"]["properties"]["nodeName"]
    assert node_name["type"] == "string" and "node" in node_name["description"].lower()
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]


async def test_kubectl_explain_of_a_builtin_kind(tmp_path: Path) -> None:
    from kubemeter_sim.apiserver.server import ApiServer

    binary = shutil.which("kubectl")
    assert binary, "kubectl is part of the test bed"
    async with ApiServer() as server:
        process = await asyncio.create_subprocess_exec(
            binary, "--server", server.url, "--cache-dir", str(tmp_path), "explain", "pods.spec.nodeName",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert "FIELD: nodeName <string>" in output


@pytest.mark.parametrize(("group", "kind"), [("apps", "Deployment"), ("batch", "CronJob"), ("", "Namespace"),
                                             ("coordination.k8s.io", "Lease")])
def test_kinds_the_operator_touches_compile(group: str, kind: str) -> None:
    minimal = {"apiVersion": f"{group}/v1" if group else "v1", "kind": kind, "metadata": {"name": "x"}}
    assert compiled(group, "v1", kind).validate(minimal) == []
