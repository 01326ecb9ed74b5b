"""Walking an object beside its old version: field paths, the old value of a field or list element, ratcheting.

Paths in kube-openapi messages use dots for map keys; CEL paths use ``[key]`` like ``field.Path``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from kubemeter_sim.apiserver.schema.compile import Node

ABSENT: Any = object()  # no correlated old value (create, or an element that did not exist before)


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of decoded JSON where true != 1 (Python's == says otherwise)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def list_item_key(node: Node, item: Any) -> tuple[str, ...] | None:
    """The identity of a list element across versions: map keys, the value itself for sets."""
    if node.list_type == "map" and isinstance(item, dict):
        return tuple(json.dumps(item.get(k), sort_keys=True) for k in node.list_map_keys)
    if node.list_type == "set":
        return (json.dumps(item, sort_keys=True),)
    return None


def correlated_items(node: Node, items: list[Any], old: Any) -> Iterator[tuple[int, Any, Any]]:
    """Each element with its old version: only list-type map/set elements correlate (as in ratcheting)."""
    old_by_key: dict[tuple[str, ...], Any] = {}
    if isinstance(old, list) and node.list_type in ("map", "set"):
        for old_item in old:
            key = list_item_key(node, old_item)
            if key is not None:
                old_by_key.setdefault(key, old_item)
    for index, item in enumerate(items):
        key = list_item_key(node, item)
        yield index, item, old_by_key.get(key, ABSENT) if key is not None else ABSENT


def old_field(old: Any, key: str) -> Any:
    return old.get(key, ABSENT) if isinstance(old, dict) else ABSENT


def unchanged(value: Any, old: Any) -> bool:
    return old is not ABSENT and json_equal(value, old)
