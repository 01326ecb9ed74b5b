"""Legacy discovery documents (/api, /api/v1, /apis, /apis/G, /apis/G/V) and /version.

Served as plain application/json: kubectl asks for aggregated discovery first and falls back to these when the
response's Content-Type is not the aggregated one."""
from __future__ import annotations

from kubemeter_sim.apiserver.resources import ResourceType

VERSION_INFO = {
    "major": "1", "minor": "32", "emulationMajor": "1", "emulationMinor": "32", "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "31", "gitVersion": "v1.32.0", "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
    "gitTreeState": "clean", "buildDate": "2024-12-11T17:59:15Z", "goVersion": "go1.23.3", "compiler": "gc",
    "platform": "linux/amd64",
}
_SUBRESOURCE_KINDS = {"proxy": "NodeProxyOptions", "scale": "Scale"}
_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "finalize": ["update"],
                      "proxy": ["create", "delete", "get", "patch", "update"], "scale": ["get", "patch", "update"]}
_VERSION_ORDER = ("v1", "v1beta2", "v1beta1", "v1alpha2", "v1alpha1")


def _version_rank(version: str) -> int:
    return _VERSION_ORDER.index(version) if version in _VERSION_ORDER else len(_VERSION_ORDER)


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict:
    ordered = sorted(versions, key=_version_rank)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def groups_by_name(types: list[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rtype in types:
        if rtype.group and rtype.version not in groups.setdefault(rtype.group, []):
            groups[rtype.group].append(rtype.version)
    return groups


def api_group_list(types: list[ResourceType]) -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in groups_by_name(types).items()]}


def api_group(types: list[ResourceType], name: str) -> dict | None:
    versions = groups_by_name(types).get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def api_resource_list(types: list[ResourceType], group_version: str) -> dict | None:
    served = [t for t in types if t.api_version == group_version]
    if not served:
        return None
    resources = []
    for rtype in sorted(served, key=lambda t: t.plural):
        entry: dict = {"name": rtype.plural, "singularName": rtype.singular, "namespaced": rtype.namespaced,
                       "kind": rtype.kind, "verbs": list(rtype.verbs)}
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        entry["storageVersionHash"] = rtype.storage_version_hash
        resources.append(entry)
        for subresource in sorted(rtype.subresources):
            entry = {"name": f"{rtype.plural}/{subresource}", "singularName": "", "namespaced": rtype.namespaced}
            if subresource == "scale":
                entry.update(group="autoscaling", version="v1")
            resources.append({**entry, "kind": _SUBRESOURCE_KINDS.get(subresource, rtype.kind),
                              "verbs": _SUBRESOURCE_VERBS.get(subresource, ["get"])})
    document = {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}
    if "/" in group_version:
        document["apiVersion"] = "v1"
    return document
