"""Conversion between the served versions of one stored resource: custom resources (apiVersion only, as a CRD
with conversion strategy None) and events.k8s.io/v1 Events, which are core/v1 Events under other field names."""
from __future__ import annotations

# core/v1 Event field -> events.k8s.io/v1 Event field (k8s.io/kubernetes pkg/apis/events/v1/conversion.go)
_EVENT_FIELDS = {"involvedObject": "regarding", "message": "note", "reportingComponent": "reportingController",
                 "source": "deprecatedSource", "firstTimestamp": "deprecatedFirstTimestamp",
                 "lastTimestamp": "deprecatedLastTimestamp", "count": "deprecatedCount"}
_EVENT_FIELDS_BACK = {new: old for old, new in _EVENT_FIELDS.items()}
_EVENT_VERSIONS = frozenset({"v1", "events.k8s.io/v1"})


def convert(obj: dict, api_version: str) -> dict:
    """obj as api_version (a shallow copy; nested values are shared, so callers must not mutate them)."""
    source = obj.get("apiVersion")
    if source == api_version:
        return obj
    if obj.get("kind") == "Event" and {source, api_version} == _EVENT_VERSIONS:
        names = _EVENT_FIELDS if api_version == "events.k8s.io/v1" else _EVENT_FIELDS_BACK
        return {names.get(key, key): value for key, value in obj.items()} | {"apiVersion": api_version}
    return {**obj, "apiVersion": api_version}
