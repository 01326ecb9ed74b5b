"""Structural CRD schemas as the apiextensions-apiserver applies them: pruning, defaulting, validation.

The public API: ``CompiledSchema`` (compile once, then prepare and validate objects), ``FieldError``,
``invalid_status`` and ``TYPE_LABELS``. Each concern has a module of its own:

  compile    the schema as a tree of nodes, its CEL rules compiled (what a CRD write checks of a schema)
  validate   structural validation (kube-openapi's validator, list types, ratcheting)
  celrules   the x-kubernetes-validations rules evaluated against an object and its old version
  defaults   pruning of unknown fields and defaulting
  paths      field paths and the correlation of an object with its old version, shared by the walkers
  formats    the string formats kube-openapi checks
  errors     field.Error text, Go's printing of bad values and the 422 Status body
"""

from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.schema import defaults
from kubemeter_sim.apiserver.schema.celrules import CelValidator
from kubemeter_sim.apiserver.schema.compile import Node, compile_schema
from kubemeter_sim.apiserver.schema.errors import TYPE_LABELS, FieldError, field_error, invalid_status
from kubemeter_sim.apiserver.schema.paths import ABSENT, old_field
from kubemeter_sim.apiserver.schema.validate import StructuralValidator

__all__ = ["TYPE_LABELS", "CompiledSchema", "FieldError", "invalid_status"]

# Error types that stop CEL evaluation (apiextensions-apiserver's hasBlockingErr).
_BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong",
                       "FieldValueTooMany", "FieldValueTypeInvalid"})
_CEL_SKIPPED = ("some validation rules were not checked because the object was invalid; "
                "correct the existing errors to complete validation")


class CompiledSchema:
    """An openAPIV3Schema compiled once: CEL programs, regexes and the node tree are reused per request."""

    def __init__(self, root: Node) -> None:
        self._root = root

    @classmethod
    def compile(cls, openapi_v3_schema: dict[str, Any]) -> "CompiledSchema":
        """ValueError (naming the schema location) when the schema or one of its CEL rules is invalid."""
        return cls(compile_schema(openapi_v3_schema))

    def default_errors(self, path: str = "openAPIV3Schema") -> list[FieldError]:
        """What the API server says of this schema's defaults when its CRD is written (see ``_default_errors``)."""
        return _default_errors(self._root, path)

    def prepare(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        """A pruned, defaulted copy of ``obj``. Defaulting does not depend on ``old`` (as on the real server)."""
        return defaults.prepared(self._root, obj)

    def unknown_fields(self, obj: dict[str, Any]) -> list[str]:
        """Paths pruning would drop, as the strict decoding error names them (``spec.foo``, ``spec.x[0].y``)."""
        return defaults.unknown_fields(self._root, obj)

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
        """Every schema and CEL error; on update, unchanged values are ratcheted and transition rules run."""
        old_value = old if old is not None else ABSENT
        structural = StructuralValidator()
        for key, value in obj.items():
            child = self._root.child(key)
            if child is not None:
                structural.node(child, value, old_field(old_value, key), key)
        for name in self._root.required:
            if name not in obj:
                structural.errors.append(field_error("FieldValueRequired", name, None, ""))
        errors = structural.errors + structural.list_errors
        if not self._root.has_rules_below:
            return errors
        if any(error.type in _BLOCKING for error in errors):
            return errors + [field_error("FieldValueInvalid", "<nil>", None, _CEL_SKIPPED)]
        cel = CelValidator()
        cel.node(self._root, obj, old_value, "", root=True)
        return errors + cel.errors


def _default_errors(node: Node, path: str) -> list[FieldError]:
    """apiextensions' ValidateDefaults: every ``default`` must pass its own node's schema and then the CEL rules
    of that node and below, as written (nested defaults are not applied to it first): transition rules with the
    default as ``oldSelf`` too, and the others as on a create. Errors are named ``<node path>.default[...]``;
    additionalProperties are not followed (defaults are forbidden there)."""
    errors: list[FieldError] = []
    if node.has_default:
        where = f"{path}.default"
        structural = StructuralValidator()
        structural.node(node, node.default, ABSENT, where)
        errors.extend(structural.errors + structural.list_errors)
        if not structural.errors and not structural.list_errors:
            cel = CelValidator()
            cel.node(node, node.default, node.default, where)  # unchanged: only transition rules run
            cel.node(node, node.default, ABSENT, where)
            errors.extend(dict.fromkeys(cel.errors))            # a rule judged the same in both runs, once
    if node.items is not None:
        errors.extend(_default_errors(node.items, f"{path}.items"))
    for name, child in (node.properties or {}).items():
        errors.extend(_default_errors(child, f"{path}.properties[{name}]"))
    return errors
