"""Pod -> workload resolution (docs/architecture.md, "Workload resolution").

A pod's controller is followed one level up when it is an *intermediate* controller, a ReplicaSet or a Job,
to that object's own controller (Deployment, Argo Rollout, CronJob, ...), whose kind and apiVersion are
kept as given. Everything else is the workload itself; pods without a controller and static pods (owned
by their Node) are their own workload, kind ``Pod``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubemeter.types import PodInfo, WorkloadRef

OwnerReferences = Sequence[Mapping[str, Any]]
OwnerReferencesLookup = Callable[[str, str], OwnerReferences | None]
"""``(namespace, name) -> metadata.ownerReferences`` of a ReplicaSet or Job (``[]`` when it has none), or
``None`` while the model has not seen that object yet."""

# Controllers that only exist on behalf of a higher one: (API group, kind).
_REPLICASET_KINDS = {("apps", "ReplicaSet"), ("extensions", "ReplicaSet")}
_JOB_KINDS = {("batch", "Job")}


def _api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def controller_of(owner_references: OwnerReferences) -> Mapping[str, Any] | None:
    """The ownerReference with ``controller: true``; other owners (e.g. adopters) never make a workload."""
    for ref in owner_references:
        if ref.get("controller") is True:
            return ref
    return None


def _ref(namespace: str, owner: Mapping[str, Any]) -> WorkloadRef:
    return WorkloadRef(namespace, owner["kind"], owner["name"], owner.get("apiVersion", ""))


def resolve_workload(
    pod: PodInfo,
    replicaset_owner: OwnerReferencesLookup,
    job_owner: OwnerReferencesLookup,
) -> WorkloadRef | None:
    """The workload ``pod`` belongs to, or ``None`` when that cannot be told yet.

    ``None`` means the pod's ReplicaSet or Job is not in the model (yet: watch events arrive in any order):
    the caller counts the pod in no workload and retries next cycle. Falling back to the ReplicaSet would key a
    Deployment's pods under ``web-5d4f8c7b9`` for a cycle and then under ``web``: a workload that appears
    and vanishes, with its window history split in two.
    """
    owner = pod.owner
    if not owner or not owner.get("kind") or not owner.get("name") or owner["kind"] == "Node":
        return WorkloadRef(pod.namespace, "Pod", pod.name, "v1")
    key = (_api_group(owner.get("apiVersion", "")), owner["kind"])
    if key in _REPLICASET_KINDS:
        lookup = replicaset_owner
    elif key in _JOB_KINDS:
        lookup = job_owner
    else:
        return _ref(pod.namespace, owner)
    references = lookup(pod.namespace, owner["name"])
    if references is None:
        return None
    top = controller_of(references)
    if top is None or not top.get("kind") or not top.get("name"):
        return _ref(pod.namespace, owner)
    return _ref(pod.namespace, top)
