"""What every workload controller of the scenario works with: the store as controllers use it (workload
kinds to their API, reads, creations, status writes), the pod index and factory, the scheduler's nodes, the
clock and the seeded generator."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.catalogue import WORKLOAD_API
from kubemeter_sim.scenario.pods import PodFactory, PodIndex
from kubemeter_sim.scenario.scheduler import Scheduler


@dataclass
class ControllerKit:
    store: Store
    pods: PodIndex
    factory: PodFactory
    scheduler: Scheduler
    clock: Callable[[], float]
    rng: random.Random
    creating: bool = False
    """True while the scenario creates a workload itself, fully formed: nothing to reconcile."""

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        api_version, plural = WORKLOAD_API.get(kind, ("v1", kind.lower() + "s"))
        obj = self.store.get(api_version, plural, name, namespace)
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        return obj

    def create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, plural = WORKLOAD_API[kind]
        self.ensure_namespace(obj["metadata"]["namespace"])  # as the real scenario does: a user creates it first
        self.creating = True
        try:
            created = self.store.create(api_version, plural, {"apiVersion": api_version, "kind": kind, **obj})
        finally:
            self.creating = False
        created.setdefault("apiVersion", api_version)
        created.setdefault("kind", kind)
        return created

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        api_version, plural = WORKLOAD_API[kind]
        self.store.patch(api_version, plural, name, {"status": status}, "merge", namespace, subresource="status")

    def ensure_namespace(self, name: str) -> None:
        try:
            self.store.get("v1", "namespaces", name)
        except ApiError:
            self.store.create("v1", "namespaces", {"metadata": {"name": name}})
