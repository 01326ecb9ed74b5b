"""Workloads as the real controllers would have made them, and the operations tests perform on them.

:class:`Scenario` plays kube-controller-manager, the scheduler and the kubelets' status writers against
the simulated API server's store: Deployment -> ReplicaSet (``<name>-<pod-template-hash>``) -> Pods,
CronJob -> Job (``<name>-<scheduled minute>``) -> Pods, StatefulSets (``<name>-<ordinal>``), DaemonSets
(one pod per node), bare pods and static (mirror) pods owned by their Node. Pods are created as the
controllers create them (``Pending``) and then set ``Running`` through the ``status`` subresource as the
kubelet does. Names and choices are deterministic given the seed; uids come from the API server.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import random
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.kubelet import PROFILE_ANNOTATION
from kubemeter_sim.kubelet_status import (
    all_restarted, node_status, restarted_container_statuses, rfc3339, running_pod_status, succeeded_pod_status,
)

log = logging.getLogger(__name__)

_RECONCILED = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery/pkg/util/rand's alphabet (no vowels, no confusable digits)."""
_WORKLOAD_API = {"Deployment": ("apps/v1", "deployments"), "ReplicaSet": ("apps/v1", "replicasets"),
                 "StatefulSet": ("apps/v1", "statefulsets"), "DaemonSet": ("apps/v1", "daemonsets"),
                 "Job": ("batch/v1", "jobs"), "CronJob": ("batch/v1", "cronjobs"), "Pod": ("v1", "pods")}
_ZONES = ("sim-zone-a", "sim-zone-b", "sim-zone-c")
_CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A pod-template-hash in the Deployment controller's format: the decimal digits of a 32-bit hash of
    the template, each mapped onto rand's alphabet (``SafeEncodeString``), e.g. ``5f7cfb55d8``."""
    digest = hashlib.blake2b(repr(sorted(template.items())).encode() + str(collision_count).encode(), digest_size=4)
    value = int.from_bytes(digest.digest(), "big")
    return "".join(_NAME_ALPHABET[ord(digit) % len(_NAME_ALPHABET)] for digit in str(value))


