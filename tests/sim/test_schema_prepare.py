"""Pruning of unknown fields and defaulting, as the API server applies them before validating and storing."""

from __future__ import annotations

import copy
from typing import Any

from kubemeter_sim.apiserver.schema import CompiledSchema

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "interval": {"type": "string", "default": "30s"},
    "source": {"type": "object", "default": {}, "properties": {
        "endpoint": {"type": "string", "default": "resource"},
        "timeout": {"type": "string", "default": "10s"},
    }},
    "output": {"type": "object", "properties": {"prometheus": {"type": "boolean", "default": True}}},
    "containers": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "weight": {"type": "integer", "default": 1}}}},
    "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "value": {"type": "string"}, "required": {"type": "boolean", "default": False}}}},
    "note": {"type": "string", "nullable": True, "default": "n"},
    "comment": {"type": "string"},
    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
    "template": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {
        "spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
    "selector": {"type": "object"},
}}}}


def base(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy",
            "metadata": {"name": "p", "labels": {"team": "a"}}, "spec": spec}


def test_unknown_fields_are_pruned_and_type_meta_kept() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare({**base({"interval": "1m", "bogus": 1}), "extraTop": True})
    assert "bogus" not in prepared["spec"] and "extraTop" not in prepared
    assert prepared["apiVersion"] == "kubemeter.io/v1alpha1" and prepared["kind"] == "MetricsPolicy"
    assert prepared["metadata"] == {"name": "p", "labels": {"team": "a"}}


def test_unknown_fields_lists_what_pruning_would_drop() -> None:
    obj = base({"bogus": 1, "containers": [{"name": "a", "cpu": 2}], "selector": {"matchLabels": {"a": "b"}},
                "extra": {"free": 1, "known": {"a": "x", "b": "y"}}})
    assert CompiledSchema.compile(SCHEMA).unknown_fields(obj) == [
        "spec.bogus", "spec.containers[0].cpu", "spec.selector.matchLabels", "spec.extra.known.b"]


def test_preserve_unknown_fields_keeps_unknown_content_but_prunes_inside_known_properties() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({"extra": {"free": {"x": 1}, "known": {"a": "x", "b": "y"}}}))
    assert prepared["spec"]["extra"] == {"free": {"x": 1}, "known": {"a": "x"}}


def test_embedded_resources_keep_their_type_meta() -> None:
    template = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"}, "spec": {"x": "1", "y": "2"}}
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({"template": template}))
    assert prepared["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
                                            "spec": {"x": "1"}}


def test_defaults_fill_an_object_default_then_its_nested_defaults() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({}))
    assert prepared["spec"]["interval"] == "30s"
    assert prepared["spec"]["source"] == {"endpoint": "resource", "timeout": "10s"}


def test_defaults_apply_only_where_the_parent_exists() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({}))
    assert "output" not in prepared["spec"]
    assert CompiledSchema.compile(SCHEMA).prepare(base({"output": {}}))["spec"]["output"] == {"prometheus": True}


def test_defaults_inside_array_items_and_map_values() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({
        "containers": [{"name": "a"}, {"name": "b", "weight": 5}], "labels": {"env": {"value": "prod"}}}))
    assert prepared["spec"]["containers"] == [{"name": "a", "weight": 1}, {"name": "b", "weight": 5}]
    assert prepared["spec"]["labels"] == {"env": {"value": "prod", "required": False}}


def test_given_values_are_not_overwritten_by_defaults() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({"interval": "2m", "source": {"endpoint": "summary"}}))
    assert prepared["spec"]["interval"] == "2m"
    assert prepared["spec"]["source"] == {"endpoint": "summary", "timeout": "10s"}


def test_null_non_nullable_fields_take_their_default_or_disappear() -> None:
    prepared = CompiledSchema.compile(SCHEMA).prepare(base({"interval": None, "comment": None, "note": None}))
    assert prepared["spec"]["interval"] == "30s"
    assert "comment" not in prepared["spec"]
    assert prepared["spec"]["note"] is None  # nullable: null is a value, not a request for the default


def test_prepare_leaves_its_input_untouched() -> None:
    obj = base({"bogus": 1, "containers": [{"name": "a"}]})
    snapshot = copy.deepcopy(obj)
    CompiledSchema.compile(SCHEMA).prepare(obj)
    assert obj == snapshot


def test_prepared_objects_validate_cleanly() -> None:
    schema = CompiledSchema.compile(SCHEMA)
    assert schema.validate(schema.prepare(base({"containers": [{"name": "a"}]}))) == []
