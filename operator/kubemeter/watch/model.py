"""ClusterModel: the operator's in-memory view of pods, nodes, namespaces and pod owners.

Fed only by watch events (and by the periodic re-list that repairs missed deletions); nothing here
talks to the API server. Kept compact because it holds every pod of the cluster: terminated pods are
dropped at once (they use nothing), and raw objects are never retained.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache

from kubemeter.compute.owners import controller_of, resolve_workload
from kubemeter.compute.quantity import parse_bytes, parse_cpu
from kubemeter.policy import PolicySpec
from kubemeter.types import ContainerSpec, NodeInfo, PodInfo, Selection

log = logging.getLogger(__name__)

TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})
# The resources the operator watches, as the model names them.
PODS, NODES, NAMESPACES, REPLICASETS, JOBS = "pods", "nodes", "namespaces", "replicasets", "jobs"

_cpu = lru_cache(maxsize=4096)(parse_cpu)
_bytes = lru_cache(maxsize=4096)(parse_bytes)


def _object_key(obj: Mapping) -> tuple[str, str]:
    """(namespace, name); the namespace is "" for cluster-scoped objects."""
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _quantity(resources: Mapping, section: str, name: str, parse) -> float | None:
    value = (resources.get(section) or {}).get(name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        log.warning("ignoring resource %s.%s=%r: %s", section, name, value, exc)
        return None


def _resource_holding_containers(pod_spec: Mapping) -> Iterator[Mapping]:
    """Regular containers plus native sidecars (init containers with restartPolicy Always, which keep running)."""
    yield from pod_spec.get("containers") or ()
    for container in pod_spec.get("initContainers") or ():
        if container.get("restartPolicy") == "Always":
            yield container


def container_specs(pod_spec: Mapping) -> tuple[ContainerSpec, ...]:
    specs = []
    for container in _resource_holding_containers(pod_spec):
        resources = container.get("resources") or {}
        specs.append(
            ContainerSpec(
                name=container.get("name", ""),
                cpu_request=_quantity(resources, "requests", "cpu", _cpu),
                cpu_limit=_quantity(resources, "limits", "cpu", _cpu),
                memory_request=_quantity(resources, "requests", "memory", _bytes),
                memory_limit=_quantity(resources, "limits", "memory", _bytes),
            )
        )
    return tuple(specs)


def node_endpoint(status: Mapping) -> tuple[str | None, int | None]:
    """The kubelet's address (InternalIP preferred, as metrics-server does) and port."""
    by_type: dict[str, str] = {}
    for address in status.get("addresses") or ():
        by_type.setdefault(address.get("type", ""), address.get("address"))
    address = by_type.get("InternalIP") or by_type.get("Hostname") or by_type.get("ExternalIP")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return address, port if isinstance(port, int) and port > 0 else None


