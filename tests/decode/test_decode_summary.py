"""``/stats/summary`` JSON: real captures from 2018 to 1.35 and the oddities the fixtures README lists."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from kubemeter.scrape.samples import DecodeError
from kubemeter.scrape.summary import decode_summary

from .decode_fixtures import (
    SUMMARY_116,
    SUMMARY_122,
    SUMMARY_135,
    SUMMARY_2018,
    SUMMARY_COUNTS,
    SUMMARY_FILES,
    SUMMARY_GKE,
    SUMMARY_WINDOWS,
    container_of,
    pod_of,
    read,
)

SCRAPE_TIME = 1_800_000_000.0


def utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def decode_document(document: object):
    return decode_summary(json.dumps(document).encode(), SCRAPE_TIME)


@pytest.mark.parametrize(("name", "pods", "containers"), SUMMARY_COUNTS)
def test_fixture_pod_and_container_counts(name: str, pods: int, containers: int) -> None:
    metrics = decode_summary(read(name), SCRAPE_TIME)
    assert len(metrics.pods) == pods
    assert sum(len(pod.containers) for pod in metrics.pods) == containers


@pytest.mark.parametrize("name", SUMMARY_FILES)
def test_every_value_equals_the_json(name: str) -> None:
    """Whole-file invariant against a plain walk of the parsed JSON (duplicates checked separately)."""
    document = json.loads(read(name))
    metrics = decode_summary(read(name), SCRAPE_TIME)
    assert metrics.node.name == document["node"]["nodeName"]
    assert metrics.node.cpu_seconds == document["node"]["cpu"]["usageCoreNanoSeconds"] / 1e9
    assert metrics.node.memory_working_set_bytes == document["node"]["memory"]["workingSetBytes"]
    for raw_pod, pod in zip(document["pods"], metrics.pods, strict=True):
        assert (pod.namespace, pod.name, pod.uid) == (
            raw_pod["podRef"]["namespace"],
            raw_pod["podRef"]["name"],
            raw_pod["podRef"]["uid"],
        )
        assert pod.cpu_seconds == raw_pod["cpu"]["usageCoreNanoSeconds"] / 1e9
        assert pod.memory_working_set_bytes == raw_pod["memory"]["workingSetBytes"]
        assert pod.timestamp == utc(raw_pod["cpu"]["time"])
        assert pod.ephemeral_storage_bytes == raw_pod["ephemeral-storage"]["usedBytes"]
        raw_containers = raw_pod["containers"] or []
        if len({c["name"] for c in raw_containers}) < len(raw_containers):
            continue
        for raw, container in zip(raw_containers, pod.containers, strict=True):
            assert container.name == raw["name"]
            assert container.cpu_seconds == raw["cpu"]["usageCoreNanoSeconds"] / 1e9
            assert container.cpu_nano_cores == raw["cpu"].get("usageNanoCores")
            assert container.memory_working_set_bytes == raw["memory"]["workingSetBytes"]
            assert container.timestamp == utc(raw["cpu"]["time"])
            assert container.start_time == utc(raw["startTime"])


def test_node_and_first_container_by_hand_135() -> None:
    metrics = decode_summary(read(SUMMARY_135), SCRAPE_TIME)
    assert metrics.node.name == "datagen-1-35"
    assert (metrics.node.cpu_seconds, metrics.node.cpu_nano_cores) == (62.148052, 573081903)
    assert metrics.node.memory_working_set_bytes == 917110784
    kcm = container_of(metrics, "kube-system", "kube-controller-manager-datagen-1-35", "kube-controller-manager")
    assert (kcm.cpu_seconds, kcm.cpu_nano_cores, kcm.memory_working_set_bytes) == (1.877547, 6605223, 66174976)
    assert kcm.start_time == utc("2026-06-26T10:12:10Z")


def test_duplicate_container_entries_keep_one_whole_reading() -> None:
    metrics = decode_summary(read(SUMMARY_116), SCRAPE_TIME)
    assert all(len({c.name for c in pod.containers}) == len(pod.containers) for pod in metrics.pods)
    kcm = container_of(metrics, "kube-system", "kube-controller-manager-minikube", "kube-controller-manager")
    assert (kcm.cpu_seconds, kcm.timestamp) == (77.358818752, utc("2020-06-04T10:01:11Z"))  # the later reading
    # Same second in both entries: the larger (so more recent) cumulative counter.
    assert container_of(metrics, "kube-system", "etcd-minikube", "etcd").cpu_seconds == 66.092995256
    # cpu and memory from the same entry, even where the other entry has more memory.
    coredns = container_of(metrics, "kube-system", "coredns-5644d7b6d9-b65gq", "coredns")
    assert (coredns.cpu_seconds, coredns.memory_working_set_bytes) == (13.01339604, 23490560)
    assert pod_of(metrics, "kube-system", "etcd-minikube").network_rx_bytes is None  # no network object


def test_duplicate_after_restart_prefers_the_current_instance() -> None:
    def entry(start: str, cpu: int) -> dict:
        return {"name": "app", "startTime": start, "cpu": {"time": "2024-01-01T00:00:10Z", "usageCoreNanoSeconds": cpu}}

    current, before_restart = entry("2024-01-01T00:00:05Z", 10**9), entry("2023-12-31T00:00:00Z", 9 * 10**12)
    pod = {"podRef": {"namespace": "n", "name": "p"}, "containers": [current, before_restart]}
    (container,) = decode_document({"node": {}, "pods": [pod]}).pods[0].containers
    assert (container.start_time, container.cpu_seconds) == (utc("2024-01-01T00:00:05Z"), 1.0)


def test_containers_null_is_a_pod_without_containers() -> None:
    pod = pod_of(decode_summary(read(SUMMARY_122), SCRAPE_TIME), "scraper", "e2e-container-creating")
    assert pod.containers == []
    assert (pod.cpu_seconds, pod.memory_working_set_bytes, pod.ephemeral_storage_bytes) == (0.433145096, 602112, 4096)
    assert (pod.network_rx_bytes, pod.network_tx_bytes) == (42, 0)


def test_windows_node_missing_nano_cores_and_init_containers() -> None:
    metrics = decode_summary(read(SUMMARY_WINDOWS), SCRAPE_TIME)
    agent = container_of(metrics, "default", "dd-datadog-lbvkl", "process-agent")
    assert (agent.cpu_seconds, agent.cpu_nano_cores) == (9.359375, None)  # first sample after start
    init = container_of(metrics, "default", "dd-datadog-lbvkl", "init-config")
    assert (init.cpu_seconds, init.cpu_nano_cores, init.memory_working_set_bytes) == (0, 0, 0)  # real zeros
    iis = pod_of(metrics, "default", "windows-server-iis-6c68545d57-gwtn9")
    assert (iis.network_rx_bytes, iis.network_tx_bytes) == (509185, 258157)  # interfaces only, no errors fields
    assert metrics.node.memory_working_set_bytes == 924364800


def test_pod_network_sums_all_interfaces() -> None:
    legacy = pod_of(decode_summary(read(SUMMARY_2018), SCRAPE_TIME), "kube-system", "kube-addon-manager-minikube")
    assert legacy.network_rx_bytes == 1507694406 + 5354431  # eth0 + eth1 (+ sit0 = 0)
    gke = pod_of(decode_summary(read(SUMMARY_GKE), SCRAPE_TIME), "kube-system", "prometheus-to-sd-7wbkn")
    assert gke.network_tx_bytes == 12179135587 + 5864590505  # hostNetwork: the node's cbr0 + eth0


def test_pod_network_falls_back_to_the_default_interface() -> None:
    pod = {"podRef": {"namespace": "n", "name": "p"}, "network": {"name": "eth0", "rxBytes": 5, "txBytes": 6}}
    decoded = decode_document({"node": {}, "pods": [pod]}).pods[0]
    assert (decoded.network_rx_bytes, decoded.network_tx_bytes) == (5, 6)


def test_pod_values_are_reported_not_summed() -> None:
    dns = pod_of(decode_summary(read(SUMMARY_2018), SCRAPE_TIME), "kube-system", "kube-dns-54cccfbdf8-dznm7")
    assert dns.memory_working_set_bytes == 72241152
    assert sum(c.memory_working_set_bytes for c in dns.containers) == 7147520 + 11124736 + 5783552


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-06-04T10:01:15Z", 1591264875.0),
        ("2020-06-04T10:01:15.5Z", 1591264875.5),
        ("2020-06-04T10:01:15.123456789Z", 1591264875.123456),  # Go nanoseconds, microsecond precision
        ("2020-06-04T12:01:15+02:00", 1591264875.0),
        ("2020-06-04T05:31:15.25-04:30", 1591264875.25),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: unset
    ],
)
def test_rfc3339_times(text: str, expected: float | None) -> None:
    timestamp = decode_document({"node": {"cpu": {"time": text, "usageCoreNanoSeconds": 1}}}).node.timestamp
    if expected is None:
        assert timestamp is None
    else:
        assert timestamp == pytest.approx(expected, abs=1e-6)


def test_missing_fields_are_none_never_zero() -> None:
    metrics = decode_document(
        {
            "node": {"nodeName": "n1", "cpu": {}, "memory": None, "userDefinedMetrics": None},
            "pods": [{"podRef": {"namespace": "n", "name": "p"}, "containers": [{"name": "c"}]}],
        }
    )
    assert (metrics.node.cpu_seconds, metrics.node.memory_working_set_bytes, metrics.node.timestamp) == (
        None,
        None,
        None,
    )
    pod = metrics.pods[0]
    assert (pod.cpu_seconds, pod.uid, pod.network_rx_bytes, pod.ephemeral_storage_bytes) == (None,) * 4
    container = pod.containers[0]
    assert (container.cpu_seconds, container.memory_working_set_bytes, container.start_time) == (None,) * 3


def test_node_without_pods() -> None:
    assert decode_document({"node": {"nodeName": "empty"}}).pods == []
    assert decode_document({"node": {"nodeName": "empty"}, "pods": None}).pods == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b'{"node": {}', "not valid JSON"),
        (b"[]", "top-level 'node'"),
        (b'{"kind": "PodList", "items": []}', "top-level 'node'"),
        (b'{"node": {}, "pods": {}}', "'pods' is not a list"),
        (b'{"node": {}, "pods": [{"podRef": {"name": "p"}}]}', "podRef namespace/name"),
        (b'{"node": {}, "pods": [{"podRef": {"namespace": "n", "name": "p"}, "containers": [{}]}]}', "without a name"),
        (b'{"node": {"cpu": {"usageCoreNanoSeconds": "12"}}}', "expected a number"),
        (b'{"node": {"cpu": {"time": "yesterday"}}}', "invalid RFC 3339"),
        (b'{"node": {"cpu": [1]}}', "unexpected structure"),
        (b"[" * 100_000, "not valid JSON"),
        (b'{"node": {"nodeName": "\xff"}}', "not valid JSON"),
    ],
)
def test_malformed_summary_raises_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_summary(body, SCRAPE_TIME)


def test_numbers_beyond_float_range_are_no_value() -> None:
    body = b'{"node": {"cpu": {"usageCoreNanoSeconds": 1' + b"0" * 400 + b'}, "memory": {"workingSetBytes": 1e999}}}'
    node = decode_summary(body, SCRAPE_TIME).node
    assert (node.cpu_seconds, node.memory_working_set_bytes) == (None, None)


def test_negative_and_absurd_values_are_no_value() -> None:
    metrics = decode_document(
        {
            "node": {"cpu": {"usageNanoCores": 1e30, "usageCoreNanoSeconds": -5}, "memory": {"workingSetBytes": 2**70}},
            "pods": [{"podRef": {"namespace": "n", "name": "p"}, "memory": {"workingSetBytes": -1},
                      "network": {"rxBytes": 10, "txBytes": -3}, "containers": [{"name": "c", "memory": {"workingSetBytes": 7}}]}],
        }
    )
    node, pod = metrics.node, metrics.pods[0]
    assert (node.cpu_nano_cores, node.cpu_seconds, node.memory_working_set_bytes) == (None, None, None)
    assert (pod.memory_working_set_bytes, pod.network_rx_bytes, pod.network_tx_bytes) == (None, 10, None)
    assert pod.containers[0].memory_working_set_bytes == 7
