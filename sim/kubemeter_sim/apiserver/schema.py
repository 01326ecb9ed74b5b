"""Structural CRD schemas as the apiextensions-apiserver applies them: pruning, defaulting, validation.

Error wording follows the real server: kube-openapi's ``validate`` messages (``spec.x in body should ...``)
wrapped in apimachinery ``field.Error`` bodies (``Invalid value: "x": ...``), CEL rule failures as
``Invalid value: "object": <message>`` and the 422 Status body of ``apierrors.NewInvalid``.
Paths in kube-openapi messages use dots for map keys; CEL paths use ``[key]`` like ``field.Path``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from celpy import celtypes

from kubemeter_sim.apiserver.cel import CelProgram, CelRuntimeError, OptionalValue, compile_expression

_ABSENT: Any = object()  # no correlated old value (create, or an element that did not exist before)
_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array"})
_ROOT_META_FIELDS = ("apiVersion", "kind", "metadata")
_REASONS = frozenset({"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"})
# Error types that stop CEL evaluation (apiextensions-apiserver's hasBlockingErr).
_BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong",
                       "FieldValueTooMany", "FieldValueTypeInvalid"})
_CEL_SKIPPED = ("some validation rules were not checked because the object was invalid; "
                "correct the existing errors to complete validation")
TYPE_LABELS = {"FieldValueRequired": "Required value", "FieldValueInvalid": "Invalid value",
               "FieldValueTypeInvalid": "Invalid value", "FieldValueNotSupported": "Unsupported value",
               "FieldValueForbidden": "Forbidden", "FieldValueTooLong": "Too long",
               "FieldValueTooMany": "Too many", "FieldValueDuplicate": "Duplicate value"}
_NO_VALUE_IN_BODY = frozenset({"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"})


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: ``message`` is its ErrorBody (what a Status cause carries)."""

    type: str
    field: str
    message: str
    bad_value: object = None


OMIT_VALUE: Any = object()  # field.OmitValueType: the error names no value (CEL rules on objects and arrays)


def _field_error(type_: str, field: str, bad_value: Any, detail: str) -> FieldError:
    body = TYPE_LABELS[type_]
    if type_ not in _NO_VALUE_IN_BODY and bad_value is not OMIT_VALUE:
        body += ": " + go_value(bad_value)
    if detail:
        body += ": " + detail
    return FieldError(type=type_, field=field, message=body, bad_value=bad_value)


# ---------------------------------------------------------------------------------------------- values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json_integer(number: float) -> bool:
    """go-openapi's IsFloat64AJSONInteger: a whole float64 within +-(2^53 - 1), the integers a float holds exactly."""
    return number.is_integer() and abs(number) <= 2**53 - 1


