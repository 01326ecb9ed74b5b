"""Simulated kubelet bodies must look like the real captures in tests/fixtures/kubelet/, byte for byte in style."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubemeter_sim import payloads
from kubemeter_sim.kubelet import Kubelet
from kubemeter_sim.payloads import go_float

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubelet"
STABLE_FIXTURE = FIXTURES / "metrics-resource-eks-stable-ersilia-2025-06.txt"
ALPHA_FIXTURES = [FIXTURES / "metrics-resource-k8s-1.28-minikube-2023-12.txt",
                  FIXTURES / "metrics-resource-kind-private-cloud-worker-2024-01.txt"]
SAMPLE_LINE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)(?: (\d+))?$")
NOW = 1_795_000_000.0


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _pod(index: int, node: str, *, limits: bool, volumes: bool = True) -> dict:
    started = _rfc3339(NOW - 3600 - index)
    names = ["app", "sidecar", "exporter"][: 1 + index % 3]
    return {
        "metadata": {"name": f"web-{index}", "namespace": "shop" if index % 2 else "default", "uid": f"uid-{index}",
                     "creationTimestamp": started, "annotations": {"sim.kubemeter.io/profile": "steady"}},
        "spec": {"nodeName": node,
                 "containers": [{"name": n, "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                          **({"limits": {"memory": "256Mi"}} if limits else {})}}
                                for n in names],
                 "volumes": [{"name": f"kube-api-access-x{index}"}] if volumes else []},
        "status": {"phase": "Running", "startTime": started,
                   "containerStatuses": [{"name": n, "restartCount": 0, "started": True,
                                          "state": {"running": {"startedAt": started}}} for n in names]},
    }


def _kubelet(version: str, pods: int = 12) -> Kubelet:
    kubelet = Kubelet("node-a", "127.1.0.1", 10250, version, authorize=lambda *a, **k: (True, "test"))
    for index in range(pods):
        kubelet.sync_pod(_pod(index, "node-a", limits=index % 4 != 0, volumes=index % 5 != 0))
    return kubelet


def _render(kubelet: Kubelet, path: str) -> bytes:
    rendered = kubelet.render(path, NOW)
    assert rendered is not None
    return rendered[0]


def _shape(text: str) -> dict:
    """What a parser and a careful reader see in a /metrics/resource body."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    helps = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, rest = line[7:].partition(" ")
            helps[name] = rest.split(" ", 1)[0]
    timestamped: dict[str, set[bool]] = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            match = SAMPLE_LINE.match(line)
            assert match, f"malformed sample line {line!r}"
            timestamped.setdefault(match.group(1), set()).add(match.group(4) is not None)
    return {
        "families": sorted(families),
        "types": {name: f.type for name, f in families.items()},
        "labels": {name: sorted({tuple(s.labels) for s in f.samples}) for name, f in families.items()},
        "help_prefix": helps,
        "timestamped": timestamped,
    }


@pytest.mark.parametrize(("version", "fixtures"), [("1.30.0", [STABLE_FIXTURE]), ("1.28.3", ALPHA_FIXTURES)])
def test_metrics_resource_has_the_structure_of_real_captures(version: str, fixtures: list[Path]) -> None:
    simulated = _shape(_render(_kubelet(version), "/metrics/resource").decode())
    for fixture in fixtures:
        real = _shape(fixture.read_text())
        assert simulated == real, fixture.name


