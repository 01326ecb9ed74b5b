import importlib.metadata
import platform
import re

import pytest
from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import (
    ContainerRecommendation, Recommendation, ResourceRecommendation, WorkloadRecommendation,
)
from kubemeter.policy import parse_policy
from kubemeter.publish.documents import resource_status
from kubemeter.publish.prometheus import (
    LEVELS, PrometheusPublisher, build_registry, exported_container_families, exposition,
)
from kubemeter.types import ContainerSpec, PodExtras, PodInfo, Selection, Usage, WorkloadRef
from prometheus_client.parser import text_string_to_metric_families

APP = ContainerSpec("app", 0.1, 0.5, 100e6, 200e6)
UNLIMITED = ContainerSpec("worker", 0.2, None, 50e6, None)


def pod(uid, ref, containers=(APP,), node="node-1") -> PodInfo:
    return PodInfo(uid, ref.namespace, uid, node, "Running", {}, None, containers, ref)


def snapshot_of(pods, usage, extras=None):
    return Aggregator(300, (50,)).cycle(1000.0, pods, usage, extras)


def samples(registry, collector) -> dict[tuple[str, frozenset], float]:
    text = exposition(registry, collector).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def series(registry, collector, name):
    return {labels: value for (n, labels), value in samples(registry, collector).items() if n == name}


def workload_labels(policy, ref):
    return frozenset({"policy": policy, "namespace": ref.namespace, "workload_kind": ref.kind,
                      "workload": ref.name, "workload_api_group": ref.api_version.rpartition("/")[0]}.items())


WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
DB = WorkloadRef("shop", "StatefulSet", "db", "apps/v1")


def test_kinds_of_one_name_from_two_api_groups_stay_two_series():
    ours, argo = WorkloadRef("shop", "Rollout", "checkout", "example.com/v1"), WorkloadRef(
        "shop", "Rollout", "checkout", "argoproj.io/v1alpha1")
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", ours), pod("b", argo), pod("c", argo)], {}), ["workload"])
    pods = series(registry, collector, "kubemeter_workload_pods")
    assert pods == {workload_labels("p", ours): 1.0, workload_labels("p", argo): 2.0}
    assert dict(workload_labels("p", argo))["workload_api_group"] == "argoproj.io"


def test_workload_namespace_node_and_cluster_gauges_carry_the_snapshot():
    registry, collector, _ = build_registry()
    collector.set_snapshot("default", snapshot_of([pod("a", WEB), pod("b", WEB)], {"a": {"app": Usage(0.25, 64e6, 0)}}),
                           LEVELS)
    got = samples(registry, collector)
    web = workload_labels("default", WEB)
    assert got[("kubemeter_workload_cpu_usage_cores", web)] == 0.25
    assert got[("kubemeter_workload_memory_working_set_bytes", web)] == 64e6
    assert got[("kubemeter_workload_cpu_requests_cores", web)] == pytest.approx(0.2)
    assert got[("kubemeter_workload_memory_limits_bytes", web)] == 400e6
    assert got[("kubemeter_workload_pods", web)] == 2
    assert got[("kubemeter_namespace_pods", frozenset({"policy": "default", "namespace": "shop"}.items()))] == 2
    assert got[("kubemeter_node_cpu_usage_cores", frozenset({"policy": "default", "node": "node-1"}.items()))] == 0.25
    assert got[("kubemeter_cluster_memory_requests_bytes", frozenset({"policy": "default"}.items()))] == 200e6


def test_pods_reporting_beside_the_pods_expected_tell_a_fall_in_coverage_at_every_level():
    registry, collector, _ = build_registry()
    pods = [pod("a", WEB), pod("b", WEB, node="node-2"), pod("c", WEB, node="node-2")]
    collector.set_snapshot("p", snapshot_of(pods, {"a": {"app": Usage(0.25, 64e6, 0)}}), LEVELS)  # node-2 failed
    got = samples(registry, collector)
    for level, labels in (("workload", workload_labels("p", WEB)),
                          ("namespace", frozenset({"policy": "p", "namespace": "shop"}.items())),
                          ("cluster", frozenset({"policy": "p"}.items()))):
        assert (got[(f"kubemeter_{level}_pods_reporting", labels)], got[(f"kubemeter_{level}_pods", labels)]) == (1, 3)
    failed = frozenset({"policy": "p", "node": "node-2"}.items())
    assert (got[("kubemeter_node_pods_reporting", failed)], got[("kubemeter_node_pods", failed)]) == (0, 2)