class ClusterModel:
    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._pods_by_node: dict[str, dict[tuple[str, str], PodInfo]] = {}
        self.nodes: dict[str, NodeInfo] = {}
        self.namespaces: dict[str, Mapping[str, str]] = {}
        # ReplicaSet and Job ownerReferences, to resolve pods to their top-level workload.
        self._owners: dict[str, dict[tuple[str, str], list]] = {REPLICASETS: {}, JOBS: {}}
        self._owners_version = 0
        self._resolved_at: dict[tuple[str, str], int] = {}
        # Keys changed by watch events while a re-list of that resource is in flight (see replace()).
        self._touched: dict[str, set[tuple[str, str]]] = {}
        # Keys of every event (listed or watched) since kopf began listing a resource (see end_audit()).
        self._seen: dict[str, set[tuple[str, str]]] = {}
        # The resourceVersion last applied per object, so listings of unchanged objects cost one lookup.
        self._versions: dict[str, dict[tuple[str, str], str | None]] = {
            resource: {} for resource in (PODS, NODES, NAMESPACES, REPLICASETS, JOBS)
        }

    # ---- ingest -------------------------------------------------------------------------------
    def apply(self, resource: str, event_type: str | None, obj: Mapping) -> None:
        """One watch event (``event_type`` None is kopf's initial listing)."""
        key = _object_key(obj)
        touched = self._touched.get(resource)
        if touched is not None:
            touched.add(key)
        seen = self._seen.get(resource)
        if seen is not None:
            seen.add(key)
        self._apply(resource, event_type == "DELETED", obj, key)

    def _apply(self, resource: str, deleted: bool, obj: Mapping, key: tuple[str, str]) -> None:
        versions = self._versions.get(resource)
        if versions is None:
            raise ValueError(f"the model does not track {resource!r}")
        if deleted:
            versions.pop(key, None)
        else:
            version = obj["metadata"].get("resourceVersion")
            if version is not None and versions.get(key) == version:
                return  # the same object again: kopf's listing after the seed, or a re-list
            versions[key] = version
        if resource == PODS:
            self._apply_pod(obj, deleted, key)
        elif resource == NODES:
            self._apply_node(obj, deleted)
        elif resource == NAMESPACES:
            name = obj["metadata"]["name"]
            if deleted:
                self.namespaces.pop(name, None)
            else:
                self.namespaces[name] = obj["metadata"].get("labels") or {}
        else:
            owners = self._owners[resource]
            refs = list(obj["metadata"].get("ownerReferences") or ())
            if deleted:
                owners.pop(key, None)
            elif owners.get(key) != refs:
                owners[key] = refs
            else:
                return
            self._owners_version += 1

    def _apply_pod(self, obj: Mapping, deleted: bool, key: tuple[str, str]) -> None:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        old = self._pods.pop(key, None)
        if old is not None and old.node is not None:
            on_node = self._pods_by_node.get(old.node)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._pods_by_node[old.node]
        phase = status.get("phase", "Pending")
        if deleted or phase in TERMINATED_PHASES:
            self._resolved_at.pop(key, None)
            return
        pod = PodInfo(
            uid=meta.get("uid", ""),
            namespace=key[0],
            name=key[1],
            node=spec.get("nodeName"),
            phase=phase,
            labels=meta.get("labels") or {},
            owner=controller_of(meta.get("ownerReferences") or ()),
            containers=container_specs(spec),
        )
        if old is not None and old.uid == pod.uid and old.owner == pod.owner:
            pod.workload = old.workload
        else:
            self._resolved_at.pop(key, None)
        self._pods[key] = pod
        if pod.node:
            self._pods_by_node.setdefault(pod.node, {})[key] = pod

    def _apply_node(self, obj: Mapping, deleted: bool) -> None:
        meta = obj["metadata"]
        if deleted:
            self.nodes.pop(meta["name"], None)
            return
        address, port = node_endpoint(obj.get("status") or {})
        self.nodes[meta["name"]] = NodeInfo(
            name=meta["name"],
            uid=meta.get("uid", ""),
            labels=meta.get("labels") or {},
            address=address,
            kubelet_port=port,
        )

    def begin_relist(self, resource: str) -> None:
        """Call before sending a full LIST whose pages go to :meth:`apply_listed`."""
        self._touched[resource] = set()

    def replace_abandoned(self, resource: str) -> None:
        """The LIST begun with :meth:`begin_relist` failed: stop tracking changes for it."""
        self._touched.pop(resource, None)

    def apply_listed(self, resource: str, objects: Iterable[Mapping], listed: set[tuple[str, str]]) -> None:
        """One page of a LIST begun with :meth:`begin_relist`: applied at once (pages are not kept), their
        keys added to ``listed`` for :meth:`finish_relist`. Keys a watch event changed since the LIST was
        sent are left alone: the event is newer than the listing."""
        touched = self._touched.get(resource, set())
        for obj in objects:
            key = _object_key(obj)
            listed.add(key)
            if key not in touched:
                self._apply(resource, False, obj, key)

    def finish_relist(self, resource: str, listed: set[tuple[str, str]]) -> int:
        """Drop what the full listing did not contain (and no watch event re-created); returns how many.

        Repairs what a watch gap hides: objects deleted while the watch was expired never produce a
        DELETED event, so a re-list is the only way to learn of them.
        """
        touched = self._touched.pop(resource, set())
        stale = [k for k in self._keys(resource) if k not in listed and k not in touched]
        for key in stale:
            self._apply(resource, True, {"metadata": {"namespace": key[0], "name": key[1]}}, key)
        return len(stale)

    def begin_audit(self, resource: str) -> None:
        """kopf began listing ``resource``: from now on, remember the key of every event of it."""
        self._seen.setdefault(resource, set())

    def end_audit(self, resource: str) -> int:
        """How many objects of ``resource`` the model holds that no event since :meth:`begin_audit` named.

        After a complete listing by kopf that is the number of objects it no longer knows of: deleted
        during a watch gap, or between the seed LIST and kopf's listing. Zero means the model matches.
        """
        seen = self._seen.pop(resource, set())
        return sum(1 for key in self._keys(resource) if key not in seen)

    def _keys(self, resource: str) -> list[tuple[str, str]]:
        if resource == PODS:
            return list(self._pods)
        if resource == NODES:
            return [("", n) for n in self.nodes]
        if resource == NAMESPACES:
            return [("", n) for n in self.namespaces]
        return list(self._owners[resource])

    # ---- queries ------------------------------------------------------------------------------
    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def _resolve(self, pod: PodInfo) -> bool:
        key = (pod.namespace, pod.name)
        if pod.workload is not None and self._resolved_at.get(key) == self._owners_version:
            return True
        if pod.workload is not None and (pod.owner is None or pod.owner.get("kind") not in ("ReplicaSet", "Job")):
            return True
        rs, jobs = self._owners[REPLICASETS], self._owners[JOBS]
        workload = resolve_workload(pod, lambda ns, name: rs.get((ns, name)), lambda ns, name: jobs.get((ns, name)))
        pod.workload = workload
        self._resolved_at[key] = self._owners_version
        return workload is not None

    def select(self, spec: PolicySpec) -> Selection:
        nodes = [n for n in self.nodes.values() if spec.node_selector.matches(n.labels)]
        selection = Selection(nodes=nodes)
        namespace_ok: dict[str, bool] = {}
        pod_selector = None if spec.pod_selector.empty else spec.pod_selector
        for node in nodes:
            chosen: dict[tuple[str, str], PodInfo] = {}
            for key, pod in self._pods_by_node.get(node.name, {}).items():
                ok = namespace_ok.get(pod.namespace)
                if ok is None:
                    labels = self.namespaces.get(pod.namespace, {})
                    ok = namespace_ok[pod.namespace] = spec.selects_namespace(pod.namespace, labels)
                if not ok or (pod_selector is not None and not pod_selector.matches(pod.labels)):
                    continue
                if not self._resolve(pod):
                    selection.pods_without_workload.append(pod)
                chosen[key] = pod
            selection.pods_by_node[node.name] = chosen
        return selection
