"""The CEL validator: every x-kubernetes-validations rule evaluated where it sits, values typed by the schema."""

from __future__ import annotations

from typing import Any

from celpy import celtypes

from kubemeter_sim.apiserver.cel import CelRuntimeError, OptionalValue
from kubemeter_sim.apiserver.schema.compile import Node, Rule
from kubemeter_sim.apiserver.schema.errors import OMIT_VALUE, FieldError, field_error
from kubemeter_sim.apiserver.schema.paths import ABSENT, correlated_items, join, old_field, unchanged

_ROOT_META_FIELDS = ("apiVersion", "kind", "metadata")


def _to_cel(node: Node | None, value: Any, root: bool = False) -> Any:
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


class CelValidator:
    """Evaluates x-kubernetes-validations at every level, with field.Path naming."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def node(self, node: Node, value: Any, old: Any, path: str, root: bool = False) -> None:
        if not node.has_rules_below or value is None:
            return
        if node.rules:
            self._rules(node, value, old, path, root)
        if isinstance(value, dict):
            for key, item in value.items():
                child = node.child(key)
                if child is not None and child.has_rules_below:
                    is_map = node.properties is None or key not in node.properties
                    child_path = f"{path}[{key}]" if is_map else join(path, key)
                    self.node(child, item, old_field(old, key), child_path)
        elif isinstance(value, list) and node.items is not None and node.items.has_rules_below:
            for index, item, old_item in correlated_items(node, value, old):
                self.node(node.items, item, old_item, f"{path}[{index}]")

    def _rules(self, node: Node, value: Any, old: Any, path: str, root: bool) -> None:
        self_value = _to_cel(node, value, root)
        old_value = _to_cel(node, old, root) if old is not ABSENT else None
        value_unchanged = unchanged(value, old)
        schema_type = "integer,string" if node.int_or_string else (node.type or "object")
        for rule in node.rules:
            if rule.program.uses_old_self:
                if rule.optional_old_self:
                    old_arg: Any = OptionalValue(old_value, present=old is not ABSENT)
                elif old is ABSENT:
                    continue  # transition rules run only on updates of an existing value
                else:
                    old_arg = old_value
            elif value_unchanged:
                continue  # ratcheting: an unchanged value is not re-judged
            else:
                old_arg = None
            self._evaluate(rule, self_value, old_arg, path, schema_type, value)

    def _evaluate(self, rule: Rule, self_value: Any, old_arg: Any, path: str, schema_type: str,
                  value: Any) -> None:
        shown_rule = rule.message or rule.rule
        node_field = path or "<nil>"  # the object root is a nil field.Path, printed "<nil>"
        try:
            passed = rule.program.evaluate(self_value, old_arg)
        except CelRuntimeError as error:
            self.errors.append(field_error("FieldValueInvalid", node_field, schema_type,
                                            f"{error} evaluating rule: {shown_rule}"))
            return
        if passed is True or (isinstance(passed, celtypes.BoolType) and bool(passed)):
            return
        target = join(path, rule.field_path) if rule.field_path else node_field
        message = self._message(rule, self_value, old_arg)
        shown_value = OMIT_VALUE if schema_type in ("object", "array") else value
        self.errors.append(field_error(rule.reason, target, shown_value,
                                        "" if rule.reason == "FieldValueDuplicate" else message))

    @staticmethod
    def _message(rule: Rule, self_value: Any, old_arg: Any) -> str:
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