def test_usage_gauges_say_how_many_pods_they_sum_at_every_level():
    """Pod b was just added and has no CPU rate yet: the CPU gauges sum pod a alone, and say so."""
    registry, collector, _ = build_registry()
    usage = {"a": {"app": Usage(0.25, 64e6, 0)}, "b": {"app": Usage(None, 32e6, 0)}}
    collector.set_snapshot("p", snapshot_of([pod("a", WEB), pod("b", WEB)], usage), LEVELS)
    got = samples(registry, collector)
    for level, labels in (("workload", workload_labels("p", WEB)),
                          ("namespace", frozenset({"policy": "p", "namespace": "shop"}.items())),
                          ("node", frozenset({"policy": "p", "node": "node-1"}.items())),
                          ("cluster", frozenset({"policy": "p"}.items()))):
        assert got[(f"kubemeter_{level}_cpu_usage_cores", labels)] == 0.25, level
        assert got[(f"kubemeter_{level}_cpu_measured_pods", labels)] == 1, level
        assert got[(f"kubemeter_{level}_memory_measured_pods", labels)] == 2, level
        assert got[(f"kubemeter_{level}_pods", labels)] == 2, level


def test_request_utilization_is_the_statuss_over_the_measured_pods_not_usage_over_all_requests():
    """Pod b is on a failing node: the requests gauge still counts it, the usage does not. The utilization is
    that of pod a alone, as the WorkloadMetrics status (CPU/REQ, MEM/REQ) has it; a workload with a container
    without requests has none."""
    sidecar = ContainerSpec("sidecar", None, None, None, None)
    pods = [pod("a", WEB), pod("b", WEB, node="node-2"), pod("c", DB, containers=(APP, sidecar))]
    usage = {"a": {"app": Usage(0.25, 64e6, 0)}, "c": {"app": Usage(0.1, 1e6, 0), "sidecar": Usage(0.1, 1e6, 0)}}
    snapshot = snapshot_of(pods, usage)
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot, LEVELS)
    web = workload_labels("p", WEB)
    for resource, expected in (("cpu", 0.25 / 0.1), ("memory", 64e6 / 100e6)):
        exported = series(registry, collector, f"kubemeter_workload_{resource}_request_utilization_ratio")
        assert exported == {web: pytest.approx(expected)}, resource  # DB: absent
        status = resource_status(getattr(snapshot.workloads[WEB], resource), resource)
        assert exported[web] == pytest.approx(status["requestUtilization"], abs=5e-5), resource
        assert series(registry, collector, f"kubemeter_namespace_{resource}_request_utilization_ratio") == {}
    collector.remove_policy("p")
    assert series(registry, collector, "kubemeter_workload_cpu_request_utilization_ratio") == {}


def test_series_of_deleted_workloads_and_removed_policies_vanish_at_once():
    registry, collector, _ = build_registry()
    usage = {"a": {"app": Usage(0.1, 1.0, 0)}, "b": {"app": Usage(0.2, 1.0, 0)}}
    collector.set_snapshot("default", snapshot_of([pod("a", WEB), pod("b", DB)], usage), LEVELS)
    collector.set_snapshot("other", snapshot_of([pod("a", WEB)], usage), LEVELS)
    assert workload_labels("default", DB) in series(registry, collector, "kubemeter_workload_pods")

    collector.set_snapshot("default", snapshot_of([pod("a", WEB)], usage), LEVELS)
    pods = series(registry, collector, "kubemeter_workload_pods")
    assert workload_labels("default", DB) not in pods
    assert workload_labels("default", WEB) in pods

    collector.remove_policy("other")
    assert {dict(labels)["policy"] for (_, labels) in samples(registry, collector)
            if dict(labels).get("policy")} == {"default"}


def test_unmeasured_values_and_unbounded_limits_are_omitted_not_zero():
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB, containers=(APP, UNLIMITED))], {}), LEVELS)
    web = workload_labels("p", WEB)
    assert web not in series(registry, collector, "kubemeter_workload_cpu_usage_cores")
    assert web not in series(registry, collector, "kubemeter_workload_cpu_limits_cores")
    assert web not in series(registry, collector, "kubemeter_workload_network_receive_bytes_per_second")
    assert series(registry, collector, "kubemeter_workload_pods")[web] == 1
    assert series(registry, collector, "kubemeter_cluster_cpu_usage_cores") == {}


