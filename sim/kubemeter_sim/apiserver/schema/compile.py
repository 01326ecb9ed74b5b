"""A CRD's openAPIV3Schema compiled once into a tree of nodes, with its CEL rules compiled beside them.

Compiling checks what apiextensions-apiserver checks of a structural schema when its CRD is written (types
present and known, ``items`` on arrays, map keys on list-type maps, patterns and CEL rules that compile) and
raises ``ValueError`` naming the schema location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubemeter_sim.apiserver.cel import CelProgram, compile_expression

_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array"})
_REASONS = frozenset({"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"})


@dataclass(frozen=True)
class Rule:
    """One x-kubernetes-validations entry, its rule and messageExpression compiled to CEL programs."""

    rule: str
    program: CelProgram
    message: str
    message_program: CelProgram | None
    reason: str
    field_path: str
    optional_old_self: bool


@dataclass
class Node:
    """One compiled level of a structural schema."""

    type: str | None = None
    nullable: bool = False
    format: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    pattern_source: str = ""
    min_items: int | None = None
    max_items: int | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    required: tuple[str, ...] = ()
    properties: dict[str, "Node"] | None = None
    additional: "Node | None" = None
    items: "Node | None" = None
    preserve_unknown: bool = False
    embedded: bool = False
    int_or_string: bool = False
    list_type: str = "atomic"
    list_map_keys: tuple[str, ...] = ()
    has_default: bool = False
    default: Any = None
    rules: tuple[Rule, ...] = ()
    all_of: tuple["Node", ...] = ()
    any_of: tuple["Node", ...] = ()
    one_of: tuple["Node", ...] = ()
    negated: "Node | None" = None
    has_rules_below: bool = False

    def child(self, key: str) -> "Node | None":
        if self.properties is not None and key in self.properties:
            return self.properties[key]
        return self.additional


def _compile_rule(spec: dict[str, Any], where: str) -> Rule:
    source = spec.get("rule")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}.x-kubernetes-validations: rule: Required value")
    try:
        program = compile_expression(source)
        message_expression = spec.get("messageExpression")
        message_program = compile_expression(message_expression) if message_expression else None
    except ValueError as error:
        raise ValueError(f"{where}.x-kubernetes-validations: Invalid value: {source!r}: {error}") from None
    reason = spec.get("reason") or "FieldValueInvalid"
    if reason not in _REASONS:
        raise ValueError(f"{where}.x-kubernetes-validations: reason: Unsupported value: {reason!r}")
    return Rule(
        rule=source.strip(),
        program=program,
        message=(spec.get("message") or "").strip(),
        message_program=message_program,
        reason=reason,
        field_path=str(spec.get("fieldPath") or "").lstrip("."),
        optional_old_self=bool(spec.get("optionalOldSelf")),
    )


def _compile_node(raw: dict[str, Any], where: str, value_validation_only: bool = False) -> Node:
    """One schema level; ``value_validation_only`` for allOf/anyOf/oneOf/not branches, which carry no types."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be an object")
    type_ = raw.get("type")
    if type_ is not None and type_ not in _TYPES:
        raise ValueError(f'{where}.type: Unsupported value: "{type_}": supported values: ' +
                         ", ".join(f'"{t}"' for t in sorted(_TYPES)))
    untyped_ok = value_validation_only or raw.get("x-kubernetes-int-or-string") or \
        raw.get("x-kubernetes-preserve-unknown-fields")
    if type_ is None and not untyped_ok:
        raise ValueError(f"{where}.type: Required value: must not be empty for specified object fields")
    if raw.get("uniqueItems"):
        raise ValueError(f"{where}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
                         "runtime complexity becomes quadratic")
    if type_ == "array" and not isinstance(raw.get("items"), dict) and not value_validation_only:
        raise ValueError(f"{where}.items: Required value: must be specified")
    pattern = raw.get("pattern")
    try:
        compiled_pattern = re.compile(pattern) if pattern is not None else None
    except re.error as error:
        raise ValueError(f"{where}.pattern: Invalid value: {pattern!r}: {error}") from None
    nested = value_validation_only
    properties = {name: _compile_node(sub, f"{where}.properties[{name}]", nested)
                  for name, sub in (raw.get("properties") or {}).items()}
    additional_raw = raw.get("additionalProperties")
    additional = _compile_node(additional_raw, f"{where}.additionalProperties", nested) \
        if isinstance(additional_raw, dict) else None
    items = _compile_node(raw["items"], f"{where}.items", nested) if isinstance(raw.get("items"), dict) else None
    branches = {keyword: tuple(_compile_node(sub, f"{where}.{keyword}[{i}]", True)
                               for i, sub in enumerate(raw.get(keyword) or ()))
                for keyword in ("allOf", "anyOf", "oneOf")}
    negated = _compile_node(raw["not"], f"{where}.not", True) if isinstance(raw.get("not"), dict) else None
    list_type = raw.get("x-kubernetes-list-type") or "atomic"
    map_keys = tuple(raw.get("x-kubernetes-list-map-keys") or ())
    if list_type == "map" and (not map_keys or items is None or items.type != "object"):
        raise ValueError(f"{where}.x-kubernetes-list-map-keys: Required value: "
                         "must not be empty if x-kubernetes-list-type is map (with object items)")
    for key in map_keys if list_type == "map" and items is not None else ():
        key_node = (items.properties or {}).get(key)
        if key_node is not None and not key_node.has_default and key not in items.required:
            # apiextensions' validateMapListKeysMaybeOptional: a key an item may lack could not identify it.
            raise ValueError(f"{where}.items.properties[{key}].default: Required value: this property is in "
                             "x-kubernetes-list-map-keys, so it must have a default or be a required property")
    rules = tuple(_compile_rule(rule, where) for rule in raw.get("x-kubernetes-validations") or ())
    children = [*properties.values(), *(n for n in (additional, items) if n is not None)]
    return Node(
        type=type_,
        nullable=bool(raw.get("nullable")),
        format=raw.get("format"),
        enum=tuple(raw["enum"]) if raw.get("enum") is not None else None,
        minimum=raw.get("minimum"),
        maximum=raw.get("maximum"),
        exclusive_minimum=bool(raw.get("exclusiveMinimum")),
        exclusive_maximum=bool(raw.get("exclusiveMaximum")),
        multiple_of=raw.get("multipleOf"),
        min_length=raw.get("minLength"),
        max_length=raw.get("maxLength"),
        pattern=compiled_pattern,
        pattern_source=pattern or "",
        min_items=raw.get("minItems"),
        max_items=raw.get("maxItems"),
        min_properties=raw.get("minProperties"),
        max_properties=raw.get("maxProperties"),
        required=tuple(raw.get("required") or ()),
        properties=properties if "properties" in raw else None,
        additional=additional,
        items=items,
        preserve_unknown=bool(raw.get("x-kubernetes-preserve-unknown-fields")) or additional_raw is True,
        embedded=bool(raw.get("x-kubernetes-embedded-resource")),
        int_or_string=bool(raw.get("x-kubernetes-int-or-string")),
        list_type=list_type,
        list_map_keys=map_keys,
        has_default="default" in raw,
        default=raw.get("default"),
        rules=rules,
        all_of=branches["allOf"],
        any_of=branches["anyOf"],
        one_of=branches["oneOf"],
        negated=negated,
        has_rules_below=bool(rules) or any(c.rules or c.has_rules_below for c in children),
    )


def compile_schema(openapi_v3_schema: dict[str, Any]) -> Node:
    """The root node; ValueError (naming the schema location) when the schema or one of its CEL rules is invalid."""
    root = _compile_node(openapi_v3_schema, "openAPIV3Schema")
    if root.type not in (None, "object"):
        raise ValueError(f'openAPIV3Schema.type: Unsupported value: "{root.type}": supported values: "object"')
    return root