@pytest.mark.parametrize("version", ["1.30.0", "1.28.3"])
def test_metrics_resource_text_layout(version: str) -> None:
    text = _render(_kubelet(version), "/metrics/resource").decode()
    assert text.endswith("\n") and not text.endswith("\n\n")
    names = [line.split(" ")[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert names == sorted(names)
    for line in text.splitlines():
        if line.startswith("container_"):
            assert re.search(r'\{container="[^"]+",namespace="[^"]+",pod="[^"]+"\}', line)
    # Series inside a family are sorted by label values, as client_golang writes them.
    cpu_lines = [line for line in text.splitlines() if line.startswith("container_cpu_usage_seconds_total{")]
    assert cpu_lines == sorted(cpu_lines)


def test_alpha_start_time_carries_its_own_value_as_timestamp_and_stable_has_none() -> None:
    alpha = _render(_kubelet("1.28.3"), "/metrics/resource").decode()
    stable = _render(_kubelet("1.30.0"), "/metrics/resource").decode()
    for line in alpha.splitlines():
        if line.startswith("container_start_time_seconds{"):
            _, value, stamp = line.rsplit(" ", 2)
            assert int(stamp) == int(float(value) * 1000)
    assert all(len(line.split("} ")[1].split(" ")) == 1
               for line in stable.splitlines() if line.startswith("container_start_time_seconds{"))


def test_sample_timestamps_differ_between_container_pod_and_node_series() -> None:
    text = _render(_kubelet("1.30.0"), "/metrics/resource").decode()
    stamps = {prefix: {line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(prefix)}
              for prefix in ("container_cpu", "pod_cpu", "node_cpu")}
    assert len(stamps["container_cpu"]) > 1 and len(stamps["pod_cpu"]) > 1
    assert stamps["node_cpu"].isdisjoint(stamps["pod_cpu"])


@pytest.mark.parametrize("fixture", [STABLE_FIXTURE, *ALPHA_FIXTURES], ids=lambda p: p.name)
def test_go_float_reproduces_every_number_of_real_captures(fixture: Path) -> None:
    for line in fixture.read_text().splitlines():
        if not line.startswith("#"):
            value = SAMPLE_LINE.match(line).group(3)  # type: ignore[union-attr]
            assert go_float(float(value)) == value


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"), (4.0628224e7, "4.0628224e+07"), (1.7506078418297591e9, "1.7506078418297591e+09"),
    (40.384910049, "40.384910049"), (999999.0, "999999"), (1e6, "1e+06"), (5e-5, "5e-05"), (0.0001, "0.0001"),
    (-2.5, "-2.5"), (1e21, "1e+21"), (123456.5, "123456.5"), (float("inf"), "+Inf"),
])
def test_go_float_matches_strconv_format_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_pod_series_are_not_the_exact_sum_of_their_containers() -> None:
    reading = _kubelet("1.30.0").read(NOW)
    memory_differs = [p for p in reading.pods
                      if p.memory_working_set_bytes != sum(c.memory_working_set_bytes for c in p.containers)]
    cpu_differs = [p for p in reading.pods if p.cpu_seconds != sum(c.cpu_seconds for c in p.containers)]
    assert memory_differs and cpu_differs


def _keys(objects: list[dict]) -> set[str]:
    return set().union(*(o.keys() for o in objects))


def _summary_key_sets(document: dict) -> dict[str, set[str]]:
    pods = document["pods"]
    containers = [c for p in pods for c in p["containers"] or []]
    return {
        "top": set(document),
        "node": set(document["node"]),
        "system": _keys(document["node"]["systemContainers"]),
        "node.cpu": set(document["node"]["cpu"]),
        "node.memory": set(document["node"]["memory"]),
        "pod": _keys(pods),
        "pod.cpu": _keys([p["cpu"] for p in pods]),
        "pod.memory": _keys([p["memory"] for p in pods]),
        "pod.network": _keys([p["network"] for p in pods]),
        "pod.interfaces": _keys([i for p in pods for i in p["network"]["interfaces"]]),
        "pod.volume": _keys([v for p in pods for v in p.get("volume", [])]),
        "container": _keys(containers),
        "container.cpu": _keys([c["cpu"] for c in containers]),
        "container.memory": _keys([c["memory"] for c in containers]),
    }