def test_summary_only_gauges_appear_when_the_summary_has_them():
    registry, collector, _ = build_registry()
    extras = {"a": PodExtras(network_rx_bytes_per_second=10.0, ephemeral_storage_bytes=4096.0)}
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}, extras), ["workload"])
    web = workload_labels("p", WEB)
    assert series(registry, collector, "kubemeter_workload_network_receive_bytes_per_second") == {web: 10.0}
    assert series(registry, collector, "kubemeter_workload_ephemeral_storage_bytes") == {web: 4096.0}
    assert series(registry, collector, "kubemeter_workload_network_transmit_bytes_per_second") == {}


def test_only_the_requested_levels_are_exported():
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {"a": {"app": Usage(0.1, 1.0, 0)}}), ["cluster"])
    names = {name for name, _ in samples(registry, collector)}
    assert "kubemeter_cluster_pods" in names
    assert not any(name.startswith(("kubemeter_workload_", "kubemeter_namespace_", "kubemeter_node_"))
                   for name in names)
    with pytest.raises(ValueError, match="unknown aggregation levels"):
        collector.set_snapshot("p", snapshot_of([], {}), ["pod"])


@pytest.mark.parametrize("name", ['quote"d', "back\\slash", "new\nline", 'all\\"\n\\n', "ünïcode"])
def test_label_values_are_escaped_and_parse_back_unchanged(name):
    ref = WorkloadRef("shop", "Rollout", name, "argoproj.io/v1alpha1")
    registry, collector, _ = build_registry()
    collector.set_snapshot(name, snapshot_of([pod("a", ref)], {}), ["workload"])
    assert set(series(registry, collector, "kubemeter_workload_pods")) == {workload_labels(name, ref)}


def test_every_family_has_help_and_a_clean_name():
    registry, collector, metrics = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS,
                           {WEB: WorkloadRecommendation(1.0, {"app": container_recommendation("app")})})
    metrics.watch_events.labels(resource="pods", type="ADDED").inc()
    families = list(text_string_to_metric_families(exposition(registry, collector).decode()))
    assert len(families) > 40  # families without a measured value (network, here) are left out
    # Full: 12, and the memory shortfall of its under-requested memory (the CPU request is over: no series).
    assert sum(family.name.startswith("kubemeter_workload_container_") for family in families) == 13
    for family in families:
        assert family.documentation.strip(), family.name
        # kubemeter's own, or prometheus_client's standard process and Python runtime ones.
        assert re.fullmatch(r"(kubemeter|process|python)_[a-z_]+", family.name), family.name
        if family.type == "gauge":
            assert not family.name.endswith(("_total", "_count", "_sum", "_bucket")), family.name


def test_operator_metrics_are_registered_and_a_deleted_policy_can_be_forgotten():
    registry, collector, metrics = build_registry()
    metrics.scrape_duration.labels(policy="p").observe(0.2)
    metrics.cycle_duration.labels(policy="p").observe(1.5)
    metrics.scrape_errors.labels(policy="p", node="node-1", reason="timeout").inc()
    metrics.status_writes.labels(result="ok").inc()
    metrics.nodes.labels(policy="p", state="failed").set(1)
    names = {name for name, _ in samples(registry, collector)}
    assert {"kubemeter_scrape_duration_seconds_count", "kubemeter_cycle_duration_seconds_bucket",
            "kubemeter_scrape_errors_total", "kubemeter_status_writes_total", "kubemeter_nodes"} <= names
    metrics.forget_policy("p")
    left = {dict(labels).get("policy") for _, labels in samples(registry, collector)}
    assert "p" not in left
    assert ("kubemeter_status_writes_total", frozenset({"result": "ok"}.items())) in samples(registry, collector)


def test_the_build_and_the_standard_process_and_python_metrics_are_exported():
    registry, collector, _ = build_registry()
    found = samples(registry, collector)
    assert series(registry, collector, "kubemeter_build_info") == {
        frozenset({"version": importlib.metadata.version("kubemeter"),
                   "python_version": platform.python_version()}.items()): 1.0}
    names = {name for name, _ in found}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
            "process_open_fds", "python_info", "python_gc_collections_total"} <= names
    assert found[("process_resident_memory_bytes", frozenset())] > 0


