"""The CronJob and Job controllers: CronJob -> Job (``<name>-<scheduled minute>``) -> Pod, the Job's pod with
the job-name and controller-uid labels, and the status both kinds report as a Job runs and completes."""

from __future__ import annotations

from typing import Any

from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.kubelet import parse_time
from kubemeter_sim.kubelet_status import rfc3339
from kubemeter_sim.scenario.kit import ControllerKit
from kubemeter_sim.scenario.kubelets import Kubelets
from kubemeter_sim.scenario.pods import owner_reference

_COMPLETE_CONDITIONS = (
    ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
    ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
)


class JobController:
    def __init__(self, kit: ControllerKit, kubelets: Kubelets) -> None:
        self.kit = kit
        self.kubelets = kubelets
        """Who reports a job's pods exited."""

    def create_cronjob(self, namespace: str, name: str, schedule: str, pod_template: dict[str, Any]) -> dict[str, Any]:
        pod_template = clone(pod_template)
        pod_template["spec"]["restartPolicy"] = "OnFailure"
        return self.kit.create("CronJob", {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {}, "spec": {"template": pod_template}}}})

    def run_cronjob(self, namespace: str, name: str, *, started_ago: float = 0.0) -> dict[str, Any]:
        """The CronJob controller fires: a Job named after the scheduled minute, with one running pod (its containers
        running for ``started_ago`` seconds). The scheduled time is never before the CronJob's creation nor after
        now, and the Job's times follow its own creation, as on a real server (which backdates nothing)."""
        cronjob = self.kit.get("CronJob", namespace, name)
        existing = {job["metadata"]["name"] for job in self.kit.store.list("batch/v1", "jobs", namespace)}
        now = self.kit.clock()
        created = parse_time(cronjob["metadata"]["creationTimestamp"])
        minute = int(max(now - started_ago, created) // 60)
        while f"{name}-{minute}" in existing:
            minute += 1
        job_name = f"{name}-{minute}"
        scheduled = rfc3339(min(max(minute * 60, created), now))
        pod_template = clone(cronjob["spec"]["jobTemplate"]["spec"]["template"])
        job = self.kit.create("Job", {
            "metadata": {"name": job_name, "namespace": namespace, "ownerReferences": [owner_reference(cronjob)],
                         "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": scheduled}},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                     "template": pod_template}})
        self.start(job, started_ago)
        self.kit.set_status("CronJob", namespace, name, {
            "active": [{"kind": "Job", "namespace": namespace, "name": job_name, "uid": job["metadata"]["uid"],
                        "apiVersion": "batch/v1"}],
            "lastScheduleTime": scheduled})
        return job

    def reconcile(self, job: dict[str, Any]) -> None:
        """A Job made through the API that has neither pods nor finished gets its pod."""
        if not self.kit.pods.of(job) and not (job.get("status") or {}).get("completionTime"):
            self.start(job, started_ago=0.0)

    def start(self, job: dict[str, Any], started_ago: float) -> None:
        """The Job controller creates the job's pod with the job-name and controller-uid labels."""
        namespace, job_name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
        job_labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": job_name,
                      "controller-uid": uid, "job-name": job_name}
        pod_template = clone(job["spec"]["template"])
        pod_template.setdefault("metadata", {})
        self.kit.factory.create(namespace, pod_template, generate_name=f"{job_name}-", owner=job, labels=job_labels,
                                started_ago=started_ago)
        # The job controller starts it when it first syncs it, after its creation: the pod's containers may have
        # run longer (``started_ago``: the kubelet's counters), yet the Job's DURATION never exceeds its AGE.
        self.kit.set_status("Job", namespace, job_name, {
            "active": 1, "startTime": job["metadata"]["creationTimestamp"], "ready": 1, "terminating": 0,
            "uncountedTerminatedPods": {}})

    def complete(self, namespace: str, job_name: str) -> None:
        """The job's pods exit 0: they turn Succeeded (and vanish from kubelet payloads)."""
        job = self.kit.get("Job", namespace, job_name)
        started = (job.get("status") or {}).get("startTime") or job["metadata"]["creationTimestamp"]
        now = rfc3339(max(self.kit.clock(), parse_time(started)))  # completionTime >= startTime
        for info in self.kit.pods.of(job):
            self.kubelets.mark_succeeded(self.kit.store.get("v1", "pods", info.name, namespace))
        self.kit.set_status("Job", namespace, job_name, {
            "active": None, "ready": 0, "succeeded": 1, "completionTime": now,
            "conditions": [{"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                            "reason": r, "message": m} for t, r, m in _COMPLETE_CONDITIONS]})
