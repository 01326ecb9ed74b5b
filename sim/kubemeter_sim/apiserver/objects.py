"""Stored objects and their containers: entries with cached JSON, committed changes, per-resource collections."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kubemeter_sim.apiserver.jsonutil import dumps
from kubemeter_sim.apiserver.resources import ResourceType


@dataclass
class WriteOptions:
    """Per-request write options (query parameters of the HTTP API)."""

    dry_run: bool = False
    field_validation: str = "Warn"        # Strict | Warn | Ignore
    field_manager: str = ""
    warnings: list[str] = field(default_factory=list)


class Entry:
    """A stored object (never mutated after commit) and its JSON bytes, encoded on first use."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: dict) -> None:
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw


@dataclass(frozen=True)
class Change:
    """One committed change, as watch streams replay it."""

    rv: int
    type: str                    # ADDED | MODIFIED | DELETED
    rtype: ResourceType          # storage-version type
    entry: Entry                 # the object after the change (its last state for DELETED)
    old: dict | None             # the object before (None for ADDED)


class Collection:
    """Objects of one group/resource keyed "namespace/name" (or "name"), with a lazily sorted key list."""

    __slots__ = ("entries", "_sorted")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._sorted: list[str] | None = None

    def put(self, key: str, entry: Entry) -> None:
        if key not in self.entries:
            self._sorted = None
        self.entries[key] = entry

    def remove(self, key: str) -> None:
        del self.entries[key]
        self._sorted = None

    def key_range(self, namespace: str | None, start: str = "") -> tuple[list[str], int, int]:
        """(sorted keys, first index, end index) of a namespace's keys (all when None) from start on, in etcd
        order."""
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        keys = self._sorted
        low = namespace + "/" if namespace is not None else ""
        first = bisect.bisect_left(keys, max(low, start))
        end = bisect.bisect_left(keys, namespace + "0") if namespace is not None else len(keys)
        return keys, first, end

    def keys_from(self, namespace: str | None, start: str = "") -> list[str]:
        keys, first, end = self.key_range(namespace, start)
        return keys[first:end]


def object_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