async def test_a_policys_cycle_failures_are_exported_at_zero_from_its_first_completed_cycle():
    # Prometheus sees no increase in a series that first appears at 1: the first failure would not alert.
    registry, collector, metrics = build_registry()
    publisher = PrometheusPublisher("p", collector, metrics, clock=lambda: 1000.0)
    report = CycleReport(started=999.0, duration=1.0, selection=Selection(nodes=[]), snapshot=snapshot_of([], {}),
                         scraped=0, failures={}, unresolved=[])
    assert series(registry, collector, "kubemeter_cycle_failures_total") == {}
    await publisher.publish(report, parse_policy({}), generation=1)
    assert series(registry, collector, "kubemeter_cycle_failures_total") == {frozenset({"policy": "p"}.items()): 0.0}
    metrics.cycle_failures.labels(policy="p").inc()  # as the loop counts a failed cycle
    await publisher.publish(report, parse_policy({}), generation=1)
    assert series(registry, collector, "kubemeter_cycle_failures_total") == {frozenset({"policy": "p"}.items()): 1.0}


# ---- right-sizing ---------------------------------------------------------------------------------------------
def recommendation(cpu=(0.2, 0.1, 0.4), memory=(100e6, 80e6, 150e6), limit=180e6, days=2.0) -> Recommendation:
    return Recommendation(ResourceRecommendation(*cpu) if cpu else None,
                          ResourceRecommendation(*memory) if memory else None, limit, days)


def container_recommendation(name, pods=2, cpu_request=0.5, memory_request=64e6, memory_limit=256e6, made=None,
                             cpu_verdict="over", memory_verdict="under", history=2 * 86400.0):
    return ContainerRecommendation(name, pods, cpu_request, memory_request, memory_limit, made or recommendation(),
                                   history, cpu_verdict, memory_verdict)


def container_labels(policy, ref, container):
    return frozenset({**dict(workload_labels(policy, ref)), "container": container}.items())


RIGHTSIZING_LEVELS = ("workload", "namespace", "cluster")


def test_recommendation_gauges_carry_each_workload_containers_recommendation_and_requests():
    """One series per workload container and figure, per pod, in cores and bytes; ``request - target`` in PromQL
    is the exported request minus the exported target (same labels), and a request that is unset is absent."""
    app = container_recommendation("app")
    sidecar = container_recommendation("sidecar", cpu_request=None, memory_limit=None,
                                       made=recommendation(cpu=(0.01, 0.005, 0.03), limit=100e6), cpu_verdict="unset")
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS,
                           {WEB: WorkloadRecommendation(1000.0, {"app": app, "sidecar": sidecar})})
    got = samples(registry, collector)
    on_app, on_sidecar = container_labels("p", WEB, "app"), container_labels("p", WEB, "sidecar")
    prefix = "kubemeter_workload_container_"
    expected = {
        "cpu_recommendation_target_cores": 0.2, "cpu_recommendation_lower_bound_cores": 0.1,
        "cpu_recommendation_upper_bound_cores": 0.4, "memory_recommendation_target_bytes": 100e6,
        "memory_recommendation_lower_bound_bytes": 80e6, "memory_recommendation_upper_bound_bytes": 150e6,
        "memory_limit_recommendation_bytes": 180e6, "recommendation_history_seconds": 2 * 86400.0,
        "cpu_request_cores": 0.5, "memory_request_bytes": 64e6,
    }
    for name, value in expected.items():
        assert got[(prefix + name, on_app)] == value, name
    # Over the pods: (0.5 - 0.2) * 2 cores requested beyond need, (64 - 100) MB * 2 short.
    assert got[(prefix + "cpu_requested_minus_recommended_cores", on_app)] == pytest.approx(0.6)
    assert got[(prefix + "memory_requested_minus_recommended_bytes", on_app)] == pytest.approx(-72e6)
    assert got[(prefix + "cpu_request_cores", on_app)] - got[(prefix + "cpu_recommendation_target_cores", on_app)] \
        == pytest.approx(-app.cpu_difference)
    assert got[(prefix + "cpu_recommendation_target_cores", on_sidecar)] == 0.01
    assert got[(prefix + "memory_limit_recommendation_bytes", on_sidecar)] == 100e6
    for absent in ("cpu_request_cores", "cpu_requested_minus_recommended_cores"):
        assert (prefix + absent, on_sidecar) not in got, absent


