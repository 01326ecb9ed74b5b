"""Watch fan-out: each change is encoded once per (event type, version) and appended to every matching
watcher's buffer; a watcher's HTTP handler drains its buffer in batches."""
from __future__ import annotations

import asyncio
from typing import Callable

from kubemeter_sim.apiserver.jsonutil import dumps
from kubemeter_sim.apiserver.objects import Change
from kubemeter_sim.apiserver.resources import ResourceType
from kubemeter_sim.apiserver.selectors import Matcher
from kubemeter_sim.apiserver.store import Store

Encoder = Callable[[dict], bytes]
# A watcher this far behind is dropped (its client re-watches), as the watch cache drops blocked watchers.
MAX_PENDING_LINES = 200_000


def event_line(event_type: str, object_bytes: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + object_bytes + b"}\n"


class Watcher:
    """One open watch: its filters and the lines waiting to be written."""

    def __init__(self, rtype: ResourceType, namespace: str | None, label_ok: Matcher | None,
                 field_ok: Matcher | None, encoder: Encoder | None = None) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self._label_ok = label_ok
        self._field_ok = field_ok
        self.encoder = encoder          # per-watcher encoding (tables); None = shared cached bytes
        self.lines: list[bytes] = []
        self.rv = 0                     # the resourceVersion the watch started at
        self.closed = False
        self.wakeup = asyncio.Event()

    def matches(self, obj: dict) -> bool:
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return (self._label_ok is None or self._label_ok(obj)) and (self._field_ok is None or self._field_ok(obj))

    def push(self, line: bytes) -> None:
        if len(self.lines) >= MAX_PENDING_LINES:
            self.close()
            return
        self.lines.append(line)
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()

    def take(self) -> list[bytes]:
        lines, self.lines = self.lines, []
        self.wakeup.clear()
        return lines

    def offer(self, change: Change, cache: dict, store: Store) -> None:
        """Translate a change for this watcher's filter, as the watch cache does: an object that stops matching
        is DELETED (its previous state), one that starts matching is ADDED."""
        new_ok = change.type != "DELETED" and self.matches(change.entry.obj)
        old_ok = change.old is not None and self.matches(change.old)
        if change.type == "DELETED":
            event_type, use_old = ("DELETED", False) if old_ok else (None, False)
        elif new_ok:
            event_type, use_old = ("MODIFIED" if old_ok else "ADDED", False)
        elif old_ok:
            event_type, use_old = "DELETED", True
        else:
            return
        if event_type is None:
            return
        if use_old:
            assert change.old is not None
            obj = {**change.old, "metadata": {**change.old["metadata"],
                                              "resourceVersion": str(change.rv)}}
            self.push(event_line(event_type, self._encode(obj, store)))
            return
        if self.encoder is not None:
            self.push(event_line(event_type, self.encoder(store.as_version(self.rtype, change.entry.obj))))
            return
        cache_key = (event_type, self.rtype.api_version)
        line = cache.get(cache_key)
        if line is None:
            line = cache[cache_key] = event_line(event_type, store.view(self.rtype, change.entry))
        self.push(line)

    def _encode(self, obj: dict, store: Store) -> bytes:
        obj = store.as_version(self.rtype, obj)
        return self.encoder(obj) if self.encoder is not None else dumps(obj)


class WatchHub:
    """Registry of open watches per group/resource; hooked into the store's commit path."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._watchers: dict[tuple[str, str], set[Watcher]] = {}
        store.add_change_hook(self._on_change)

    def _on_change(self, change: Change) -> None:
        watchers = self._watchers.get(change.rtype.key)
        if not watchers:
            return
        cache: dict = {}
        for watcher in watchers:
            watcher.offer(change, cache, self._store)

    def open(self, watcher: Watcher, since_rv: int | None) -> None:
        """Register a watcher; with since_rv, first replay the history after it (caller checked it is not too
        old). Registration and replay happen without yielding, so no change can fall in between."""
        if since_rv is not None:
            for change in self._store.history:
                if change.rv > since_rv and change.rtype.key == watcher.rtype.key:
                    watcher.offer(change, {}, self._store)
        self._watchers.setdefault(watcher.rtype.key, set()).add(watcher)

    def close(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.rtype.key)
        if watchers is not None:
            watchers.discard(watcher)

    def close_all(self) -> None:
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()
            watchers.clear()

    def count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
