"""Format detection, the single ``decode`` entry point and the ``kubemeter parse`` document."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kubemeter.scrape.decode import decode, detect_format, parse_file, parse_json
from kubemeter.scrape.samples import DecodeError

from .decode_fixtures import (
    KUBELET,
    PODS_135,
    RESOURCE_128,
    RESOURCE_FILES,
    SUMMARY_FILES,
    SUMMARY_WINDOWS,
    read,
)

SCRAPE_TIME = 1_800_000_000.0


@pytest.mark.parametrize("name", RESOURCE_FILES)
def test_text_captures_are_resource(name: str) -> None:
    assert detect_format(read(name)) == "resource"


@pytest.mark.parametrize("name", SUMMARY_FILES)
def test_json_captures_are_summary(name: str) -> None:
    assert detect_format(read(name)) == "summary"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b" \r\n\t", "empty body"),
        (gzip.compress(b"node_cpu_usage_seconds_total 1\n", mtime=0), "gzip"),  # mtime 0: a stable test id
        (b"\x08\x96\x01\x00\x12", "binary"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b"404 page not found\n", "not Prometheus metrics: '404 page not found'"),
        (b"Unauthorized\n", "not Prometheus metrics"),
        (b"Forbidden (user=system:serviceaccount:kube-system:kubemeter, verb=get, resource=nodes)", "not Prometheus"),
        (b'{"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 403}', "kind Status"),
        (b'{"items": [], "metadata": {}}', "without a 'node' object"),
        (b"[1, 2]", "without a 'node' object"),
        (b"apiVersion: v1\nkind: List\n", "not Prometheus metrics"),
    ],
)
def test_what_is_not_a_kubelet_payload_is_named(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        detect_format(body)


def test_kubelet_pod_list_is_rejected_by_name() -> None:
    with pytest.raises(DecodeError, match=r"kind PodList\) \(the kubelet /pods endpoint\)"):
        decode(read(PODS_135), SCRAPE_TIME)


def test_only_comments_within_the_sniffed_head_is_text() -> None:
    body = b"# HELP x " + b"y" * 5000 + b"\nnode_cpu_usage_seconds_total 3\n"
    assert detect_format(body) == "resource"
    assert decode(body, SCRAPE_TIME).node.cpu_seconds == 3


def test_decode_with_explicit_format() -> None:
    assert decode(read(RESOURCE_128), SCRAPE_TIME, fmt="resource").node.cpu_seconds == 197.853363
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode(read(RESOURCE_128), SCRAPE_TIME, fmt="summary")
    with pytest.raises(DecodeError, match="unknown payload format 'protobuf'"):
        decode(read(RESOURCE_128), SCRAPE_TIME, fmt="protobuf")


def test_parse_json_shape_for_text() -> None:
    document = parse_file(str(KUBELET / RESOURCE_128))
    assert set(document) == {"node", "pods"}
    # The capture's own numbers (its lines 3, 15, 27, 39, 42, 45 and 57); timestamps from milliseconds.
    assert document["node"] == {
        "name": None,
        "cpuSeconds": 197.853363,
        "cpuNanoCores": None,
        "memoryWorkingSetBytes": 686260224,
        "timestamp": 1703301509.002,
    }
    assert document["pods"][0] == {
        "namespace": "kube-system",
        "name": "coredns-5dd5756b68-8x9tl",
        "uid": None,
        "cpuSeconds": 2.496484,
        "memoryWorkingSetBytes": 13352960,
        "networkRxBytes": None,
        "networkTxBytes": None,
        "ephemeralStorageBytes": None,
        "timestamp": 1703301516.29,
        "containers": [{"name": "coredns", "cpuSeconds": 2.49133, "cpuNanoCores": None,
                        "memoryWorkingSetBytes": 13225984, "timestamp": 1703301518.127, "startTime": 1700125940}],
    }


def test_parse_json_shape_for_summary(tmp_path: Path) -> None:
    saved = tmp_path / "summary.json"
    saved.write_bytes(read(SUMMARY_WINDOWS))
    document = parse_file(str(saved))
    assert document["node"]["name"] == "ip-172-29-160-189.ec2.internal"
    assert document["node"]["cpuSeconds"] == 452.8
    pod = document["pods"][0]
    assert {key: value for key, value in pod.items() if key != "containers"} == {
        "namespace": "default",
        "name": "dd-datadog-lbvkl",
        "uid": "8ddf0e3f-ac6c-4d44-87d7-0bc41f6729ec",
        "cpuSeconds": 33.109375,
        "memoryWorkingSetBytes": 264912896,
        "networkRxBytes": 694636,
        "networkTxBytes": 163670,
        "ephemeralStorageBytes": 919980,
        "timestamp": 1587743581,
    }
    assert pod["containers"][0] == {
        "name": "process-agent",
        "cpuSeconds": 9.359375,
        "cpuNanoCores": None,
        "memoryWorkingSetBytes": 65474560,
        "timestamp": 1587743654,
        "startTime": 1587743620,
    }


@pytest.mark.parametrize("name", RESOURCE_FILES + SUMMARY_FILES)
def test_parse_output_is_strict_json(name: str) -> None:
    document = parse_json(decode(read(name), SCRAPE_TIME))
    assert json.loads(json.dumps(document, allow_nan=False)) == document
