"""The scenario's workloads on a real API server: created as a user would (Deployments, StatefulSets,
DaemonSets, CronJobs, Jobs, bare pods) and left to the real controllers, scheduler and garbage collector;
static pods are mirror pods created by their node's fake kubelet.

Same methods as :class:`kubemeter_sim.scenario.Scenario`, so :func:`kubemeter_sim.catalogue.populate_mixed`
builds the same cluster on both backends. Differences, by necessity: ``started_ago`` cannot backdate anything
on a real server (pods start now), and CronJobs are created suspended so the real CronJob controller never
starts a Job in the middle of a test (``run_cronjob`` starts one as the controller would).
"""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

from kubemeter_sim.catalogue import WORKLOAD_API
from kubemeter_sim.kubelet_status import all_restarted, restarted_container_statuses, rfc3339, succeeded_pod_status
from kubemeter_sim.real.nodes import FakeNodes
from kubemeter_sim.real.rest import MERGE_PATCH, Rest, RestError, collection, wait_for

SETTLE_SECONDS = 120.0
UNSTARTED = "status.phase!=Running,status.phase!=Succeeded"
PAGE = 500
"""Pods per page when the settle check lists them all."""


def path(kind: str, namespace: str | None = None, name: str = "") -> str:
    """The collection (all namespaces when ``namespace`` is None), or one object of it."""
    return collection(*WORKLOAD_API[kind], namespace) + (f"/{name}" if name else "")


