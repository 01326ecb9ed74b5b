"""Decoding of the Kubernetes protobuf wire format for the few kinds kubectl's generators send as protobuf
(`kubectl create namespace|configmap|secret|serviceaccount`, `kubectl auth can-i`). Other kinds get 415.

Envelope: b"k8s\\x00" + runtime.Unknown{typeMeta{apiVersion=1, kind=2}=1, raw=2}; raw is the typed message.
Field numbers are those of k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1/generated.proto.
"""
from __future__ import annotations

import base64
from typing import Any, Callable, Iterator

from kubemeter_sim.apiserver.errors import bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise bad_request("protobuf: truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes); fixed-width fields are skipped."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
            yield number, value
        elif wire_type == 2:
            length, position = _varint(data, position)
            yield number, data[position:position + length]
            position += length
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        else:
            raise bad_request(f"protobuf: unsupported wire type {wire_type}")


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _map_entry(value: int | bytes, binary: bool) -> tuple[str, str]:
    entry = dict(_fields(value)) if isinstance(value, bytes) else {}
    raw = entry.get(2, b"")
    item = base64.b64encode(raw).decode() if binary and isinstance(raw, bytes) else _text(raw)
    return _text(entry.get(1, b"")), item


_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}


def _object_meta(data: bytes) -> dict:
    meta: dict[str, Any] = {}
    for number, value in _fields(data):
        if number in _META_STRINGS:
            meta[_META_STRINGS[number]] = _text(value)
        elif number in (11, 12):
            key, item = _map_entry(value, binary=False)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(number: int, value: int | bytes, obj: dict) -> None:
    if number == 2 and isinstance(value, bytes):
        obj["spec"] = {"finalizers": [_text(v) for n, v in _fields(value) if n == 1]}


def _configmap(number: int, value: int | bytes, obj: dict) -> None:
    if number in (2, 3):
        key, item = _map_entry(value, binary=number == 3)
        obj.setdefault("data" if number == 2 else "binaryData", {})[key] = item
    elif number == 4:
        obj["immutable"] = bool(value)


def _secret(number: int, value: int | bytes, obj: dict) -> None:
    if number in (2, 4):
        key, item = _map_entry(value, binary=number == 2)
        obj.setdefault("data" if number == 2 else "stringData", {})[key] = item
    elif number == 3:
        obj["type"] = _text(value)
    elif number == 5:
        obj["immutable"] = bool(value)


def _service_account(number: int, value: int | bytes, obj: dict) -> None:
    if number == 4:
        obj["automountServiceAccountToken"] = bool(value)


_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                        7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _strings(data: bytes, names: dict[int, str]) -> dict:
    return {names[number]: _text(value) for number, value in _fields(data) if number in names}


def _access_review(number: int, value: int | bytes, obj: dict) -> None:
    """(Self)SubjectAccessReview: spec{resourceAttributes=1, nonResourceAttributes=2, user=3, groups=4}."""
    if number != 2 or not isinstance(value, bytes):
        return
    spec: dict[str, Any] = {}
    for field, item in _fields(value):
        if field == 1 and isinstance(item, bytes):
            spec["resourceAttributes"] = _strings(item, _RESOURCE_ATTRIBUTES)
        elif field == 2 and isinstance(item, bytes):
            spec["nonResourceAttributes"] = _strings(item, _NON_RESOURCE_ATTRIBUTES)
        elif field == 3:
            spec["user"] = _text(item)
        elif field == 4:
            spec.setdefault("groups", []).append(_text(item))
    obj["spec"] = spec


def _delete_options(number: int, value: int | bytes, obj: dict) -> None:
    """meta/v1 DeleteOptions (client-go sends it in protobuf for core kinds, e.g. Helm purging its release Secret):
    1 gracePeriodSeconds, 3 orphanDependents, 4 propagationPolicy, 5 dryRun (repeated)."""
    if number == 1 and isinstance(value, int):
        obj["gracePeriodSeconds"] = value
    elif number == 3:
        obj["orphanDependents"] = bool(value)
    elif number == 4:
        obj["propagationPolicy"] = _text(value)
    elif number == 5:
        obj.setdefault("dryRun", []).append(_text(value))


_KINDS: dict[str, Callable[[int, int | bytes, dict], None]] = {
    "DeleteOptions": _delete_options,
    "Namespace": _namespace, "ConfigMap": _configmap, "Secret": _secret, "ServiceAccount": _service_account,
    "SelfSubjectAccessReview": _access_review, "SubjectAccessReview": _access_review}


def supports(kind: str) -> bool:
    return kind in _KINDS


def decode(body: bytes) -> dict:
    """A protobuf-encoded object of a supported kind as its JSON form; 415-worthy kinds raise KeyError."""
    if not body.startswith(_MAGIC):
        raise bad_request("provided data does not appear to be a protobuf message, expected prefix "
                          "[107 56 115 0]")
    envelope = dict(_fields(body[len(_MAGIC):]))
    type_meta = dict(_fields(envelope.get(1, b"")))              # type: ignore[arg-type]
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    fill = _KINDS[kind]
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    raw = envelope.get(2, b"")
    for number, value in _fields(raw if isinstance(raw, bytes) else b""):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        else:
            fill(number, value, obj)
    return obj
