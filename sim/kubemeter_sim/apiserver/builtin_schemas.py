"""Structural schemas for built-in kinds, generated from the official Python client's models.

The client's pydantic models mirror the real OpenAPI definitions (JSON names in ``attribute_map``, types in
``openapi_types``, descriptions in ``model_fields``), so they give ``kubectl explain`` real field docs and give
the simulated server the field set a real server would decode (and prune) for built-ins. Not carried over:
patch strategies (not in the models) and required-ness (the models mark fields such as Deployment.spec
required that the real API leaves optional; built-in validation is the server's Go code, not a schema).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import kubernetes.client as client_models

from kubemeter_sim.apiserver.schema import CompiledSchema

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytes": {"type": "string", "format": "byte"},
    # IntOrString, RawExtension and friends: the models do not say which, so anything goes.
    "object": {"x-kubernetes-preserve-unknown-fields": True},
}
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


def _type_schema(type_name: str, stack: tuple[str, ...]) -> dict[str, Any]:
    if type_name in _SCALARS:
        return dict(_SCALARS[type_name])
    listed = _LIST.match(type_name)
    if listed:
        return {"type": "array", "items": _type_schema(listed.group(1), stack)}
    mapped = _DICT.match(type_name)
    if mapped:
        return {"type": "object", "additionalProperties": _type_schema(mapped.group(1), stack)}
    if type_name in stack:
        # Recursive models (JSONSchemaProps) stop here rather than expand forever.
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return _model_schema(type_name, stack)


def _model_schema(model_name: str, stack: tuple[str, ...] = ()) -> dict[str, Any]:
    model = getattr(client_models, model_name)
    properties: dict[str, Any] = {}
    for attribute, type_name in model.openapi_types.items():
        # Go decoding takes null for any field (and writes zero times back as null), so all are nullable.
        prop = {**_type_schema(type_name, (*stack, model_name)), "nullable": True}
        field_info = model.model_fields.get(attribute)
        if field_info is not None and field_info.description:
            prop["description"] = field_info.description
        properties[model.attribute_map[attribute]] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    summary = (model.__doc__ or "").split("Attributes:")[0]
    if summary.strip() and not summary.startswith(model_name):
        schema["description"] = " ".join(summary.split())
    return schema


def _model_name(group: str, version: str, kind: str) -> str | None:
    """Client class of a kind: ``CoreV1Event`` / ``EventsV1Event`` where names collide, else ``V1Pod``."""
    prefix = (group.split(".")[0] if group else "core").capitalize()
    for candidate in (f"{prefix}{version.capitalize()}{kind}", f"{version.capitalize()}{kind}"):
        if hasattr(getattr(client_models, candidate, None), "openapi_types"):
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _cached_schema(group: str, version: str, kind: str) -> str | None:
    name = _model_name(group, version, kind)
    return json.dumps(_model_schema(name)) if name else None


def builtin_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """A fresh structural schema of a built-in kind (fully inlined), or None when the client has no model."""
    cached = _cached_schema(group, version, kind)
    return json.loads(cached) if cached is not None else None


@functools.lru_cache(maxsize=None)
def compiled_builtin_schema(group: str, version: str, kind: str) -> CompiledSchema | None:
    """The compiled schema of a built-in kind, for ``unknown_fields`` (fieldValidation=Strict/Warn on built-ins).

    Not for ``validate``: Go decoding is looser than these schemas (a Quantity may be written as a number).
    """
    schema = builtin_schema(group, version, kind)
    return CompiledSchema.compile(schema) if schema is not None else None
