"""kube-controller-manager as the scenario plays it: the per-kind controllers (:mod:`.deployments`,
:mod:`.sets`, :mod:`.jobs`) together, the reconcile queue that store events feed (for objects made through the
API, by kubectl or a test), and what a controller does when one of its pods is deleted (it makes another)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.scenario.deployments import DeploymentController
from kubemeter_sim.scenario.jobs import JobController
from kubemeter_sim.scenario.kit import ControllerKit
from kubemeter_sim.scenario.kubelets import Kubelets
from kubemeter_sim.scenario.pods import controller_reference
from kubemeter_sim.scenario.sets import DaemonSetController, StatefulSetController

log = logging.getLogger(__name__)

_RECONCILED = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


class Controllers:
    def __init__(self, kit: ControllerKit, kubelets: Kubelets) -> None:
        self.kit = kit
        self.deployments = DeploymentController(kit)
        self.statefulsets = StatefulSetController(kit)
        self.daemonsets = DaemonSetController(kit)
        self.jobs = JobController(kit, kubelets)
        self._pending: set[tuple[str, str, str]] = set()
        self._generations: dict[str, int] = {}

    def watch(self, event_type: str, rtype: Any, obj: dict[str, Any]) -> None:
        """A store listener that queues a reconcile, like the controllers' informers do; the scenario's own
        operations leave nothing to do by the time it runs, so only objects made through the API are acted on."""
        meta = obj["metadata"]
        if rtype.kind == "Pod":
            owner = controller_reference(meta)
            if event_type == "DELETED" and owner is not None and owner["kind"] in _RECONCILED:
                self._reconcile_soon(owner["kind"], meta["namespace"], owner["name"])
            elif event_type == "ADDED" and (obj.get("status") or {}).get("phase", "Pending") == "Pending":
                self._reconcile_soon("Pod", meta["namespace"], meta["name"])
        elif rtype.kind in _RECONCILED and rtype.group in ("apps", "batch"):
            # Controllers act on creation and on spec changes (a new generation), not on status writes.
            generation = meta.get("generation", 0)
            if event_type == "DELETED":
                self._generations.pop(meta["uid"], None)
            elif self._generations.get(meta["uid"]) != generation:
                self._generations[meta["uid"]] = generation
                if not self.kit.creating:
                    self._reconcile_soon(rtype.kind, meta["namespace"], meta["name"])

    def _reconcile_soon(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        if key in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a store used without an event loop: nothing runs controllers
            return
        self._pending.add(key)
        loop.call_soon(self._reconcile, key)

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        self._pending.discard(key)
        kind, namespace, name = key
        try:
            obj = self.kit.get(kind, namespace, name)
            if obj["metadata"].get("deletionTimestamp"):
                return
            if kind == "Pod":
                self.kit.factory.bind_and_run(obj)
            elif kind == "Deployment":
                self.deployments.reconcile(obj)
            elif kind == "ReplicaSet":
                self.deployments.reconcile_replicaset(obj)
            elif kind == "StatefulSet":
                self.statefulsets.reconcile(obj)
            elif kind == "DaemonSet":
                self.daemonsets.reconcile(obj)
            elif kind == "Job":
                self.jobs.reconcile(obj)
        except ApiError as error:  # deleted or changed meanwhile; the next event reconciles again
            log.debug("reconcile %s %s/%s: %s", kind, namespace, name, error.message)

    def scale(self, kind: str, obj: dict[str, Any]) -> None:
        """Carry out a new ``spec.replicas`` of a Deployment, ReplicaSet or StatefulSet."""
        if kind == "Deployment":
            self.deployments.scale(obj, obj["spec"]["replicas"])
        elif kind == "ReplicaSet":
            self.deployments.reconcile_replicaset(obj)
        elif kind == "StatefulSet":
            self.statefulsets.reconcile(obj)
        else:
            raise ValueError(f"cannot scale a {kind}")

    def delete_and_replace(self, pod: dict[str, Any]) -> None:
        """Delete a pod; a ReplicaSet, StatefulSet or DaemonSet controller replaces it, as in a real cluster."""
        meta = pod["metadata"]
        self.kit.store.delete("v1", "pods", meta["name"], meta["namespace"])
        node = pod["spec"].get("nodeName")
        owner = controller_reference(meta)
        if owner is None or owner["kind"] not in ("ReplicaSet", "StatefulSet", "DaemonSet"):
            return
        try:
            parent = self.kit.get(owner["kind"], meta["namespace"], owner["name"])
        except Exception:  # noqa: BLE001 - the owner is being deleted too: nothing to replace
            return
        if owner["kind"] == "ReplicaSet":
            self.kit.factory.create(meta["namespace"], parent["spec"]["template"], generate_name=f"{owner['name']}-",
                                    owner=parent)
        elif owner["kind"] == "StatefulSet":
            self.statefulsets.create_pod(parent, int(meta["name"].rsplit("-", 1)[1]))
        elif node in self.kit.scheduler.nodes:
            self.daemonsets.create_pod(parent, node)
