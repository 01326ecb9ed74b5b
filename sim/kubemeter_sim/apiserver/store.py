"""In-memory object store with the semantics of the kube-apiserver registry + etcd + garbage collector.

Objects are kept in their storage version; each keeps its serialized JSON until it changes, so LIST and watch
fan-out only join bytes. One global resourceVersion counter orders every change; a bounded history of changes
backs watch resumption and continue tokens.
"""
from __future__ import annotations

import base64
import binascii
import json
import random
import uuid
from collections import deque
from typing import Any, Callable, Iterable

from kubemeter_sim.apiserver import admission
from kubemeter_sim.apiserver.conversion import convert
from kubemeter_sim.apiserver.errors import (
    ApiError, bad_request, expired, invalid, no_such_resource, not_found, stale_conflict, too_old_resource_version,
    unsupported_media_type, already_exists, forbidden)
from kubemeter_sim.apiserver.jsonutil import clone, dumps
from kubemeter_sim.apiserver.lifecycle import Lifecycle
from kubemeter_sim.apiserver.objects import Change, Collection, Entry, WriteOptions, object_key
from kubemeter_sim.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from kubemeter_sim.apiserver.resources import ResourceType, builtin_types
from kubemeter_sim.apiserver.scale import replicas_of, scale_of
from kubemeter_sim.apiserver.selectors import field_matcher, label_matcher

__all__ = ["ResourceType", "Store", "Change", "WriteOptions"]

Listener = Callable[[str, ResourceType, dict], None]
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PATCH_TYPES = ("json", "merge", "strategic", "apply")
_CUSTOM_PATCH_MEDIA = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list.")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")



