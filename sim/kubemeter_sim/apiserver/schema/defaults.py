"""Pruning (fields the schema does not know) and defaulting (structuraldefaulting), as admission applies them."""

from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.apiserver.schema.compile import Node
from kubemeter_sim.apiserver.schema.paths import join


def _prune(node: Node | None, value: Any, path: str, dropped: list[str], remove: bool, root: bool = False) -> None:
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
                _prune(child, value[key], join(path, key), dropped, remove)
            else:
                dropped.append(join(path, key))
                if remove:
                    del value[key]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _prune(node.items if node is not None else None, item, f"{path}[{index}]", dropped, remove)


def _is_type_meta(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


def _prune_known(node: Node, value: Any, path: str, dropped: list[str], remove: bool) -> None:
    """Under x-kubernetes-preserve-unknown-fields unknown keys stay, known ones are still pruned inside."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                _prune(child, item, join(path, key), dropped, remove)
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            _prune(node.items, item, f"{path}[{index}]", dropped, remove)


def _drop_nulls_and_default(node: Node, value: Any) -> None:
    """Remove non-nullable nulls that have no default, then apply defaults (structuraldefaulting)."""
    if isinstance(value, dict):
        if node.properties:
            for key, prop in node.properties.items():
                present = key in value
                if present and value[key] is None and not prop.nullable:
                    if prop.has_default:
                        value[key] = clone(prop.default)
                    else:
                        del value[key]
                elif not present and prop.has_default:
                    value[key] = clone(prop.default)
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                _drop_nulls_and_default(child, item)
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _drop_nulls_and_default(node.items, item)


def prepared(root: Node, obj: dict[str, Any]) -> dict[str, Any]:
    """A pruned, defaulted copy of ``obj``."""
    result = clone(obj)
    _drop_nulls_and_default(root, result)
    _prune(root, result, "", [], remove=True, root=True)
    return result


def unknown_fields(root: Node, obj: dict[str, Any]) -> list[str]:
    """Paths pruning would drop, as the strict decoding error names them (``spec.foo``, ``spec.x[0].y``)."""
    dropped: list[str] = []
    _prune(root, obj, "", dropped, remove=False, root=True)
    return dropped
