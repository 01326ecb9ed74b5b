"""Structural validation of custom resources: kube-openapi rules with the real server's wording and paths."""

from __future__ import annotations

from typing import Any

import pytest

from kubemeter_sim.apiserver.schema import CompiledSchema, FieldError, invalid_status


def spec_schema(**properties: Any) -> CompiledSchema:
    return CompiledSchema.compile({"type": "object", "properties": {
        "spec": {"type": "object", "properties": properties}}})


def errors_of(schema: CompiledSchema, spec: Any, old_spec: Any = None) -> list[tuple[str, str, str]]:
    obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "x"}, "spec": spec}
    old = None if old_spec is None else {**obj, "spec": old_spec}
    return [(e.type, e.field, e.message) for e in schema.validate(obj, old)]


def test_wrong_type_is_named_with_the_actual_json_type() -> None:
    schema = spec_schema(replicas={"type": "integer"}, name={"type": "string"}, on={"type": "boolean"})
    assert errors_of(schema, {"replicas": "3", "name": 5, "on": 1}) == [
        ("FieldValueTypeInvalid", "spec.replicas",
         'Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
        ("FieldValueTypeInvalid", "spec.name", 'Invalid value: "integer": spec.name in body must be of type string: "integer"'),
        ("FieldValueTypeInvalid", "spec.on", 'Invalid value: "integer": spec.on in body must be of type boolean: "integer"'),
    ]


def test_integer_accepts_whole_floats_and_number_accepts_integers() -> None:
    schema = spec_schema(count={"type": "integer"}, ratio={"type": "number"})
    assert errors_of(schema, {"count": 3.0, "ratio": 2}) == []
    assert errors_of(schema, {"count": 2.5, "ratio": 2})[0][2] == (
        'Invalid value: "number": spec.count in body must be of type integer: "number"')


def test_int_or_string_takes_both_but_not_a_boolean() -> None:
    schema = spec_schema(port={"x-kubernetes-int-or-string": True})
    assert errors_of(schema, {"port": 8080}) == errors_of(schema, {"port": "http"}) == []
    assert errors_of(schema, {"port": True}) == [(
        "FieldValueTypeInvalid", "spec.port",
        'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"')]


def test_known_string_formats_are_checked_and_others_pass() -> None:
    schema = spec_schema(at={"type": "string", "format": "date-time"}, n={"type": "integer", "format": "int32"})
    assert errors_of(schema, {"at": "2024-05-01T10:00:00Z", "n": 7}) == []
    assert errors_of(schema, {"at": "yesterday"}) == [(
        "FieldValueTypeInvalid", "spec.at", 'Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday"')]


def test_missing_required_fields_are_each_reported() -> None:
    schema = CompiledSchema.compile({"type": "object", "required": ["spec"], "properties": {
        "spec": {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string"},
                                                                           "b": {"type": "string"}}}}})
    assert [(e.field, e.message) for e in schema.validate({"spec": {"a": "x"}})] == [("spec.b", "Required value")]
    assert [(e.field, e.message) for e in schema.validate({"kind": "X"})] == [("spec", "Required value")]


def test_enum_lists_the_supported_values_quoted() -> None:
    schema = spec_schema(mode={"type": "string", "enum": ["resource", "summary"]},
                         level={"type": "integer", "enum": [1, 2]})
    assert errors_of(schema, {"mode": "foo", "level": 3}) == [
        ("FieldValueNotSupported", "spec.mode", 'Unsupported value: "foo": supported values: "resource", "summary"'),
        ("FieldValueNotSupported", "spec.level", 'Unsupported value: 3: supported values: "1", "2"'),
    ]


@pytest.mark.parametrize(("bounds", "value", "detail"), [
    ({"minimum": 10}, 9, "should be greater than or equal to 10"),
    ({"minimum": 0, "exclusiveMinimum": True}, 0, "should be greater than 0"),
    ({"maximum": 100}, 100.5, "should be less than or equal to 100"),
    ({"maximum": 1.5, "exclusiveMaximum": True}, 1.5, "should be less than 1.5"),
    ({"multipleOf": 5}, 12, "should be a multiple of 5"),
])
def test_numeric_bounds(bounds: dict[str, Any], value: float, detail: str) -> None:
    schema = spec_schema(n={"type": "number", **bounds})
    shown = str(value)
    assert errors_of(schema, {"n": value}) == [
        ("FieldValueInvalid", "spec.n", f"Invalid value: {shown}: spec.n in body {detail}")]


