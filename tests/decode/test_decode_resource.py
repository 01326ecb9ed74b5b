"""``/metrics/resource`` and ``/metrics/cadvisor`` text: real captures and the oddities they may carry."""

from __future__ import annotations

import pytest

from kubemeter.scrape.resource import decode_resource, kubelet_scrape_error
from kubemeter.scrape.samples import DecodeError
from kubemeter.scrape.summary import decode_summary

from .decode_fixtures import (
    CADVISOR_135,
    RESOURCE_121,
    RESOURCE_128,
    RESOURCE_COUNTS,
    RESOURCE_EKS,
    RESOURCE_FILES,
    RESOURCE_KIND_2024,
    SUMMARY_135,
    container_of,
    pod_of,
    read,
)

SCRAPE_TIME = 1_800_000_000.0


def decode_text(text: str):
    return decode_resource(text.encode(), SCRAPE_TIME)


@pytest.mark.parametrize(("name", "pods", "containers"), RESOURCE_COUNTS)
def test_fixture_pod_and_container_counts(name: str, pods: int, containers: int) -> None:
    metrics = decode_resource(read(name), SCRAPE_TIME)
    assert len(metrics.pods) == pods
    assert sum(len(pod.containers) for pod in metrics.pods) == containers
    assert len({(pod.namespace, pod.name) for pod in metrics.pods}) == pods


def test_eks_stable_first_and_last_container_and_node() -> None:
    metrics = decode_resource(read(RESOURCE_EKS), SCRAPE_TIME)
    first = container_of(metrics, "kube-system", "aws-node-7k649", "aws-eks-nodeagent")
    assert first.cpu_seconds == 40.384910049
    assert first.memory_working_set_bytes == 17391616
    assert first.timestamp == 1750705768.415
    assert first.start_time == 1750607841.8297591  # 17 significant digits, no timestamp on this family
    last = container_of(metrics, "ersilia-core", "ersilia-hub-server-78554c56f7-klmrl", "server")
    assert (last.cpu_seconds, last.memory_working_set_bytes) == (422.097108038, 197271552)
    assert last.start_time == 1750607911.8916554
    assert last.cpu_nano_cores is None  # /metrics/resource has no instantaneous rate
    assert metrics.node.name is None
    assert metrics.node.cpu_seconds == 6197.005020909
    assert metrics.node.memory_working_set_bytes == 1137475584
    assert metrics.node.timestamp == 1750705774.670
    proxy = pod_of(metrics, "kube-system", "kube-proxy-t748f")
    assert (proxy.cpu_seconds, proxy.memory_working_set_bytes, proxy.timestamp) == (
        27.798782029,
        14065664,
        1750705778.912,
    )


def test_pod_series_are_kept_as_reported_not_summed() -> None:
    metrics = decode_resource(read(RESOURCE_128), SCRAPE_TIME)
    etcd = pod_of(metrics, "kube-system", "etcd-minikube")
    assert etcd.memory_working_set_bytes == 40509440  # 13,660,160 B below its only container
    assert etcd.containers[0].memory_working_set_bytes == 54169600
    assert (etcd.cpu_seconds, etcd.timestamp) == (21.712656, 1703301509.664)


def test_start_time_timestamp_is_not_the_sample_time() -> None:
    # 1.28: container_start_time_seconds carries a timestamp equal to the start time x 1000.
    coredns = container_of(decode_resource(read(RESOURCE_128), SCRAPE_TIME), "kube-system",
                           "coredns-5dd5756b68-8x9tl", "coredns")
    assert coredns.start_time == 1700125940.0
    assert coredns.timestamp == 1703301518.127


def test_version_without_start_time_family() -> None:
    metrics = decode_resource(read(RESOURCE_121), SCRAPE_TIME)
    assert all(c.start_time is None for pod in metrics.pods for c in pod.containers)
    assert metrics.node.cpu_seconds == 357.35491
    assert metrics.node.memory_working_set_bytes == 1616273408


def test_multi_container_pod() -> None:
    metrics = decode_resource(read(RESOURCE_KIND_2024), SCRAPE_TIME)
    web = pod_of(metrics, "awx", "awx-web-5d5d7ccf85-7jjgm")
    assert [c.name for c in web.containers] == ["awx-rsyslog", "awx-web", "redis"]
    assert web.containers[1].memory_working_set_bytes == 964734976
    assert web.containers[2].start_time == 1704801726.4993064
    assert web.memory_working_set_bytes == 1138728960


@pytest.mark.parametrize("name", RESOURCE_FILES)
def test_no_scrape_error_in_real_captures(name: str) -> None:
    assert kubelet_scrape_error(read(name)) is False  # cadvisor: container_scrape_error 0