def container(name: str, *, cpu: str | None = None, memory: str | None = None, cpu_limit: str | None = None,
              memory_limit: str | None = None, image: str = "registry.example/app:1.0") -> dict[str, Any]:
    """A container spec; ``None`` leaves the request or limit out, as many real manifests do."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    limits = {k: v for k, v in (("cpu", cpu_limit), ("memory", memory_limit)) if v is not None}
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": resources,
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def template(labels: dict[str, str], containers: list[dict[str, Any]], *, profiles: str | None = None,
             init_containers: list[dict[str, Any]] | None = None, host_network: bool = False) -> dict[str, Any]:
    """A pod template; ``profiles`` is the usage profile annotation (see kubelet.PROFILE_ANNOTATION)."""
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                            "securityContext": {}}
    if init_containers:
        spec["initContainers"] = init_containers
    if host_network:
        spec["hostNetwork"] = True
    metadata: dict[str, Any] = {"labels": dict(labels)}
    if profiles:
        metadata["annotations"] = {PROFILE_ANNOTATION: profiles}
    return {"metadata": metadata, "spec": spec}


def owner_reference(obj: dict[str, Any], *, block: bool = True) -> dict[str, Any]:
    reference = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"], "controller": True}
    if block:
        reference["blockOwnerDeletion"] = True
    return reference


@dataclass(frozen=True, slots=True)
class _PodInfo:
    namespace: str
    name: str
    node: str
    owners: tuple[str, ...]
    finished: bool
    """Succeeded or Failed: no longer counts against its node."""


NodeHook = Callable[[str], Awaitable[tuple[str, int]]]
"""Start a kubelet for a node name; returns its (InternalIP, port)."""
NodeRemovalHook = Callable[[str], Awaitable[None]]


@dataclass
class Scenario:
    store: Store
    start_kubelet: NodeHook
    stop_kubelet: NodeRemovalHook
    seed: int = 0
    kubelet_version: str = "1.30.0"
    clock: Callable[[], float] = time.time
    nodes: list[str] = field(default_factory=list)
    _pods: dict[str, _PodInfo] = field(default_factory=dict)
    _pods_by_owner: dict[str, set[str]] = field(default_factory=dict)
    _pods_per_node: Counter[str] = field(default_factory=Counter)
    _node_numbers: dict[str, int] = field(default_factory=dict)
    _pod_ips: dict[str, int] = field(default_factory=dict)
    _node_ips: dict[str, str] = field(default_factory=dict)
    _nodes_created: int = 0
    control_planes: list[str] = field(default_factory=list)
    _tainted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._untainted: set[str] = set()
        self._load: list[tuple[int, int, str]] = []
        """Heap of (running pods, node number, untainted node); stale entries are skipped lazily."""
        self._replicaset_names: dict[str, list[str]] = {}
        """Deployment uid -> its ReplicaSets' names, oldest revision first."""
        self._pending: set[tuple[str, str, str]] = set()
        self._generations: dict[str, int] = {}
        self._creating = False
        """True while the scenario creates a workload itself, fully formed: nothing to reconcile."""
        self.store.add_listener(self._follow_pods)
        self.store.add_listener(self._watch_for_reconcile)

    def _follow_pods(self, event_type: str, rtype: Any, obj: dict[str, Any]) -> None:
        """Index pods by owner and node from the store's events (GC deletions included)."""
        if rtype.kind != "Pod":
            return
        uid = obj["metadata"]["uid"]
        previous = self._pods.pop(uid, None)
        if previous is not None:
            for owner in previous.owners:
                self._pods_by_owner.get(owner, set()).discard(uid)
            if not previous.finished:
                self._count_pod(previous.node, -1)
        if event_type == "DELETED":
            return
        meta = obj["metadata"]
        info = _PodInfo(meta["namespace"], meta["name"], obj["spec"].get("nodeName") or "",
                        tuple(ref["uid"] for ref in meta.get("ownerReferences") or []),
                        (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
        self._pods[uid] = info
        for owner in info.owners:
            self._pods_by_owner.setdefault(owner, set()).add(uid)
        if not info.finished:
            self._count_pod(info.node, +1)

    def _count_pod(self, node: str, change: int) -> None:
        self._pods_per_node[node] += change
        if node in self._untainted:
            heapq.heappush(self._load, (self._pods_per_node[node], self._node_numbers[node], node))

    # -- small helpers --------------------------------------------------------------------------------------
    def _suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choice(_NAME_ALPHABET) for _ in range(length))

    def _get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        api_version, plural = _WORKLOAD_API.get(kind, ("v1", kind.lower() + "s"))
        obj = self.store.get(api_version, plural, name, namespace)
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        return obj

    def _create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, plural = _WORKLOAD_API[kind]
        self.ensure_namespace(obj["metadata"]["namespace"])  # as the real scenario does: a user creates it first
        self._creating = True
        try:
            created = self.store.create(api_version, plural, {"apiVersion": api_version, "kind": kind, **obj})
        finally:
            self._creating = False
        created.setdefault("apiVersion", api_version)
        created.setdefault("kind", kind)
        return created

    def _set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        api_version, plural = _WORKLOAD_API[kind]
        self.store.patch(api_version, plural, name, {"status": status}, "merge", namespace, subresource="status")

    def ensure_namespace(self, name: str) -> None:
        try:
            self.store.get("v1", "namespaces", name)
        except ApiError:
            self.store.create("v1", "namespaces", {"metadata": {"name": name}})

    def pods_of(self, owner: dict[str, Any]) -> list[_PodInfo]:
        """The pods ``owner`` owns, sorted by name."""
        uids = self._pods_by_owner.get(owner["metadata"]["uid"], ())
        return sorted((self._pods[uid] for uid in uids), key=lambda info: info.name)

    # -- controllers for objects created through the API (kubectl, tests) -------------------------------------
    def _watch_for_reconcile(self, event_type: str, rtype: Any, obj: dict[str, Any]) -> None:
        """Queue a reconcile, like the controllers' informers do; the scenario's own operations leave
        nothing to do by the time it runs, so only objects made through the API are acted on."""
        meta = obj["metadata"]
        if rtype.kind == "Pod":
            owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
            if event_type == "DELETED" and owner is not None and owner["kind"] in _RECONCILED:
                self._reconcile_soon(owner["kind"], meta["namespace"], owner["name"])
            elif event_type == "ADDED" and (obj.get("status") or {}).get("phase", "Pending") == "Pending":
                self._reconcile_soon("Pod", meta["namespace"], meta["name"])
        elif rtype.kind in _RECONCILED and rtype.group in ("apps", "batch"):
            # Controllers act on creation and on spec changes (a new generation), not on status writes.
            generation = meta.get("generation", 0)
            if event_type == "DELETED":
                self._generations.pop(meta["uid"], None)
            elif self._generations.get(meta["uid"]) != generation:
                self._generations[meta["uid"]] = generation
                if not self._creating:
                    self._reconcile_soon(rtype.kind, meta["namespace"], meta["name"])

    def _reconcile_soon(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        if key in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a store used without an event loop: nothing runs controllers
            return
        self._pending.add(key)
        loop.call_soon(self._reconcile, key)

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        self._pending.discard(key)
        kind, namespace, name = key
        try:
            obj = self._get(kind, namespace, name)
            if obj["metadata"].get("deletionTimestamp"):
                return
            if kind == "Pod":
                self._bind_and_run(obj)
            elif kind == "Deployment":
                self._reconcile_deployment(obj)
            elif kind == "ReplicaSet":
                self._scale_pods(obj, obj["spec"].get("replicas", 1))
                self._refresh_replicaset_status(obj)
            elif kind == "StatefulSet":
                self._reconcile_statefulset(obj)
            elif kind == "DaemonSet":
                self._reconcile_daemonset(obj)
            elif kind == "Job" and not self.pods_of(obj) and not (obj.get("status") or {}).get("completionTime"):
                self._start_job(obj, started_ago=0.0)
        except ApiError as error:  # deleted or changed meanwhile; the next event reconciles again
            log.debug("reconcile %s %s/%s: %s", kind, namespace, name, error.message)

    def _bind_and_run(self, pod: dict[str, Any]) -> None:
        """The scheduler binds an unscheduled pod, then its kubelet starts it. A pod created with its nodeName
        set skips the scheduler; on a node that does not exist it stays Pending, as no kubelet claims it."""
        if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            return  # started already (the scenario's own pods are running by the time this runs)
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName"):
            if spec["nodeName"] not in self.nodes:
                return
            bound = pod
        else:
            node = self._schedule(spec)
            bound = self.store.patch("v1", "pods", meta["name"], {"spec": {"nodeName": node}}, "merge", meta["namespace"])
        self._mark_running(bound, self.clock())

    def _reconcile_deployment(self, deployment: dict[str, Any]) -> None:
        replicas = deployment["spec"].get("replicas", 1)
        sets = self._replicasets_of(deployment)
        newest = sets[-1] if sets else None
        if newest is None or newest["metadata"]["labels"].get("pod-template-hash") != pod_template_hash(
                deployment["spec"]["template"]):
            self._roll_out(deployment, sets)
        elif newest["spec"].get("replicas") != replicas:
            self._scale_replicaset(deployment, newest, replicas)
        else:
            return
        self._refresh_deployment_status(deployment)

    def _reconcile_statefulset(self, statefulset: dict[str, Any]) -> None:
        replicas = statefulset["spec"].get("replicas", 1)
        existing = {p.name for p in self.pods_of(statefulset)}
        name = statefulset["metadata"]["name"]
        for ordinal in range(replicas):
            if f"{name}-{ordinal}" not in existing:
                self._create_stateful_pod(statefulset, ordinal)
        for pod_name in existing:
            if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                self.store.delete("v1", "pods", pod_name, statefulset["metadata"]["namespace"])
        self._refresh_simple_status(statefulset)

    def _reconcile_daemonset(self, daemonset: dict[str, Any]) -> None:
        covered = {p.node for p in self.pods_of(daemonset)}
        for node in self.nodes:
            if node not in covered:
                self._create_daemon_pod(daemonset, node)
        self._refresh_daemonset_status(daemonset)

    # -- nodes ----------------------------------------------------------------------------------------------
    def running_pod_count(self) -> int:
        return sum(self._pods_per_node.values())

    @property
    def running_pods_per_node(self) -> Counter[str]:
        """Pods bound to each node that have not finished (what the scheduler balances)."""
        return self._pods_per_node

    async def add_node(self, name: str | None = None, *, control_plane: bool = False, taint: bool = True) -> str:
        """Register a node with a running kubelet; every DaemonSet gets a pod on it.

        A control-plane node is tainted NoSchedule (kubeadm's default) unless ``taint`` is false, as on
        single-node clusters.
        """
        number = self._nodes_created
        self._nodes_created += 1
        name = name or ("sim-control-plane" if control_plane else f"sim-worker-{number}")
        ip, port = await self.start_kubelet(name)
        labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "topology.kubernetes.io/zone": _ZONES[number % len(_ZONES)]}
        spec: dict[str, Any] = {"podCIDR": f"10.{244 + number // 256}.{number % 256}.0/24"}
        spec["podCIDRs"] = [spec["podCIDR"]]
        if control_plane:
            labels[_CONTROL_PLANE_LABEL] = ""
            self.control_planes.append(name)
        if control_plane and taint:
            spec["taints"] = [{"key": _CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
            self._tainted.add(name)
        self.store.create("v1", "nodes", {"metadata": {"name": name, "labels": labels, "annotations": {
            "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": spec})
        self.store.patch("v1", "nodes", name, {"status": node_status(name, ip, port, self.kubelet_version, self.clock())}, "merge",
                         subresource="status")
        self.nodes.append(name)
        if name not in self._tainted:
            self._untainted.add(name)
            heapq.heappush(self._load, (self._pods_per_node[name], number, name))
        self._node_numbers[name] = number
        self._node_ips[name] = ip
        self._pod_ips[name] = 1
        for daemonset in self.store.list("apps/v1", "daemonsets"):
            daemonset.update(apiVersion="apps/v1", kind="DaemonSet")
            self._create_daemon_pod(daemonset, name)
            self._refresh_daemonset_status(daemonset)
        return name

    async def remove_node(self, name: str) -> None:
        """Delete a node: its pods go (controllers replace theirs elsewhere) and its kubelet stops."""
        self.nodes.remove(name)
        self._tainted.discard(name)
        self._untainted.discard(name)
        if name in self.control_planes:
            self.control_planes.remove(name)
        for pod in self.store.list("v1", "pods", field_selector=f"spec.nodeName={name}"):
            self._delete_and_replace(pod)
        self.store.delete("v1", "nodes", name)
        await self.stop_kubelet(name)
        for table in (self._node_numbers, self._pod_ips, self._node_ips):
            table.pop(name, None)

    def _schedule(self, pod_spec: dict[str, Any]) -> str:
        """Least-loaded node that the pod tolerates; ties go to the earliest node."""
        tolerates = any(t.get("key") == _CONTROL_PLANE_LABEL or (t.get("operator") == "Exists" and not t.get("key"))
                        for t in pod_spec.get("tolerations") or [])
        if tolerates and self._tainted:
            return min(self.nodes, key=self._pods_per_node.__getitem__)
        while self._load:
            count, _, node = self._load[0]
            if node in self._untainted and self._pods_per_node[node] == count:
                return node
            heapq.heappop(self._load)
        raise RuntimeError("no schedulable node")

    # -- pods -----------------------------------------------------------------------------------------------
    def _create_pod(self, namespace: str, pod_template: dict[str, Any], *, name: str | None = None,
                    generate_name: str | None = None, owner: dict[str, Any] | None = None,
                    labels: dict[str, str] | None = None, node: str | None = None,
                    started_ago: float = 0.0, hostname: str | None = None) -> dict[str, Any]:
        """Create a pod like its controller does, bind it, then report it Running like its kubelet does."""
        pod_template = clone(pod_template)
        metadata = pod_template["metadata"]
        if name:
            metadata["name"] = name
        else:
            metadata["name"] = f"{generate_name}{self._suffix()}"
            metadata["generateName"] = generate_name
        metadata["namespace"] = namespace
        metadata["labels"] = {**metadata.get("labels", {}), **(labels or {})}
        if owner is not None:
            metadata["ownerReferences"] = [owner_reference(owner)]
        spec = pod_template["spec"]
        spec.setdefault("tolerations", clone(_DEFAULT_TOLERATIONS))
        if hostname:
            spec["hostname"], spec["subdomain"] = hostname, hostname.rsplit("-", 1)[0]
        if not spec.get("hostNetwork"):
            spec["serviceAccountName"] = spec["serviceAccount"] = "default"
            spec["volumes"] = [*spec.get("volumes", []), {"name": f"kube-api-access-{self._suffix()}", "projected": {
                "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}],
                "defaultMode": 420}}]
        spec["nodeName"] = node or self._schedule(spec)
        created = self.store.create("v1", "pods", pod_template)
        self._mark_running(created, self.clock() - started_ago)
        return created

    def _pod_ip(self, node: str, host_network: bool) -> str:
        if host_network:
            return self._node_ips[node]
        number, index = self._node_numbers[node], self._pod_ips[node]
        self._pod_ips[node] = index + 1
        return f"10.{244 + number // 256}.{number % 256}.{index % 254 + 1}"

    def _mark_running(self, pod: dict[str, Any], started_at: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = spec["nodeName"]
        status = running_pod_status(pod, self._node_ips[node], self._pod_ip(node, bool(spec.get("hostNetwork"))),
                                    started_at)
        self.store.patch("v1", "pods", meta["name"], {"status": status}, "merge", meta["namespace"],
                         subresource="status")

    def report_restart(self, namespace: str, name: str, container_name: str, restart_count: int, started_at: float,
                       reason: str = "OOMKilled") -> None:
        """What the kubelet writes after restarting a container (OOM kill or crash)."""
        self._report_restarts(self.store.get("v1", "pods", name, namespace), {container_name: restart_count},
                              started_at, reason)

    async def restart_pod(self, namespace: str, name: str) -> None:
        """Every container of the pod restarts now: restartCount + 1, counters start again from 0."""
        pod = self.store.get("v1", "pods", name, namespace)
        self._report_restarts(pod, all_restarted(pod), self.clock(), "Error")

    def _report_restarts(self, pod: dict[str, Any], restarts: dict[str, int], started_at: float, reason: str) -> None:
        statuses = restarted_container_statuses(pod, restarts, started_at, reason)
        meta = pod["metadata"]
        self.store.patch("v1", "pods", meta["name"], {"status": {"containerStatuses": statuses}}, "merge",
                         meta["namespace"], subresource="status")

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; a ReplicaSet, StatefulSet or DaemonSet controller replaces it, as in a real cluster."""
        self._delete_and_replace(self.store.get("v1", "pods", name, namespace))

    def _delete_and_replace(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.store.delete("v1", "pods", meta["name"], meta["namespace"])
        node = pod["spec"].get("nodeName")
        owner = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
        if owner is None or owner["kind"] not in ("ReplicaSet", "StatefulSet", "DaemonSet"):
            return
        try:
            parent = self._get(owner["kind"], meta["namespace"], owner["name"])
        except Exception:  # noqa: BLE001 - the owner is being deleted too: nothing to replace
            return
        if owner["kind"] == "ReplicaSet":
            self._create_pod(meta["namespace"], parent["spec"]["template"], generate_name=f"{owner['name']}-",
                             owner=parent)
        elif owner["kind"] == "StatefulSet":
            self._create_stateful_pod(parent, int(meta["name"].rsplit("-", 1)[1]))
        elif node in self.nodes:
            self._create_daemon_pod(parent, node)

    # -- Deployments and ReplicaSets -------------------------------------------------------------------------
    def create_deployment(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        deployment = self._create("Deployment", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector,
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod_template,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}})
        self._new_replicaset(deployment, replicas, revision=1, started_ago=started_ago)
        self._refresh_deployment_status(deployment)
        return deployment

    def _new_replicaset(self, deployment: dict[str, Any], replicas: int, *, revision: int,
                        started_ago: float = 0.0) -> dict[str, Any]:
        pod_template = clone(deployment["spec"]["template"])
        template_hash = pod_template_hash(pod_template)
        pod_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = template_hash
        name = f"{deployment['metadata']['name']}-{template_hash}"
        namespace = deployment["metadata"]["namespace"]
        self._replicaset_names.setdefault(deployment["metadata"]["uid"], []).append(name)
        replicaset = self._create("ReplicaSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": pod_template["metadata"]["labels"],
                         "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                         "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
                                         "deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {
                **deployment["spec"]["selector"]["matchLabels"], "pod-template-hash": template_hash}},
                "template": pod_template}})
        for _ in range(replicas):
            self._create_pod(namespace, pod_template, generate_name=f"{name}-", owner=replicaset,
                             started_ago=self.rng.uniform(0.5, 1.0) * started_ago)
        self._refresh_replicaset_status(replicaset)
        return replicaset

    def _replicasets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The deployment's ReplicaSets that still exist, oldest revision first."""
        found = []
        for name in self._replicaset_names.get(deployment["metadata"]["uid"], ()):
            try:
                found.append(self._get("ReplicaSet", deployment["metadata"]["namespace"], name))
            except ApiError:  # garbage-collected or deleted by hand
                continue
        return found

    def _scale_pods(self, owner: dict[str, Any], replicas: int) -> None:
        pods = self.pods_of(owner)
        namespace, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
        for pod in pods[replicas:]:
            self.store.delete("v1", "pods", pod.name, namespace)
        for _ in range(replicas - len(pods)):
            self._create_pod(namespace, owner["spec"]["template"], generate_name=f"{name}-", owner=owner)

    def _refresh_replicaset_status(self, replicaset: dict[str, Any]) -> None:
        count = len(self.pods_of(replicaset))
        self._set_status("ReplicaSet", replicaset["metadata"]["namespace"], replicaset["metadata"]["name"], {
            "replicas": count, "fullyLabeledReplicas": count, "readyReplicas": count, "availableReplicas": count,
            "observedGeneration": replicaset["metadata"].get("generation", 1)})

    def _refresh_deployment_status(self, deployment: dict[str, Any]) -> None:
        deployment = self._get("Deployment", deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        replicasets = self._replicasets_of(deployment)
        total = sum(len(self.pods_of(rs)) for rs in replicasets)
        updated = len(self.pods_of(replicasets[-1])) if replicasets else 0
        now = rfc3339(self.clock())
        self._set_status("Deployment", deployment["metadata"]["namespace"], deployment["metadata"]["name"], {
            "observedGeneration": deployment["metadata"].get("generation", 1), "replicas": total,
            "updatedReplicas": updated, "readyReplicas": total, "availableReplicas": total,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{replicasets[-1]["metadata"]["name"] if replicasets else ""}" has '
                            "successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now}]})

    async def rolling_update(self, namespace: str, deployment_name: str) -> dict[str, Any]:
        """``kubectl rollout restart``: a new ReplicaSet takes all replicas, the old one is scaled to 0."""
        deployment = self._get("Deployment", namespace, deployment_name)
        pod_template = deployment["spec"]["template"]
        pod_template["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = rfc3339(self.clock())
        deployment = self.store.update("apps/v1", "deployments", deployment)
        deployment.update(apiVersion="apps/v1", kind="Deployment")
        new_set = self._roll_out(deployment, self._replicasets_of(deployment))
        self._refresh_deployment_status(deployment)
        return new_set

    def _roll_out(self, deployment: dict[str, Any], old_sets: list[dict[str, Any]]) -> dict[str, Any]:
        """A ReplicaSet for the current template takes every replica; the older ones go to 0."""
        revision = 1 + max((int(rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision", "0"))
                            for rs in old_sets), default=0)
        self.store.patch("apps/v1", "deployments", deployment["metadata"]["name"], {"metadata": {"annotations": {
            "deployment.kubernetes.io/revision": str(revision)}}}, "merge", deployment["metadata"]["namespace"])
        new_set = self._new_replicaset(deployment, deployment["spec"].get("replicas", 1), revision=revision)
        for old in old_sets:
            old["spec"]["replicas"] = 0
            self.store.update("apps/v1", "replicasets", old)
            self._scale_pods(old, 0)
            self._refresh_replicaset_status(old)
        return new_set

    # -- StatefulSets and DaemonSets -------------------------------------------------------------------------
    def create_statefulset(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                           started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        statefulset = self._create("StatefulSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": selector},
                     "template": pod_template, "podManagementPolicy": "OrderedReady",
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}})
        for ordinal in range(replicas):
            self._create_stateful_pod(statefulset, ordinal, started_ago)
        self._refresh_simple_status(statefulset)
        return statefulset

    def _create_stateful_pod(self, statefulset: dict[str, Any], ordinal: int, started_ago: float = 0.0) -> None:
        name = statefulset["metadata"]["name"]
        revision = f"{name}-{pod_template_hash(statefulset['spec']['template'])}"
        self._create_pod(statefulset["metadata"]["namespace"], statefulset["spec"]["template"], name=f"{name}-{ordinal}",
                         owner=statefulset, hostname=f"{name}-{ordinal}", started_ago=started_ago,
                         labels={"apps.kubernetes.io/pod-index": str(ordinal), "controller-revision-hash": revision,
                                 "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}"})

    def create_daemonset(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                         started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        pod_template = clone(pod_template)
        pod_template["spec"]["tolerations"] = [{"operator": "Exists"}]  # like kube-proxy: runs everywhere
        daemonset = self._create("DaemonSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector},
            "spec": {"selector": {"matchLabels": selector}, "template": pod_template,
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}})
        for node in self.nodes:
            self._create_daemon_pod(daemonset, node, started_ago)
        self._refresh_daemonset_status(daemonset)
        return daemonset

    def _create_daemon_pod(self, daemonset: dict[str, Any], node: str, started_ago: float = 0.0) -> None:
        pod_template = clone(daemonset["spec"]["template"])
        pod_template["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
        name = daemonset["metadata"]["name"]
        self._create_pod(daemonset["metadata"]["namespace"], pod_template, generate_name=f"{name}-", owner=daemonset,
                         node=node, started_ago=started_ago,
                         labels={"controller-revision-hash": pod_template_hash(daemonset["spec"]["template"]),
                                 "pod-template-generation": "1"})

    def _refresh_simple_status(self, statefulset: dict[str, Any]) -> None:
        count = len(self.pods_of(statefulset))
        self._set_status("StatefulSet", statefulset["metadata"]["namespace"], statefulset["metadata"]["name"], {
            "replicas": count, "readyReplicas": count, "currentReplicas": count, "updatedReplicas": count,
            "availableReplicas": count, "observedGeneration": statefulset["metadata"].get("generation", 1)})

    def _refresh_daemonset_status(self, daemonset: dict[str, Any]) -> None:
        count = len(self.pods_of(daemonset))
        self._set_status("DaemonSet", daemonset["metadata"]["namespace"], daemonset["metadata"]["name"], {
            "currentNumberScheduled": count, "desiredNumberScheduled": count, "numberReady": count,
            "numberAvailable": count, "updatedNumberScheduled": count, "numberMisscheduled": 0,
            "observedGeneration": daemonset["metadata"].get("generation", 1)})

    def _scale_replicaset(self, deployment: dict[str, Any], replicaset: dict[str, Any], replicas: int) -> None:
        replicaset["spec"]["replicas"] = replicas
        replicaset["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(replicas)
        self.store.update("apps/v1", "replicasets", replicaset)
        self._scale_pods(replicaset, replicas)
        self._refresh_replicaset_status(replicaset)

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        """``kubectl scale``: Deployment (via its newest ReplicaSet), ReplicaSet or StatefulSet."""
        obj = self._get(kind, namespace, name)
        api_version, plural = _WORKLOAD_API[kind]
        obj["spec"]["replicas"] = replicas
        self.store.update(api_version, plural, obj)
        if kind == "Deployment":
            self._scale_replicaset(obj, self._replicasets_of(obj)[-1], replicas)
            self._refresh_deployment_status(obj)
        elif kind == "ReplicaSet":
            self._scale_pods(obj, replicas)
            self._refresh_replicaset_status(obj)
        elif kind == "StatefulSet":
            existing = {p.name for p in self.pods_of(obj)}
            for ordinal in range(replicas):
                if f"{name}-{ordinal}" not in existing:
                    self._create_stateful_pod(obj, ordinal)
            for pod_name in existing:
                if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                    self.store.delete("v1", "pods", pod_name, namespace)
            self._refresh_simple_status(obj)
        else:
            raise ValueError(f"cannot scale a {kind}")

    # -- CronJobs and Jobs -----------------------------------------------------------------------------------
    def create_cronjob(self, namespace: str, name: str, schedule: str, pod_template: dict[str, Any]) -> dict[str, Any]:
        pod_template = clone(pod_template)
        pod_template["spec"]["restartPolicy"] = "OnFailure"
        return self._create("CronJob", {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {}, "spec": {"template": pod_template}}}})

    async def run_cronjob(self, namespace: str, name: str, *, started_ago: float = 0.0) -> dict[str, Any]:
        """The CronJob controller fires: a Job named after the scheduled minute, with one running pod."""
        cronjob = self._get("CronJob", namespace, name)
        existing = {job["metadata"]["name"] for job in self.store.list("batch/v1", "jobs", namespace)}
        minute = int((self.clock() - started_ago) // 60)
        while f"{name}-{minute}" in existing:
            minute += 1
        job_name = f"{name}-{minute}"
        pod_template = clone(cronjob["spec"]["jobTemplate"]["spec"]["template"])
        job = self._create("Job", {
            "metadata": {"name": job_name, "namespace": namespace, "ownerReferences": [owner_reference(cronjob)],
                         "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(minute * 60)}},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                     "template": pod_template}})
        self._start_job(job, started_ago)
        self._set_status("CronJob", namespace, name, {"active": [{"kind": "Job", "namespace": namespace,
                                                                  "name": job_name, "uid": job["metadata"]["uid"],
                                                                  "apiVersion": "batch/v1"}],
                                                      "lastScheduleTime": rfc3339(minute * 60)})
        return job

    def _start_job(self, job: dict[str, Any], started_ago: float) -> None:
        """The Job controller creates the job's pod with the job-name and controller-uid labels."""
        namespace, job_name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
        job_labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": job_name,
                      "controller-uid": uid, "job-name": job_name}
        pod_template = clone(job["spec"]["template"])
        pod_template.setdefault("metadata", {})
        self._create_pod(namespace, pod_template, generate_name=f"{job_name}-", owner=job, labels=job_labels,
                         started_ago=started_ago)
        self._set_status("Job", namespace, job_name, {"active": 1, "startTime": rfc3339(self.clock() - started_ago),
                                                      "ready": 1, "terminating": 0, "uncountedTerminatedPods": {}})

    async def complete_job(self, namespace: str, job_name: str) -> None:
        """The job's pods exit 0: they turn Succeeded (and vanish from kubelet payloads)."""
        job = self._get("Job", namespace, job_name)
        now = rfc3339(self.clock())
        for info in self.pods_of(job):
            pod = self.store.get("v1", "pods", info.name, namespace)
            self.store.patch("v1", "pods", info.name, {"status": succeeded_pod_status(pod, self.clock())}, "merge",
                             namespace, subresource="status")
        self._set_status("Job", namespace, job_name, {
            "active": None, "ready": 0, "succeeded": 1, "completionTime": now,
            "conditions": [{"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                            "reason": r, "message": m} for t, r, m in (
                ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"))]})

    # -- bare and static pods --------------------------------------------------------------------------------
    def create_bare_pod(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                        started_ago: float = 0.0) -> dict[str, Any]:
        self.ensure_namespace(namespace)
        return self._create_pod(namespace, pod_template, name=name, started_ago=started_ago)

    def create_static_pod(self, node: str, component: str, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> dict[str, Any]:
        """The mirror pod of a manifest in the node's /etc/kubernetes/manifests: owned by the Node."""
        node_obj = self._get("Node", None, node)
        config_hash = hashlib.md5(f"{node}/{component}".encode()).hexdigest()
        pod_template = clone(pod_template)
        pod_template["metadata"].setdefault("annotations", {}).update({
            "kubernetes.io/config.hash": config_hash, "kubernetes.io/config.mirror": config_hash,
            "kubernetes.io/config.seen": rfc3339(self.clock() - started_ago).replace("Z", ".000000000Z"),
            "kubernetes.io/config.source": "file"})
        pod_template["spec"]["hostNetwork"] = True
        pod_template["spec"]["priorityClassName"] = "system-node-critical"
        pod_template["spec"]["tolerations"] = [{"operator": "Exists", "effect": "NoExecute"}]
        owner = {"apiVersion": "v1", "kind": "Node", "metadata": node_obj["metadata"]}
        pod = self._create_pod("kube-system", pod_template, name=f"{component}-{node}", node=node,
                               started_ago=started_ago)
        # The kubelet sets the Node owner (controller, no blockOwnerDeletion) on the mirror pod.
        self.store.patch("v1", "pods", pod["metadata"]["name"],
                         {"metadata": {"ownerReferences": [owner_reference(owner, block=False)]}}, "merge",
                         "kube-system")
        return pod

    # -- any workload ----------------------------------------------------------------------------------------
    async def delete_workload(self, kind: str, namespace: str, name: str) -> None:
        """Delete with background propagation: the garbage collector removes ReplicaSets, Jobs and Pods."""
        api_version, plural = _WORKLOAD_API[kind]
        self.store.delete(api_version, plural, name, namespace, propagation_policy="Background")


# -- the "mixed" cluster -------------------------------------------------------------------------------------

_APP_NAMES = ("frontend", "api", "cart", "checkout", "search", "worker", "cache", "auth", "billing", "catalog",
              "ingest", "notifier", "reports", "gateway", "ledger", "media")
_APP_PROFILES = ("steady", "diurnal", "bursty", "steady", "diurnal", "leak")
_STATIC_COMPONENTS = (("etcd", "100m", "100Mi"), ("kube-apiserver", "250m", None),
                      ("kube-controller-manager", "200m", None), ("kube-scheduler", "100m", None))


def _app_template(rng: random.Random, app: str) -> dict[str, Any]:
    """1 to 4 containers (about 2.8 on average); some without limits, a few without any requests."""
    best_effort = rng.random() < 0.08
    memory = rng.choice((64, 128, 256, 512))
    main = container(app, cpu=None if best_effort else rng.choice(("50m", "100m", "250m", "500m")),
                     memory=None if best_effort else f"{memory}Mi",
                     memory_limit=None if best_effort or rng.random() < 0.3 else f"{memory * 2}Mi")
    sidecars = [container("istio-proxy", cpu="10m", memory="40Mi", cpu_limit="2", memory_limit="1Gi"),
                container("log-shipper", cpu="5m", memory="32Mi"),
                container("metrics-exporter", cpu="5m", memory="16Mi", memory_limit="64Mi")]
    chosen = sidecars[: rng.choice((0, 1, 2, 2, 3, 3))]
    kind = rng.choice(_APP_PROFILES)
    profiles = ",".join([f"{app}={kind}"] + [f"{c['name']}={rng.choice(('idle', 'steady'))}" for c in chosen])
    return template({"app": app}, [main, *chosen], profiles=profiles)


async def _settle(result: Any) -> Any:
    """The simulated scenario's builders return at once; the real control plane's are coroutines."""
    return await result if inspect.isawaitable(result) else result


async def populate_mixed(scenario: Scenario, pods_per_node: int) -> None:
    """A deterministic mix filling about ``pods_per_node`` pods per node: static control-plane pods, two
    DaemonSets, a StatefulSet, a CronJob with a completed and a running Job, bare pods, and Deployments
    for the rest. Initial pods started a while ago, as on a cluster that has been up for some time."""
    # Its own generator, not the scenario's (which also names pods): the same seed then gives the same
    # catalogue on both backends.
    rng = random.Random(scenario.seed)
    target = len(scenario.nodes) * pods_per_node
    for namespace in ("monitoring", "data", "batch"):
        await _settle(scenario.ensure_namespace(namespace))
    for node in scenario.control_planes:
        for component, cpu, memory in _STATIC_COMPONENTS:
            await _settle(scenario.create_static_pod(node, component, template(
                {"component": component, "tier": "control-plane"}, [container(component, cpu=cpu, memory=memory)],
                profiles="steady"), started_ago=rng.uniform(3000, 7200)))
    await _settle(scenario.create_daemonset("kube-system", "kube-proxy", template(
        {"k8s-app": "kube-proxy"}, [container("kube-proxy")], profiles="steady", host_network=True),
        started_ago=3600))
    await _settle(scenario.create_daemonset("monitoring", "node-exporter", template(
        {"app.kubernetes.io/name": "node-exporter"},
        [container("node-exporter", cpu="100m", memory="30Mi", memory_limit="50Mi"),
         container("kube-rbac-proxy", cpu="10m", memory="20Mi", memory_limit="40Mi")],
        profiles="node-exporter=bursty,kube-rbac-proxy=idle"), started_ago=3000))
    postgres = template({"app": "postgres"}, [container("postgres", cpu="500m", memory="1Gi", memory_limit="2Gi"),
                                              container("exporter", cpu="10m", memory="32Mi")],
                        profiles="postgres=diurnal,exporter=idle",
                        init_containers=[container("init-permissions", cpu="10m", memory="16Mi")])
    await _settle(scenario.create_statefulset("data", "postgres", 3, postgres, started_ago=2400))
    await _settle(scenario.create_cronjob("batch", "nightly-report", "*/15 * * * *", template(
        {"app": "nightly-report"}, [container("report", cpu="200m", memory="128Mi", memory_limit="256Mi")],
        profiles="bursty")))
    finished = await scenario.run_cronjob("batch", "nightly-report", started_ago=1800)
    await scenario.complete_job("batch", finished["metadata"]["name"])
    await scenario.run_cronjob("batch", "nightly-report", started_ago=120)
    await _settle(scenario.create_bare_pod("default", "debug-shell", template(
        {"run": "debug-shell"}, [container("shell")], profiles="idle"), started_ago=900))
    await _settle(scenario.create_bare_pod("default", "toolbox", template(
        {"run": "toolbox"}, [container("toolbox", cpu="50m", memory="64Mi"), container("proxy", cpu="5m")],
        profiles="toolbox=bursty,proxy=idle"), started_ago=600))
    remaining = target - await _settle(scenario.running_pod_count())
    namespaces = ("shop", "web", "analytics")
    number = 0
    while remaining > 0:
        # Big clusters get one namespace per ~20 Deployments, as teams would have.
        namespace = namespaces[number % 3] if target < 600 else f"team-{number // 16:03d}"
        await _settle(scenario.ensure_namespace(namespace))
        app = _APP_NAMES[number % len(_APP_NAMES)]
        name = app if number < 3 * len(_APP_NAMES) or target >= 600 else f"{app}-{number // (3 * len(_APP_NAMES))}"
        replicas = min(remaining, rng.choice((1, 2, 2, 3, 3, 4, 6)))
        await _settle(scenario.create_deployment(namespace, name, replicas, _app_template(rng, app),
                                                 started_ago=rng.uniform(600, 5400)))
        remaining -= replicas
        number += 1
