"""Right-sizing in the status documents: a WorkloadMetrics' status.recommendation (its SIZING summary), what makes
it worth a write, and the policy status's roll-up of requested minus recommended."""

from __future__ import annotations

import dataclasses

import pytest
from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.quantity import format_bytes, format_cpu
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import (
    VERDICTS,
    ContainerRecommendation,
    Recommendation,
    Recommender,
    ResourceRecommendation,
    RightsizingConfig,
    WorkloadRecommendation,
)
from kubemeter.policy import parse_policy
from kubemeter.publish.documents import (
    MAX_RECOMMENDATION_NAMESPACES,
    key_values,
    moved,
    policy_status,
    recommendations_rollup,
    sizing_summary,
    stale_workload_status,
    without_measured_figures,
    workload_status,
)
from kubemeter.publish.status import StatusPublisher, _Published
from kubemeter.timefmt import rfc3339
from kubemeter.types import ContainerSpec, PodInfo, Selection, Usage, WorkloadRef
from kubemeter_sim.apiserver.schema import CompiledSchema

from tests.packaging.packaging_support import crd_schema

NOW = 1_800_000_000.0
MI = 2.0**20
WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
WM_SCHEMA = CompiledSchema.compile(crd_schema("workloadmetrics"))
POLICY_SCHEMA = CompiledSchema.compile(crd_schema("metricspolicies"))


def container(name: str = "app", *, pods: int = 3, cpu_request: float | None = 0.5,
              memory_request: float | None = 256 * MI, cpu: tuple[float, float, float] | None = (0.12, 0.09, 0.2),
              memory: tuple[float, float, float] | None = (200 * MI, 150 * MI, 300 * MI), cpu_verdict: str = "over",
              memory_verdict: str = "fit", confidence: float = 2.5) -> ContainerRecommendation:
    """A container's recommendation with known figures: ``cpu``/``memory`` are (target, lower, upper)."""
    made = Recommendation(
        cpu=None if cpu is None else ResourceRecommendation(*cpu),
        memory=None if memory is None else ResourceRecommendation(*memory),
        memory_limit=None if memory is None else 320 * MI, confidence=confidence)
    return ContainerRecommendation(name, pods, cpu_request, memory_request, 512 * MI, made, confidence * 86_400,
                                   cpu_verdict, memory_verdict)


def workload(*containers: ContainerRecommendation) -> WorkloadRecommendation:
    return WorkloadRecommendation(NOW - 5, {c.name: c for c in containers})


def _result(ref: WorkloadRef = WEB):
    pod = PodInfo("uid-1", ref.namespace, "web-0", "node-1", "Running", {}, None,
                  (ContainerSpec("app", 0.5, None, 256 * MI, None),), workload=ref)
    return Aggregator(3600, (50,)).cycle(NOW, [pod], {"uid-1": {"app": Usage(0.1, 100 * MI, NOW)}}).workloads[ref]


