"""The StatefulSet and DaemonSet controllers: a StatefulSet's pods ``<name>-<ordinal>`` with their stable
hostnames and revision labels; a DaemonSet's one pod per node, pinned by node affinity, a new node included;
and the status each kind reports."""

from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.scenario.kit import ControllerKit
from kubemeter_sim.scenario.pods import pod_template_hash


class StatefulSetController:
    def __init__(self, kit: ControllerKit) -> None:
        self.kit = kit

    def create(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
               started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        statefulset = self.kit.create("StatefulSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": selector},
                     "template": pod_template, "podManagementPolicy": "OrderedReady",
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}})
        for ordinal in range(replicas):
            self.create_pod(statefulset, ordinal, started_ago)
        self._refresh_status(statefulset)
        return statefulset

    def reconcile(self, statefulset: dict[str, Any]) -> None:
        """Ordinals below ``spec.replicas`` that have no pod get one; pods at or above it go."""
        replicas = statefulset["spec"].get("replicas", 1)
        existing = {p.name for p in self.kit.pods.of(statefulset)}
        name = statefulset["metadata"]["name"]
        for ordinal in range(replicas):
            if f"{name}-{ordinal}" not in existing:
                self.create_pod(statefulset, ordinal)
        for pod_name in existing:
            if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                self.kit.store.delete("v1", "pods", pod_name, statefulset["metadata"]["namespace"])
        self._refresh_status(statefulset)

    def create_pod(self, statefulset: dict[str, Any], ordinal: int, started_ago: float = 0.0) -> None:
        name = statefulset["metadata"]["name"]
        revision = f"{name}-{pod_template_hash(statefulset['spec']['template'])}"
        self.kit.factory.create(statefulset["metadata"]["namespace"], statefulset["spec"]["template"],
                                name=f"{name}-{ordinal}", owner=statefulset, hostname=f"{name}-{ordinal}",
                                started_ago=started_ago,
                                labels={"apps.kubernetes.io/pod-index": str(ordinal),
                                        "controller-revision-hash": revision,
                                        "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}"})

    def _refresh_status(self, statefulset: dict[str, Any]) -> None:
        count = len(self.kit.pods.of(statefulset))
        self.kit.set_status("StatefulSet", statefulset["metadata"]["namespace"], statefulset["metadata"]["name"], {
            "replicas": count, "readyReplicas": count, "currentReplicas": count, "updatedReplicas": count,
            "availableReplicas": count, "observedGeneration": statefulset["metadata"].get("generation", 1)})


class DaemonSetController:
    def __init__(self, kit: ControllerKit) -> None:
        self.kit = kit

    def create(self, namespace: str, name: str, pod_template: dict[str, Any], *,
               started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        pod_template = clone(pod_template)
        pod_template["spec"]["tolerations"] = [{"operator": "Exists"}]  # like kube-proxy: runs everywhere
        daemonset = self.kit.create("DaemonSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector},
            "spec": {"selector": {"matchLabels": selector}, "template": pod_template,
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}})
        for node in self.kit.scheduler.nodes:
            self.create_pod(daemonset, node, started_ago)
        self._refresh_status(daemonset)
        return daemonset

    def reconcile(self, daemonset: dict[str, Any]) -> None:
        covered = {p.node for p in self.kit.pods.of(daemonset)}
        for node in self.kit.scheduler.nodes:
            if node not in covered:
                self.create_pod(daemonset, node)
        self._refresh_status(daemonset)

    def node_added(self, node: str) -> None:
        """Every DaemonSet gets a pod on the new node."""
        for daemonset in self.kit.store.list("apps/v1", "daemonsets"):
            daemonset.update(apiVersion="apps/v1", kind="DaemonSet")
            self.create_pod(daemonset, node)
            self._refresh_status(daemonset)

    def create_pod(self, daemonset: dict[str, Any], node: str, started_ago: float = 0.0) -> None:
        pod_template = clone(daemonset["spec"]["template"])
        pod_template["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
        name = daemonset["metadata"]["name"]
        self.kit.factory.create(daemonset["metadata"]["namespace"], pod_template, generate_name=f"{name}-",
                                owner=daemonset, node=node, started_ago=started_ago,
                                labels={"controller-revision-hash": pod_template_hash(daemonset["spec"]["template"]),
                                        "pod-template-generation": "1"})

    def _refresh_status(self, daemonset: dict[str, Any]) -> None:
        count = len(self.kit.pods.of(daemonset))
        self.kit.set_status("DaemonSet", daemonset["metadata"]["namespace"], daemonset["metadata"]["name"], {
            "currentNumberScheduled": count, "desiredNumberScheduled": count, "numberReady": count,
            "numberAvailable": count, "updatedNumberScheduled": count, "numberMisscheduled": 0,
            "observedGeneration": daemonset["metadata"].get("generation", 1)})