def test_numeric_bounds_accept_the_limit_itself() -> None:
    schema = spec_schema(n={"type": "integer", "minimum": 10, "maximum": 20})
    assert errors_of(schema, {"n": 10}) == errors_of(schema, {"n": 20}) == []


def test_string_length_and_pattern() -> None:
    schema = spec_schema(code={"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"})
    assert errors_of(schema, {"code": "abcd"}) == [
        ("FieldValueTooLong", "spec.code", "Too long: may not be more than 3 bytes")]
    assert errors_of(schema, {"code": "A"}) == [
        ("FieldValueInvalid", "spec.code", 'Invalid value: "A": spec.code in body should be at least 2 chars long'),
        ("FieldValueInvalid", "spec.code", "Invalid value: \"A\": spec.code in body should match '^[a-z]+$'"),
    ]


def test_item_and_property_counts() -> None:
    schema = spec_schema(
        tags={"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        labels={"type": "object", "minProperties": 1, "maxProperties": 1,
                "additionalProperties": {"type": "string"}},
    )
    assert errors_of(schema, {"tags": ["a", "b", "c"], "labels": {"a": "1", "b": "2"}}) == [
        ("FieldValueTooMany", "spec.tags", "Too many: 3: must have at most 2 items"),
        ("FieldValueTooMany", "spec.labels", "Too many: 2: must have at most 1 item"),
    ]
    assert errors_of(schema, {"tags": [], "labels": {}}) == [
        ("FieldValueInvalid", "spec.tags", "Invalid value: 0: spec.tags in body should have at least 1 items"),
        ("FieldValueInvalid", "spec.labels", "Invalid value: 0: spec.labels in body should have at least 1 properties"),
    ]


def test_array_items_and_map_values_are_validated_with_their_paths() -> None:
    schema = spec_schema(
        ports={"type": "array", "items": {"type": "integer", "maximum": 65535}},
        limits={"type": "object", "additionalProperties": {"type": "integer"}},
    )
    assert errors_of(schema, {"ports": [80, 70000], "limits": {"cpu": "two"}}) == [
        ("FieldValueInvalid", "spec.ports[1]",
         "Invalid value: 70000: spec.ports[1] in body should be less than or equal to 65535"),
        ("FieldValueTypeInvalid", "spec.limits.cpu",
         'Invalid value: "string": spec.limits.cpu in body must be of type integer: "string"'),
    ]


def test_null_needs_nullable() -> None:
    schema = spec_schema(
        maybe={"type": "string", "nullable": True},
        names={"type": "array", "items": {"type": "string"}},
    )
    assert errors_of(schema, {"maybe": None, "names": ["a"]}) == []
    assert errors_of(schema, {"names": [None]}) == [(
        "FieldValueTypeInvalid", "spec.names[0]",
        'Invalid value: "null": spec.names[0] in body must be of type string: "null"')]


