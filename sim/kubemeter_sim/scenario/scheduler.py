"""The scheduler: which node a new pod is bound to.

The least-loaded node (fewest pods bound and not finished) that the pod tolerates, ties to the earliest node.
Untainted nodes sit in a heap keyed by load, whose stale entries are skipped lazily, so choosing stays cheap on
clusters of thousands of pods; a pod that tolerates the control-plane taint may go to any node.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

from kubemeter_sim.kubelet_status import CONTROL_PLANE_LABEL


class Scheduler:
    def __init__(self) -> None:
        self.nodes: list[str] = []
        """The schedulable nodes, in the order they were added."""
        self.pods_per_node: Counter[str] = Counter()
        """Pods bound to each node that have not finished (what the scheduler balances)."""
        self._numbers: dict[str, int] = {}
        self._tainted: set[str] = set()
        self._untainted: set[str] = set()
        self._load: list[tuple[int, int, str]] = []
        """Heap of (running pods, node number, untainted node); stale entries are skipped lazily."""

    def add_node(self, name: str, number: int, *, tainted: bool) -> None:
        self.nodes.append(name)
        self._numbers[name] = number
        if tainted:
            self._tainted.add(name)
        else:
            self._untainted.add(name)
            heapq.heappush(self._load, (self.pods_per_node[name], number, name))

    def remove_node(self, name: str) -> None:
        self.nodes.remove(name)
        self._tainted.discard(name)
        self._untainted.discard(name)
        self._numbers.pop(name, None)

    def count_pod(self, node: str, change: int) -> None:
        """A pod bound to ``node`` started (+1) or finished or went (-1)."""
        self.pods_per_node[node] += change
        if node in self._untainted:
            heapq.heappush(self._load, (self.pods_per_node[node], self._numbers[node], node))

    def running_pod_count(self) -> int:
        return sum(self.pods_per_node.values())

    def schedule(self, pod_spec: dict[str, Any]) -> str:
        """Least-loaded node that the pod tolerates; ties go to the earliest node."""
        tolerates = any(t.get("key") == CONTROL_PLANE_LABEL or (t.get("operator") == "Exists" and not t.get("key"))
                        for t in pod_spec.get("tolerations") or [])
        if tolerates and self._tainted:
            return min(self.nodes, key=self.pods_per_node.__getitem__)
        while self._load:
            count, _, node = self._load[0]
            if node in self._untainted and self.pods_per_node[node] == count:
                return node
            heapq.heappop(self._load)
        raise RuntimeError("no schedulable node")
