""":class:`Scenario`, the simulated backend's workloads and the operations tests perform on them.

It wires the parts of the package together over one store and one seeded generator, and offers the methods
:class:`kubemeter_sim.real.workloads.RealScenario` offers too (the same names and signatures), each handed to
the part that does it: nodes to the kubelets and the scheduler, workloads to their controllers, pod
restarts to the kubelets.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.catalogue import WORKLOAD_API
from kubemeter_sim.kubelet_status import all_restarted
from kubemeter_sim.scenario.controllers import Controllers
from kubemeter_sim.scenario.kit import ControllerKit
from kubemeter_sim.scenario.kubelets import Kubelets
from kubemeter_sim.scenario.pods import PodFactory, PodIndex, PodInfo
from kubemeter_sim.scenario.scheduler import Scheduler

NodeHook = Callable[[str], Awaitable[tuple[str, int]]]
"""Start a kubelet for a node name; returns its (InternalIP, port)."""
NodeRemovalHook = Callable[[str], Awaitable[None]]


@dataclass
class Scenario:
    store: Store
    start_kubelet: NodeHook
    stop_kubelet: NodeRemovalHook
    seed: int = 0
    kubelet_version: str = "1.30.0"
    clock: Callable[[], float] = time.time
    control_planes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._nodes_created = 0
        self.scheduler = Scheduler()
        self.kubelets = Kubelets(self.store, self.kubelet_version, self.clock)
        self.pods = PodIndex(self.scheduler.count_pod)
        self.factory = PodFactory(self.store, self.scheduler, self.kubelets, self.rng, self.clock)
        self.kit = ControllerKit(self.store, self.pods, self.factory, self.scheduler, self.clock, self.rng)
        self.controllers = Controllers(self.kit, self.kubelets)
        self.store.add_listener(self.pods.follow)
        self.store.add_listener(self.controllers.watch)

    @property
    def nodes(self) -> list[str]:
        return self.scheduler.nodes

    def ensure_namespace(self, name: str) -> None:
        self.kit.ensure_namespace(name)

    def pods_of(self, owner: dict[str, Any]) -> list[PodInfo]:
        """The pods ``owner`` owns, sorted by name."""
        return self.pods.of(owner)

    # -- nodes ----------------------------------------------------------------------------------------------
    def running_pod_count(self) -> int:
        return self.scheduler.running_pod_count()

    @property
    def running_pods_per_node(self) -> Counter[str]:
        """Pods bound to each node that have not finished (what the scheduler balances)."""
        return self.scheduler.pods_per_node

    async def add_node(self, name: str | None = None, *, control_plane: bool = False, taint: bool = True) -> str:
        """Register a node with a running kubelet; every DaemonSet gets a pod on it.

        A control-plane node is tainted NoSchedule (kubeadm's default) unless ``taint`` is false, as on
        single-node clusters.
        """
        number = self._nodes_created
        self._nodes_created += 1
        name = name or ("sim-control-plane" if control_plane else f"sim-worker-{number}")
        ip, port = await self.start_kubelet(name)
        tainted = control_plane and taint
        if control_plane:
            self.control_planes.append(name)
        self.kubelets.register(name, number, ip, port, control_plane=control_plane, tainted=tainted)
        self.scheduler.add_node(name, number, tainted=tainted)
        self.controllers.daemonsets.node_added(name)
        return name

    async def remove_node(self, name: str) -> None:
        """Delete a node: its pods go (controllers replace theirs elsewhere) and its kubelet stops."""
        self.scheduler.remove_node(name)
        if name in self.control_planes:
            self.control_planes.remove(name)
        for pod in self.store.list("v1", "pods", field_selector=f"spec.nodeName={name}"):
            self.controllers.delete_and_replace(pod)
        self.store.delete("v1", "nodes", name)
        await self.stop_kubelet(name)
        self.kubelets.forget(name)

    # -- pods -----------------------------------------------------------------------------------------------
    def report_restart(self, namespace: str, name: str, container_name: str, restart_count: int, started_at: float,
                       reason: str = "OOMKilled") -> None:
        """What the kubelet writes after restarting a container (OOM kill or crash)."""
        self.kubelets.report_restarts(self.store.get("v1", "pods", name, namespace), {container_name: restart_count},
                                      started_at, reason)

    async def restart_pod(self, namespace: str, name: str) -> None:
        """Every container of the pod restarts now: restartCount + 1, counters start again from 0."""
        pod = self.store.get("v1", "pods", name, namespace)
        self.kubelets.report_restarts(pod, all_restarted(pod), self.clock(), "Error")

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; a ReplicaSet, StatefulSet or DaemonSet controller replaces it, as in a real cluster."""
        self.controllers.delete_and_replace(self.store.get("v1", "pods", name, namespace))

    def create_bare_pod(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                        started_ago: float = 0.0) -> dict[str, Any]:
        self.ensure_namespace(namespace)
        return self.factory.create(namespace, pod_template, name=name, started_ago=started_ago)

    def create_static_pod(self, node: str, component: str, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> dict[str, Any]:
        """The mirror pod of a manifest in the node's /etc/kubernetes/manifests: owned by the Node."""
        return self.factory.create_static(node, component, pod_template, started_ago=started_ago)

    # -- workloads ------------------------------------------------------------------------------------------
    def create_deployment(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> dict[str, Any]:
        return self.controllers.deployments.create(namespace, name, replicas, pod_template, started_ago=started_ago)

    async def rolling_update(self, namespace: str, deployment_name: str) -> dict[str, Any]:
        """``kubectl rollout restart``: a new ReplicaSet takes all replicas, the old one is scaled to 0."""
        return self.controllers.deployments.rolling_update(namespace, deployment_name)

    def create_statefulset(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                           started_ago: float = 0.0) -> dict[str, Any]:
        return self.controllers.statefulsets.create(namespace, name, replicas, pod_template, started_ago=started_ago)

    def create_daemonset(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                         started_ago: float = 0.0) -> dict[str, Any]:
        return self.controllers.daemonsets.create(namespace, name, pod_template, started_ago=started_ago)

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        """``kubectl scale``: Deployment (via its newest ReplicaSet), ReplicaSet or StatefulSet."""
        obj = self.kit.get(kind, namespace, name)
        api_version, plural = WORKLOAD_API[kind]
        obj["spec"]["replicas"] = replicas
        self.store.update(api_version, plural, obj)
        self.controllers.scale(kind, obj)

    def create_cronjob(self, namespace: str, name: str, schedule: str, pod_template: dict[str, Any]) -> dict[str, Any]:
        return self.controllers.jobs.create_cronjob(namespace, name, schedule, pod_template)

    async def run_cronjob(self, namespace: str, name: str, *, started_ago: float = 0.0) -> dict[str, Any]:
        """The CronJob controller fires: a Job named after the scheduled minute, with one running pod."""
        return self.controllers.jobs.run_cronjob(namespace, name, started_ago=started_ago)

    async def complete_job(self, namespace: str, job_name: str) -> None:
        """The job's pods exit 0: they turn Succeeded (and vanish from kubelet payloads)."""
        self.controllers.jobs.complete(namespace, job_name)

    async def delete_workload(self, kind: str, namespace: str, name: str) -> None:
        """Delete with background propagation: the garbage collector removes ReplicaSets, Jobs and Pods."""
        api_version, plural = WORKLOAD_API[kind]
        self.store.delete(api_version, plural, name, namespace, propagation_policy="Background")
