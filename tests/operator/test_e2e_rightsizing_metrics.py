"""End to end on the simulator: the right-sizing gauges on /metrics follow the recommendations of the cycles and the
policy's spec.recommendations.metrics, and go with the workload's pods."""

from __future__ import annotations

import asyncio
import math

from prometheus_client.parser import text_string_to_metric_families

from kubemeter_sim.catalogue import container, template
from kubemeter_sim.kubelet import USAGE_SCALE_ANNOTATION
from tests.operator.conftest import eventually, stepped

NAMESPACE = "rightsizing"
MI = 2**20
CONTAINER_PREFIX = "kubemeter_workload_container_"


async def rightsizing_series(operator, policy: str) -> dict[str, dict[tuple[str, ...], float]]:
    """Family -> (namespace, kind, workload, container) or (namespace,) or () -> value, of the policy's right-sizing
    series."""
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(await operator.scrape_metrics()):
        if not (family.name.startswith(CONTAINER_PREFIX) or "requested_minus_recommended" in family.name):
            continue
        for sample in family.samples:
            if sample.labels["policy"] == policy:
                key = tuple(sample.labels[label] for label in ("namespace", "workload_kind", "workload", "container")
                            if label in sample.labels)
                out.setdefault(family.name, {})[key] = sample.value
    return out


async def pods_gone(operator, *names: str) -> None:
    await eventually(lambda: not [p for p in operator.cluster.store.list("v1", "pods", namespace=NAMESPACE)
                                  if p["metadata"]["name"].startswith(names)])
    await asyncio.sleep(0.3)  # the watch events reach the operator


async def test_rightsizing_gauges_show_each_workload_container_and_go_with_its_pods(operator):
    scenario = operator.cluster.scenario
    scenario.ensure_namespace(NAMESPACE)
    scenario.create_deployment(NAMESPACE, "web", 2, template({"app": "web"}, [
        container("web", cpu="250m", memory="128Mi", memory_limit="256Mi"), container("sidecar")]))
    scenario.create_bare_pod(NAMESPACE, "probe", template({"run": "probe"}, [container("probe", cpu="50m",
                                                                                           memory="64Mi")]))
    await operator.create_policy("rs", stepped(selector={"namespaces": [NAMESPACE]},
                                               recommendations={"metrics": "Full"}))
    # CPU is a rate: sampled from the second cycle on; the third gives it an interval of history. Cycles an hour
    # (the interval) apart as the loop sees them.
    await operator.cycle_until_measured("rs")
    report = await operator.cycle("rs", count=3, advance=3600.0)
    made = {(ref.kind, ref.name): recommendation for ref, recommendation in report.recommendations.items()}
    assert made.keys() == {("Deployment", "web"), ("Pod", "probe")}
    exported = await rightsizing_series(operator, "rs")

    def gauge(name: str, workload: tuple[str, str], container_name: str) -> float | None:
        return exported.get(CONTAINER_PREFIX + name, {}).get((NAMESPACE, *workload, container_name))

    web = ("Deployment", "web")
    # The requests per pod, as the Deployment's template has them; none for the sidecar, which requests nothing.
    assert (gauge("cpu_request_cores", web, "web"), gauge("memory_request_bytes", web, "web")) == (0.25, 128 * MI)
    assert gauge("cpu_request_cores", web, "sidecar") is gauge("memory_request_bytes", web, "sidecar") is None
    for workload, recommendation in made.items():
        for name, figures in recommendation.containers.items():
            for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
                recommended = getattr(figures.recommendation, resource)
                assert recommended is not None, (workload, name, resource)  # two cycles: a CPU rate and a memory peak
                for bound in ("target", "lower_bound", "upper_bound"):
                    assert gauge(f"{resource}_recommendation_{bound}_{unit}", workload, name) == getattr(
                        recommended, bound), (workload, name, resource, bound)
                # Three cycles an hour (the policy's interval) apart are more than the hour of history a verdict needs.
                judged = getattr(figures, f"{resource}_verdict") in ("over", "under", "fit")
                assert judged == (getattr(figures, f"{resource}_request") is not None), (workload, name, resource)
                difference = gauge(f"{resource}_requested_minus_recommended_{unit}", workload, name)
                if judged:
                    assert math.isclose(difference, -getattr(figures, f"{resource}_difference") * figures.pods)
                else:
                    assert difference is None
            assert gauge("memory_limit_recommendation_bytes", workload, name) == figures.recommendation.memory_limit
            assert gauge("recommendation_history_seconds", workload, name) == figures.history_seconds >= 3600
    for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
        total = -math.fsum(recommendation.total_difference(resource) for recommendation in made.values())
        namespace = exported[f"kubemeter_namespace_{resource}_requested_minus_recommended_{unit}"]
        assert namespace.keys() == {(NAMESPACE,)} and math.isclose(namespace[(NAMESPACE,)], total), resource
        assert math.isclose(exported[f"kubemeter_cluster_{resource}_requested_minus_recommended_{unit}"][()], total)
    history = gauge("recommendation_history_seconds", web, "web")

    # Scaled to zero (for the night, say): no pod to recommend for, so no series; the history is kept a half-life.
    await scenario.scale("Deployment", NAMESPACE, "web", 0)
    await pods_gone(operator, "web-")
    await operator.cycle("rs")
    exported = await rightsizing_series(operator, "rs")
    assert gauge("cpu_request_cores", web, "web") is None
    assert {key[1:3] for series in exported.values() for key in series if len(key) == 4} == {("Pod", "probe")}
    # Back: the recommendation again, from the history it had and the new samples.
    await scenario.scale("Deployment", NAMESPACE, "web", 2)
    await operator.cycle_until_measured("rs")
    await operator.cycle("rs", count=2, advance=3600.0)
    exported = await rightsizing_series(operator, "rs")
    assert gauge("cpu_request_cores", web, "web") == 0.25
    assert gauge("recommendation_history_seconds", web, "web") > history

    # Deleted, and the bare pod too: every right-sizing series of the policy goes, the roll-ups with them.
    await scenario.delete_workload("Deployment", NAMESPACE, "web")
    await scenario.delete_workload("Pod", NAMESPACE, "probe")
    await pods_gone(operator, "web-", "probe")
    await operator.cycle("rs")
    assert await rightsizing_series(operator, "rs") == {}