def test_a_container_without_a_sample_of_a_resource_has_no_recommendation_of_it():
    learning = container_recommendation("app", made=recommendation(cpu=None), cpu_verdict="learning",
                                        memory_verdict="learning", history=60.0)
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS, {WEB: WorkloadRecommendation(1.0, {"app": learning})})
    names = {name for name, labels in samples(registry, collector) if ("container", "app") in labels}
    assert not any(name.startswith("kubemeter_workload_container_cpu_recommendation_") for name in names)
    assert "kubemeter_workload_container_memory_recommendation_target_bytes" in names
    assert "kubemeter_workload_container_recommendation_history_seconds" in names
    # Learning: no verdict, so in no difference and in no roll-up.
    assert not any("requested_minus_recommended" in name for name, _ in samples(registry, collector))


def test_namespace_and_cluster_roll_ups_are_requested_minus_recommended_over_the_containers_with_a_verdict():
    shop_learning = container_recommendation("cache", cpu_verdict="learning", memory_verdict="learning")
    recommendations = {
        WEB: WorkloadRecommendation(1.0, {"app": container_recommendation("app"),
                                          "sidecar": container_recommendation("sidecar", cpu_request=None,
                                                                              cpu_verdict="unset")}),
        DB: WorkloadRecommendation(1.0, {"db": container_recommendation("db", pods=3, cpu_verdict="fit"),
                                         "cache": shop_learning}),
        WorkloadRef("data", "Deployment", "etl", "apps/v1"): WorkloadRecommendation(
            1.0, {"etl": container_recommendation("etl", pods=1, cpu_request=0.1, cpu_verdict="under")}),
    }
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS, recommendations)
    for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
        name = f"{resource}_requested_minus_recommended_{unit}"
        by_namespace = {dict(labels)["namespace"]: value
                        for labels, value in series(registry, collector, f"kubemeter_namespace_{name}").items()}
        expected = {}
        for ref, made in recommendations.items():
            expected[ref.namespace] = expected.get(ref.namespace, 0.0) - made.total_difference(resource)
        assert by_namespace == pytest.approx(expected), resource
        assert series(registry, collector, f"kubemeter_cluster_{name}") == {
            frozenset({"policy": "p"}.items()): pytest.approx(sum(expected.values()))}
        # The per-container series sum to the namespace's: a dashboard may filter them by kind.
        per_container = series(registry, collector, f"kubemeter_workload_container_{name}")
        assert sum(v for labels, v in per_container.items() if dict(labels)["namespace"] == "shop") == pytest.approx(
            by_namespace["shop"])
    # Memory: web's app and sidecar (2 pods each) and db (3 pods) request 64 MB for 100 recommended; cache learns.
    assert by_namespace["shop"] == pytest.approx((2 + 2 + 3) * (64e6 - 100e6))
    cpu = series(registry, collector, "kubemeter_namespace_cpu_requested_minus_recommended_cores")
    # web's app (0.5 - 0.2) * 2 and db (0.5 - 0.2) * 3; the unset sidecar and the learning cache count nothing.
    assert cpu[frozenset({"policy": "p", "namespace": "shop"}.items())] == pytest.approx(1.5)
    assert cpu[frozenset({"policy": "p", "namespace": "data"}.items())] == pytest.approx(0.1 - 0.2)


async def test_recommendation_series_follow_the_levels_the_prometheus_output_and_the_workloads_of_the_cycle():
    registry, collector, metrics = build_registry()
    publisher = PrometheusPublisher("p", collector, metrics, clock=lambda: 1000.0)

    def report(recommendations):
        return CycleReport(started=999.0, duration=1.0, selection=Selection(nodes=[]),
                           snapshot=snapshot_of([pod("a", WEB), pod("b", DB)], {}), scraped=0, failures={},
                           unresolved=[], recommendations=recommendations)

    both = {ref: WorkloadRecommendation(1.0, {"app": container_recommendation("app")}) for ref in (WEB, DB)}

    def rightsizing_series():
        return {(name, dict(labels).get("workload")) for name, labels in samples(registry, collector)
                if "recommend" in name}

    await publisher.publish(report(both), parse_policy({}), generation=1)
    assert {workload for _, workload in rightsizing_series()} == {"web", "db", None}  # None: the roll-ups
    await publisher.publish(report({WEB: both[WEB]}), parse_policy({}), generation=1)  # db's pods are gone
    assert {workload for _, workload in rightsizing_series()} == {"web", None}
    await publisher.publish(report(both), parse_policy({"aggregation": {"levels": ["cluster"]}}), generation=1)
    assert rightsizing_series() == {("kubemeter_cluster_cpu_requested_minus_recommended_cores", None),
                                    ("kubemeter_cluster_memory_requested_minus_recommended_bytes", None)}
    await publisher.publish(report(both), parse_policy({"aggregation": {"levels": ["namespace"]}}), generation=1)
    assert {name for name, _ in rightsizing_series()} == {
        "kubemeter_namespace_cpu_requested_minus_recommended_cores",
        "kubemeter_namespace_memory_requested_minus_recommended_bytes"}
    await publisher.publish(report(both), parse_policy({"output": {"prometheus": False}}), generation=1)
    assert rightsizing_series() == set()


