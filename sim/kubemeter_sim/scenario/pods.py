"""Pods as the controllers see and make them.

:class:`PodIndex` follows the store's pod events (garbage-collector deletions included) into an index by owner,
what the controllers' informers give them, and tells the scheduler how many pods each node runs.
:class:`PodFactory` makes a pod as a controller does (from its template, named, owned, defaulted), has the
scheduler bind it and its kubelet start it; it also makes bare pods and the mirror pods of static pods. The
names and owner references controllers put on what they create are here too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.kubelet_status import rfc3339
from kubemeter_sim.scenario.kubelets import Kubelets
from kubemeter_sim.scenario.scheduler import Scheduler

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery/pkg/util/rand's alphabet (no vowels, no confusable digits)."""
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


def owner_reference(obj: dict[str, Any], *, block: bool = True) -> dict[str, Any]:
    reference = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"], "controller": True}
    if block:
        reference["blockOwnerDeletion"] = True
    return reference


def controller_reference(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference of an object's controller, if it has one."""
    return next((ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller")), None)


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    node: str
    owners: tuple[str, ...]
    finished: bool
    """Succeeded or Failed: no longer counts against its node."""


class PodIndex:
    def __init__(self, count_pod: Callable[[str, int], None]) -> None:
        self._count_pod = count_pod
        """Told (node, +1) when a pod bound to the node runs, (node, -1) when it finishes or goes."""
        self._pods: dict[str, PodInfo] = {}
        self._pods_by_owner: dict[str, set[str]] = {}

    def follow(self, event_type: str, rtype: Any, obj: dict[str, Any]) -> None:
        """A store listener: index pods by owner and node."""
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
        info = PodInfo(meta["namespace"], meta["name"], obj["spec"].get("nodeName") or "",
                       tuple(ref["uid"] for ref in meta.get("ownerReferences") or []),
                       (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
        self._pods[uid] = info
        for owner in info.owners:
            self._pods_by_owner.setdefault(owner, set()).add(uid)
        if not info.finished:
            self._count_pod(info.node, +1)

    def of(self, owner: dict[str, Any]) -> list[PodInfo]:
        """The pods ``owner`` owns, sorted by name."""
        uids = self._pods_by_owner.get(owner["metadata"]["uid"], ())
        return sorted((self._pods[uid] for uid in uids), key=lambda info: info.name)


@dataclass
class PodFactory:
    store: Store
    scheduler: Scheduler
    kubelets: Kubelets
    rng: random.Random
    """Names pods; shared with the controllers, so the same seed gives the same names."""
    clock: Callable[[], float]

    def _suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choice(_NAME_ALPHABET) for _ in range(length))

    def create(self, namespace: str, pod_template: dict[str, Any], *, name: str | None = None,
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
        spec["nodeName"] = node or self.scheduler.schedule(spec)
        created = self.store.create("v1", "pods", pod_template)
        self.kubelets.mark_running(created, self.clock() - started_ago)
        return created

    def bind_and_run(self, pod: dict[str, Any]) -> None:
        """The scheduler binds a pod made through the API, then its kubelet starts it. A pod created with its
        nodeName set skips the scheduler; on a node that does not exist it stays Pending, as no kubelet claims it."""
        if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            return  # started already (the scenario's own pods are running by the time this runs)
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName"):
            if spec["nodeName"] not in self.scheduler.nodes:
                return
            bound = pod
        else:
            node = self.scheduler.schedule(spec)
            bound = self.store.patch("v1", "pods", meta["name"], {"spec": {"nodeName": node}}, "merge", meta["namespace"])
        self.kubelets.mark_running(bound, self.clock())

    def create_static(self, node: str, component: str, pod_template: dict[str, Any], *,
                      started_ago: float = 0.0) -> dict[str, Any]:
        """The mirror pod of a manifest in the node's /etc/kubernetes/manifests: owned by the Node."""
        node_obj = self.store.get("v1", "nodes", node)
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
        pod = self.create("kube-system", pod_template, name=f"{component}-{node}", node=node, started_ago=started_ago)
        # The kubelet sets the Node owner (controller, no blockOwnerDeletion) on the mirror pod.
        self.store.patch("v1", "pods", pod["metadata"]["name"],
                         {"metadata": {"ownerReferences": [owner_reference(owner, block=False)]}}, "merge",
                         "kube-system")
        return pod