ROLLUPS = {f"kubemeter_{level}_{resource}_requested_minus_recommended_{unit}" for level in ("namespace", "cluster")
           for resource, unit in (("cpu", "cores"), ("memory", "bytes"))}
DIFFERENCES = {CONTAINER_PREFIX + name for name in (
    "cpu_requested_minus_recommended_cores", "memory_requested_minus_recommended_bytes",
    "cpu_request_shortfall_cores", "memory_request_shortfall_bytes")}
FULL = DIFFERENCES | {CONTAINER_PREFIX + name for name in (
    "cpu_recommendation_target_cores", "cpu_recommendation_lower_bound_cores", "cpu_recommendation_upper_bound_cores",
    "memory_recommendation_target_bytes", "memory_recommendation_lower_bound_bytes",
    "memory_recommendation_upper_bound_bytes", "memory_limit_recommendation_bytes", "recommendation_history_seconds",
    "cpu_request_cores", "memory_request_bytes")}


async def set_recommendation_metrics(operator, policy: str, detail: str) -> None:
    await operator.patch_policy(policy, {"recommendations": {"metrics": detail}})
    await eventually(lambda: operator.runtime.lifecycle.policies[policy].loop.spec.recommendation_metrics == detail)
    await operator.cycle(policy)


async def test_each_recommendations_metrics_value_exports_its_families_and_an_edit_withdraws_the_others(operator):
    """Differences by default (the dashboard's and the alerts' series), Full, None (the roll-ups alone), and back:
    after each edit /metrics has exactly the families of the new value, none left over from the previous one."""
    scenario = operator.cluster.scenario
    scenario.ensure_namespace(NAMESPACE)
    # tight uses 3 times its CPU request and 110% of its memory request: under-requested; web idles: over.
    pods = template({"app": "web"}, [container("web", cpu="2", memory="1Gi"),
                                     container("tight", cpu="100m", memory="64Mi")], profiles="web=idle,tight=steady")
    pods["metadata"]["annotations"][USAGE_SCALE_ANNOTATION] = "3"
    scenario.create_deployment(NAMESPACE, "web", 2, pods)
    await operator.create_policy("rs", stepped(selector={"namespaces": [NAMESPACE]}))
    await operator.cycle_until_measured("rs")
    report = await operator.cycle("rs", count=3, advance=3600.0)  # CPU from the second: an hour of it by the third
    (made,) = report.recommendations.values()
    tight = made.containers["tight"]
    assert (tight.cpu_verdict, tight.memory_verdict) == ("under", "under")
    assert (made.containers["web"].cpu_verdict, made.containers["web"].memory_verdict) == ("over", "over")
    key = (NAMESPACE, "Deployment", "web", "tight")

    exported = await rightsizing_series(operator, "rs")
    assert exported.keys() == DIFFERENCES | ROLLUPS
    # The shortfall: for the under-requested container alone, its lower bound minus its request, per pod.
    for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
        shortfall = exported[f"{CONTAINER_PREFIX}{resource}_request_shortfall_{unit}"]
        recommended = getattr(tight.recommendation, resource)
        assert shortfall.keys() == {key}, resource
        assert math.isclose(shortfall[key], recommended.lower_bound - getattr(tight, f"{resource}_request")), resource

    await set_recommendation_metrics(operator, "rs", "Full")
    assert (await rightsizing_series(operator, "rs")).keys() == FULL | ROLLUPS
    await set_recommendation_metrics(operator, "rs", "None")
    text = await operator.scrape_metrics()
    assert CONTAINER_PREFIX not in text  # no series, and no HELP or TYPE line of an empty family either
    assert (await rightsizing_series(operator, "rs")).keys() == ROLLUPS
    await set_recommendation_metrics(operator, "rs", "Differences")
    assert (await rightsizing_series(operator, "rs")).keys() == DIFFERENCES | ROLLUPS
