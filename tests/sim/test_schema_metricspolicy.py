"""A MetricsPolicy-like schema end to end (docs/architecture.md, "The policy schema"): defaults, then the exact
errors a user would read."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubemeter.timefmt import DURATION_PATTERN
from kubemeter_sim.apiserver.schema import CompiledSchema, invalid_status

DURATION = {"type": "string", "pattern": DURATION_PATTERN}
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "duration(self.source.timeout) < duration(self.interval)",
         "message": "spec.source.timeout must be less than spec.interval", "fieldPath": ".source.timeout"},
        {"rule": "duration(self.aggregation.window) >= duration(self.interval)",
         "message": "spec.aggregation.window must be at least spec.interval", "fieldPath": ".aggregation.window"},
    ],
    "properties": {
        "interval": {**DURATION, "default": "30s", "x-kubernetes-validations": [
            {"rule": "duration(self) >= duration('10s')", "message": "spec.interval must be at least 10s"}]},
        "source": {"type": "object", "default": {}, "properties": {
            "endpoint": {"type": "string", "enum": ["resource", "summary"], "default": "resource"},
            "via": {"type": "string", "enum": ["direct", "proxy"], "default": "direct"},
            "timeout": {**DURATION, "default": "10s"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 64},
        }},
        "aggregation": {"type": "object", "default": {}, "properties": {
            "window": {**DURATION, "default": "5m"},
            "percentiles": {"type": "array", "maxItems": 5, "default": [50, 95], "items": {
                "type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 100}},
        }},
    },
}}}


@pytest.fixture(scope="module")
def schema() -> CompiledSchema:
    return CompiledSchema.compile(SCHEMA)


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "metadata": {"name": "p"}, "spec": spec}


def admit(schema: CompiledSchema, spec: dict[str, Any]) -> list[str]:
    prepared = schema.prepare(policy(spec))
    return [f"{e.field}: {e.message}" for e in schema.validate(prepared)]


def test_an_empty_spec_gets_every_default_and_is_valid(schema: CompiledSchema) -> None:
    prepared = schema.prepare(policy({}))
    assert prepared["spec"] == {
        "interval": "30s",
        "source": {"endpoint": "resource", "via": "direct", "timeout": "10s", "concurrency": 64},
        "aggregation": {"window": "5m", "percentiles": [50, 95]},
    }
    assert schema.validate(prepared) == []


def test_bad_duration_fails_the_pattern_and_the_rule_using_it(schema: CompiledSchema) -> None:
    assert admit(schema, {"interval": "30x"}) == [
        f"spec.interval: Invalid value: \"30x\": spec.interval in body should match '{DURATION_PATTERN}'",
        "spec: Invalid value: \"object\": type conversion error from 'string' to 'google.protobuf.Duration' "
        "evaluating rule: spec.source.timeout must be less than spec.interval",
        "spec: Invalid value: \"object\": type conversion error from 'string' to 'google.protobuf.Duration' "
        "evaluating rule: spec.aggregation.window must be at least spec.interval",
        "spec.interval: Invalid value: \"string\": type conversion error from 'string' to "
        "'google.protobuf.Duration' evaluating rule: spec.interval must be at least 10s",
    ]


def test_interval_below_ten_seconds(schema: CompiledSchema) -> None:
    assert admit(schema, {"interval": "5s", "source": {"timeout": "1s"}}) == [
        'spec.interval: Invalid value: "5s": spec.interval must be at least 10s']


def test_timeout_must_be_shorter_than_interval(schema: CompiledSchema) -> None:
    assert admit(schema, {"interval": "1m", "source": {"timeout": "1m"}}) == [
        'spec.source.timeout: Invalid value: spec.source.timeout must be less than spec.interval']
    assert admit(schema, {"interval": "1m", "source": {"timeout": "59500ms"}}) == []


def test_window_must_cover_the_interval(schema: CompiledSchema) -> None:
    assert admit(schema, {"interval": "10m"}) == [
        'spec.aggregation.window: Invalid value: spec.aggregation.window must be at least spec.interval']
    assert admit(schema, {"interval": "1m30s", "aggregation": {"window": "90s"}}) == []


def test_percentiles_are_each_in_zero_to_hundred(schema: CompiledSchema) -> None:
    assert admit(schema, {"aggregation": {"percentiles": [0, 50, 100, 100.5]}}) == [
        "spec.aggregation.percentiles[0]: Invalid value: 0: spec.aggregation.percentiles[0] in body "
        "should be greater than 0",
        "spec.aggregation.percentiles[3]: Invalid value: 100.5: spec.aggregation.percentiles[3] in body "
        "should be less than or equal to 100",
    ]


def test_source_enums_block_cel_until_fixed(schema: CompiledSchema) -> None:
    assert admit(schema, {"source": {"endpoint": "cadvisor", "via": "ssh"}}) == [
        'spec.source.endpoint: Unsupported value: "cadvisor": supported values: "resource", "summary"',
        'spec.source.via: Unsupported value: "ssh": supported values: "direct", "proxy"',
        '<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    ]


def test_the_status_a_user_sees_from_kubectl(schema: CompiledSchema) -> None:
    prepared = schema.prepare(policy({"interval": "1m", "source": {"timeout": "2m", "concurrency": 0}}))
    status = invalid_status("MetricsPolicy", "kubemeter.io", "p", schema.validate(prepared))
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        'MetricsPolicy.kubemeter.io "p" is invalid: ['
        "spec.source.concurrency: Invalid value: 0: spec.source.concurrency in body should be greater than or equal "
        'to 1, spec.source.timeout: Invalid value: spec.source.timeout must be less than spec.interval]'
    )
    assert status["details"]["causes"][1] == {
        "reason": "FieldValueInvalid", "field": "spec.source.timeout",
        "message": 'Invalid value: spec.source.timeout must be less than spec.interval'}


def test_shipped_crds_compile_and_accept_their_own_defaults() -> None:
    """The repository's CRDs must be schemas this API server (and so a real one) accepts."""
    import pathlib

    import yaml

    crds = sorted(pathlib.Path(__file__).parents[2].joinpath("crds").glob("*.yaml"))
    assert crds
    for path in crds:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            compiled = CompiledSchema.compile(version["schema"]["openAPIV3Schema"])
            kind = crd["spec"]["names"]["kind"]
            prepared = compiled.prepare({"apiVersion": f"{crd['spec']['group']}/{version['name']}", "kind": kind,
                                         "metadata": {"name": "x"}})
            assert prepared["metadata"] == {"name": "x"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["30s", "1m", "0", "-5s", "resource", "proxy", ""]) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["interval", "source", "timeout", "endpoint", "via", "aggregation", "window",
                         "percentiles", "concurrency", "x"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None)
@given(spec=st.dictionaries(st.sampled_from(["interval", "source", "aggregation", "bogus"]), JSON_VALUES,
                            max_size=4))
def test_any_json_spec_yields_field_errors_never_an_exception(schema: CompiledSchema, spec: dict[str, Any]) -> None:
    prepared = schema.prepare(policy(spec))
    assert "bogus" not in prepared["spec"]
    errors = schema.validate(prepared)
    assert all(error.field and error.message for error in errors)
    assert schema.prepare(prepared) == prepared  # pruning and defaulting are idempotent
