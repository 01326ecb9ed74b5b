"""Paths and loaders for the real kubelet captures in tests/fixtures/kubelet (see its README), and the
reference reading of text captures through prometheus_client that the tests and the decode bench compare with."""

from __future__ import annotations

import math
from pathlib import Path

from kubemeter.types import ContainerSample, NodeMetrics, PodSample
from prometheus_client.parser import text_string_to_metric_families

KUBELET = Path(__file__).resolve().parent.parent / "fixtures" / "kubelet"

RESOURCE_EKS = "metrics-resource-eks-stable-ersilia-2025-06.txt"
RESOURCE_121 = "metrics-resource-k8s-1.21-kind-metrics-server-e2e.txt"
RESOURCE_128 = "metrics-resource-k8s-1.28-minikube-2023-12.txt"
RESOURCE_KIND_2024 = "metrics-resource-kind-private-cloud-worker-2024-01.txt"
CADVISOR_135 = "metrics-cadvisor-k8s-1.35.0-minikube-containerd2.txt"
PODS_135 = "kubelet-pods-k8s-1.35.0-minikube-containerd2.json"

SUMMARY_2018 = "stats-summary-minikube-2018-03-nri-legacy.json"
SUMMARY_GKE = "stats-summary-gke-2019-11-datadog.json"
SUMMARY_WINDOWS = "stats-summary-eks-windows-2020-04-datadog.json"
SUMMARY_116 = "stats-summary-k8s-1.16.0-minikube-duplicate-containers.json"
SUMMARY_118 = "stats-summary-k8s-1.18.20-minikube-docker.json"
SUMMARY_122 = "stats-summary-k8s-1.22.4-minikube-docker-containers-null.json"
SUMMARY_124 = "stats-summary-k8s-1.24.17-minikube-containerd.json"
SUMMARY_130 = "stats-summary-k8s-1.30.0-minikube-containerd.json"
SUMMARY_135 = "stats-summary-k8s-1.35.0-minikube-containerd2.json"

# (file, pods, containers) as counted in the fixtures README.
RESOURCE_COUNTS = [
    (RESOURCE_EKS, 9, 12),
    (RESOURCE_121, 70, 70),
    (RESOURCE_128, 10, 10),
    (RESOURCE_KIND_2024, 9, 12),
    (CADVISOR_135, 18, 17),  # README: "series for 18 pods"; the 17 containers of the 1.35 summary
]
# Containers after merging duplicates: the 1.16 capture lists 21 entries for 11 real containers.
SUMMARY_COUNTS = [
    (SUMMARY_2018, 8, 12),
    (SUMMARY_GKE, 10, 17),
    (SUMMARY_WINDOWS, 2, 6),
    (SUMMARY_116, 11, 11),
    (SUMMARY_118, 15, 15),
    (SUMMARY_122, 16, 15),
    (SUMMARY_124, 17, 17),
    (SUMMARY_130, 17, 17),
    (SUMMARY_135, 17, 17),
]
RESOURCE_FILES = [name for name, _, _ in RESOURCE_COUNTS]
SUMMARY_FILES = [name for name, _, _ in SUMMARY_COUNTS]


def read(name: str) -> bytes:
    return (KUBELET / name).read_bytes()


def pod_of(metrics: NodeMetrics, namespace: str, name: str) -> PodSample:
    (pod,) = [p for p in metrics.pods if (p.namespace, p.name) == (namespace, name)]
    return pod


def container_of(metrics: NodeMetrics, namespace: str, pod: str, name: str) -> ContainerSample:
    (container,) = [c for c in pod_of(metrics, namespace, pod).containers if c.name == name]
    return container


# -- the reference reading of a text capture (shared with bench/bench_decode.py) ---------------------

FIELDS = {
    "cpu_usage_seconds_total": "cpu_seconds",
    "memory_working_set_bytes": "memory_working_set_bytes",
    "start_time_seconds": "start_time",
}
Key = tuple[str, ...]


def reference_view(text: str) -> dict[Key, dict[str, tuple[float | None, float | None]]]:
    """Series kubemeter reads, as prometheus_client parses them, keyed like the decoder's output."""
    view: dict[Key, dict[str, tuple[float | None, float | None]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            level, _, metric = sample.name.partition("_")
            if level not in ("container", "pod", "node") or metric not in FIELDS:
                continue
            key = _series_key(level, sample.labels)
            if key is None or (key[0] != "container" and metric == "start_time_seconds"):
                continue
            value = float(sample.value) if math.isfinite(sample.value) else None
            view.setdefault(key, {})[FIELDS[metric]] = (value, sample.timestamp)
            if key[0] == "container":  # a container implies its pod, with or without pod_* series
                view.setdefault(("pod", *key[1:3]), {})
    return view


def _series_key(level: str, labels: dict[str, str]) -> Key | None:
    namespace, pod, container = labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", "")
    if level == "node":
        return ("node",)
    if level == "pod":
        return ("pod", namespace, pod)
    if labels.get("cpu", "total") != "total":
        return None
    if container and namespace and pod:
        return ("container", namespace, pod, container)
    if "id" in labels and namespace and pod and not labels.get("name"):  # cadvisor pod cgroup
        return ("pod", namespace, pod)
    return ("node",) if labels.get("id") == "/" else None


def decoded_view(metrics: NodeMetrics) -> dict[Key, object]:
    node = metrics.node
    has_node = (node.cpu_seconds, node.memory_working_set_bytes) != (None, None)
    view: dict[Key, object] = {("node",): node} if has_node else {}
    for pod in metrics.pods:
        view[("pod", pod.namespace, pod.name)] = pod
        for container in pod.containers:
            view[("container", pod.namespace, pod.name, container.name)] = container
    return view


def differences_from_reference(body: bytes, metrics: NodeMetrics) -> list[str]:
    """Every way the decoded samples differ from prometheus_client's reading of ``body``; [] if none."""
    reference = reference_view(body.decode())
    decoded = decoded_view(metrics)
    problems = [f"not in the reference: {key}" for key in decoded.keys() - reference.keys()]
    problems += [f"not decoded: {key}" for key in reference.keys() - decoded.keys()]
    for key, fields in reference.items():
        sample = decoded.get(key)
        if sample is None:
            continue
        for field, (value, _) in fields.items():
            if getattr(sample, field) != value:
                problems.append(f"{key} {field}: {getattr(sample, field)!r} != {value!r}")
        if "cpu_seconds" in fields and sample.timestamp != fields["cpu_seconds"][1]:  # the CPU reading's time
            problems.append(f"{key} timestamp: {sample.timestamp!r} != {fields['cpu_seconds'][1]!r}")
    return problems
