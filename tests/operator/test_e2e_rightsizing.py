"""Right-sizing where users look, on both backends: every workload of a policy gets status.recommendation, `kubectl
get wm` says at a glance which one requests too much and which too little, the policy's status rolls up what
could be given back, and a policy with recommendations disabled shows none.

The usage is known by construction (the simulated kubelets serve it on both backends): an idle container that
requests a core and a GiB uses a few millicores and MB (over), one annotated to use three times its requests
(memory at 110%, the simulator's most) is short of both (under), and one without requests is unset.
"""

from __future__ import annotations

import math

import kubernetes

from kubemeter_sim.kubelet import PROFILE_ANNOTATION, USAGE_SCALE_ANNOTATION
from tests.operator.conftest import eventually, stepped
from tests.operator.test_kubectl_columns import kubectl_table

SELECTED = {"podSelector": {"matchLabels": {"sizing": "e2e"}}}


def sized_pod(name: str, node: str, requests: dict[str, str] | None, annotations: dict[str, str]) -> dict:
    resources = {"requests": requests} if requests else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"sizing": "e2e"}, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [
                {"name": "app", "image": "registry.example/app:1", "resources": resources}]}}


async def test_recommendations_show_in_status_in_kubectl_get_wm_and_in_the_policy_roll_up(any_operator):
    cluster = any_operator.cluster
    node = next(n for n in sorted(cluster.kubelets) if "control-plane" not in n)
    pods = [
        sized_pod("sizing-over", node, {"cpu": "1", "memory": "1Gi"}, {PROFILE_ANNOTATION: "idle"}),
        sized_pod("sizing-under", node, {"cpu": "100m", "memory": "64Mi"},
                  {PROFILE_ANNOTATION: "steady", USAGE_SCALE_ANNOTATION: "3"}),
        sized_pod("sizing-unset", node, None, {PROFILE_ANNOTATION: "steady"}),
    ]
    core = kubernetes.client.CoreV1Api(any_operator.client)
    for pod in pods:
        await any_operator.call(core.create_namespaced_pod, "default", pod)

    async def running() -> bool:
        listed = await any_operator.call(core.list_namespaced_pod, "default", label_selector="sizing=e2e")
        return len([p for p in listed.items if p.status.phase == "Running"]) == len(pods)
    await eventually(running, timeout=60)
    # Hour-long stepped cycles, an hour apart as the loop sees them: the history the policy's half hour asks for from
    # the second cycle on (the first sample is no history, however long the interval).
    await any_operator.create_policy("sizing", stepped(selector=SELECTED, recommendations={"minHistory": "30m"}))
    await any_operator.create_policy("nosizing", stepped(selector=SELECTED, recommendations={"enabled": False}))
    await any_operator.cycle_until_measured("sizing")
    await any_operator.cycle("sizing", count=2, advance=3600.0)  # the second has CPU rates for every pod
    await any_operator.cycle("nosizing", count=2)

    objects = await any_operator.workload_metrics("default")
    sized = {o["spec"]["workload"]["name"]: o["status"] for o in objects if o["spec"]["policy"] == "sizing"}
    unsized = {o["spec"]["workload"]["name"]: o["status"] for o in objects if o["spec"]["policy"] == "nosizing"}
    assert sized.keys() == unsized.keys() == {p["metadata"]["name"] for p in pods}
    for name, status in sized.items():  # every workload of the policy, every container
        section = status["recommendation"]
        assert [c["name"] for c in section["containers"]] == [c["name"] for c in status["containers"]], name
        assert all(c["confidenceDays"] > 0 and c["historySeconds"] >= 1800 for c in section["containers"]), section
    assert not any("recommendation" in status for status in unsized.values()), "disabled: no section at all"

    [over] = sized["sizing-over"]["recommendation"]["containers"]
    assert (over["cpu"]["verdict"], over["memory"]["verdict"]) == ("over", "over"), over
    assert over["cpu"]["requestCores"] > over["cpu"]["upperBoundCores"], over
    assert over["memory"]["requestBytes"] > over["memory"]["upperBoundBytes"], over
    [under] = sized["sizing-under"]["recommendation"]["containers"]
    assert (under["cpu"]["verdict"], under["memory"]["verdict"]) == ("under", "under"), under
    assert under["cpu"]["requestCores"] < under["cpu"]["lowerBoundCores"] and under["cpu"]["differenceCores"] > 0
    [unset] = sized["sizing-unset"]["recommendation"]["containers"]
    assert "targetCores" in unset["cpu"] and "differenceCores" not in unset["cpu"], unset

    rows = {(row["POLICY"], row["WORKLOAD"]): row
            for row in await kubectl_table(cluster.kubeconfig, "wm", "-n", "default", "-o", "wide")}
    shown = {name: rows["sizing", name]["SIZING"] for name in sized}
    assert shown == {"sizing-over": "cpu:over mem:over", "sizing-under": "cpu:under mem:under",
                     "sizing-unset": "unset"}, shown
    assert shown == {name: status["recommendation"]["summary"] for name, status in sized.items()}
    assert {rows["nosizing", name]["SIZING"] for name in unsized} == {""}
    default_columns = await kubectl_table(cluster.kubeconfig, "wm", "-n", "default")
    assert {row["SIZING"] for row in default_columns} >= {"cpu:over mem:over", "cpu:under mem:under"}, \
        "a default column, not only -o wide"

    async def rolled_up() -> dict:
        return ((await any_operator.policy("sizing")).get("status") or {}).get("recommendations")
    rollup = await eventually(rolled_up)
    expected_cpu = -math.fsum(c["cpu"].get("workloadDifferenceCores", 0.0) for s in sized.values()
                              for c in s["recommendation"]["containers"])
    expected_memory = -sum(c["memory"].get("workloadDifferenceBytes", 0) for s in sized.values()
                           for c in s["recommendation"]["containers"])
    cluster_rollup = rollup["cluster"]
    assert cluster_rollup["workloads"] == 2, "the unset workload has no verdict to count"
    assert math.isclose(cluster_rollup["reclaimableCpuCores"], expected_cpu, abs_tol=1e-5), (rollup, expected_cpu)
    assert abs(cluster_rollup["reclaimableMemoryBytes"] - expected_memory) <= 2, (rollup, expected_memory)
    assert cluster_rollup["reclaimableCpuCores"] > 0, "the idle core to give back outweighs 200m short"
    assert rollup["namespaceCount"] == 1 and rollup["namespaces"] == [{"namespace": "default", **cluster_rollup}]
    assert "recommendations" not in ((await any_operator.policy("nosizing")).get("status") or {})
