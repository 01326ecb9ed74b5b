"""OpenAPI v3 documents for ``/openapi/v3`` as kubectl 1.32 reads them.

kubectl (cli-runtime ``QueryParamVerifierV3``) looks, in the group-version document, for a PATCH
operation whose ``x-kubernetes-group-version-kind`` is the object's GVK and whose parameters include the
``fieldValidation`` query parameter; when found it sends ``fieldValidation=Strict`` and leaves validation to
the server. ``kubectl explain`` reads ``components.schemas`` entries tagged with the same extension.
Resource types are duck-typed (``.group .version .plural .kind .namespaced .subresources .schema``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

from kubemeter_sim.apiserver.builtin_schemas import builtin_schema

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_OBJECT_META = f"{_META}.ObjectMeta"
_LIST_META = f"{_META}.ListMeta"
_STATUS = f"{_META}.Status"
_DELETE_OPTIONS = f"{_META}.DeleteOptions"
_PATCH = f"{_META}.Patch"
# No strategic merge: the real server refuses it for custom resources, and for built-ins (whose schemas here carry
# no x-kubernetes-patch-strategy) kubectl then builds the patch from its compiled-in types, as it should.
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")

_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values.")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer "
             "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.")
_METADATA_DOC = "Standard object's metadata."


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. "
                            "Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity that is "
                                        "making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict: This will fail the request with a "
    "BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are "
    "present.",
)
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be "
                              "served from."),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    _query("sendInitialEvents", "sendInitialEvents=true may be set together with watch=true.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream of add, update, "
                    "and remove notifications.", "boolean"),
]


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "description": description, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema_name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(schema_name)}}}


def _responses(schema_name: str, *codes: str) -> dict[str, Any]:
    titles = {"200": "OK", "201": "Created", "202": "Accepted"}
    return {code: {"description": titles[code], **_json_body(schema_name)} for code in codes}


def definition_name(group: str, version: str, kind: str, builtin: bool) -> str:
    """The components.schemas key the real server uses, e.g. ``io.k8s.api.apps.v1.Deployment``."""
    if not builtin:
        return ".".join([*reversed(group.split(".")), version, kind])
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


def _gvk(resource_type: Any) -> dict[str, str]:
    return {"group": resource_type.group, "kind": resource_type.kind, "version": resource_type.version}


def _operation(resource_type: Any, action: str, verb_name: str, schema_name: str,
               parameters: list[dict[str, Any]], responses: dict[str, Any],
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = resource_type.kind
    scope = "Namespaced" if resource_type.namespaced else ""
    operation: dict[str, Any] = {
        "tags": [resource_type.group.replace(".", "") + "_" + resource_type.version],
        "description": f"{action} {kind}",
        "operationId": f"{verb_name}{scope}{kind}",
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource_type),
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _write_params(with_force: bool = False) -> list[dict[str, Any]]:
    params = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    return [*params, _FORCE] if with_force else params


def _patch_body() -> dict[str, Any]:
    return {"content": {media: {"schema": _ref(_PATCH)} for media in _PATCH_TYPES}, "required": True}


def _verbs(resource_type: Any) -> set[str]:
    return set(getattr(resource_type, "verbs", ()) or ("get", "list", "create", "update", "patch", "delete"))


def _resource_paths(resource_type: Any, schema_name: str) -> dict[str, Any]:
    base = f"/api/{resource_type.version}" if not resource_type.group \
        else f"/apis/{resource_type.group}/{resource_type.version}"
    scope_params: list[dict[str, Any]] = []
    if resource_type.namespaced:
        base += "/namespaces/{namespace}"
        scope_params.append(_path_param("namespace", "object name and auth scope, such as for teams and projects"))
    collection = f"{base}/{resource_type.plural}"
    item = collection + "/{name}"
    name_param = _path_param("name", f"name of the {resource_type.kind}")
    list_name = schema_name + "List"
    verbs = _verbs(resource_type)
    collection_ops: dict[str, Any] = {}
    if "list" in verbs:
        collection_ops["get"] = _operation(resource_type, "list", "list", list_name, _LIST_PARAMS,
                                           _responses(list_name, "200"))
    if "create" in verbs:
        collection_ops["post"] = _operation(resource_type, "post", "create", schema_name, _write_params(),
                                            _responses(schema_name, "200", "201", "202"),
                                            {**_json_body(schema_name), "required": True})
    if "deletecollection" in verbs:
        collection_ops["delete"] = _operation(resource_type, "deletecollection", "deleteCollection", _STATUS,
                                              [_DRY_RUN, *_LIST_PARAMS], _responses(_STATUS, "200"))
    paths: dict[str, Any] = {collection: {**collection_ops, "parameters": [*scope_params, _PRETTY]}}
    paths[item] = {**_item_operations(resource_type, schema_name, verbs, status=False),
                   "parameters": [name_param, *scope_params, _PRETTY]}
    if "status" in resource_type.subresources:
        paths[item + "/status"] = {**_item_operations(resource_type, schema_name, verbs, status=True),
                                   "parameters": [name_param, *scope_params, _PRETTY]}
    if resource_type.namespaced and "list" in verbs:
        every_namespace = f"/apis/{resource_type.group}/{resource_type.version}" if resource_type.group \
            else f"/api/{resource_type.version}"
        paths[f"{every_namespace}/{resource_type.plural}"] = {
            "get": _operation(resource_type, "list", "list", list_name, _LIST_PARAMS, _responses(list_name, "200")),
            "parameters": [_PRETTY],
        }
    return paths


def _item_operations(resource_type: Any, schema_name: str, verbs: set[str], status: bool) -> dict[str, Any]:
    suffix = "Status" if status else ""
    read_name, replace_name, patch_name = f"read{suffix}", f"replace{suffix}", f"patch{suffix}"
    ops: dict[str, Any] = {}
    if "get" in verbs:
        ops["get"] = _operation(resource_type, "get", read_name, schema_name, [], _responses(schema_name, "200"))
    if "update" in verbs:
        ops["put"] = _operation(resource_type, "put", replace_name, schema_name, _write_params(),
                                _responses(schema_name, "200", "201"), {**_json_body(schema_name), "required": True})
    if "patch" in verbs:
        ops["patch"] = _operation(resource_type, "patch", patch_name, schema_name, _write_params(with_force=True),
                                  _responses(schema_name, "200", "201"), _patch_body())
    if "delete" in verbs and not status:
        ops["delete"] = _operation(
            resource_type, "delete", "delete", _STATUS,
            [_DRY_RUN, _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.",
                              "integer"),
             _query("propagationPolicy", "Whether and how garbage collection will be performed.")],
            _responses(_STATUS, "200", "202"), _json_body(_DELETE_OPTIONS))
    return ops


def _kind_schema(resource_type: Any) -> dict[str, Any]:
    """The CRD's openAPIV3Schema, or the built-in kind's client-model schema, with standard apiVersion/kind/metadata."""
    if resource_type.schema is not None:
        schema = json.loads(json.dumps(resource_type.schema))
    else:
        schema = builtin_schema(resource_type.group, resource_type.version, resource_type.kind) or {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"description": _API_VERSION_DOC, "type": "string"}
    properties["kind"] = {"description": _KIND_DOC, "type": "string"}
    properties["metadata"] = {"description": _METADATA_DOC, "allOf": [_ref(_OBJECT_META)]}
    schema["type"] = "object"
    schema["x-kubernetes-group-version-kind"] = [_gvk(resource_type)]
    return schema


def _list_schema(resource_type: Any, item_name: str) -> dict[str, Any]:
    return {
        "description": f"{resource_type.kind}List is a list of {resource_type.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
            "items": {"description": f"List of {resource_type.plural}.", "type": "array", "items": _ref(item_name)},
            "kind": {"description": _KIND_DOC, "type": "string"},
            "metadata": {"description": "Standard list metadata.", "allOf": [_ref(_LIST_META)]},
        },
        "x-kubernetes-group-version-kind": [{**_gvk(resource_type), "kind": resource_type.kind + "List"}],
    }


def _open_object(description: str) -> dict[str, Any]:
    return {"description": description, "type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _meta_schemas() -> dict[str, Any]:
    string = {"type": "string"}
    string_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    return {
        _OBJECT_META: {
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "type": "object",
            "properties": {
                "annotations": {**string_map, "description": "Annotations is an unstructured key value map."},
                "creationTimestamp": {**string, "format": "date-time",
                                      "description": "CreationTimestamp is when this object was created."},
                "deletionTimestamp": {**string, "format": "date-time",
                                      "description": "DeletionTimestamp is when this resource will be deleted."},
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                               "x-kubernetes-list-type": "set",
                               "description": "Must be empty before the object is deleted from the registry."},
                "generateName": {**string, "description": "Prefix used to generate a unique name."},
                "generation": {"type": "integer", "format": "int64",
                               "description": "A sequence number representing a specific generation of the "
                                              "desired state."},
                "labels": {**string_map, "description": "Map of string keys and values used to select objects."},
                "managedFields": {"type": "array", "items": _open_object("ManagedFieldsEntry"),
                                  "description": "Field managers of this object."},
                "name": {**string, "description": "Name must be unique within a namespace."},
                "namespace": {**string, "description": "Namespace defines the space within which each name must "
                                                       "be unique."},
                "ownerReferences": {"type": "array", "items": _open_object("OwnerReference"),
                                    "description": "List of objects depended by this object."},
                "resourceVersion": {**string, "description": "An opaque value that represents the internal version "
                                                             "of this object."},
                "uid": {**string, "description": "UID is the unique in time and space value for this object."},
            },
        },
        _LIST_META: {
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {"continue": string, "remainingItemCount": {"type": "integer", "format": "int64"},
                           "resourceVersion": string},
        },
        _STATUS: _open_object("Status is a return value for calls that don't return other objects."),
        _DELETE_OPTIONS: _open_object("DeleteOptions may be provided when deleting an API object."),
        _PATCH: {"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
                                "request body.", "type": "object"},
    }


def _group_types(group: str, version: str, resource_types: Iterable[Any]) -> list[Any]:
    return sorted((t for t in resource_types if t.group == group and t.version == version), key=lambda t: t.plural)


def _document_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_document(group: str, version: str, resource_types: Iterable[Any]) -> dict[str, Any]:
    """GET /openapi/v3/api/v1 or /openapi/v3/apis/G/V: paths with fieldValidation, schemas with GVKs."""
    paths: dict[str, Any] = {}
    schemas = _meta_schemas()
    served = _group_types(group, version, resource_types)
    for resource_type in served:
        name = definition_name(resource_type.group, resource_type.version, resource_type.kind,
                               builtin=resource_type.schema is None)
        schemas[name] = _kind_schema(resource_type)
        schemas[name + "List"] = _list_schema(resource_type, name)
        paths.update(_resource_paths(resource_type, name))
    from_crds = any(t.schema is not None for t in served)
    return {
        "openapi": "3.0.0",
        # The real server titles CRD group-versions like this; built-in ones carry the server version.
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"} if from_crds
        else {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _signature(resource_type: Any) -> list[Any]:
    """Everything a group-version document is built from, so its hash changes exactly when the document does."""
    return [resource_type.plural, resource_type.kind, resource_type.namespaced,
            sorted(resource_type.subresources), sorted(_verbs(resource_type)), resource_type.schema]


def openapi_v3_root(resource_types: Iterable[Any]) -> dict[str, Any]:
    """GET /openapi/v3: one entry per group-version, its URL carrying a content hash (kubectl caches by it)."""
    types = list(resource_types)
    paths: dict[str, Any] = {}
    for group, version in sorted({(t.group, t.version) for t in types}):
        signatures = [_signature(t) for t in _group_types(group, version, types)]
        digest = hashlib.sha512(json.dumps(signatures, sort_keys=True).encode()).hexdigest().upper()
        path = _document_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