def test_the_recommendations_published_are_not_changed_by_the_recommender_forgetting_a_workload():
    recommendations = {WEB: WorkloadRecommendation(1.0, {"app": container_recommendation("app")})}
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS, recommendations)
    recommendations.clear()  # as Recommender.forget_unseen on the mapping it returned, before the next scrape
    assert container_labels("p", WEB, "app") in series(
        registry, collector, "kubemeter_workload_container_cpu_recommendation_target_cores")


def test_a_shortfall_is_exported_for_an_under_request_alone_as_lower_bound_minus_request():
    """Not for a request merely below the lower bound: the verdict decides (a 5m request under the first bucket's
    bound is fit), and a learning container has none."""
    under = container_recommendation("app", cpu_request=0.05, cpu_verdict="under", memory_verdict="under")
    first_bucket = container_recommendation("sidecar", cpu_request=0.005, memory_request=1e6, cpu_verdict="fit",
                                            memory_verdict="learning")
    registry, collector, _ = build_registry()
    collector.set_snapshot("p", snapshot_of([pod("a", WEB)], {}), LEVELS,
                           {WEB: WorkloadRecommendation(1.0, {"app": under, "sidecar": first_bucket})})
    assert series(registry, collector, "kubemeter_workload_container_cpu_request_shortfall_cores") == {
        container_labels("p", WEB, "app"): pytest.approx(0.1 - 0.05)}
    assert series(registry, collector, "kubemeter_workload_container_memory_request_shortfall_bytes") == {
        container_labels("p", WEB, "app"): pytest.approx(80e6 - 64e6)}


async def test_each_policy_exports_the_container_families_of_its_recommendation_metrics():
    registry, collector, metrics = build_registry()
    recommendations = {WEB: WorkloadRecommendation(1.0, {"app": container_recommendation(
        "app", cpu_request=0.05, cpu_verdict="under")})}
    report = CycleReport(started=999.0, duration=1.0, selection=Selection(nodes=[]),
                         snapshot=snapshot_of([pod("a", WEB)], {}), scraped=0, failures={}, unresolved=[],
                         recommendations=recommendations)
    publishers = {name: PrometheusPublisher(name, collector, metrics) for name in ("full", "default", "none")}
    for name, spec in (("full", {"recommendations": {"metrics": "Full"}}), ("default", {}),
                       ("none", {"recommendations": {"metrics": "None"}})):
        await publishers[name].publish(report, parse_policy(spec), generation=1)
    exported = {(name, dict(labels)["policy"]) for name, labels in samples(registry, collector)
                if name.startswith("kubemeter_workload_container_") or "requested_minus_recommended" in name}
    for policy, detail in (("full", "Full"), ("default", "Differences"), ("none", "None")):
        containers = {name for name, of in exported if of == policy and name.startswith("kubemeter_workload_container")}
        assert containers == set(exported_container_families(detail)), policy
        assert {name for name, of in exported if of == policy} - containers == {
            f"kubemeter_{level}_{resource}_requested_minus_recommended_{unit}" for level in ("namespace", "cluster")
            for resource, unit in (("cpu", "cores"), ("memory", "bytes"))}, policy
    assert len(exported_container_families("Full")) == 14
    assert set(exported_container_families("Differences")) == {
        f"kubemeter_workload_container_{name}" for name in (
            "cpu_requested_minus_recommended_cores", "memory_requested_minus_recommended_bytes",
            "cpu_request_shortfall_cores", "memory_request_shortfall_bytes")}
    assert exported_container_families("None") == ()
