"""The Deployment and ReplicaSet controllers: Deployment -> ReplicaSet (``<name>-<pod-template-hash>``) ->
Pods, with the revision annotations, scaling through the newest ReplicaSet, rollouts that hand every replica to
a new ReplicaSet, and the status both kinds report."""

from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.kubelet_status import rfc3339
from kubemeter_sim.scenario.kit import ControllerKit
from kubemeter_sim.scenario.pods import owner_reference, pod_template_hash


class DeploymentController:
    def __init__(self, kit: ControllerKit) -> None:
        self.kit = kit
        self._replicaset_names: dict[str, list[str]] = {}
        """Deployment uid -> its ReplicaSets' names, oldest revision first."""

    def create(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
               started_ago: float = 0.0) -> dict[str, Any]:
        selector = dict(pod_template["metadata"]["labels"])
        deployment = self.kit.create("Deployment", {
            "metadata": {"name": name, "namespace": namespace, "labels": selector,
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod_template,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}})
        self._new_replicaset(deployment, replicas, revision=1, started_ago=started_ago)
        self._refresh_deployment_status(deployment)
        return deployment

    def reconcile(self, deployment: dict[str, Any]) -> None:
        replicas = deployment["spec"].get("replicas", 1)
        sets = self._replicasets_of(deployment)
        newest = sets[-1] if sets else None
        if newest is None or newest["metadata"]["labels"].get("pod-template-hash") != pod_template_hash(
                deployment["spec"]["template"]):
            self._roll_out(deployment, sets)
        elif newest["spec"].get("replicas") != replicas:
            self._scale_replicaset(newest, replicas)
        else:
            return
        self._refresh_deployment_status(deployment)

    def reconcile_replicaset(self, replicaset: dict[str, Any]) -> None:
        self._scale_pods(replicaset, replicaset["spec"].get("replicas", 1))
        self._refresh_replicaset_status(replicaset)

    def scale(self, deployment: dict[str, Any], replicas: int) -> None:
        """``kubectl scale`` of a Deployment: its newest ReplicaSet takes the new count."""
        self._scale_replicaset(self._replicasets_of(deployment)[-1], replicas)
        self._refresh_deployment_status(deployment)

    def rolling_update(self, namespace: str, deployment_name: str) -> dict[str, Any]:
        """``kubectl rollout restart``: a new ReplicaSet takes all replicas, the old one is scaled to 0."""
        deployment = self.kit.get("Deployment", namespace, deployment_name)
        pod_template = deployment["spec"]["template"]
        pod_template["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = rfc3339(
            self.kit.clock())
        deployment = self.kit.store.update("apps/v1", "deployments", deployment)
        deployment.update(apiVersion="apps/v1", kind="Deployment")
        new_set = self._roll_out(deployment, self._replicasets_of(deployment))
        self._refresh_deployment_status(deployment)
        return new_set

    def _new_replicaset(self, deployment: dict[str, Any], replicas: int, *, revision: int,
                        started_ago: float = 0.0) -> dict[str, Any]:
        pod_template = clone(deployment["spec"]["template"])
        template_hash = pod_template_hash(pod_template)
        pod_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = template_hash
        name = f"{deployment['metadata']['name']}-{template_hash}"
        namespace = deployment["metadata"]["namespace"]
        self._replicaset_names.setdefault(deployment["metadata"]["uid"], []).append(name)
        replicaset = self.kit.create("ReplicaSet", {
            "metadata": {"name": name, "namespace": namespace, "labels": pod_template["metadata"]["labels"],
                         "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                         "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
                                         "deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {
                **deployment["spec"]["selector"]["matchLabels"], "pod-template-hash": template_hash}},
                "template": pod_template}})
        for _ in range(replicas):
            self.kit.factory.create(namespace, pod_template, generate_name=f"{name}-", owner=replicaset,
                                    started_ago=self.kit.rng.uniform(0.5, 1.0) * started_ago)
        self._refresh_replicaset_status(replicaset)
        return replicaset

    def _replicasets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The deployment's ReplicaSets that still exist, oldest revision first."""
        found = []
        for name in self._replicaset_names.get(deployment["metadata"]["uid"], ()):
            try:
                found.append(self.kit.get("ReplicaSet", deployment["metadata"]["namespace"], name))
            except ApiError:  # garbage-collected or deleted by hand
                continue
        return found

    def _scale_pods(self, replicaset: dict[str, Any], replicas: int) -> None:
        pods = self.kit.pods.of(replicaset)
        namespace, name = replicaset["metadata"]["namespace"], replicaset["metadata"]["name"]
        for pod in pods[replicas:]:
            self.kit.store.delete("v1", "pods", pod.name, namespace)
        for _ in range(replicas - len(pods)):
            self.kit.factory.create(namespace, replicaset["spec"]["template"], generate_name=f"{name}-",
                                    owner=replicaset)

    def _scale_replicaset(self, replicaset: dict[str, Any], replicas: int) -> None:
        replicaset["spec"]["replicas"] = replicas
        replicaset["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(replicas)
        self.kit.store.update("apps/v1", "replicasets", replicaset)
        self._scale_pods(replicaset, replicas)
        self._refresh_replicaset_status(replicaset)

    def _roll_out(self, deployment: dict[str, Any], old_sets: list[dict[str, Any]]) -> dict[str, Any]:
        """A ReplicaSet for the current template takes every replica; the older ones go to 0."""
        revision = 1 + max((int(rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision", "0"))
                            for rs in old_sets), default=0)
        self.kit.store.patch("apps/v1", "deployments", deployment["metadata"]["name"], {"metadata": {"annotations": {
            "deployment.kubernetes.io/revision": str(revision)}}}, "merge", deployment["metadata"]["namespace"])
        new_set = self._new_replicaset(deployment, deployment["spec"].get("replicas", 1), revision=revision)
        for old in old_sets:
            old["spec"]["replicas"] = 0
            self.kit.store.update("apps/v1", "replicasets", old)
            self._scale_pods(old, 0)
            self._refresh_replicaset_status(old)
        return new_set

    def _refresh_replicaset_status(self, replicaset: dict[str, Any]) -> None:
        count = len(self.kit.pods.of(replicaset))
        self.kit.set_status("ReplicaSet", replicaset["metadata"]["namespace"], replicaset["metadata"]["name"], {
            "replicas": count, "fullyLabeledReplicas": count, "readyReplicas": count, "availableReplicas": count,
            "observedGeneration": replicaset["metadata"].get("generation", 1)})

    def _refresh_deployment_status(self, deployment: dict[str, Any]) -> None:
        deployment = self.kit.get("Deployment", deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        replicasets = self._replicasets_of(deployment)
        total = sum(len(self.kit.pods.of(rs)) for rs in replicasets)
        updated = len(self.kit.pods.of(replicasets[-1])) if replicasets else 0
        now = rfc3339(self.kit.clock())
        self.kit.set_status("Deployment", deployment["metadata"]["namespace"], deployment["metadata"]["name"], {
            "observedGeneration": deployment["metadata"].get("generation", 1), "replicas": total,
            "updatedReplicas": updated, "readyReplicas": total, "availableReplicas": total,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{replicasets[-1]["metadata"]["name"] if replicasets else ""}" has '
                            "successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now}]})