def _go_float(number: float) -> str:
    """Go's %v for a float64: no trailing .0, exponent form only for very large or small values."""
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _go_json(value: Any) -> str:
    """encoding/json's Marshal of a decoded JSON value: compact, keys sorted, <, > and & escaped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_value(value: Any) -> str:
    """A bad value as ``field.Error.ErrorBody`` prints it: %v for numbers and booleans, %q for strings, JSON
    for anything else (null, maps, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _go_json(value)


def _json_equal(a: Any, b: Any) -> bool:
    """Deep equality of decoded JSON where true != 1 (Python's == says otherwise)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- formats

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _valid_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _valid_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _valid_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _valid_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


# The string formats kube-openapi's strfmt registry checks; any other format (int32, int64, ...) passes.
_FORMAT_CHECKS = {
    "date-time": _valid_date_time,
    "datetime": _valid_date_time,
    "date": lambda text: bool(_DATE.match(text)),
    "byte": _valid_base64,
    "uuid": lambda text: bool(_UUID.match(text)),
    "ipv4": lambda text: _valid_ip(text, 4),
    "ipv6": lambda text: _valid_ip(text, 6),
    "cidr": _valid_cidr,
}


# ---------------------------------------------------------------------------------------------- schema nodes


@dataclass(frozen=True)
class _Rule:
    rule: str
    program: CelProgram
    message: str
    message_program: CelProgram | None
    reason: str
    field_path: str
    optional_old_self: bool


@dataclass
class _Node:
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
    properties: dict[str, "_Node"] | None = None
    additional: "_Node | None" = None
    items: "_Node | None" = None
    preserve_unknown: bool = False
    embedded: bool = False
    int_or_string: bool = False
    list_type: str = "atomic"
    list_map_keys: tuple[str, ...] = ()
    has_default: bool = False
    default: Any = None
    rules: tuple[_Rule, ...] = ()
    all_of: tuple["_Node", ...] = ()
    any_of: tuple["_Node", ...] = ()
    one_of: tuple["_Node", ...] = ()
    negated: "_Node | None" = None
    has_rules_below: bool = False

    def child(self, key: str) -> "_Node | None":
        if self.properties is not None and key in self.properties:
            return self.properties[key]
        return self.additional


def _compile_rule(spec: dict[str, Any], where: str) -> _Rule:
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
    return _Rule(
        rule=source.strip(),
        program=program,
        message=(spec.get("message") or "").strip(),
        message_program=message_program,
        reason=reason,
        field_path=str(spec.get("fieldPath") or "").lstrip("."),
        optional_old_self=bool(spec.get("optionalOldSelf")),
    )


def _compile_node(raw: dict[str, Any], where: str, value_validation_only: bool = False) -> _Node:
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
    rules = tuple(_compile_rule(rule, where) for rule in raw.get("x-kubernetes-validations") or ())
    children = [*properties.values(), *(n for n in (additional, items) if n is not None)]
    return _Node(
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


# ---------------------------------------------------------------------------------------------- paths


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list_item_key(node: _Node, item: Any) -> tuple[str, ...] | None:
    """The identity of a list element across versions: map keys, the value itself for sets."""
    if node.list_type == "map" and isinstance(item, dict):
        return tuple(json.dumps(item.get(k), sort_keys=True) for k in node.list_map_keys)
    if node.list_type == "set":
        return (json.dumps(item, sort_keys=True),)
    return None


def _correlated_items(node: _Node, items: list[Any], old: Any) -> Iterator[tuple[int, Any, Any]]:
    """Each element with its old version: only list-type map/set elements correlate (as in ratcheting)."""
    old_by_key: dict[tuple[str, ...], Any] = {}
    if isinstance(old, list) and node.list_type in ("map", "set"):
        for old_item in old:
            key = _list_item_key(node, old_item)
            if key is not None:
                old_by_key.setdefault(key, old_item)
    for index, item in enumerate(items):
        key = _list_item_key(node, item)
        yield index, item, old_by_key.get(key, _ABSENT) if key is not None else _ABSENT


def _old_field(old: Any, key: str) -> Any:
    return old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT


def _unchanged(value: Any, old: Any) -> bool:
    return old is not _ABSENT and _json_equal(value, old)


# ---------------------------------------------------------------------------------------------- validation


class _StructuralValidator:
    """kube-openapi's schema validator plus the list-type checks, with update ratcheting."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.list_errors: list[FieldError] = []

    def invalid(self, path: str, value: Any, detail: str, type_: str = "FieldValueInvalid") -> None:
        self.errors.append(_field_error(type_, path, value, f"{path} in body {detail}"))

    def node(self, node: _Node, value: Any, old: Any, path: str) -> None:
        if _unchanged(value, old):
            return  # CRD validation ratcheting: an unchanged value keeps passing
        if value is None:
            if not node.nullable and (node.type or node.int_or_string):
                expected = "integer,string" if node.int_or_string else node.type
                self.invalid(path, "null", f'must be of type {expected}: "null"', "FieldValueTypeInvalid")
            return
        actual = _json_type(value)
        if not self._type_ok(node, value, actual, path):
            return
        # kube-openapi's order: type, compositions, string/format, number, array, enum, object.
        self._compositions(node, value, path)
        if actual == "string":
            self._string(node, value, path)
        elif actual in ("integer", "number"):
            self._number(node, value, path)
        elif actual == "array":
            self._array(node, value, old, path)
        if node.enum is not None and not any(_json_equal(value, allowed) for allowed in node.enum):
            allowed = ", ".join(json.dumps(a if isinstance(a, str) else json.dumps(a)) for a in node.enum)
            self.errors.append(_field_error("FieldValueNotSupported", path, value, "supported values: " + allowed))
        if actual == "object":
            self._object(node, value, old, path)

    def _branch_errors(self, branch: _Node, value: Any, path: str) -> list[FieldError]:
        probe = _StructuralValidator()
        probe.node(branch, value, _ABSENT, path)
        return probe.errors

    def _composite(self, path: str, detail: str) -> None:
        """Composition failures carry no field name in kube-openapi, so they surface at the nil path."""
        self.errors.append(_field_error("FieldValueInvalid", "<nil>", "", f'"{path}" {detail}'))

    def _compositions(self, node: _Node, value: Any, path: str) -> None:
        """kube-openapi's order: anyOf, oneOf, allOf, not."""
        if node.any_of:
            results = [self._branch_errors(branch, value, path) for branch in node.any_of]
            if all(results):
                self._composite(path, "must validate at least one schema (anyOf)")
                self.errors.extend(min(results, key=len))
        if node.one_of:
            results = [self._branch_errors(branch, value, path) for branch in node.one_of]
            valid = sum(1 for errors in results if not errors)
            if valid == 0:
                self._composite(path, "must validate one and only one schema (oneOf). Found none valid")
                self.errors.extend(min(results, key=len))
            elif valid > 1:
                self._composite(path, f"must validate one and only one schema (oneOf). Found {valid} valid "
                                      "alternatives")
        if node.all_of:
            results = [self._branch_errors(branch, value, path) for branch in node.all_of]
            for errors in results:
                self.errors.extend(errors)
            failed = sum(1 for errors in results if errors)
            if failed:
                suffix = ". None validated" if failed == len(results) else ""
                self._composite(path, f"must validate all the schemas (allOf){suffix}")
        if node.negated is not None and not self._branch_errors(node.negated, value, path):
            self._composite(path, "must not validate the schema (not)")

    def _type_ok(self, node: _Node, value: Any, actual: str, path: str) -> bool:
        if node.int_or_string:
            ok, expected = actual in ("integer", "string"), "integer,string"
        elif node.type is None:
            return True
        else:
            expected = node.type
            ok = (actual == expected or (expected == "number" and actual == "integer")
                  or (expected == "integer" and actual == "number" and _json_integer(value)))
        if not ok:
            self.invalid(path, actual, f'must be of type {expected}: "{actual}"', "FieldValueTypeInvalid")
        return ok

    def _string(self, node: _Node, value: str, path: str) -> None:
        if node.max_length is not None and len(value) > node.max_length:
            unit = "byte" if node.max_length == 1 else "bytes"
            self.errors.append(_field_error("FieldValueTooLong", path, value,
                                            f"may not be more than {node.max_length} {unit}"))
        if node.min_length is not None and len(value) < node.min_length:
            self.invalid(path, value, f"should be at least {node.min_length} chars long")
        if node.pattern is not None and not node.pattern.search(value):
            self.invalid(path, value, f"should match '{node.pattern_source}'")
        check = _FORMAT_CHECKS.get(node.format or "")
        if check is not None and not check(value):
            self.invalid(path, value, f"must be of type {node.format}: {json.dumps(value)}", "FieldValueTypeInvalid")

    def _number(self, node: _Node, value: float, path: str) -> None:
        if node.maximum is not None:
            if node.exclusive_maximum and value >= node.maximum:
                self.invalid(path, value, f"should be less than {_go_float(float(node.maximum))}")
            elif value > node.maximum:
                self.invalid(path, value, f"should be less than or equal to {_go_float(float(node.maximum))}")
        if node.minimum is not None:
            if node.exclusive_minimum and value <= node.minimum:
                self.invalid(path, value, f"should be greater than {_go_float(float(node.minimum))}")
            elif value < node.minimum:
                self.invalid(path, value, f"should be greater than or equal to {_go_float(float(node.minimum))}")
        if node.multiple_of and not float(value / node.multiple_of).is_integer():
            self.invalid(path, value, f"should be a multiple of {_go_float(float(node.multiple_of))}")

    def _count(self, path: str, count: int, most: int | None, least: int | None, noun: str) -> None:
        """maxItems/maxProperties become field.TooMany ("items" either way); the minimums stay kube-openapi's."""
        if most is not None and count > most:
            unit = "item" if most == 1 else "items"
            self.errors.append(_field_error("FieldValueTooMany", path, count, f"must have at most {most} {unit}"))
        if least is not None and count < least:
            self.invalid(path, count, f"should have at least {least} {noun}")

    def _array(self, node: _Node, value: list[Any], old: Any, path: str) -> None:
        self._count(path, len(value), node.max_items, node.min_items, "items")
        if node.items is not None:
            for index, item, old_item in _correlated_items(node, value, old):
                self.node(node.items, item, old_item, f"{path}[{index}]")
        if node.list_type in ("set", "map"):
            self._list_uniqueness(node, value, path)

    def _list_uniqueness(self, node: _Node, value: list[Any], path: str) -> None:
        seen: set[tuple[str, ...]] = set()
        for index, item in enumerate(value):
            if node.list_type == "map" and not isinstance(item, dict):
                self.list_errors.append(_field_error("FieldValueInvalid", f"{path}[{index}]", item,
                                                     "must be an object for an array of list-type map"))
                continue
            key = _list_item_key(node, item)
            if key in seen:
                duplicate = {k: _map_key_value(node, item, k) for k in node.list_map_keys} \
                    if node.list_type == "map" else item
                self.list_errors.append(_field_error("FieldValueDuplicate", f"{path}[{index}]", duplicate, ""))
            elif key is not None:
                seen.add(key)

    def _object(self, node: _Node, value: dict[str, Any], old: Any, path: str) -> None:
        self._count(path, len(value), node.max_properties, node.min_properties, "properties")
        for name in node.required:
            if name not in value:
                self.errors.append(_field_error("FieldValueRequired", _join(path, name), None, ""))
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                self.node(child, item, _old_field(old, key), _join(path, key))


def _map_key_value(node: _Node, item: dict[str, Any], key: str) -> Any:
    if key in item:
        return item[key]
    prop = node.items.properties.get(key) if node.items and node.items.properties else None
    return prop.default if prop is not None and prop.has_default else None


# ---------------------------------------------------------------------------------------------- CEL


def _to_cel(node: _Node | None, value: Any, root: bool = False) -> Any:
    """A JSON value as the CEL type its schema declares (number -> double even when written as 1)."""
    if value is None:
        return None
    if node is None or node.int_or_string or node.type is None:
        return _untyped_cel(value)
    if node.type == "number":
        return celtypes.DoubleType(value)
    if node.type == "integer":
        return celtypes.IntType(int(value))
    if node.type == "boolean":
        return celtypes.BoolType(value)
    if node.type == "string":
        return celtypes.StringType(value)
    if node.type == "array" and isinstance(value, list):
        return celtypes.ListType([_to_cel(node.items, item) for item in value])
    if isinstance(value, dict):
        fields: dict[Any, Any] = {}
        for key, item in value.items():
            if root and key in _ROOT_META_FIELDS:
                if key == "metadata" and isinstance(item, dict):
                    # Rules may read only metadata.name and metadata.generateName.
                    item = {k: v for k, v in item.items() if k in ("name", "generateName")}
                fields[celtypes.StringType(key)] = _untyped_cel(item)
                continue
            child = node.child(key)
            if child is not None or node.preserve_unknown:
                fields[celtypes.StringType(key)] = _to_cel(child, item)
        return celtypes.MapType(fields)
    return _untyped_cel(value)


def _untyped_cel(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        return celtypes.ListType([_untyped_cel(v) for v in value])
    return celtypes.MapType({celtypes.StringType(k): _untyped_cel(v) for k, v in value.items()})


class _CelValidator:
    """Evaluates x-kubernetes-validations at every level, with field.Path naming."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def node(self, node: _Node, value: Any, old: Any, path: str, root: bool = False) -> None:
        if not node.has_rules_below or value is None:
            return
        if node.rules:
            self._rules(node, value, old, path, root)
        if isinstance(value, dict):
            for key, item in value.items():
                child = node.child(key)
                if child is not None and child.has_rules_below:
                    is_map = node.properties is None or key not in node.properties
                    child_path = f"{path}[{key}]" if is_map else _join(path, key)
                    self.node(child, item, _old_field(old, key), child_path)
        elif isinstance(value, list) and node.items is not None and node.items.has_rules_below:
            for index, item, old_item in _correlated_items(node, value, old):
                self.node(node.items, item, old_item, f"{path}[{index}]")

    def _rules(self, node: _Node, value: Any, old: Any, path: str, root: bool) -> None:
        self_value = _to_cel(node, value, root)
        old_value = _to_cel(node, old, root) if old is not _ABSENT else None
        unchanged = _unchanged(value, old)
        schema_type = "integer,string" if node.int_or_string else (node.type or "object")
        for rule in node.rules:
            if rule.program.uses_old_self:
                if rule.optional_old_self:
                    old_arg: Any = OptionalValue(old_value, present=old is not _ABSENT)
                elif old is _ABSENT:
                    continue  # transition rules run only on updates of an existing value
                else:
                    old_arg = old_value
            elif unchanged:
                continue  # ratcheting: an unchanged value is not re-judged
            else:
                old_arg = None
            self._evaluate(rule, self_value, old_arg, path, schema_type, value)

    def _evaluate(self, rule: _Rule, self_value: Any, old_arg: Any, path: str, schema_type: str,
                  value: Any) -> None:
        shown_rule = rule.message or rule.rule
        node_field = path or "<nil>"  # the object root is a nil field.Path, printed "<nil>"
        try:
            passed = rule.program.evaluate(self_value, old_arg)
        except CelRuntimeError as error:
            self.errors.append(_field_error("FieldValueInvalid", node_field, schema_type,
                                            f"{error} evaluating rule: {shown_rule}"))
            return
        if passed is True or (isinstance(passed, celtypes.BoolType) and bool(passed)):
            return
        target = _join(path, rule.field_path) if rule.field_path else node_field
        message = self._message(rule, self_value, old_arg)
        shown_value = OMIT_VALUE if schema_type in ("object", "array") else value
        self.errors.append(_field_error(rule.reason, target, shown_value,
                                        "" if rule.reason == "FieldValueDuplicate" else message))

    @staticmethod
    def _message(rule: _Rule, self_value: Any, old_arg: Any) -> str:
        fallback = rule.message or f"failed rule: {rule.rule}"
        if rule.message_program is None:
            return fallback
        try:
            text = rule.message_program.evaluate(self_value, old_arg)
        except CelRuntimeError:
            return fallback  # the real server logs this and uses the static message
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            return fallback
        return str(text)


# ---------------------------------------------------------------------------------------------- pruning & defaults


def _prune(node: _Node | None, value: Any, path: str, dropped: list[str], remove: bool, root: bool = False) -> None:
    """Drop (or only list) fields the schema does not know, like apiextensions' pruning.Prune."""
    if node is not None and node.preserve_unknown:
        _prune_known(node, value, path, dropped, remove)
        return
    if isinstance(value, dict):
        resource_level = root or (node is not None and node.embedded)
        for key in list(value):
            if resource_level and _is_type_meta(key, value[key]):
                continue  # apiVersion, kind and metadata are the object's own (ObjectMeta decoding handles them)
            child = node.child(key) if node is not None else None
            if child is not None:
                _prune(child, value[key], _join(path, key), dropped, remove)
            else:
                dropped.append(_join(path, key))
                if remove:
                    del value[key]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _prune(node.items if node is not None else None, item, f"{path}[{index}]", dropped, remove)


def _is_type_meta(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


def _prune_known(node: _Node, value: Any, path: str, dropped: list[str], remove: bool) -> None:
    """Under x-kubernetes-preserve-unknown-fields unknown keys stay, known ones are still pruned inside."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                _prune(child, item, _join(path, key), dropped, remove)
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            _prune(node.items, item, f"{path}[{index}]", dropped, remove)


def _drop_nulls_and_default(node: _Node, value: Any) -> None:
    """Remove non-nullable nulls that have no default, then apply defaults (structuraldefaulting)."""
    if isinstance(value, dict):
        if node.properties:
            for key, prop in node.properties.items():
                present = key in value
                if present and value[key] is None and not prop.nullable:
                    if prop.has_default:
                        value[key] = _copy(prop.default)
                    else:
                        del value[key]
                elif not present and prop.has_default:
                    value[key] = _copy(prop.default)
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                _drop_nulls_and_default(child, item)
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _drop_nulls_and_default(node.items, item)


# ---------------------------------------------------------------------------------------------- public API


class CompiledSchema:
    """An openAPIV3Schema compiled once: CEL programs, regexes and the node tree are reused per request."""

    def __init__(self, root: _Node) -> None:
        self._root = root

    @classmethod
    def compile(cls, openapi_v3_schema: dict[str, Any]) -> "CompiledSchema":
        """ValueError (naming the schema location) when the schema or one of its CEL rules is invalid."""
        root = _compile_node(openapi_v3_schema, "openAPIV3Schema")
        if root.type not in (None, "object"):
            raise ValueError(f'openAPIV3Schema.type: Unsupported value: "{root.type}": supported values: "object"')
        return cls(root)

    def default_errors(self, path: str = "openAPIV3Schema") -> list[FieldError]:
        """What the API server says of this schema's defaults when its CRD is written (see ``default_errors``)."""
        return default_errors(self._root, path)

    def prepare(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        """A pruned, defaulted copy of ``obj``. Defaulting does not depend on ``old`` (as on the real server)."""
        result = _copy(obj)
        _drop_nulls_and_default(self._root, result)
        _prune(self._root, result, "", [], remove=True, root=True)
        return result

    def unknown_fields(self, obj: dict[str, Any]) -> list[str]:
        """Paths pruning would drop, as the strict decoding error names them (``spec.foo``, ``spec.x[0].y``)."""
        dropped: list[str] = []
        _prune(self._root, obj, "", dropped, remove=False, root=True)
        return dropped

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
        """Every schema and CEL error; on update, unchanged values are ratcheted and transition rules run."""
        old_value = old if old is not None else _ABSENT
        structural = _StructuralValidator()
        for key, value in obj.items():
            child = self._root.child(key)
            if child is not None:
                structural.node(child, value, _old_field(old_value, key), key)
        for name in self._root.required:
            if name not in obj:
                structural.errors.append(_field_error("FieldValueRequired", name, None, ""))
        errors = structural.errors + structural.list_errors
        if not self._root.has_rules_below:
            return errors
        if any(error.type in _BLOCKING for error in errors):
            return errors + [_field_error("FieldValueInvalid", "<nil>", None, _CEL_SKIPPED)]
        cel = _CelValidator()
        cel.node(self._root, obj, old_value, "", root=True)
        return errors + cel.errors


def default_errors(node: _Node, path: str) -> list[FieldError]:
    """apiextensions' ValidateDefaults: every ``default`` must pass its own node's schema and then the CEL rules
    of that node and below, as written (nested defaults are not applied to it first): transition rules with the
    default as ``oldSelf`` too, and the others as on a create. Errors are named ``<node path>.default[...]``;
    additionalProperties are not followed (defaults are forbidden there)."""
    errors: list[FieldError] = []
    if node.has_default:
        where = f"{path}.default"
        structural = _StructuralValidator()
        structural.node(node, node.default, _ABSENT, where)
        errors.extend(structural.errors + structural.list_errors)
        if not structural.errors and not structural.list_errors:
            cel = _CelValidator()
            cel.node(node, node.default, node.default, where)  # unchanged: only transition rules run
            cel.node(node, node.default, _ABSENT, where)
            errors.extend(dict.fromkeys(cel.errors))            # a rule judged the same in both runs, once
    if node.items is not None:
        errors.extend(default_errors(node.items, f"{path}.items"))
    for name, child in (node.properties or {}).items():
        errors.extend(default_errors(child, f"{path}.properties[{name}]"))
    return errors


def _aggregate(errors: list[FieldError]) -> str:
    """utilerrors.NewAggregate(...).Error(): duplicates dropped, one error bare, several in brackets."""
    messages: list[str] = []
    for error in errors:
        text = f"{error.field}: {error.message}"
        if text not in messages:
            messages.append(text)
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body of apierrors.NewInvalid for these field errors."""
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {json.dumps(name, ensure_ascii=False)} is invalid"
    if errors:
        message += ": " + _aggregate(errors)
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    details = {k: v for k, v in details.items() if v}
    details["causes"] = [
        {k: v for k, v in (("reason", e.type), ("message", e.message), ("field", e.field)) if v} for e in errors
    ]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }
