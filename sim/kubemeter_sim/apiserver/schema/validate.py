"""Structural validation: kube-openapi's schema validator plus the list-type checks, with update ratcheting."""

from __future__ import annotations

import json
from typing import Any

from kubemeter_sim.apiserver.schema.compile import Node
from kubemeter_sim.apiserver.schema.errors import FieldError, field_error, go_float
from kubemeter_sim.apiserver.schema.formats import format_ok
from kubemeter_sim.apiserver.schema.paths import ABSENT, correlated_items, join, json_equal, list_item_key, \
    old_field, unchanged


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


class StructuralValidator:
    """kube-openapi's schema validator plus the list-type checks, with update ratcheting."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.list_errors: list[FieldError] = []

    def invalid(self, path: str, value: Any, detail: str, type_: str = "FieldValueInvalid") -> None:
        self.errors.append(field_error(type_, path, value, f"{path} in body {detail}"))

    def node(self, node: Node, value: Any, old: Any, path: str) -> None:
        if unchanged(value, old):
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
        if node.enum is not None and not any(json_equal(value, allowed) for allowed in node.enum):
            allowed = ", ".join(json.dumps(a if isinstance(a, str) else json.dumps(a)) for a in node.enum)
            self.errors.append(field_error("FieldValueNotSupported", path, value, "supported values: " + allowed))
        if actual == "object":
            self._object(node, value, old, path)

    def _branch_errors(self, branch: Node, value: Any, path: str) -> list[FieldError]:
        probe = StructuralValidator()
        probe.node(branch, value, ABSENT, path)
        return probe.errors

    def _composite(self, path: str, detail: str) -> None:
        """Composition failures carry no field name in kube-openapi, so they surface at the nil path."""
        self.errors.append(field_error("FieldValueInvalid", "<nil>", "", f'"{path}" {detail}'))

    def _compositions(self, node: Node, value: Any, path: str) -> None:
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

    def _type_ok(self, node: Node, value: Any, actual: str, path: str) -> bool:
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

    def _string(self, node: Node, value: str, path: str) -> None:
        if node.max_length is not None and len(value) > node.max_length:
            unit = "byte" if node.max_length == 1 else "bytes"
            self.errors.append(field_error("FieldValueTooLong", path, value,
                                            f"may not be more than {node.max_length} {unit}"))
        if node.min_length is not None and len(value) < node.min_length:
            self.invalid(path, value, f"should be at least {node.min_length} chars long")
        if node.pattern is not None and not node.pattern.search(value):
            self.invalid(path, value, f"should match '{node.pattern_source}'")
        if not format_ok(node.format, value):
            self.invalid(path, value, f"must be of type {node.format}: {json.dumps(value)}", "FieldValueTypeInvalid")

    def _number(self, node: Node, value: float, path: str) -> None:
        if node.maximum is not None:
            if node.exclusive_maximum and value >= node.maximum:
                self.invalid(path, value, f"should be less than {go_float(float(node.maximum))}")
            elif value > node.maximum:
                self.invalid(path, value, f"should be less than or equal to {go_float(float(node.maximum))}")
        if node.minimum is not None:
            if node.exclusive_minimum and value <= node.minimum:
                self.invalid(path, value, f"should be greater than {go_float(float(node.minimum))}")
            elif value < node.minimum:
                self.invalid(path, value, f"should be greater than or equal to {go_float(float(node.minimum))}")
        if node.multiple_of and not float(value / node.multiple_of).is_integer():
            self.invalid(path, value, f"should be a multiple of {go_float(float(node.multiple_of))}")

    def _count(self, path: str, count: int, most: int | None, least: int | None, noun: str) -> None:
        """maxItems/maxProperties become field.TooMany ("items" either way); the minimums stay kube-openapi's."""
        if most is not None and count > most:
            unit = "item" if most == 1 else "items"
            self.errors.append(field_error("FieldValueTooMany", path, count, f"must have at most {most} {unit}"))
        if least is not None and count < least:
            self.invalid(path, count, f"should have at least {least} {noun}")

    def _array(self, node: Node, value: list[Any], old: Any, path: str) -> None:
        self._count(path, len(value), node.max_items, node.min_items, "items")
        if node.items is not None:
            for index, item, old_item in correlated_items(node, value, old):
                self.node(node.items, item, old_item, f"{path}[{index}]")
        if node.list_type in ("set", "map"):
            self._list_uniqueness(node, value, path)

    def _list_uniqueness(self, node: Node, value: list[Any], path: str) -> None:
        seen: set[tuple[str, ...]] = set()
        for index, item in enumerate(value):
            if node.list_type == "map" and not isinstance(item, dict):
                self.list_errors.append(field_error("FieldValueInvalid", f"{path}[{index}]", item,
                                                     "must be an object for an array of list-type map"))
                continue
            key = list_item_key(node, item)
            if key in seen:
                duplicate = {k: _map_key_value(node, item, k) for k in node.list_map_keys} \
                    if node.list_type == "map" else item
                self.list_errors.append(field_error("FieldValueDuplicate", f"{path}[{index}]", duplicate, ""))
            elif key is not None:
                seen.add(key)

    def _object(self, node: Node, value: dict[str, Any], old: Any, path: str) -> None:
        self._count(path, len(value), node.max_properties, node.min_properties, "properties")
        for name in node.required:
            if name not in value:
                self.errors.append(field_error("FieldValueRequired", join(path, name), None, ""))
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                self.node(child, item, old_field(old, key), join(path, key))


def _map_key_value(node: Node, item: dict[str, Any], key: str) -> Any:
    if key in item:
        return item[key]
    prop = node.items.properties.get(key) if node.items and node.items.properties else None
    return prop.default if prop is not None and prop.has_default else None