class RealScenario:
    def __init__(self, rest: Rest, nodes: FakeNodes, *, seed: int = 0) -> None:
        self.rest = rest
        self.fake_nodes = nodes
        self.seed = seed
        self.nodes: list[str] = []
        self.control_planes: list[str] = []
        self._namespaces: set[str] = set()

    async def _create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": WORKLOAD_API[kind][0], "kind": kind, **body}
        body["metadata"]["namespace"] = namespace
        return await self.rest.create(path(kind, namespace), body)

    async def ensure_namespace(self, name: str) -> None:
        """The namespace, once its ``default`` ServiceAccount exists (pods are refused before that)."""
        if name in self._namespaces:
            return
        await self.rest.apply_or_keep("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": name}})

        async def has_default_account() -> bool:
            try:
                return bool(await self.rest.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"))
            except RestError as error:
                if error.status == 404:
                    return False
                raise
        await wait_for(has_default_account, SETTLE_SECONDS, f"ServiceAccount default in namespace {name}")
        self._namespaces.add(name)

    # -- workloads -------------------------------------------------------------------------------------------
    async def create_deployment(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                                started_ago: float = 0.0) -> dict[str, Any]:
        await self.ensure_namespace(namespace)
        selector = dict(pod_template["metadata"]["labels"])
        return await self._create("Deployment", namespace, {
            "metadata": {"name": name, "labels": selector},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod_template}})

    async def create_statefulset(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                                 started_ago: float = 0.0) -> dict[str, Any]:
        await self.ensure_namespace(namespace)
        selector = dict(pod_template["metadata"]["labels"])
        return await self._create("StatefulSet", namespace, {
            "metadata": {"name": name, "labels": selector},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": selector},
                     "template": pod_template}})

    async def create_daemonset(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                               started_ago: float = 0.0) -> dict[str, Any]:
        await self.ensure_namespace(namespace)
        selector = dict(pod_template["metadata"]["labels"])
        pod_template = copy.deepcopy(pod_template)
        pod_template["spec"]["tolerations"] = [{"operator": "Exists"}]  # like kube-proxy: runs everywhere
        return await self._create("DaemonSet", namespace, {
            "metadata": {"name": name, "labels": selector},
            "spec": {"selector": {"matchLabels": selector}, "template": pod_template}})

    async def create_cronjob(self, namespace: str, name: str, schedule: str,
                             pod_template: dict[str, Any]) -> dict[str, Any]:
        await self.ensure_namespace(namespace)
        pod_template = copy.deepcopy(pod_template)
        pod_template["spec"]["restartPolicy"] = "OnFailure"
        return await self._create("CronJob", namespace, {
            "metadata": {"name": name},
            "spec": {"schedule": schedule, "suspend": True, "jobTemplate": {"spec": {"template": pod_template}}}})

    async def run_cronjob(self, namespace: str, name: str, *, started_ago: float = 0.0) -> dict[str, Any]:
        """What the CronJob controller does when the schedule fires: a Job named after the scheduled time
        (minutes since the epoch), owned by the CronJob."""
        cronjob = await self.rest.get(path("CronJob", namespace, name))
        minute = int((time.time() - started_ago) // 60)
        existing = {job["metadata"]["name"] for job in (await self.rest.get(path("Job", namespace)))["items"]}
        while f"{name}-{minute}" in existing:
            minute += 1
        return await self._create("Job", namespace, {
            "metadata": {"name": f"{name}-{minute}", "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": cronjob["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}],
                "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(minute * 60)}},
            "spec": {"template": copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"]["template"])}})

    async def complete_job(self, namespace: str, job_name: str) -> None:
        """The job's pods exit 0; the real Job controller then marks the Job complete."""
        selector = f"batch.kubernetes.io/job-name={job_name}"

        async def running() -> list[dict[str, Any]]:
            pods = await self._pods(namespace, selector)
            return pods if pods and all((p.get("status") or {}).get("phase") == "Running" for p in pods) else []
        for pod in await wait_for(running, SETTLE_SECONDS, f"the pod of Job {namespace}/{job_name} running"):
            meta = pod["metadata"]
            await self.rest.patch(f"/api/v1/namespaces/{namespace}/pods/{meta['name']}/status",
                                  {"status": succeeded_pod_status(pod, time.time())}, MERGE_PATCH)

        async def complete() -> bool:
            job = await self.rest.get(path("Job", namespace, job_name))
            return any(c["type"] == "Complete" and c["status"] == "True"
                       for c in (job.get("status") or {}).get("conditions") or [])
        await wait_for(complete, SETTLE_SECONDS, f"Job {namespace}/{job_name} complete")

    async def create_bare_pod(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                              started_ago: float = 0.0) -> dict[str, Any]:
        await self.ensure_namespace(namespace)
        pod = copy.deepcopy(pod_template)
        pod["metadata"]["name"] = name
        return await self._create("Pod", namespace, pod)

    async def create_static_pod(self, node: str, component: str, pod_template: dict[str, Any], *,
                                started_ago: float = 0.0) -> dict[str, Any]:
        pod = copy.deepcopy(pod_template)
        pod["apiVersion"], pod["kind"] = "v1", "Pod"
        pod["metadata"].update(name=component, namespace="kube-system")
        pod["spec"].update(hostNetwork=True, priorityClassName="system-node-critical",
                           tolerations=[{"operator": "Exists", "effect": "NoExecute"}])
        return await self.fake_nodes.create_mirror_pod(node, pod, hashlib.md5(f"{node}/{component}".encode()).hexdigest())

    # -- changes ---------------------------------------------------------------------------------------------
    # Changes return once the controllers have carried them out (as ``kubectl rollout status`` waits), so a
    # test sees the same settled cluster after them as on the simulator, where they are synchronous.
    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        await self.rest.patch(path(kind, namespace, name) + "/scale", {"spec": {"replicas": replicas}})
        await self.wait_settled()

    async def rolling_update(self, namespace: str, deployment_name: str) -> dict[str, Any]:
        """``kubectl rollout restart``: the Deployment controller makes a new ReplicaSet and retires the old."""
        deployment = await self.rest.patch(path("Deployment", namespace, deployment_name), {"spec": {"template": {
            "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": rfc3339(time.time())}}}}})
        await self.wait_settled()
        return deployment

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self.rest.delete(path("Pod", namespace, name))

    async def restart_pod(self, namespace: str, name: str) -> None:
        """What the pod's kubelet reports after restarting every container: its fake kubelet then starts their
        counters again from 0 (it follows the pod through the watch)."""
        pod = await self.rest.get(path("Pod", namespace, name))
        statuses = restarted_container_statuses(pod, all_restarted(pod), time.time(), "Error")
        await self.rest.patch(path("Pod", namespace, name) + "/status",
                              {"metadata": {"uid": pod["metadata"]["uid"]}, "status": {"containerStatuses": statuses}},
                              MERGE_PATCH)

    async def remove_node(self, name: str) -> None:
        """The node and its kubelet go; its pods are deleted as the pod garbage collector deletes the pods of a
        node that no longer exists (at once here, not after its 40 s quarantine), and controllers replace theirs."""
        await self.fake_nodes.remove(name)
        self.nodes.remove(name)
        if name in self.control_planes:
            self.control_planes.remove(name)
        for pod in await self._pods(field_selector=f"spec.nodeName={name}"):
            meta = pod["metadata"]
            try:
                await self.rest.delete(path("Pod", meta["namespace"], meta["name"]), gracePeriodSeconds=0)
            except RestError as error:
                if error.status != 404:  # a controller may have deleted it first
                    raise

    async def delete_workload(self, kind: str, namespace: str, name: str) -> None:
        """Background propagation: the real garbage collector removes ReplicaSets, Jobs and Pods. Returns once
        the pods the workload selected are gone, as the simulator's deletion is done when it returns."""
        workload = await self.rest.delete(path(kind, namespace, name), propagationPolicy="Background")
        labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            return
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))

        async def gone() -> bool:
            return not await self._pods(namespace, selector)
        await wait_for(gone, SETTLE_SECONDS, f"the pods of {kind} {namespace}/{name} deleted")

    # -- observation -----------------------------------------------------------------------------------------
    async def _pods(self, namespace: str | None = None, label_selector: str = "",
                    field_selector: str = "") -> list[dict[str, Any]]:
        params = {key: value for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector))
                  if value}
        return (await self.rest.get(path("Pod", namespace), **params))["items"]

    async def running_pod_count(self) -> int:
        """Pods running once everything created so far has settled (what ``populate_mixed`` fills up)."""
        await self.wait_settled()
        return sum(1 for p in await self._pods() if (p.get("status") or {}).get("phase") == "Running")

    async def settled(self) -> bool:
        """Every workload has all its pods, and every pod has been started by its fake kubelet."""
        for kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            for obj in (await self.rest.get(path(kind)))["items"]:
                status, wanted = obj.get("status") or {}, (obj.get("spec") or {}).get("replicas", 1)
                if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
                    return False
                if (status.get("readyReplicas") or 0) != wanted or (status.get("replicas") or 0) != wanted:
                    return False
        for obj in (await self.rest.get(path("DaemonSet")))["items"]:
            status = obj.get("status") or {}
            if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
                return False
            if status.get("numberReady", 0) != len(self.nodes) or status.get("desiredNumberScheduled") != len(self.nodes):
                return False
        # The API server filters by phase: one small answer while pods are still starting. The full list (for
        # pods being deleted, which no field selector finds) only once they all run, and in pages: a 1,000-node
        # bench failed in one unpaged LIST of 30,000 pods every 0.25 s (the client's 30 s timeout), with this
        # process's fake kubelets starved past their Leases at the same moment.
        if (await self.rest.get(path("Pod"), fieldSelector=UNSTARTED, limit="1"))["items"]:
            return False
        page: dict[str, str] = {}
        while True:
            answer = await self.rest.get(path("Pod"), limit=str(PAGE), **page)
            if any(p["metadata"].get("deletionTimestamp") for p in answer["items"]):
                return False
            if not (token := answer["metadata"].get("continue")):
                return True
            page = {"continue": token}

    async def wait_settled(self, timeout: float = SETTLE_SECONDS) -> None:
        await wait_for(self.settled, timeout, "workloads settled (every pod Running)", interval=0.25)
