"""x-kubernetes-validations: CEL rules at any level, worded and placed as the real API server does."""

from __future__ import annotations

from typing import Any

import pytest

from kubemeter_sim.apiserver.schema import CompiledSchema


def compile_spec(rules: list[dict[str, Any]], **properties: Any) -> CompiledSchema:
    return CompiledSchema.compile({"type": "object", "properties": {
        "spec": {"type": "object", "properties": properties, "x-kubernetes-validations": rules}}})


def errors_of(schema: CompiledSchema, spec: Any, old_spec: Any = None) -> list[tuple[str, str, str]]:
    obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "x"}, "spec": spec}
    old = None if old_spec is None else {**obj, "spec": old_spec}
    return [(e.type, e.field, e.message) for e in schema.validate(obj, old)]


STRING = {"type": "string"}
DURATIONS = {"interval": STRING, "timeout": STRING}


def test_failed_rule_reports_its_message_at_the_rule_level() -> None:
    schema = compile_spec([{"rule": "duration(self.timeout) < duration(self.interval)",
                            "message": "timeout must be less than interval"}], **DURATIONS)
    assert errors_of(schema, {"interval": "1m", "timeout": "59s"}) == []
    assert errors_of(schema, {"interval": "1m", "timeout": "1m"}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: timeout must be less than interval')]


def test_failed_rule_without_message_quotes_the_rule() -> None:
    schema = compile_spec([{"rule": "self.interval != self.timeout"}], **DURATIONS)
    assert errors_of(schema, {"interval": "1m", "timeout": "1m"}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: failed rule: self.interval != self.timeout')]


def test_go_durations_compare_across_units() -> None:
    schema = compile_spec([{"rule": "duration(self.interval) == duration('90s') && "
                                    "duration(self.timeout) > duration('500ms')"}], **DURATIONS)
    assert errors_of(schema, {"interval": "1m30s", "timeout": "1s"}) == []
    assert len(errors_of(schema, {"interval": "1h", "timeout": "1s"})) == 1
    # Go's forms that kubemeter's own duration pattern does not take: CEL reads them as the real server does
    assert errors_of(schema, {"interval": "1.5m", "timeout": ".6s"}) == []
    assert len(errors_of(schema, {"interval": "90000000μs", "timeout": "-1s"})) == 1  # -1s is not > 500ms


def test_rule_that_fails_to_evaluate_is_an_invalid_value_not_an_exception() -> None:
    schema = compile_spec([{"rule": "duration(self.timeout) < duration(self.interval)",
                            "message": "timeout must be less than interval"}], **DURATIONS)
    assert errors_of(schema, {"interval": "soon", "timeout": "1s"}) == [(
        "FieldValueInvalid", "spec",
        "Invalid value: \"object\": type conversion error from 'string' to 'google.protobuf.Duration' "
        "evaluating rule: timeout must be less than interval")]
    assert errors_of(schema, {"interval": "1m"}) == [(
        "FieldValueInvalid", "spec",
        'Invalid value: "object": no such key: timeout evaluating rule: timeout must be less than interval')]


def test_message_expression_reason_and_field_path() -> None:
    schema = compile_spec([
        {"rule": "self.replicas <= self.max", "messageExpression": "'replicas must be at most ' + string(self.max)",
         "fieldPath": ".replicas", "reason": "FieldValueForbidden"},
        {"rule": "self.max < 100", "reason": "FieldValueRequired", "message": "need a smaller max"},
    ], replicas={"type": "integer"}, max={"type": "integer"})
    assert errors_of(schema, {"replicas": 5, "max": 200}) == [
        ("FieldValueRequired", "spec", "Required value: need a smaller max")]
    assert errors_of(schema, {"replicas": 5, "max": 3}) == [
        ("FieldValueForbidden", "spec.replicas", "Forbidden: replicas must be at most 3")]


def test_rules_on_list_items_and_map_values_are_placed_by_index_and_key() -> None:
    schema = compile_spec([], percentiles={"type": "array", "items": {
        "type": "number", "x-kubernetes-validations": [{"rule": "self > 0 && self <= 100", "message": "out of range"}]}},
        limits={"type": "object", "additionalProperties": {
            "type": "string", "x-kubernetes-validations": [{"rule": "self.lowerAscii() == self"}]}})
    assert errors_of(schema, {"percentiles": [50, 0, 99.9], "limits": {"cpu": "Big"}}) == [
        ("FieldValueInvalid", "spec.percentiles[1]", 'Invalid value: 0: out of range'),
        ("FieldValueInvalid", "spec.limits[cpu]", 'Invalid value: "Big": failed rule: self.lowerAscii() == self'),
    ]


def test_number_fields_compare_with_integer_literals() -> None:
    schema = compile_spec([{"rule": "self.percentiles.all(p, p > 0 && p <= 100) && self.ratio < 1"}],
                          percentiles={"type": "array", "items": {"type": "number"}}, ratio={"type": "number"})
    assert errors_of(schema, {"percentiles": [50, 99.5], "ratio": 0.5}) == []
    assert len(errors_of(schema, {"percentiles": [50, 101], "ratio": 0.5})) == 1


@pytest.mark.parametrize(("rule", "spec", "passes"), [
    ("has(self.name)", {"tags": []}, False),
    ("size(self.tags) <= 2 && self.tags.exists(t, t == 'a')", {"tags": ["a", "b"]}, True),
    ("self.tags.isSorted()", {"tags": ["b", "a"]}, False),
    ("self.name.matches('^[a-z]+$')", {"name": "abc"}, True),
    ("self.tags.all(t, t.startsWith('x'))", {"tags": ["xa", "b"]}, False),
    ("self.tags.join(',').split(',') == self.tags && self.name.upperAscii() == 'AB'", {"tags": ["a", "b"],
                                                                                     "name": "ab"}, True),
    ("[1, 2.5].sum() == 3.5 && [1, 4.5, 2].max() == 4.5 && [3, 1].min() == 1", {}, True),
    ("self.name.indexOf('-') > 0 && self.name.trim() == self.name", {"name": " a-b"}, False),
])
def test_library_functions(rule: str, spec: dict[str, Any], passes: bool) -> None:
    schema = compile_spec([{"rule": rule}], name=STRING, tags={"type": "array", "items": STRING})
    assert (errors_of(schema, spec) == []) is passes


def test_quantities_compare_exactly_across_suffixes() -> None:
    """Kubernetes' CEL quantity library, as kube-apiserver has it from 1.29 on."""
    schema = compile_spec([{"rule": "quantity(self.min).compareTo(quantity(self.max)) <= 0",
                            "message": "min must not be above max"},
                           {"rule": "!quantity(self.min).isGreaterThan(quantity('1Ti'))",
                            "message": "min at most 1Ti"}], min=STRING, max=STRING)
    for low, high in (("100m", "0.1"), ("1Gi", "1073741824"), ("1e3", "1k"), ("953Mi", "1G")):
        assert errors_of(schema, {"min": low, "max": high}) == [], (low, high)
    assert errors_of(schema, {"min": "1Gi", "max": "1G"}) == [
        ("FieldValueInvalid", "spec", "Invalid value: min must not be above max")]
    assert errors_of(schema, {"min": "2Ti", "max": "3Ti"}) == [
        ("FieldValueInvalid", "spec", "Invalid value: min at most 1Ti")]
    found = errors_of(schema, {"min": "lots", "max": "1"})  # each rule fails to evaluate, as resource.ParseQuantity
    assert len(found) == 2 and all(kind == "FieldValueInvalid" and "quantities must match the regular expression"
                                   in message for kind, _, message in found), found


def test_transition_rules_run_only_on_update() -> None:
    schema = compile_spec([{"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"}], mode=STRING)
    assert errors_of(schema, {"mode": "a"}) == []
    assert errors_of(schema, {"mode": "b"}, old_spec={"mode": "a"}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: mode is immutable')]


def test_optional_old_self_also_runs_on_create() -> None:
    schema = compile_spec([{"rule": "oldSelf.hasValue() || self.mode == 'initial'", "optionalOldSelf": True}],
                          mode=STRING)
    assert len(errors_of(schema, {"mode": "other"})) == 1
    assert errors_of(schema, {"mode": "other"}, old_spec={"mode": "initial"}) == []


def test_unchanged_values_are_not_rejudged_on_update() -> None:
    schema = compile_spec([{"rule": "self.size < 10"}], size={"type": "integer"}, note=STRING)
    assert errors_of(schema, {"size": 20, "note": "b"}, old_spec={"size": 20, "note": "a"}) != []
    schema_on_size = CompiledSchema.compile({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 10"}]}, "note": STRING}}}})
    assert errors_of(schema_on_size, {"size": 20, "note": "b"}, old_spec={"size": 20, "note": "a"}) == []


def test_schema_errors_that_block_cel_say_so() -> None:
    schema = compile_spec([{"rule": "self.size < 10"}], size={"type": "integer"})
    assert errors_of(schema, {"size": "big"}) == [
        ("FieldValueTypeInvalid", "spec.size",
         'Invalid value: "string": spec.size in body must be of type integer: "string"'),
        ("FieldValueInvalid", "<nil>",
         'Invalid value: null: some validation rules were not checked because the object was invalid; '
         "correct the existing errors to complete validation"),
    ]


def test_root_rules_see_metadata_name() -> None:
    schema = CompiledSchema.compile({"type": "object", "properties": {"metadata": {"type": "object"}},
                                     "x-kubernetes-validations": [
        {"rule": "self.metadata.name.startsWith('mp-') && !has(self.metadata.labels)",
         "message": "name must start with mp-"}]})
    assert schema.validate({"metadata": {"name": "mp-a", "labels": {"a": "b"}}}) == []
    assert [(e.field, e.message) for e in schema.validate({"metadata": {"name": "a"}})] == [
        ("<nil>", 'Invalid value: name must start with mp-')]


@pytest.mark.parametrize("rule", ["self.a +", "frobnicate(self.a)", "self.a.noSuchMethod()", "selfie.a == 1"])
def test_rules_that_do_not_compile_are_refused_with_the_schema(rule: str) -> None:
    with pytest.raises(ValueError, match="compilation failed"):
        compile_spec([{"rule": rule}], a=STRING)
