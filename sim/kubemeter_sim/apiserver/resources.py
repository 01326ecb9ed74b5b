"""Served resource types: the built-in catalogue and types derived from CustomResourceDefinitions."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# Kinds whose PUT/PATCH bumps metadata.generation on spec changes (others, e.g. Node, Namespace, Event, never set it).
_GENERATION_KINDS = frozenset({"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
                               "CustomResourceDefinition", "Service"})


@dataclass
class ResourceType:
    """One served resource (group/version/plural) with what discovery and the handlers need to know."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    schema: dict | None = None
    printer_columns: tuple[dict, ...] = ()
    # Implementation details beyond the public contract:
    custom: bool = False                      # defined by a CRD (schemaless merge, 415 on strategic merge patch)
    storage_version: str = ""                 # objects are stored once, in this version ...
    storage_group: str | None = None          # ... of this group (events.k8s.io Events are core Events)
    compiled_schema: object | None = field(default=None, repr=False, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: all versions of a group/resource share one object set."""
        return (self.group if self.storage_group is None else self.storage_group, self.plural)

    @property
    def storage_api_version(self) -> str:
        group = self.group if self.storage_group is None else self.storage_group
        version = self.storage_version or self.version
        return f"{group}/{version}" if group else version

    @property
    def tracks_generation(self) -> bool:
        return self.custom or self.kind in _GENERATION_KINDS

    @property
    def returns_deleted_object(self) -> bool:
        """DELETE answers with the object even when it is gone at once (these kinds' registries set
        ReturnDeletedObject); every other kind answers a Success Status then."""
        return not self.custom and self.kind in ("Pod", "Namespace", "Service", "ServiceAccount")

    @property
    def status_keeps_metadata(self) -> bool:
        """Pods and nodes: /status may change labels and annotations (their strategies only reset spec)."""
        return not self.custom and self.kind in ("Pod", "Node")

    @property
    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.group}/{self.storage_version or self.version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()


def _t(group: str, version: str, plural: str, kind: str, namespaced: bool, short: tuple[str, ...] = (),
       categories: tuple[str, ...] = (), sub: frozenset[str] = frozenset()) -> ResourceType:
    return ResourceType(group=group, version=version, plural=plural, singular=kind.lower(), kind=kind,
                        list_kind=kind + "List", namespaced=namespaced, short_names=short, categories=categories,
                        subresources=sub, storage_version=version)


_STATUS = frozenset({"status"})
_STATUS_SCALE = frozenset({"status", "scale"})
_ALL = ("all",)


def builtin_types() -> list[ResourceType]:
    return [
        _t("", "v1", "namespaces", "Namespace", False, ("ns",), sub=frozenset({"status", "finalize"})),
        _t("", "v1", "nodes", "Node", False, ("no",), sub=frozenset({"status", "proxy"})),
        _t("", "v1", "pods", "Pod", True, ("po",), _ALL, sub=_STATUS),
        _t("", "v1", "events", "Event", True, ("ev",)),
        _t("", "v1", "services", "Service", True, ("svc",), _ALL, sub=_STATUS),
        _t("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
        _t("", "v1", "secrets", "Secret", True),
        _t("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
        _t("apps", "v1", "deployments", "Deployment", True, ("deploy",), _ALL, sub=_STATUS_SCALE),
        _t("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _ALL, sub=_STATUS_SCALE),
        _t("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _ALL, sub=_STATUS_SCALE),
        _t("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _ALL, sub=_STATUS),
        _t("batch", "v1", "jobs", "Job", True, (), _ALL, sub=_STATUS),
        _t("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _ALL, sub=_STATUS),
        _t("coordination.k8s.io", "v1", "leases", "Lease", True),
        ResourceType("events.k8s.io", "v1", "events", "event", "Event", "EventList", True, ("ev",),
                     storage_group="", storage_version="v1"),
        _t("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
           ("crd", "crds"), sub=_STATUS),
        ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
                     "SelfSubjectAccessReview", "SelfSubjectAccessReviewList", False, verbs=("create",)),
        ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview",
                     "SubjectAccessReview", "SubjectAccessReviewList", False, verbs=("create",)),
        _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _t("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ]


def crd_types(crd: dict) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "v1")
    types = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = frozenset((version.get("subresources") or {}).keys())
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(ResourceType(
            group=spec["group"], version=version["name"], plural=names["plural"],
            singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
            list_kind=names.get("listKind") or names["kind"] + "List", namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=subresources, schema=schema,
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            custom=True, storage_version=storage))
    return types