@pytest.mark.parametrize(("version", "fixture"), [
    ("1.30.0", "stats-summary-k8s-1.30.0-minikube-containerd.json"),
    ("1.35.0", "stats-summary-k8s-1.35.0-minikube-containerd2.json"),
])
def test_stats_summary_has_the_key_sets_of_the_real_capture(version: str, fixture: str) -> None:
    body = _render(_kubelet(version), "/stats/summary")
    real_text = (FIXTURES / fixture).read_text()
    assert _summary_key_sets(json.loads(body)) == _summary_key_sets(json.loads(real_text))
    # go-restful's MarshalIndent with one space, no trailing newline.
    text = body.decode()
    assert text.splitlines()[:3] == ['{', ' "node": {', '  "nodeName": "node-a",']
    assert real_text.splitlines()[:2] == text.splitlines()[:2] and text.endswith("\n}")


def test_stats_summary_memory_available_only_with_limits_and_times_in_whole_seconds() -> None:
    document = json.loads(_render(_kubelet("1.30.0"), "/stats/summary"))
    for pod in document["pods"]:
        for c in pod["containers"]:
            assert ("availableBytes" in c["memory"]) == (pod["podRef"]["name"] not in ("web-0", "web-4", "web-8"))
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["cpu"]["time"])
            assert c["cpu"]["usageCoreNanoSeconds"] > 0 and isinstance(c["cpu"]["usageCoreNanoSeconds"], int)


def test_summary_and_metrics_agree_on_counters() -> None:
    kubelet = _kubelet("1.30.0")
    metrics = _render(kubelet, "/metrics/resource").decode()
    document = json.loads(_render(kubelet, "/stats/summary"))
    from_metrics = {}
    for family in text_string_to_metric_families(metrics):
        if family.name == "container_cpu_usage_seconds":
            for sample in family.samples:
                from_metrics[(sample.labels["pod"], sample.labels["container"])] = sample.value
    from_summary = {(p["podRef"]["name"], c["name"]): c["cpu"]["usageCoreNanoSeconds"] / 1e9
                    for p in document["pods"] for c in p["containers"]}
    assert from_metrics.keys() == from_summary.keys()
    for key, value in from_metrics.items():
        assert from_summary[key] == pytest.approx(value, abs=1e-9)


def test_a_node_without_pods_still_reports_node_series() -> None:
    kubelet = Kubelet("empty", "127.1.0.9", 10250, "1.30.0", authorize=lambda *a, **k: (True, "t"))
    text = _render(kubelet, "/metrics/resource").decode()
    assert [f.name for f in text_string_to_metric_families(text)] == [
        "node_cpu_usage_seconds", "node_memory_working_set_bytes", "resource_scrape_error"]
    assert json.loads(_render(kubelet, "/stats/summary"))["pods"] == []


def test_version_parsing() -> None:
    assert payloads.parse_version("v1.30.2") == (1, 30)
    assert payloads.parse_version("1.28.3-eks-1234") == (1, 28)
    with pytest.raises(ValueError):
        payloads.parse_version("latest")


@pytest.mark.parametrize("version", ["1.30.0", "1.35.0"])
def test_only_cpu_and_memory_query_keeps_names_times_cpu_and_memory(version: str) -> None:
    kubelet = _kubelet(version)
    rendered = kubelet.render("/stats/summary", NOW, {"only_cpu_and_memory": "true"})
    assert rendered is not None
    document = json.loads(rendered[0])
    full = json.loads(_render(kubelet, "/stats/summary"))
    assert set(document["node"]) == {"nodeName", "systemContainers", "startTime", "cpu", "memory"}
    assert _keys(document["node"]["systemContainers"]) == {"name", "startTime", "cpu", "memory"}
    assert _keys(document["pods"]) == {"podRef", "startTime", "containers", "cpu", "memory"}
    assert _keys([c for p in document["pods"] for c in p["containers"]]) == {"name", "startTime", "cpu", "memory"}
    assert [p["cpu"] for p in document["pods"]] == [p["cpu"] for p in full["pods"]]