@pytest.mark.parametrize("family", ["scrape_error", "resource_scrape_error"])
def test_scrape_error_is_surfaced_without_failing_the_decode(family: str) -> None:
    text = (
        f"# TYPE {family} gauge\n{family} 1\n"
        "node_cpu_usage_seconds_total 10.5 1700000000000\n"
    )
    assert kubelet_scrape_error(text) is True
    assert decode_text(text).node.cpu_seconds == 10.5


def test_cadvisor_container_pod_and_node_rows() -> None:
    metrics = decode_resource(read(CADVISOR_135), SCRAPE_TIME)
    etcd_pod = pod_of(metrics, "kube-system", "etcd-datagen-1-35")
    # The pod cgroup (container="", name="") is the pod; the pause container (name=<id>) is ignored.
    assert (etcd_pod.cpu_seconds, etcd_pod.memory_working_set_bytes) == (2.593769, 44535808)
    assert etcd_pod.uid == "eaf7d48161d81d9c3359e1c008571fd6"
    assert [c.name for c in etcd_pod.containers] == ["etcd"]
    etcd = etcd_pod.containers[0]
    assert (etcd.cpu_seconds, etcd.memory_working_set_bytes, etcd.timestamp) == (2.628368, 44290048, 1782468870.634)
    assert etcd.start_time == 1782468730.0
    # The root cgroup is the node; system slices (pod="") are ignored.
    assert (metrics.node.cpu_seconds, metrics.node.timestamp) == (62.148052, 1782468875.486)
    assert metrics.node.memory_working_set_bytes == 917110784
    # A crash-looping pod has its pod cgroup but no container.
    assert pod_of(metrics, "scraper", "e2e-container-creating").containers == []


def test_cadvisor_and_summary_of_one_moment_agree_on_the_node() -> None:
    cadvisor = decode_resource(read(CADVISOR_135), SCRAPE_TIME)
    summary = decode_summary(read(SUMMARY_135), SCRAPE_TIME)
    assert cadvisor.node.cpu_seconds == summary.node.cpu_seconds
    assert cadvisor.node.memory_working_set_bytes == summary.node.memory_working_set_bytes
    summary_uids = {(p.namespace, p.name): p.uid for p in summary.pods}
    for pod in cadvisor.pods:
        if (pod.namespace, pod.name) in summary_uids:
            assert pod.uid == summary_uids[(pod.namespace, pod.name)]


def test_crlf_missing_help_and_type_and_any_label_order() -> None:
    text = (
        'container_cpu_usage_seconds_total{pod="p",container="c",namespace="n"} 1.5 1700000000123\r\n'
        'container_memory_working_set_bytes{namespace="n",container="c",pod="p"} 2.5e+06 1700000000123\r\n'
        'pod_memory_working_set_bytes{pod="p",namespace="n"} 3e6\r\n'
    )
    metrics = decode_text(text)
    container = container_of(metrics, "n", "p", "c")
    assert (container.cpu_seconds, container.memory_working_set_bytes) == (1.5, 2500000)
    assert container.timestamp == 1700000000.123
    pod = pod_of(metrics, "n", "p")
    assert (pod.memory_working_set_bytes, pod.timestamp) == (3000000, None)  # no timestamp: stays None


def test_non_finite_values_are_no_value() -> None:
    text = (
        'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} NaN 1700000000000\n'
        'container_memory_working_set_bytes{container="c",namespace="n",pod="p"} +Inf\n'
        "node_cpu_usage_seconds_total -Inf\n"
        "node_memory_working_set_bytes 4 +Inf\n"
    )
    metrics = decode_text(text)
    container = container_of(metrics, "n", "p", "c")
    assert (container.cpu_seconds, container.memory_working_set_bytes) == (None, None)
    assert container.timestamp == 1700000000.0
    assert (metrics.node.cpu_seconds, metrics.node.memory_working_set_bytes, metrics.node.timestamp) == (
        None,
        4,
        None,
    )


def test_escaped_label_values() -> None:
    text = (
        'container_cpu_usage_seconds_total{container="a\\\\b",namespace="n\\"q",pod="line\\nbreak"} 7\n'
        'container_cpu_usage_seconds_total{container="x\\ty",namespace="n",pod="p"} 8\n'
    )
    metrics = decode_text(text)
    assert container_of(metrics, 'n"q', "line\nbreak", "a\\b").cpu_seconds == 7
    assert container_of(metrics, "n", "p", "x\\ty").cpu_seconds == 8  # unknown escape kept as written


def test_label_values_with_quotes_braces_and_spaces() -> None:
    text = 'container_cpu_usage_seconds_total{container="} {",namespace="a b",pod="p,q=\\"r\\""} 9 1000\n'
    assert container_of(decode_text(text), "a b", 'p,q="r"', "} {").cpu_seconds == 9