def test_list_type_set_and_map_reject_duplicates() -> None:
    schema = spec_schema(
        namespaces={"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        ports={"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
               "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                         "required": ["name"]}},
        atomic={"type": "array", "items": {"type": "string"}},
    )
    spec = {"namespaces": ["a", "b", "a"], "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}],
            "atomic": ["a", "a"]}
    assert errors_of(schema, spec) == [
        ("FieldValueDuplicate", "spec.namespaces[2]", 'Duplicate value: "a"'),
        ("FieldValueDuplicate", "spec.ports[1]", 'Duplicate value: {"name":"http"}'),
    ]


def test_preserve_unknown_fields_accepts_any_content() -> None:
    schema = spec_schema(extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    assert errors_of(schema, {"extra": {"anything": [1, {"nested": None}]}}) == []


def test_all_errors_are_reported_not_just_the_first() -> None:
    schema = spec_schema(a={"type": "integer"}, b={"type": "string", "enum": ["x"]}, c={"type": "string"})
    assert [field for _, field, _ in errors_of(schema, {"a": "1", "b": "y", "c": 1})] == ["spec.a", "spec.b", "spec.c"]


def test_update_ratchets_unchanged_invalid_values_but_not_changed_ones() -> None:
    schema = spec_schema(name={"type": "string", "maxLength": 3}, other={"type": "string", "maxLength": 3})
    legacy = {"name": "too-long", "other": "ok"}
    assert errors_of(schema, legacy) != []
    assert errors_of(schema, {"name": "too-long", "other": "ok2"}, old_spec=legacy) == []
    assert errors_of(schema, {"name": "too-long", "other": "much-too-long"}, old_spec=legacy) == [
        ("FieldValueTooLong", "spec.other", "Too long: may not be more than 3 bytes")]


def test_one_of_any_of_all_of_and_not_report_at_the_nil_path_with_the_branch_errors() -> None:
    schema = spec_schema(source={
        "type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        "anyOf": [{"required": ["c"]}, {"properties": {"a": {"pattern": "^x"}}}],
        "allOf": [{"properties": {"b": {"maxLength": 2}}}],
        "not": {"required": ["c"], "properties": {"c": {"enum": ["forbidden"]}}},
    })
    assert errors_of(schema, {"source": {"a": "x1"}}) == []
    assert errors_of(schema, {"source": {"a": "y", "b": "long"}}) == [
        ("FieldValueInvalid", "<nil>", 'Invalid value: "": "spec.source" must validate at least one schema (anyOf)'),
        ("FieldValueRequired", "spec.source.c", "Required value"),
        ("FieldValueInvalid", "<nil>", 'Invalid value: "": "spec.source" must validate one and only one schema '
                                       "(oneOf). Found 2 valid alternatives"),
        ("FieldValueTooLong", "spec.source.b", "Too long: may not be more than 2 bytes"),
        ("FieldValueInvalid", "<nil>", 'Invalid value: "": "spec.source" must validate all the schemas (allOf). '
                                       "None validated"),
    ]
    assert errors_of(schema, {"source": {"c": "forbidden"}}) == [
        ("FieldValueInvalid", "<nil>", 'Invalid value: "": "spec.source" must validate one and only one schema '
                                       "(oneOf). Found none valid"),
        ("FieldValueRequired", "spec.source.a", "Required value"),
        ("FieldValueInvalid", "<nil>", 'Invalid value: "": "spec.source" must not validate the schema (not)'),
    ]


@pytest.mark.parametrize(("schema", "complaint"), [
    ({"type": "object", "properties": {"a": {"type": "strin"}}}, "properties[a].type: Unsupported value"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}},
     "uniqueItems cannot be set to true"),
    ({"type": "object", "properties": {"a": {"type": "array"}}}, "properties[a].items: Required value"),
    ({"type": "object", "properties": {"a": {"description": "no type"}}}, "properties[a].type: Required value"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}, "properties[a].pattern"),
    ({"type": "array", "items": {"type": "string"}}, 'openAPIV3Schema.type: Unsupported value: "array"'),
])
def test_invalid_schemas_are_refused_at_compile_time(schema: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        CompiledSchema.compile(schema)


def test_invalid_status_is_the_real_422_body() -> None:
    errors = [
        FieldError("FieldValueRequired", "spec.a", "Required value"),
        FieldError("FieldValueInvalid", "spec.b", 'Invalid value: "x": spec.b in body should match \'^y$\'', "x"),
    ]
    assert invalid_status("MetricsPolicy", "kubemeter.io", "p", errors) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'MetricsPolicy.kubemeter.io "p" is invalid: [spec.a: Required value, '
                   'spec.b: Invalid value: "x": spec.b in body should match \'^y$\']',
        "reason": "Invalid",
        "details": {"name": "p", "group": "kubemeter.io", "kind": "MetricsPolicy", "causes": [
            {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.a"},
            {"reason": "FieldValueInvalid", "message": 'Invalid value: "x": spec.b in body should match \'^y$\'',
             "field": "spec.b"},
        ]},
        "code": 422,
    }


def test_invalid_status_with_one_error_has_no_brackets_and_core_kinds_no_group() -> None:
    status = invalid_status("ConfigMap", "", "c", [FieldError("FieldValueRequired", "data", "Required value")])
    assert status["message"] == 'ConfigMap "c" is invalid: data: Required value'
    assert "group" not in status["details"]


def test_an_integer_beyond_what_a_float_holds_exactly_is_not_an_integer() -> None:
    """apimachinery decodes a JSON integer beyond int64 as a float64, and go-openapi counts a float as an
    integer only within +-(2^53 - 1): such a value is a type error (422), whatever CEL rules follow."""
    schema = spec_schema(count={"type": "integer", "maximum": 1000})
    assert errors_of(schema, {"count": float(2**53 - 1)})[0][2].endswith("should be less than or equal to 1000")
    assert errors_of(schema, {"count": 1e20}) == [(
        "FieldValueTypeInvalid", "spec.count", 'Invalid value: "number": spec.count in body must be of type integer: "number"')]
