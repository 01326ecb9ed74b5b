"""What the simulated nodes' kubelets write to the store: each Node's registration and Ready status, a started
pod's IP and Running status, container restarts, and run-to-completion pods that exited.

The status objects themselves come from :mod:`kubemeter_sim.kubelet_status`, shared with the real control
plane's fake nodes; this module holds the simulator's side: node numbers, addresses and pod CIDRs, and the
writes through the ``status`` subresource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.kubelet_status import (
    CONTROL_PLANE_TAINT, node_labels, node_status, restarted_container_statuses, running_pod_status,
    succeeded_pod_status,
)


def _node_network(number: int) -> str:
    """The first three octets of the ``number``-th node's pod CIDR (10.244.0.0/24, 10.244.1.0/24, ...)."""
    return f"10.{244 + number // 256}.{number % 256}"


class Kubelets:
    def __init__(self, store: Store, kubelet_version: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.kubelet_version = kubelet_version
        self.clock = clock
        self._numbers: dict[str, int] = {}
        self._node_ips: dict[str, str] = {}
        self._next_pod_ip: dict[str, int] = {}

    def register(self, name: str, number: int, ip: str, port: int, *, control_plane: bool, tainted: bool) -> None:
        """The kubelet registers its Node (labels, pod CIDR, kubeadm's control-plane taint when ``tainted``) and
        reports it Ready at ``ip:port``."""
        labels = node_labels(name, number, control_plane=control_plane)
        spec: dict[str, Any] = {"podCIDR": f"{_node_network(number)}.0/24"}
        spec["podCIDRs"] = [spec["podCIDR"]]
        if tainted:
            spec["taints"] = [dict(CONTROL_PLANE_TAINT)]
        self.store.create("v1", "nodes", {"metadata": {"name": name, "labels": labels, "annotations": {
            "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": spec})
        status = node_status(name, ip, port, self.kubelet_version, self.clock())
        self.store.patch("v1", "nodes", name, {"status": status}, "merge", subresource="status")
        self._numbers[name] = number
        self._node_ips[name] = ip
        self._next_pod_ip[name] = 1

    def forget(self, name: str) -> None:
        for table in (self._numbers, self._next_pod_ip, self._node_ips):
            table.pop(name, None)

    def _pod_ip(self, node: str, host_network: bool) -> str:
        if host_network:
            return self._node_ips[node]
        index = self._next_pod_ip[node]
        self._next_pod_ip[node] = index + 1
        return f"{_node_network(self._numbers[node])}.{index % 254 + 1}"

    def mark_running(self, pod: dict[str, Any], started_at: float) -> None:
        """The pod's kubelet started it at ``started_at``: an IP, and every container running."""
        node = pod["spec"]["nodeName"]
        status = running_pod_status(pod, self._node_ips[node], self._pod_ip(node, bool(pod["spec"].get("hostNetwork"))),
                                    started_at)
        self._write_status(pod, status)

    def report_restarts(self, pod: dict[str, Any], restarts: dict[str, int], started_at: float, reason: str) -> None:
        """The kubelet restarted the containers in ``restarts`` (name: new restartCount) at ``started_at``."""
        self._write_status(pod, {"containerStatuses": restarted_container_statuses(pod, restarts, started_at, reason)})

    def mark_succeeded(self, pod: dict[str, Any]) -> None:
        """Every container of the run-to-completion pod exited 0 now."""
        self._write_status(pod, succeeded_pod_status(pod, self.clock()))

    def _write_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.store.patch("v1", "pods", meta["name"], {"status": status}, "merge", meta["namespace"],
                         subresource="status")
