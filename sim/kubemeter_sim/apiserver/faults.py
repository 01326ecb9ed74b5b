"""Fault injection: answer matching requests with an error status, delay them, or never answer."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(eq=False)
class FaultHandle:
    """One injected fault; ``remove()`` ends it. ``count`` = how many requests it still applies to."""

    status: int | None
    delay: float
    hang: bool
    method: str | None
    path: re.Pattern | None
    count: int | None
    retry_after: int | None
    hits: int = 0
    _faults: list["FaultHandle"] = field(default_factory=list, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None

    def remove(self) -> None:
        if self in self._faults:
            self._faults.remove(self)


class Faults:
    def __init__(self) -> None:
        self._faults: list[FaultHandle] = []

    def add(self, *, status: int | None, delay: float, hang: bool, method: str | None, path: str | None,
            count: int | None, retry_after: int | None) -> FaultHandle:
        handle = FaultHandle(status, delay, hang, method, re.compile(path) if path else None, count, retry_after,
                             _faults=self._faults)
        self._faults.append(handle)
        return handle

    def take(self, method: str, path: str) -> FaultHandle | None:
        """The first fault applying to this request (its use is counted)."""
        for handle in self._faults:
            if handle.matches(method, path):
                handle.hits += 1
                if handle.count is not None:
                    handle.count -= 1
                    if handle.count <= 0:
                        handle.remove()
                return handle
        return None
