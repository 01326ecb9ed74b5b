"""What a kubelet writes to the API server, as pure functions: its Node's labels and status, and a pod's status.

Shared by the simulated cluster's scenario (writing into its store) and by the fake kubelets of the real
control plane (writing through the API), so both backends show the same objects.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
"""A kubelet registers its Node with this taint; the node-lifecycle controller removes it once Ready."""
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
"""The control-plane node's role label, and the key of its NoSchedule taint (kubeadm's)."""
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}
_ZONES = ("sim-zone-a", "sim-zone-b", "sim-zone-c")


def rfc3339(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def node_labels(name: str, number: int, *, control_plane: bool) -> dict[str, str]:
    """The labels a kubelet registers the ``number``-th node with: architecture, OS, hostname, a zone in
    turn, and the control-plane role."""
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "topology.kubernetes.io/zone": _ZONES[number % len(_ZONES)]}
    if control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
    return labels


def node_status(name: str, ip: str, port: int, kubelet_version: str, now: float) -> dict[str, Any]:
    """A Ready node's status, with the kubelet's address and port (``daemonEndpoints``)."""
    stamp = rfc3339(now)
    capacity = {"cpu": "8", "ephemeral-storage": "1055762868Ki", "hugepages-2Mi": "0", "memory": "16393216Ki",
                "pods": "110"}
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "allocatable": capacity, "capacity": capacity,
        "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp} for t, s, r, m in conditions],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"architecture": "amd64", "bootID": hashlib.md5(name.encode()).hexdigest(),
                     "containerRuntimeVersion": "containerd://1.7.27", "kernelVersion": "6.8.0-sim",
                     "kubeProxyVersion": "", "kubeletVersion": "v" + kubelet_version.lstrip("v"),
                     "machineID": hashlib.sha1(name.encode()).hexdigest()[:32], "operatingSystem": "linux",
                     "osImage": "Debian GNU/Linux 12 (bookworm)",
                     "systemUUID": hashlib.md5(name.encode()).hexdigest()},
    }


def running_pod_status(pod: dict[str, Any], host_ip: str, pod_ip: str, started_at: float) -> dict[str, Any]:
    """The status a kubelet reports once every container of ``pod`` runs (init containers completed)."""
    meta, spec = pod["metadata"], pod["spec"]
    start = rfc3339(started_at)
    statuses = [{"name": c["name"], "state": {"running": {"startedAt": rfc3339(started_at + 1)}},
                 "lastState": {}, "ready": True, "restartCount": 0, "image": c.get("image", ""),
                 "imageID": c.get("image", "").split(":")[0] + "@sha256:"
                            + hashlib.sha256(c.get("image", "").encode()).hexdigest(),
                 "containerID": "containerd://" + hashlib.sha256(f"{meta['uid']}/{c['name']}".encode()).hexdigest(),
                 "started": True}
                for c in spec["containers"]]
    status: dict[str, Any] = {
        "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": start, "containerStatuses": statuses,
        "conditions": [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": start}
                       for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                 "PodScheduled")],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            {"name": c["name"], "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start,
                                                         "finishedAt": start}},
             "lastState": {}, "ready": True, "restartCount": 0, "image": c.get("image", ""), "imageID": "",
             "started": False} for c in spec["initContainers"]]
    return status


def succeeded_pod_status(pod: dict[str, Any], finished_at: float) -> dict[str, Any]:
    """A run-to-completion pod whose containers all exited 0 (what the Job controller counts)."""
    status = pod.get("status") or {}
    end = rfc3339(finished_at)
    statuses = []
    for container_status in status.get("containerStatuses") or []:
        started = ((container_status.get("state") or {}).get("running") or {}).get("startedAt", end)
        statuses.append({**container_status, "ready": False, "started": False, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": end}}})
    conditions = [{**c, "status": "False", "reason": "PodCompleted", "lastTransitionTime": end}
                  if c.get("type") in ("Ready", "ContainersReady") else c for c in status.get("conditions") or []]
    return {"phase": "Succeeded", "containerStatuses": statuses, "conditions": conditions}


def restarted_container_statuses(pod: dict[str, Any], restarts: dict[str, int], started_at: float,
                                 reason: str = "OOMKilled") -> list[dict[str, Any]]:
    """The pod's containerStatuses after the kubelet restarted the containers in ``restarts`` (name: new
    restartCount) at ``started_at``: the old run in ``lastState.terminated``, a new one running."""
    statuses = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status["name"] in restarts:
            previous = ((status.get("state") or {}).get("running") or {}).get("startedAt", rfc3339(started_at))
            status = {**status, "restartCount": restarts[status["name"]],
                      "lastState": {"terminated": {"exitCode": 137 if reason == "OOMKilled" else 1, "reason": reason,
                                                   "startedAt": previous, "finishedAt": rfc3339(started_at)}},
                      "state": {"running": {"startedAt": rfc3339(started_at)}}}
        statuses.append(status)
    return statuses


def all_restarted(pod: dict[str, Any]) -> dict[str, int]:
    """Every container of the pod with its next restart count (``restarted_container_statuses``' argument)."""
    return {s["name"]: int(s.get("restartCount", 0)) + 1 for s in (pod.get("status") or {}).get("containerStatuses") or []}
