"""Deletion as the registry, the garbage collector and the namespace controller carry it out: finalizers,
propagation (Background / Foreground / Orphan), namespace termination, and CRD removal with its objects."""
from __future__ import annotations

from typing import Callable

from kubemeter_sim.apiserver import admission
from kubemeter_sim.apiserver.errors import forbidden
from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.apiserver.objects import Collection, Entry
from kubemeter_sim.apiserver.resources import ResourceType, crd_types


_UNDELETABLE_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


class Lifecycle:
    """Store mixin: everything that follows a DELETE or the removal of a last finalizer."""

    _types: dict[tuple[str, str], ResourceType]
    _collections: dict[tuple[str, str], Collection]
    _uids: dict[str, tuple[tuple[str, str], str]]
    _dependents: dict[str, set[tuple[tuple[str, str], str]]]
    _commit: Callable[[str, ResourceType, str, dict | None, dict | None], Entry]
    storage_type: Callable[[ResourceType], ResourceType]
    _register: Callable[[ResourceType], None]

    def _delete(self, rtype: ResourceType, key: str, policy: str) -> dict:
        entry = self._collections[rtype.key].entries[key]
        obj = entry.obj
        uid = obj["metadata"]["uid"]
        if rtype.kind == "Namespace":
            if policy == "Orphan":
                self._orphan_dependents(uid)
            return self._delete_namespace(key, entry)
        finalizers = list(obj["metadata"].get("finalizers") or [])
        # As the real registry: the policy's finalizer goes on whether or not there are dependents; the garbage
        # collector (here: at once) then orphans or deletes them and takes it off.
        policy_finalizer = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if policy_finalizer and policy_finalizer not in finalizers:
            finalizers.append(policy_finalizer)
        if not finalizers:
            return self._remove(rtype, key, None).obj
        if obj["metadata"].get("deletionTimestamp") and finalizers == obj["metadata"].get("finalizers"):
            return obj
        new = clone(obj)
        meta = new["metadata"]
        meta["finalizers"] = finalizers
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = admission.now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            if meta.get("generation"):
                meta["generation"] += 1
        committed = self._commit("MODIFIED", rtype, key, new, obj)
        if "orphan" in finalizers:
            self._orphan_dependents(uid)
            self._drop_finalizer(rtype, key, "orphan")
        if "foregroundDeletion" in finalizers:
            for dependent_type, dependent_key in list(self._dependents.get(uid, ())):
                if dependent_key in self._collections[dependent_type].entries:
                    self._delete(self._storage_for(dependent_type), dependent_key, "Foreground")
            self._after_finalizer_change(self._collections[rtype.key].entries[key].obj
                                         if key in self._collections[rtype.key].entries else committed.obj)
        current = self._collections[rtype.key].entries.get(key)
        return current.obj if current else committed.obj

    def _drop_finalizer(self, rtype: ResourceType, key: str, finalizer: str) -> None:
        """The garbage collector's part done: its finalizer off, and the object gone if it was the last one."""
        current = self._collections[rtype.key].entries[key].obj
        new = clone(current)
        new["metadata"]["finalizers"] = [f for f in current["metadata"]["finalizers"] if f != finalizer]
        if new["metadata"]["finalizers"]:
            self._commit("MODIFIED", rtype, key, new, current)
        else:
            new["metadata"].pop("finalizers")
            self._remove(rtype, key, new)

    def _storage_for(self, collection_key: tuple[str, str]) -> ResourceType:
        rtype = next(t for t in self._types.values() if t.key == collection_key)
        return self.storage_type(rtype)

    def _remove(self, rtype: ResourceType, key: str, final: dict | None) -> Entry:
        """Remove an object for good, then run what follows: GC of dependents, namespace and foreground
        finalization, CRD type removal."""
        old = self._collections[rtype.key].entries[key].obj
        if rtype.kind == "CustomResourceDefinition":
            self._drop_crd_objects(old)
        entry = self._commit("DELETED", rtype, key, final, old)
        uid = old["metadata"]["uid"]
        for dependent_type, dependent_key in list(self._dependents.get(uid, ())):
            self._collect_garbage(dependent_type, dependent_key)
        for owner in old["metadata"].get("ownerReferences") or []:
            owner_ref = self._uids.get(owner.get("uid"))
            if owner_ref is not None:
                owner_entry = self._collections[owner_ref[0]].entries.get(owner_ref[1])
                if owner_entry is not None:
                    self._after_finalizer_change(owner_entry.obj)
        namespace = old["metadata"].get("namespace")
        if namespace:
            self._maybe_finish_namespace(namespace)
        return entry

    def _collect_garbage(self, collection_key: tuple[str, str], key: str) -> None:
        """Like kube-controller-manager's GC: a dependent with a live owner loses only its dangling references."""
        entry = self._collections[collection_key].entries.get(key)
        if entry is None:
            return
        refs = entry.obj["metadata"].get("ownerReferences") or []
        live = [r for r in refs if r.get("uid") in self._uids]
        rtype = self._storage_for(collection_key)
        if live:
            new = clone(entry.obj)
            new["metadata"]["ownerReferences"] = live
            self._commit("MODIFIED", rtype, key, new, entry.obj)
        elif not entry.obj["metadata"].get("deletionTimestamp"):
            self._delete(rtype, key, "Background")

    def _orphan_dependents(self, uid: str) -> None:
        for collection_key, key in list(self._dependents.get(uid, ())):
            entry = self._collections[collection_key].entries[key]
            new = clone(entry.obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit("MODIFIED", self._storage_for(collection_key), key, new, entry.obj)

    def _after_finalizer_change(self, obj: dict) -> None:
        """Foreground deletion completes when the owner has no dependents left."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or "foregroundDeletion" not in (meta.get("finalizers") or []):
            return
        if self._dependents.get(meta["uid"]):
            return
        ref = self._uids.get(meta["uid"])
        if ref is None:
            return
        self._drop_finalizer(self._storage_for(ref[0]), ref[1], "foregroundDeletion")

    def _delete_namespace(self, key: str, entry: Entry) -> dict:
        """Namespace deletion: Terminating, contents deleted, the namespace goes when it is empty."""
        if key in _UNDELETABLE_NAMESPACES:
            raise forbidden("namespaces", "", key, "this namespace may not be deleted")
        rtype = self._storage_for(("", "namespaces"))
        if not entry.obj["metadata"].get("deletionTimestamp"):
            new = clone(entry.obj)
            new["metadata"]["deletionTimestamp"] = admission.now_rfc3339()  # no grace period for namespaces
            new["status"] = {"phase": "Terminating"}
            entry = self._commit("MODIFIED", rtype, key, new, entry.obj)
            for collection_key, collection in self._collections.items():
                if collection_key == ("", "namespaces"):
                    continue
                for object_name in collection.keys_from(key):
                    if object_name in collection.entries and \
                            not collection.entries[object_name].obj["metadata"].get("deletionTimestamp"):
                        self._delete(self._storage_for(collection_key), object_name, "Background")
        self._maybe_finish_namespace(key)
        current = self._collections[("", "namespaces")].entries.get(key)
        return (current or entry).obj

    def _maybe_finish_namespace(self, namespace: str) -> None:
        entry = self._collections[("", "namespaces")].entries.get(namespace)
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        for collection_key, collection in self._collections.items():
            _, first, end = collection.key_range(namespace)
            if collection_key != ("", "namespaces") and end > first:
                return
        if not entry.obj["metadata"].get("finalizers"):
            self._remove(self._storage_for(("", "namespaces")), namespace, None)

    # ---- CRDs ------------------------------------------------------------------------------------------------
    def _sync_crd_types(self, crd: dict) -> None:
        """(Re)register the served versions of a CRD; discovery changes at once."""
        spec = crd["spec"]
        for api_key in [k for k, t in self._types.items() if t.custom and t.key == (spec["group"],
                                                                                   spec["names"]["plural"])]:
            del self._types[api_key]
        for rtype in crd_types(crd):
            self._register(rtype)

    def _drop_crd_objects(self, crd: dict) -> None:
        spec = crd["spec"]
        collection_key = (spec["group"], spec["names"]["plural"])
        collection = self._collections.get(collection_key)
        if collection is not None and collection.entries:
            rtype = self._storage_for(collection_key)
            for key in collection.keys_from(None):
                if key in collection.entries:
                    self._remove(rtype, key, None)
        for api_key in [k for k, t in self._types.items() if t.custom and t.key == collection_key]:
            del self._types[api_key]
        self._collections.pop(collection_key, None)