def test_openmetrics_exemplars_and_eof_timestamps_in_seconds() -> None:
    text = (
        "# TYPE container_cpu_usage_seconds_total counter\n"
        'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 12.5 1700000000.25 '
        '# {trace_id="abc"} 1.0\n'
        'node_cpu_usage_seconds_total 99 # {trace_id="def"} 2.0\n'
        "# EOF\n"
    )
    metrics = decode_text(text)
    container = container_of(metrics, "n", "p", "c")
    assert (container.cpu_seconds, container.timestamp) == (12.5, 1700000000.25)
    assert (metrics.node.cpu_seconds, metrics.node.timestamp) == (99, None)


def test_pod_only_in_pod_series_and_duplicate_series_last_wins() -> None:
    text = (
        'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 1 1000\n'
        'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 2 2000\n'
        'pod_cpu_usage_seconds_total{namespace="n",pod="only-pod"} 3 3000\n'
    )
    metrics = decode_text(text)
    assert [c.name for c in pod_of(metrics, "n", "p").containers] == ["c"]  # never two samples for one container
    assert (container_of(metrics, "n", "p", "c").cpu_seconds, container_of(metrics, "n", "p", "c").timestamp) == (
        2,
        2.0,
    )
    only = pod_of(metrics, "n", "only-pod")
    assert (only.containers, only.cpu_seconds) == ([], 3)


def test_blank_and_indented_lines_and_tabs() -> None:
    text = (
        "\n   \n"
        '  container_cpu_usage_seconds_total {container="c", namespace="n",\tpod="p"}\t5\t1000\n'
        "node_memory_working_set_bytes\t6\n"
    )
    metrics = decode_text(text)
    assert container_of(metrics, "n", "p", "c").cpu_seconds == 5
    assert metrics.node.memory_working_set_bytes == 6


def test_unrelated_families_are_skipped() -> None:
    text = (
        'container_swap_usage_bytes{container="c",namespace="n",pod="p"} 1\n'
        'some_metric{weird label} garbage\n'
        'node_cpu_usage_seconds_total 1\n'
    )
    metrics = decode_text(text)
    assert metrics.pods == []
    assert metrics.node.cpu_seconds == 1


def test_only_scrape_error_is_an_empty_node() -> None:
    metrics = decode_text("scrape_error 0\n")
    assert metrics.pods == [] and metrics.node.cpu_seconds is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no kubelet resource metrics"),
        ("# HELP x\nunrelated_metric 1\n", "no kubelet resource metrics"),
        ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"}\n', "malformed sample value"),
        ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} abc\n', "malformed sample value"),
        ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 1 2x\n', "malformed sample value"),
        ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p} 1\n', "malformed labels"),
        ('container_cpu_usage_seconds_total{container="c" namespace} 1\n', "malformed labels"),
        ('pod_cpu_usage_seconds_total{namespace="a\\"} 1\n', "malformed labels"),
    ],
)
def test_malformed_text_raises_decode_error(text: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_text(text)


def test_invalid_utf8_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode_resource(b"node_cpu_usage_seconds_total 1\n\xff\xfe", SCRAPE_TIME)


def test_byte_order_mark_does_not_hide_the_first_sample() -> None:
    metrics = decode_resource(b"\xef\xbb\xbfnode_cpu_usage_seconds_total 4\n", SCRAPE_TIME)
    assert metrics.node.cpu_seconds == 4


def test_negative_and_absurd_values_are_no_value() -> None:
    """No kubelet counts negative bytes or CPU time, nor 2^70 bytes: such a value is corruption, and kept it
    would become a negative rate or a sum beyond the int64 a WorkloadMetrics holds."""
    text = (
        'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} -12.5 1700000000000\n'
        'container_memory_working_set_bytes{container="c",namespace="n",pod="p"} 1.2e21\n'
        "node_cpu_usage_seconds_total 1e308\n"
        "node_memory_working_set_bytes 0\n"
    )
    metrics = decode_text(text)
    container = container_of(metrics, "n", "p", "c")
    assert (container.cpu_seconds, container.memory_working_set_bytes, container.timestamp) == (None, None, 1.7e9)
    assert (metrics.node.cpu_seconds, metrics.node.memory_working_set_bytes) == (None, 0)


def test_blanks_around_label_names_equals_signs_and_commas() -> None:
    """Go's text parser (expfmt) skips them; a kubelet never writes them, a proxy or a hand-made file might."""
    text = (
        'container_cpu_usage_seconds_total{ container = "app" , namespace = "n" , pod = "p" } 1.5 1700000000000\n'
        'container_memory_working_set_bytes{container ="app", namespace= "n",pod="p" } 100 1700000000000\n'
    )
    container = container_of(decode_text(text), "n", "p", "app")
    assert (container.cpu_seconds, container.memory_working_set_bytes, container.timestamp) == (1.5, 100, 1.7e9)