class Store(Lifecycle):
    """The API's objects. Every method raises ApiError as the HTTP API would answer."""

    def __init__(self, *, watch_history: int = 10_000) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._collections: dict[tuple[str, str], Collection] = {}
        self._rv = 1
        self._listeners: list[Listener] = []
        self._change_hooks: list[Callable[[Change], None]] = []
        self.history: deque[Change] = deque(maxlen=watch_history)
        self._compacted_rv = 1                 # resourceVersions below this are "too old"
        self._uids: dict[str, tuple[tuple[str, str], str]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str], str]]] = {}
        for rtype in builtin_types():
            self._register(rtype)
        for namespace in INITIAL_NAMESPACES:
            self.create("v1", "namespaces", {"metadata": {"name": namespace}})

    # ---- types -------------------------------------------------------------------------------------------------
    def _register(self, rtype: ResourceType) -> None:
        self._types[(rtype.api_version, rtype.plural)] = rtype
        self._collections.setdefault(rtype.key, Collection())

    def resource(self, api_version: str, plural: str) -> ResourceType:
        rtype = self._types.get((api_version, plural))
        if rtype is None:
            raise no_such_resource()
        return rtype

    def resources(self) -> list[ResourceType]:
        return list(self._types.values())

    def storage_type(self, rtype: ResourceType) -> ResourceType:
        return self._types.get((rtype.storage_api_version, rtype.plural), rtype)

    # ---- resource versions, listeners --------------------------------------------------------------------------
    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def add_listener(self, callback: Listener) -> None:
        self._listeners.append(callback)

    def add_change_hook(self, hook: Callable[[Change], None]) -> None:
        """Internal (watch hub): like add_listener, with the old object and the cached bytes."""
        self._change_hooks.append(hook)

    def set_history_limit(self, size: int) -> None:
        self.history = deque(self.history, maxlen=size)

    def oldest_valid_rv(self) -> int:
        """Changes after this RV are all in the history (watch from RV >= this can be served)."""
        floor = self._compacted_rv
        if self.history.maxlen and len(self.history) == self.history.maxlen:
            floor = max(floor, self.history[0].rv - 1)
        return floor

    def expire_resource_versions(self) -> None:
        """Compaction: every resourceVersion older than the current one becomes too old."""
        self.history.clear()
        self._compacted_rv = self._rv

    def _commit(self, change_type: str, rtype: ResourceType, key: str, obj: dict | None, old: dict | None) -> Entry:
        """Store (or remove) one object under a new RV and tell listeners. obj is owned by the store from now."""
        self._rv += 1
        rv = str(self._rv)
        collection = self._collections[rtype.key]
        if change_type == "DELETED":
            assert old is not None
            final = clone(old) if obj is None else obj
            final["metadata"]["resourceVersion"] = rv
            entry = Entry(final)
            collection.remove(key)
            self._index(rtype, key, None, old)
        else:
            assert obj is not None
            obj["metadata"]["resourceVersion"] = rv
            entry = Entry(obj)
            collection.put(key, entry)
            self._index(rtype, key, obj, old)
        change = Change(self._rv, change_type, rtype, entry, old)
        self.history.append(change)
        for hook in self._change_hooks:
            hook(change)
        for listener in self._listeners:
            listener(change_type, rtype, entry.obj)
        return entry

    def _index(self, rtype: ResourceType, key: str, new: dict | None, old: dict | None) -> None:
        ref = (rtype.key, key)
        old_owners = {o.get("uid") for o in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        new_owners = {o.get("uid") for o in (new or {}).get("metadata", {}).get("ownerReferences") or []}
        for uid in old_owners - new_owners:
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(ref)
                if not dependents:
                    del self._dependents[uid]
        for uid in new_owners - old_owners:
            self._dependents.setdefault(uid, set()).add(ref)
        if new is None:
            self._uids.pop(old["metadata"]["uid"], None) if old else None
        else:
            self._uids[new["metadata"]["uid"]] = ref

    # ---- reads ---------------------------------------------------------------------------------------------------
    def _entry(self, rtype: ResourceType, name: str, namespace: str | None) -> tuple[str, Entry]:
        key = object_key(namespace if rtype.namespaced else None, name)
        entry = self._collections[rtype.key].entries.get(key)
        if entry is None:
            raise not_found(rtype.plural, rtype.group, name)
        return key, entry

    def view(self, rtype: ResourceType, entry: Entry) -> bytes:
        """The object's bytes as served through rtype (cached when that is the storage version)."""
        if rtype.api_version == rtype.storage_api_version:
            return entry.raw
        return dumps(self.as_version(rtype, entry.obj))

    def list_item_view(self, rtype: ResourceType, entry: Entry) -> bytes:
        """The object as a LIST item: built-in kinds' items carry no apiVersion and kind (their list types hold
        the items as plain structs), custom resources' do."""
        raw = self.view(rtype, entry)
        if rtype.custom:
            return raw
        type_meta = dumps({"apiVersion": rtype.api_version, "kind": rtype.kind})[:-1] + b","
        if raw.startswith(type_meta):      # stored objects keep apiVersion and kind first
            return b"{" + raw[len(type_meta):]
        obj = self.as_version(rtype, entry.obj)
        return dumps({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})

    @staticmethod
    def as_version(rtype: ResourceType, obj: dict) -> dict:
        return convert(obj, rtype.api_version)

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict:
        rtype = self.resource(api_version, plural)
        return clone(self.as_version(rtype, self._entry(rtype, name, namespace)[1].obj))

    def get_entry(self, rtype: ResourceType, name: str, namespace: str | None) -> Entry:
        return self._entry(rtype, name, namespace)[1]

    def select(self, rtype: ResourceType, namespace: str | None = None, label_selector: str | None = None,
               field_selector: str | None = None, limit: int = 0, continue_token: str | None = None,
               exact_rv: int | None = None) -> tuple[list[Entry], str, int | None, int]:
        """Entries in key order, one page: (entries, continue token or "", remainingItemCount or None, the
        list's resourceVersion). A continue token's pages show the collection as it was at the first page's
        resourceVersion, as ``exact_rv`` (resourceVersionMatch=Exact) shows it at that one."""
        label_ok = label_matcher(label_selector)
        field_ok = field_matcher(field_selector, rtype.kind, rtype.custom)
        start, list_rv = "", exact_rv
        if continue_token:
            start, list_rv = self._decode_continue(continue_token)
            if list_rv < self._compacted_rv:
                raise expired(_CONTINUE_EXPIRED)
        elif exact_rv is not None and exact_rv < self._compacted_rv:
            raise too_old_resource_version(exact_rv, self._compacted_rv)
        collection = self._collections[rtype.key] if list_rv is None else self._as_of(rtype, list_rv)
        list_rv = self._rv if list_rv is None else list_rv
        keys, first, end = collection.key_range(namespace if rtype.namespaced else None, start)
        entries: list[Entry] = []
        for index in range(first, end):
            entry = collection.entries[keys[index]]
            if (label_ok and not label_ok(entry.obj)) or (field_ok and not field_ok(entry.obj)):
                continue
            if limit and len(entries) == limit:
                # remainingItemCount only when it is exact, i.e. without selectors (as the real server).
                remaining = end - index if not label_ok and not field_ok else None
                return entries, self._encode_continue(keys[index - 1], list_rv), remaining, list_rv
            entries.append(entry)
        return entries, "", None, list_rv

    def _as_of(self, rtype: ResourceType, rv: int) -> Collection:
        """The collection as it was at ``rv``: today's, with the changes after ``rv`` undone from the history (as
        far as it reaches back; a history cut short by its length serves what it still can)."""
        current = self._collections[rtype.key]
        later = []
        for change in reversed(self.history):
            if change.rv <= rv:
                break
            if change.rtype.key == rtype.key:
                later.append(change)
        if not later:
            return current
        past = Collection()
        past.entries = dict(current.entries)
        for change in later:                      # newest first
            meta = change.entry.obj["metadata"]
            key = object_key(meta.get("namespace") if rtype.namespaced else None, meta["name"])
            if change.old is None:
                past.entries.pop(key, None)
            else:
                past.entries[key] = Entry(change.old)
        return past

    def _encode_continue(self, last_key: str, rv: int) -> str:
        token = {"v": "meta.k8s.io/v1", "rv": rv, "start": last_key + "\x00"}
        return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
            return str(data["start"]), int(data["rv"])
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise bad_request(f"invalid continue token: continue key is not valid: {error}") from None

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        rtype = self.resource(api_version, plural)
        entries, _, _, _ = self.select(rtype, namespace, label_selector, field_selector)
        return [clone(self.as_version(rtype, e.obj)) for e in entries]

    # ---- create ----------------------------------------------------------------------------------------------
    def create(self, api_version: str, plural: str, obj: dict, *, namespace: str | None = None,
               options: WriteOptions | None = None) -> dict:
        """POST. The namespace comes from the URL (namespace=) or else from obj.metadata.namespace."""
        rtype = self.resource(api_version, plural)
        options = options or WriteOptions()
        obj = self._typed_copy(rtype, obj)
        meta = obj["metadata"]
        if rtype.namespaced:
            body_namespace = meta.get("namespace")
            if namespace and body_namespace and body_namespace != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            namespace = namespace or body_namespace or "default"
            meta["namespace"] = namespace
            self._require_namespace(namespace, rtype, creating=True)
        else:
            meta.pop("namespace", None)
            namespace = None
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
        admission.check_invalid(rtype, admission.name_causes(rtype, obj) + admission.label_causes(obj)
                                + admission.template_label_causes(rtype, obj), meta.get("name", ""))
        if rtype.kind == "CustomResourceDefinition":
            admission.check_invalid(rtype, admission.crd_causes(obj) or admission.crd_schema_causes(obj),
                                    meta["name"])
        if rtype.kind == "Pod":
            admission.check_invalid(rtype, admission.pod_causes(obj), meta["name"])
        if rtype.kind == "Event" and not rtype.group:
            admission.check_invalid(rtype, admission.event_causes(obj), meta["name"])
        key = object_key(namespace, meta["name"])
        if key in self._collections[rtype.key].entries:
            raise already_exists(rtype.plural, rtype.group, meta["name"])
        if rtype.custom:
            obj = admission.admit_custom(rtype, obj, None, options.field_validation, options.warnings)
            meta = obj["metadata"]
        now = admission.now_rfc3339()
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        admission.prepare_for_create(rtype, obj, now)
        obj = self.as_version(self.storage_type(rtype), obj)
        if options.dry_run:
            return self.as_version(rtype, obj)
        entry = self._commit("ADDED", self.storage_type(rtype), key, obj, None)
        if rtype.kind == "CustomResourceDefinition":
            self._sync_crd_types(entry.obj)
        return clone(self.as_version(rtype, entry.obj))

    def _typed_copy(self, rtype: ResourceType, obj: Any) -> dict:
        if not isinstance(obj, dict):
            raise bad_request(f"Object '{rtype.kind}' is invalid: expected a JSON object")
        obj = clone(obj)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != rtype.api_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                              f"version ({rtype.api_version})")
        if kind and kind != rtype.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        for omitted_when_empty in ("labels", "annotations", "finalizers", "ownerReferences"):
            if obj["metadata"].get(omitted_when_empty) in ({}, []):  # omitempty in ObjectMeta: never stored empty
                del obj["metadata"][omitted_when_empty]
        # Keep apiVersion/kind/metadata first, as the real encoder does.
        return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), "metadata": obj.pop("metadata"), **obj}

    def _require_namespace(self, namespace: str, rtype: ResourceType, creating: bool = False) -> None:
        entry = self._collections[("", "namespaces")].entries.get(namespace)
        if entry is None:
            raise not_found("namespaces", "", namespace)
        if creating and entry.obj["metadata"].get("deletionTimestamp"):
            raise forbidden(rtype.plural, rtype.group, "",
                            f"unable to create new content in namespace {namespace} because it is being terminated")

    # ---- update / patch ----------------------------------------------------------------------------------------
    def update(self, api_version: str, plural: str, obj: dict, subresource: str | None = None, *,
               name: str | None = None, namespace: str | None = None, options: WriteOptions | None = None) -> dict:
        """PUT; name/namespace are the URL's (default: the object's)."""
        rtype = self.resource(api_version, plural)
        if subresource == "scale":
            scale_name = name or (obj.get("metadata") or {}).get("name", "")
            return self._write_scale(rtype, scale_name, namespace, lambda current: clone(obj),
                                     options or WriteOptions())
        obj = self._typed_copy(rtype, obj)
        meta = obj["metadata"]
        name = name or meta.get("name", "")
        namespace = (namespace or meta.get("namespace") or "default") if rtype.namespaced else None
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        if rtype.custom and not meta.get("resourceVersion"):
            raise invalid(rtype.kind, rtype.group, name, [admission.field_invalid(
                "metadata.resourceVersion", "0x0", "must be specified for an update")])
        return self._write(rtype, name, namespace, lambda current: obj, subresource, options or WriteOptions())

    def patch(self, api_version: str, plural: str, name: str, patch: Any, patch_type: str = "merge",
              namespace: str | None = None, subresource: str | None = None, *,
              options: WriteOptions | None = None) -> dict:
        """PATCH with patch_type "merge" | "json" | "strategic" | "apply" (server-side apply subset)."""
        rtype = self.resource(api_version, plural)
        options = options or WriteOptions()
        if patch_type not in _PATCH_TYPES:
            raise bad_request(f"unknown patch type {patch_type}")
        if patch_type == "strategic" and rtype.custom:
            raise unsupported_media_type("application/strategic-merge-patch+json", _CUSTOM_PATCH_MEDIA)
        if patch_type in ("merge", "strategic", "apply") and not isinstance(patch, dict):
            raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        if patch_type == "apply":
            if not options.field_manager:
                raise invalid("PatchOptions", "meta.k8s.io", "", [admission.field_required(
                    "fieldManager", "is required for apply patch")])
            scope = namespace if rtype.namespaced else None
            if object_key(scope, name) not in self._collections[rtype.key].entries and subresource is None:
                body = {**patch, "metadata": {**(patch.get("metadata") or {}), "name": name}}
                return self.create(api_version, plural, body, namespace=scope, options=options)

        def apply(current: dict) -> Any:
            if patch_type == "json":
                return json_patch(current, patch)
            if patch_type == "merge" or (patch_type == "apply" and rtype.custom):
                return merge_patch(current, patch)
            return strategic_merge_patch(current, patch)

        if subresource == "scale":
            return self._write_scale(rtype, name, namespace, apply, options)

        def patched(current: dict) -> dict:
            result = apply(current)
            if not isinstance(result, dict):
                raise bad_request("patched object is not a JSON object")
            result = self._typed_copy(rtype, result)
            if not result["metadata"].get("resourceVersion"):
                result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return result
        return self._write(rtype, name, namespace, patched, subresource, options)

    def get_scale(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict:
        rtype = self.resource(api_version, plural)
        if "scale" not in rtype.subresources:
            raise not_found(rtype.plural, rtype.group, name)
        return scale_of(self._entry(rtype, name, namespace)[1].obj)

    def _write_scale(self, rtype: ResourceType, name: str, namespace: str | None, build: Callable[[dict], Any],
                     options: WriteOptions) -> dict:
        """PUT/PATCH of /scale: the change is made to the Scale, then carried to the object's spec.replicas."""
        submitted = build(self.get_scale(rtype.api_version, rtype.plural, name, namespace))
        replicas = replicas_of(rtype, submitted, name)
        wanted_rv = (submitted.get("metadata") or {}).get("resourceVersion")

        def scaled(current: dict) -> dict:
            current.setdefault("spec", {})["replicas"] = replicas
            if wanted_rv:
                current["metadata"]["resourceVersion"] = wanted_rv
            return current
        return scale_of(self._write(rtype, name, namespace, scaled, None, options))

    def _write(self, rtype: ResourceType, name: str, namespace: str | None, build: Callable[[dict], dict],
               subresource: str | None, options: WriteOptions) -> dict:
        if subresource is not None and subresource not in rtype.subresources:
            raise not_found(rtype.plural, rtype.group, name)
        if rtype.namespaced:
            self._require_namespace(namespace or "default", rtype)
        key, entry = self._entry(rtype, name, namespace)
        old = self.as_version(rtype, entry.obj)
        new = build(clone(old))
        meta = new["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise stale_conflict(rtype.plural, rtype.group, name)
        new = admission.apply_status_rules(rtype, new, old, subresource)
        meta = new["metadata"]
        old_meta = old["metadata"]
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
            if immutable in old_meta:
                meta[immutable] = old_meta[immutable]
            else:
                meta.pop(immutable, None)
        meta.pop("managedFields", None)
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                raise invalid(rtype.kind, rtype.group, name, [admission.field_forbidden(
                    "metadata.finalizers", "no new finalizers can be added if the object is being deleted, found "
                    f"new finalizers []string{{{', '.join(json.dumps(f) for f in added)}}}")])
        crd_causes = admission.name_causes(rtype, new) + (admission.crd_causes(new) or admission.crd_schema_causes(
            new)) if rtype.kind == "CustomResourceDefinition" else []
        admission.check_invalid(rtype, crd_causes + admission.label_causes(new)
                                + admission.template_label_causes(rtype, new), name)
        if rtype.custom:
            new = admission.admit_custom(rtype, new, old, options.field_validation, options.warnings)
            meta = new["metadata"]
        if rtype.tracks_generation and admission.spec_changed(rtype, new, old):
            meta["generation"] = old_meta.get("generation", 0) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return clone(old)          # a no-op write changes nothing, not even the resourceVersion
        if rtype.kind == "CustomResourceDefinition":
            new["status"] = admission.crd_status(new, admission.now_rfc3339()) if subresource is None \
                else new.get("status", {})
        stored = self.as_version(self.storage_type(rtype), new)
        if options.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            final = self._remove(self.storage_type(rtype), key, stored)
            return clone(self.as_version(rtype, final.obj))
        committed = self._commit("MODIFIED", self.storage_type(rtype), key, stored, entry.obj)
        if rtype.kind == "CustomResourceDefinition":
            self._sync_crd_types(committed.obj)
        self._after_finalizer_change(committed.obj)
        return clone(self.as_version(rtype, committed.obj))

    # ---- delete ------------------------------------------------------------------------------------------------
    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None,
               propagation_policy: str = "Background", *, preconditions: dict | None = None,
               options: WriteOptions | None = None) -> dict:
        """DELETE. Returns the object (its deleting or final state)."""
        rtype = self.resource(api_version, plural)
        if propagation_policy not in ("Background", "Foreground", "Orphan"):
            raise invalid("DeleteOptions", "", "", [{
                "reason": "FieldValueNotSupported", "field": "propagationPolicy",
                "message": f'Unsupported value: "{propagation_policy}": supported values: "Foreground", '
                           f'"Background", "Orphan", "nil"'}])
        key, entry = self._entry(rtype, name, namespace)
        meta = entry.obj["metadata"]
        for field_name in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field_name)
            if wanted and wanted != meta[field_name]:
                raise stale_conflict(rtype.plural, rtype.group, name) if field_name == "resourceVersion" else \
                    ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.plural} "{name}": '
                             f'Precondition failed: UID in precondition: {wanted}, UID in object meta: '
                             f'{meta["uid"]}', {"name": name, "kind": rtype.plural})
        if (options or WriteOptions()).dry_run:
            return clone(self.as_version(rtype, entry.obj))
        storage = self.storage_type(rtype)
        result = self._delete(storage, key, propagation_policy)
        return clone(self.as_version(rtype, result))

    def delete_collection(self, api_version: str, plural: str, namespace: str | None = None,
                          label_selector: str | None = None, field_selector: str | None = None,
                          propagation_policy: str = "Background") -> list[dict]:
        rtype = self.resource(api_version, plural)
        entries, _, _, _ = self.select(rtype, namespace, label_selector, field_selector)
        removed = []
        for entry in entries:
            meta = entry.obj["metadata"]
            if self._collections[rtype.key].entries.get(object_key(meta.get("namespace"), meta["name"])) is entry:
                removed.append(self.delete(api_version, plural, meta["name"], meta.get("namespace"),
                                           propagation_policy))
        return removed

    def iter_entries(self, rtype: ResourceType, namespace: str | None = None) -> Iterable[Entry]:
        collection = self._collections[rtype.key]
        return [collection.entries[k] for k in collection.keys_from(namespace if rtype.namespaced else None)]
