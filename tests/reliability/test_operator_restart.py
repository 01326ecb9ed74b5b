"""A restarted operator adopts what the previous run published: no delete/re-create storm, memory at the
first cycle, CPU from the second, and the objects of workloads deleted while it was down cleaned up."""

from __future__ import annotations

from collections import Counter

import pytest
from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter_sim.cluster import Cluster
from tests.operator.conftest import eventually, stepped
from tests.operator.test_e2e_metering import top_owner
from tests.reliability.support import RequestCounter, first_cycle, node_events

GONE = ("shop", "Deployment")
INTERVAL = 3600.0  # stepped(): 1h
GC_TIMEOUT = 60.0  # a real garbage collector can take about 30 s to start following a new custom resource


def pods_started_within_interval(cluster: Cluster) -> Counter[tuple[str, str, str]]:
    """Per workload, its pods whose every container started within an interval of the last scrape: only those
    have a CPU rate from a single sample (from a zero point at the start, as metrics-server does); a pod with a
    container running for longer is left out of its workload's CPU until its second sample."""
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in cluster.store.list("v1", "pods")}
    young, old = set(), set()
    for kubelet in cluster.kubelets.values():
        for (namespace, pod, _), point in kubelet.snapshots[-1].containers.items():
            (young if point.timestamp - point.start_time <= INTERVAL else old).add((namespace, pod))
    return Counter(top_owner(cluster.store, pods[key]) for key in young - old)


@pytest.fixture
def cluster(any_cluster):
    return any_cluster


def by_workload(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {
        (o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]): o for o in objects
    }


async def test_a_restarted_operator_adopts_its_objects_and_cleans_up_orphans(cluster: Cluster, start):
    first = await start()
    await first.create_policy("p", stepped())
    await first.cycle("p")
    before = by_workload(await first.workload_metrics())
    policy_before = (await first.policy("p"))["status"]
    await first.thread.stop()

    # Deleted while no operator runs: its WorkloadMetrics is an orphan the next run must remove.
    gone = next(key for key in before if key[:2] == GONE)
    await cluster.scenario.delete_workload("Deployment", gone[0], gone[2])
    creates = RequestCounter(cluster, "POST", r"/workloadmetrics$")
    deletes = RequestCounter(cluster, "DELETE", r"/workloadmetrics/")

    second = await start()
    await first_cycle(second, "p")
    adopted = by_workload(await second.workload_metrics())
    assert adopted.keys() == before.keys() - {gone}
    assert creates.count == 0 and deletes.count == 1, "adopted, not re-created; only the orphan deleted"
    young = pods_started_within_interval(cluster)
    long_running = {key for key, obj in adopted.items() if young[key] < obj["status"]["podsReporting"]}
    if cluster.backend == "sim":  # a real server cannot backdate pods: there, every workload started just now
        assert long_running, "some workloads run since long before the restart"
    for key, obj in adopted.items():
        assert obj["metadata"]["uid"] == before[key]["metadata"]["uid"], key
        status = obj["status"]
        # Memory needs one sample; CPU needs two (a rate), so long-running pods are left out of it for a cycle,
        # and the CPU says how many pods it covers.
        assert status["memory"]["workingSetBytes"] > 0, key
        assert status["memory"]["podsMeasured"] == status["podsReporting"], key
        assert status["cpu"]["podsMeasured"] == young[key], key
        assert ("usageCores" in status["cpu"]) == (young[key] > 0), key
        assert status["lastUpdated"] >= before[key]["status"]["lastUpdated"]

    policy_status = (await second.policy("p"))["status"]
    assert policy_status["cluster"]["cpuPodsMeasured"] == sum(young.values()), "a partial total says so"
    reporting = sum(obj["status"]["podsReporting"] for obj in adopted.values())
    assert policy_status["cluster"]["memoryPodsMeasured"] == reporting

    await second.cycle("p")
    second_cycle = by_workload(await second.workload_metrics())
    assert all(obj["status"].get("cpu", {}).get("usageCores", -1) >= 0 for obj in second_cycle.values()), "CPU now"
    assert all(obj["status"]["cpu"]["podsMeasured"] == obj["status"]["podsReporting"] for obj in second_cycle.values())
    assert (await second.policy("p"))["status"]["cluster"]["cpuCores"] > 0
    assert creates.count == 0 and deletes.count == 1

    policy_after = (await second.policy("p"))["status"]
    transitions = {c["type"]: c["lastTransitionTime"] for c in policy_before["conditions"]}
    assert {c["type"]: c["lastTransitionTime"] for c in policy_after["conditions"]} == transitions
    assert policy_after["workloads"] == policy_before["workloads"] - 1


async def test_a_restart_continues_a_node_failure_instead_of_reporting_it_anew(cluster: Cluster, start, admin):
    broken = "sim-worker-1"
    await cluster.node_fault(broken, "http500")
    first = await start()
    await first.create_policy("p", stepped())
    await first_cycle(first, "p")
    [before] = (await first.policy("p"))["status"]["failedNodes"]
    assert await node_events(admin, "ScrapeFailed", {broken: 1}) == {broken: 1}
    await first.thread.stop()

    second = await start()
    await first_cycle(second, "p")
    [after] = (await second.policy("p"))["status"]["failedNodes"]
    assert (after["name"], after["reason"], after["since"]) == (broken, "server_error", before["since"])
    await cluster.node_fault(broken, None)
    await second.cycle("p")
    # The recovery is reported (so the failure Event was not lost), and the failure was not reported twice.
    assert await node_events(admin, "ScrapeRecovered", {broken: 1}) == {broken: 1}
    assert await node_events(admin, "ScrapeFailed", {broken: 1}) == {broken: 1}


