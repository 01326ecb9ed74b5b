"""Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Error texts follow the libraries the real server uses (evanphx/json-patch, apimachinery strategicpatch).
"""
from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.errors import ApiError, bad_request, unexpected_response
from kubemeter_sim.apiserver.jsonutil import clone

# patchMergeKey of list fields in built-in kinds (by field name; service ports use "port").
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "conditions": "type", "ownerReferences": "uid", "hostAliases": "ip", "addresses": "type", "taints": "key",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "schedulingGates": "name",
    "ports": "containerPort",
}
# Lists of scalars merged as sets (patchStrategy merge without a key).
_MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _apply_error(f'JSON pointer "{path}" is invalid')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _apply_error(message: str) -> ApiError:
    """A JSON patch that does not apply: the real server tells the client only that the request was wrong, so
    the reason is a note on the exception (tracebacks show it), not part of the answer."""
    error = unexpected_response(422, "")
    error.add_note(message)
    return error


def _missing(op: str, path: str) -> ApiError:
    return _apply_error(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")


def _container(doc: Any, parts: list[str], op: str, path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _missing(op, path)
    return node, parts[-1]


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    node, last = _container(doc, parts, op, path)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise _missing(op, path)


def _remove(doc: Any, path: str, op: str) -> Any:
    node, last = _container(doc, _pointer(path), op, path)
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node.pop(int(last))
    raise _missing(op, path)


def _add(doc: Any, path: str, value: Any, replace: bool) -> Any:
    op = "replace" if replace else "add"
    parts = _pointer(path)
    if not parts:
        return value
    node, last = _container(doc, parts, op, path)
    if isinstance(node, dict):
        if replace and last not in node:
            raise _apply_error(f"replace operation does not apply: doc is missing key: {path}: missing value")
        node[last] = value
    elif isinstance(node, list):
        if last == "-" and not replace:
            node.append(value)
        elif last.isdigit() and int(last) <= len(node) - (1 if replace else 0):
            if replace:
                node[int(last)] = value
            else:
                node.insert(int(last), value)
        else:
            raise _missing(op, path)
    else:
        raise _missing(op, path)
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of target; 400 for a malformed patch, 422 when an operation does not apply."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = clone(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise bad_request("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        op, path = operation["op"], operation.get("path", "")
        if op == "add":
            doc = _add(doc, path, clone(operation.get("value")), replace=False)
        elif op == "replace":
            doc = _add(doc, path, clone(operation.get("value")), replace=True)
        elif op == "remove":
            _remove(doc, path, "remove")
        elif op == "test":
            try:
                actual = _get(doc, path, "test")
            except ApiError:
                actual = None
            if actual != operation.get("value"):
                raise _apply_error(f"testing value {path} failed: test failed")
        elif op in ("move", "copy"):
            source = operation.get("from", "")
            value = _remove(doc, source, op) if op == "move" else clone(_get(doc, source, op))
            doc = _add(doc, path, value, replace=False)
        else:
            raise _apply_error(f"Unexpected kind: {op}")
    return doc


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for built-in kinds, honouring the $patch/$retainKeys/$setElementOrder directives."""
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return _smp_map(target if isinstance(target, dict) else {}, patch)


def _smp_map(target: dict, patch: dict) -> dict | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target)
    orders: dict[str, list] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key) if isinstance(result.get(key), dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key) if isinstance(result.get(key), list) else [], value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_key(field: str, items: list) -> str | None:
    key = _MERGE_KEYS.get(field)
    if field == "ports" and any(isinstance(i, dict) and "containerPort" not in i and "port" in i for i in items):
        return "port"
    return key


def _smp_list(field: str, target: list, patch: list) -> list:
    if field in _MERGED_PRIMITIVE_LISTS:
        merged = list(target)
        merged.extend(v for v in patch if v not in merged)
        return merged
    key = _merge_key(field, target + patch)
    if key is None:
        return [clone(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [clone(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    result = [clone(v) for v in target]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, existing in enumerate(result)
                      if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append({k: clone(v) for k, v in item.items() if k != "$patch"})
        else:
            result[index] = _smp_map(result[index], item)
    return result


def _reorder(field: str, items: list, order: list) -> list:
    """$setElementOrder: listed elements in the given order, the rest keep their relative place after them."""
    key = _merge_key(field, items)
    identity = (lambda item: item.get(key) if isinstance(item, dict) else item) if key else (lambda item: item)
    wanted = [identity(o) if isinstance(o, dict) else o for o in order]
    rank = {value: position for position, value in enumerate(wanted)}
    return sorted(items, key=lambda item: rank.get(identity(item), len(rank)))