def wm(status: dict) -> dict:
    return {"apiVersion": "kubemeter.io/v1alpha1", "kind": "WorkloadMetrics",
            "metadata": {"name": "deployment-web", "namespace": "shop"},
            "spec": {"policy": "p", "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
            "status": status}


def test_the_recommendation_has_numbers_for_machines_quantities_for_humans_and_the_differences():
    status = workload_status(_result(), parse_policy({}), NOW, NOW, workload(container()))
    section = status["recommendation"]
    assert section["lastUpdateTime"] == rfc3339(NOW - 5) and section["summary"] == "cpu:over mem:fit"
    [app] = section["containers"]
    assert (app["name"], app["pods"], app["confidenceDays"], app["historySeconds"]) == ("app", 3, 2.5, 216_000)
    assert app["cpu"] == {
        "verdict": "over", "request": "500m", "requestCores": 0.5, "target": "120m", "targetCores": 0.12,
        "lowerBoundCores": 0.09, "upperBoundCores": 0.2,
        "differenceCores": pytest.approx(-0.38), "workloadDifferenceCores": pytest.approx(-1.14),
    }
    assert app["memory"] == {
        "verdict": "fit", "request": "256Mi", "requestBytes": 256 * 2**20, "limitBytes": 512 * 2**20,
        "target": "200Mi", "targetBytes": 200 * 2**20, "lowerBoundBytes": 150 * 2**20, "upperBoundBytes": 300 * 2**20,
        "recommendedLimitBytes": 320 * 2**20, "differenceBytes": -56 * 2**20, "workloadDifferenceBytes": -168 * 2**20,
    }
    checked = WM_SCHEMA.prepare(wm(status))
    assert WM_SCHEMA.validate(checked, None) == [] and checked["status"] == status, "the CRD accepts and keeps it"


def test_without_a_recommendation_there_is_no_section_and_learning_or_unset_has_no_difference():
    assert "recommendation" not in workload_status(_result(), parse_policy({}), NOW, NOW, None)
    sized = workload_status(_result(), parse_policy({}), NOW, NOW, workload(container()))
    assert "recommendation" not in stale_workload_status(sized, NOW + 60), "nothing runs: not presented as current"
    young = container(cpu_request=None, cpu_verdict="unset", memory_verdict="learning", confidence=0.01)
    [entry] = workload_status(_result(), parse_policy({}), NOW, NOW, workload(young))["recommendation"]["containers"]
    assert entry["cpu"] == {"verdict": "unset", "target": "120m", "targetCores": 0.12, "lowerBoundCores": 0.09,
                            "upperBoundCores": 0.2}, "no request: nothing to compare, no zero"
    assert entry["memory"]["targetBytes"] == 200 * 2**20 and "differenceBytes" not in entry["memory"]
    no_sample = container(cpu=None, cpu_verdict="learning")
    [entry] = workload_status(_result(), parse_policy({}), NOW, NOW, workload(no_sample))["recommendation"]["containers"]
    assert entry["cpu"] == {"verdict": "learning", "request": "500m", "requestCores": 0.5}


@pytest.mark.parametrize(("verdicts", "summary"), [
    ([("over", "fit")], "cpu:over mem:fit"),
    ([("fit", "under")], "cpu:fit mem:under"),
    ([("learning", "learning")], "learning"),
    ([("unset", "unset")], "unset"),
    ([("learning", "fit")], "cpu:learning mem:fit"),
    ([("over", "fit"), ("under", "fit")], "cpu:under mem:fit"),  # the container short of its need first
    ([("fit", "fit"), ("learning", "learning")], "learning"),  # fit only once every container is known
    ([("fit", "fit"), ("unset", "fit")], "cpu:unset mem:fit"),
    ([("over", "learning"), ("unset", "learning")], "cpu:over mem:learning"),
])
def test_the_sizing_column_reads_each_resource_as_its_most_pressing_container(verdicts, summary):
    made = workload(*(container(f"c{i}", cpu_verdict=cpu, memory_verdict=memory)
                      for i, (cpu, memory) in enumerate(verdicts)))
    assert sizing_summary(made) == summary
    assert len(summary) <= 64  # the CRD's bound: the longest is "cpu:learning mem:learning" (never printed)


def test_every_verdict_pair_reads_in_one_short_cell():
    cells = {sizing_summary(workload(container(cpu_verdict=c, memory_verdict=m))) for c in VERDICTS for m in VERDICTS}
    assert max(map(len, cells)) <= len("cpu:learning mem:unset") and {"learning", "unset"} <= cells


def _key(made: WorkloadRecommendation | None) -> dict:
    return key_values(workload_status(_result(), parse_policy({}), NOW, NOW, made))


def test_a_verdict_or_target_that_moves_is_worth_a_write_bounds_and_confidence_ride_along():
    before = _key(workload(container()))
    assert not moved(before, _key(workload(container(cpu=(0.124, 0.05, 0.4), confidence=3.0))), 0.05), \
        "a target 3% higher, wider bounds, more confidence: not worth a write"
    assert moved(before, _key(workload(container(cpu=(0.13, 0.09, 0.2)))), 0.05), "the CPU target moved 8%"
    assert moved(before, _key(workload(container(memory=(220 * MI, 150 * MI, 300 * MI)))), 0.05), "memory, 10%"
    assert moved(before, _key(workload(container(cpu_verdict="fit"))), 0.05), "a verdict changed"
    assert moved(_key(None), before, 0.05), "a recommendation appeared"
    assert moved(before, _key(workload(container(), container("sidecar"))), 0.05), "a container came"


def _report(recommendations: dict[WorkloadRef, WorkloadRecommendation]) -> CycleReport:
    snapshot = Aggregator(3600, (50,)).cycle(NOW, [], {})
    return CycleReport(NOW - 1, 0.2, Selection(nodes=[]), snapshot, 0, {}, [], recommendations=recommendations)


def test_the_policy_rolls_up_requested_minus_recommended_per_namespace_and_cluster():
    over = container(pods=2, cpu_request=1.0, cpu=(0.25, 0.2, 0.5), memory_verdict="learning")  # 2 x 0.75 to give
    under = container("worker", pods=1, cpu_request=0.1, cpu=(0.4, 0.3, 0.6), cpu_verdict="under",
                      memory_request=100 * MI, memory=(164 * MI, 150 * MI, 300 * MI), memory_verdict="under")
    unknown = container(cpu_verdict="learning", memory_verdict="unset", memory_request=None)
    recommendations = {WEB: workload(over), WorkloadRef("shop", "Deployment", "api", "apps/v1"): workload(under),
                       WorkloadRef("data", "StatefulSet", "db", "apps/v1"): workload(over, under),
                       WorkloadRef("batch", "Job", "new", "batch/v1"): workload(unknown)}
    status = policy_status(_report(recommendations), parse_policy({}), 1, before=[])
    rollup = status["recommendations"]
    assert rollup["cluster"] == {"workloads": 3, "reclaimableCpuCores": pytest.approx(2 * 1.5 - 2 * 0.3),
                                 "reclaimableMemoryBytes": -2 * 64 * 2**20, "cpu": "2400m", "memory": "-128Mi"}
    assert rollup["namespaceCount"] == 2, "the namespace with only a learning workload is not counted"
    assert [(n["namespace"], n["workloads"], n["reclaimableCpuCores"], n["reclaimableMemoryBytes"])
            for n in rollup["namespaces"]] == [("data", 1, 1.2, -64 * 2**20), ("shop", 2, 1.2, -64 * 2**20)]
    assert rollup["cluster"]["cpu"] == format_cpu(2.4) and rollup["cluster"]["memory"] == format_bytes(-128 * MI)
    obj = {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "metadata": {"name": "p"}, "spec": {},
           "status": status}
    assert POLICY_SCHEMA.validate(POLICY_SCHEMA.prepare(obj), None) == []
    assert "recommendations" not in without_measured_figures(status), "a failed cycle takes it out with the usage"
    assert recommendations_rollup({WEB: workload(unknown)}) is None, "nothing with a verdict: no roll-up, not zeros"


def test_the_namespaces_of_the_roll_up_are_bounded_most_to_give_back_first():
    recommendations = {
        WorkloadRef(f"ns-{i:03}", "Deployment", "web", "apps/v1"):
            workload(container(cpu_request=1.0, cpu=(1.0 - i / 100, 0.0, 0.0), memory_verdict="learning"))
        for i in range(MAX_RECOMMENDATION_NAMESPACES + 10)
    }
    rollup = recommendations_rollup(recommendations)
    assert rollup["namespaceCount"] == MAX_RECOMMENDATION_NAMESPACES + 10
    shown = [n["namespace"] for n in rollup["namespaces"]]
    assert len(shown) == MAX_RECOMMENDATION_NAMESPACES and shown[0] == "ns-059" and "ns-009" not in shown
    assert rollup["cluster"]["workloads"] == MAX_RECOMMENDATION_NAMESPACES + 10, "the cluster counts them all"


def test_the_publisher_writes_what_the_recommender_made_and_rewrites_when_a_verdict_moves():
    """The whole path: a Recommender's recommendations through StatusPublisher's planning."""
    recommender = Recommender(RightsizingConfig(min_history=0.0))
    pod = PodInfo("uid-1", "shop", "web-0", "node-1", "Running", {}, None,
                  (ContainerSpec("app", 2.0, None, 64 * MI, None),), workload=WEB)
    spec = dataclasses.replace(parse_policy({"output": {"maxStatusAge": "24h"}}), recommendations=recommender.config)
    publisher = StatusPublisher(None, "p", "uid", clock=lambda: NOW)  # type: ignore[arg-type]
    aggregator = Aggregator(3600, (50,))
    # Hour-long cycles, so that the bounds are those of hours of history from the first (at a minute they are wide
    # enough to call 64Mi fit for 300Mi, and the verdict would move as the history grows); the first sample an hour
    # before, as one sample is no history.
    recommender.observe(NOW - 3600, [pod], {"uid-1": {"app": Usage(0.05, 300 * MI, NOW - 3600)}}, 3600)
    for step in range(3):
        now = NOW + 3600 * step
        usage = {"uid-1": {"app": Usage(0.05, 300 * MI, now)}}
        recommender.observe(now, [pod], usage, 3600)
        made = recommender.recommendations(now, [pod], 3600)
        snapshot = aggregator.cycle(now, [pod], usage)
        publisher._plan_workloads(snapshot, spec, now, made)
        written = publisher._writes.queued.pop(WEB, None)
        if step == 0:
            first = written.status
            publisher._published[WEB] = _Published("deployment-web", key_values(first), now, now)
        else:
            assert written is None, "steady usage: the recommendation moved too little to write"
    [app] = first["recommendation"]["containers"]
    assert first["recommendation"]["summary"] == "cpu:over mem:under", app  # 2 cores for 0.05; 64Mi for 300Mi
    assert app["cpu"]["workloadDifferenceCores"] == app["cpu"]["differenceCores"] < 0 < app["memory"]["differenceBytes"]
    pod.containers = (ContainerSpec("app", 0.07, None, 400 * MI, None),)  # resized to about the recommendation
    now = NOW + 3600 * 3
    recommender.observe(now, [pod], {"uid-1": {"app": Usage(0.05, 300 * MI, now)}}, 3600)
    made = recommender.recommendations(now, [pod], 3600)
    publisher._plan_workloads(aggregator.cycle(now, [pod], {"uid-1": {"app": Usage(0.05, 300 * MI, now)}}), spec,
                              now, made)
    assert publisher._writes.queued[WEB].status["recommendation"]["summary"] == "cpu:fit mem:fit"