async def delete_policy(op, name: str, propagation: str) -> None:
    """``kubectl delete mp NAME --cascade=...``, returning once the policy is gone (the garbage collector has
    orphaned its dependents first when asked to)."""
    await op.call(op.custom.delete_cluster_custom_object, GROUP, VERSION, "metricspolicies", name,
                  propagation_policy=propagation)

    async def gone() -> bool:
        try:
            await op.policy(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    await eventually(gone, timeout=GC_TIMEOUT)


def owner_uids(objects: list[dict]) -> set[tuple[str, ...]]:
    """The controller owner uids of each object (an empty tuple: it has none)."""
    return {tuple(r["uid"] for r in o["metadata"].get("ownerReferences", ()) if r.get("controller")) for o in objects}


async def test_a_policy_recreated_after_an_orphaning_delete_owns_its_objects_again(cluster: Cluster, start):
    op = await start()
    await op.create_policy("p", stepped())
    await op.cycle("p")
    count = len(await op.workload_metrics())
    await delete_policy(op, "p", "Orphan")  # kubectl delete mp p --cascade=orphan

    async def orphaned() -> bool:
        # A real garbage collector orphans the dependents its informers have seen; one the operator created an
        # instant before can keep the old owner and be collected instead (seen on a loaded machine): the recreated
        # policy creates that one again, and adopts the others.
        return owner_uids(await op.workload_metrics()) <= {()}

    await eventually(orphaned, timeout=GC_TIMEOUT)

    recreated = await op.create_policy("p", stepped())
    await op.cycle("p")
    adopted = await op.workload_metrics()
    assert len(adopted) == count
    assert owner_uids(adopted) == {(recreated["metadata"]["uid"],)}, "adopted objects are owned by the new policy"

    await delete_policy(op, "p", "Background")  # kubectl delete mp p
    assert await eventually(lambda: _none_left(op), timeout=GC_TIMEOUT)


async def _none_left(op) -> bool:
    return not await op.workload_metrics()


async def test_an_operator_start_removes_the_objects_of_policies_that_no_longer_exist(cluster: Cluster, start):
    first = await start()
    await first.create_policy("gone", stepped())
    await first.create_policy("kept", stepped(output={"topWorkloads": 3}))
    await first.cycle("gone")
    await first.cycle("kept")
    kept = {o["metadata"]["uid"] for o in await first.workload_metrics() if o["spec"]["policy"] == "kept"}
    assert kept
    await first.thread.stop()  # writes the right-sizing checkpoints of both
    await delete_policy(first, "gone", "Orphan")
    assert {o["spec"]["policy"] for o in await first.workload_metrics()} == {"gone", "kept"}
    assert {o["spec"]["policy"] for o in await checkpoints(first)} == {"gone", "kept"}
    kept_checkpoints = {o["metadata"]["uid"] for o in await checkpoints(first) if o["spec"]["policy"] == "kept"}

    second = await start()

    async def only_kept() -> bool:
        return {o["metadata"]["uid"] for o in await second.workload_metrics()} == kept and \
            {o["metadata"]["uid"] for o in await checkpoints(second)} == kept_checkpoints

    assert await eventually(only_kept), "the orphans of the deleted policy are removed, the others kept"


async def checkpoints(op) -> list[dict]:
    return (await op.call(op.custom.list_cluster_custom_object, GROUP, VERSION, "metricscheckpoints"))["items"]


async def test_objects_a_restart_with_an_invalid_spec_cannot_update_say_they_are_stale(cluster: Cluster, start):
    first = await start()
    await first.create_policy("p", stepped())
    await first.cycle("p")
    before = by_workload(await first.workload_metrics())
    assert before and not any(o["status"]["stale"] for o in before.values())
    await first.thread.stop()
    # Invalid in a way only the operator can tell (a matchLabels key): nothing runs after the restart.
    await first.patch_policy("p", {"selector": {"podSelector": {"matchLabels": {"bad key": "x"}}}})

    second = await start()

    async def reported_invalid() -> bool:
        conditions = {c["type"]: c for c in (await second.policy("p")).get("status", {}).get("conditions", ())}
        return conditions.get("Ready", {}).get("reason") == "InvalidSpec"

    await eventually(reported_invalid)
    status = (await second.policy("p"))["status"]
    assert "cpu" not in status["cluster"] and "topWorkloads" not in status, "no old CPU beside Ready False"
    assert status["cluster"]["cpuRequestsCores"] > 0, "what is declared stays"

    async def all_stale() -> dict | None:
        objects = by_workload(await second.workload_metrics())
        return objects if all(o["status"].get("stale") for o in objects.values()) else None

    after = await eventually(all_stale)
    assert after.keys() == before.keys(), "kept: a valid spec continues them"
    for key, obj in after.items():
        status = obj["status"]
        assert obj["metadata"]["uid"] == before[key]["metadata"]["uid"], key
        assert status["podsReporting"] == 0, key
        assert "usageCores" not in status.get("cpu", {}) and "workingSetBytes" not in status.get("memory", {}), key
        assert status["lastSampleTime"] == before[key]["status"]["lastSampleTime"], "when it was last measured"
