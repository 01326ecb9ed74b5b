"""Right-sizing histories survive restarts and failover through their MetricsCheckpoints: written at most once per
checkpointInterval, owned by the policy (so a Deployment scaled to zero keeps its checkpoint while its WorkloadMetrics
goes), restored by the next run or leader, an earlier version's adopted, a malformed one reported and left alone,
deleted with the history when the workload goes and by the garbage collector with the policy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import kubernetes
import pytest

from kubemeter import GROUP, VERSION
from kubemeter.kube import load_configuration
from kubemeter_sim.demo import install_crds
from tests.operator.conftest import CRDS_DIR, Operator, eventually, start_operator, stepped
from tests.reliability.support import RequestCounter, first_cycle, samples
from tests.reliability.test_leader_election import LEASE
from tests.reliability.test_operator_restart import delete_policy

CHECKPOINT_INTERVAL = 600.0  # spec.recommendations.checkpointInterval's default
GC_TIMEOUT = 60.0  # a real garbage collector can take about 30 s to start following a new custom resource


@pytest.fixture
def cluster(any_cluster):
    return any_cluster


def history_seconds(op: Operator, policy: str) -> dict[tuple[str, str, str, str], float]:
    """(namespace, kind, workload, container) -> seconds of history behind its recommendation, as of the last cycle."""
    report = op.runtime.lifecycle.policies[policy].loop.last_report
    return {(ref.namespace, ref.kind, ref.name, name): made.history_seconds
            for ref, workload in report.recommendations.items() for name, made in workload.containers.items()}


async def checkpoints(op: Operator) -> dict[str, dict]:
    """Every MetricsCheckpoint by namespace/name."""
    listed = await op.call(op.custom.list_cluster_custom_object, GROUP, VERSION, "metricscheckpoints")
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in listed["items"]}


async def checkpoint_results(op: Operator, policy: str = "p") -> dict[str, float]:
    found = samples(await op.scrape_metrics(), "kubemeter_checkpoints_total", policy=policy)
    return {dict(labels)["result"]: value for labels, value in found.items()}


async def flush_checkpoints(op: Operator, policy: str = "p") -> None:
    await op.thread.run(op.runtime.lifecycle.policies[policy].checkpoints.flush())


async def learned(op: Operator, cycles: int = 2) -> dict[tuple[str, str, str, str], float]:
    """A policy ``p`` with a few cycles of history; its history per container."""
    await op.create_policy("p", stepped())
    await first_cycle(op, "p")
    await op.cycle("p", cycles)
    histories = history_seconds(op, "p")
    assert histories, "the workloads have recommendations"
    return histories


async def test_a_restart_keeps_the_recommendations_and_their_history(start):
    first = await start()
    before = await learned(first)
    workloads = {o["metadata"]["namespace"] + "/" + o["metadata"]["name"]: o for o in await first.workload_metrics()}
    await first.thread.stop()  # writes every checkpoint once more

    written = await checkpoints(first)
    assert written.keys() == workloads.keys(), "one checkpoint per workload, named as its WorkloadMetrics"
    policy_uid = (await first.policy("p"))["metadata"]["uid"]
    for key, checkpoint in written.items():
        [owner] = checkpoint["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("MetricsPolicy", "p", policy_uid)
        assert checkpoint["metadata"]["labels"]["kubemeter.io/policy"] == "p"
        assert checkpoint["spec"]["workload"] == workloads[key]["spec"]["workload"]

    second = await start()
    await first_cycle(second, "p")
    after = history_seconds(second, "p")
    assert after.keys() == before.keys()
    # A fresh history would hold one sample, no time watched (however long the interval): the restored ones go on
    # from where they were, by the time since their last sample (the restart), not by a whole hour's interval.
    assert all(before[key] + 3600.0 > after[key] > before[key] > 0.0 for key in before), (before, after)
    assert (await checkpoint_results(second)).get("restored") == len(written)


async def sentinel_owned_by(op: Operator, owner: dict) -> str:
    """A MetricsCheckpoint no policy lists (no label), owned by ``owner`` (a WorkloadMetrics) as the previous version
    had a workload's checkpoint owned: once it is gone, the garbage collector has dealt with the owner's going."""
    meta = owner["metadata"]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsCheckpoint",
            "metadata": {"name": f"sentinel-{meta['name']}"[:253], "namespace": meta["namespace"],
                         "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics",
                                              "name": meta["name"], "uid": meta["uid"], "controller": True}]},
            "spec": {"policy": "sentinel", "workload": owner["spec"]["workload"], "time": "2026-01-01T00:00:00Z",
                     "containers": {}}}
    await op.call(op.custom.create_namespaced_custom_object, GROUP, VERSION, meta["namespace"], "metricscheckpoints",
                  body)
    return f"{meta['namespace']}/{body['metadata']['name']}"


async def collected(op: Operator, sentinel: str) -> None:
    async def gone() -> bool:
        return sentinel not in await checkpoints(op)

    await eventually(gone, timeout=GC_TIMEOUT)


def of_workload(histories: dict[tuple[str, str, str, str], float], workload: tuple[str, str, str]) -> dict:
    return {key: seconds for key, seconds in histories.items() if key[:3] == workload}


async def test_a_deployment_scaled_to_zero_keeps_its_history_across_a_restart_until_its_policy_goes(cluster, start):
    first = await start()
    await learned(first)
    await first.thread.run(first.runtime.lifecycle.policies["p"].checkpoints.write_all())
    night = next(o for o in await first.workload_metrics() if o["spec"]["workload"]["kind"] == "Deployment")
    namespace, name = night["metadata"]["namespace"], night["spec"]["workload"]["name"]
    workload, key = (namespace, "Deployment", name), f"{namespace}/{night['metadata']['name']}"
    before = of_workload(history_seconds(first, "p"), workload)
    assert before and key in await checkpoints(first)
    sentinel = await sentinel_owned_by(first, night)

    # Scaled to zero for the night: no pod left, so its WorkloadMetrics goes; its history stays (a half-life).
    scaled_down_at = time.time()
    await cluster.scenario.scale("Deployment", namespace, name, 0)

    async def measured_no_more() -> bool:
        await first.cycle("p", pause=0.2)
        return workload not in {(o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"])
                                for o in await first.workload_metrics()}

    await eventually(measured_no_more, timeout=GC_TIMEOUT)
    await collected(first, sentinel)  # the garbage collector is done with the WorkloadMetrics' dependents
    assert key in await checkpoints(first), "the checkpoint is the policy's: it stays"
    await first.thread.stop()  # an operator restart (an upgrade, a node drain) overnight

    second = await start()
    await first_cycle(second, "p")
    assert (await checkpoint_results(second)).get("restored") == len(await checkpoints(second))
    assert not of_workload(history_seconds(second, "p"), workload), "no pod: no recommendation"
    await cluster.scenario.scale("Deployment", namespace, name, 2)  # the morning

    async def sampled_again() -> dict | None:
        await second.cycle("p", pause=0.2)
        after = of_workload(history_seconds(second, "p"), workload)
        return after if after.keys() == before.keys() and all(after[c] > before[c] for c in before) else None

    after = await eventually(sampled_again, timeout=GC_TIMEOUT)
    # A history spans from its first sample to its last, this cycle (cycles seconds apart: every gap, the restart's
    # too, is under the 1h interval, so all of it counts): the restored one began before the night; one started
    # afresh would begin with the morning's first sample.
    cycle_time = second.runtime.lifecycle.policies["p"].loop.last_report.snapshot.time
    began = {container: cycle_time - seconds for container, seconds in after.items()}
    assert all(start < scaled_down_at for start in began.values()), (scaled_down_at, began)

    await flush_checkpoints(second)
    await delete_policy(second, "p", "Background")  # kubectl delete mp p

    async def none_left() -> bool:
        return not await checkpoints(second) and not await second.workload_metrics()

    await eventually(none_left, timeout=GC_TIMEOUT)


async def test_the_checkpoints_an_earlier_version_had_owned_by_their_workloadmetrics_are_adopted(cluster, start):
    first = await start()
    await learned(first)
    await first.thread.stop()  # writes every checkpoint
    workloads = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in await first.workload_metrics()}
    written = await checkpoints(first)
    assert written.keys() == workloads.keys()
    for key, checkpoint in written.items():  # as the earlier version wrote them: owned by their WorkloadMetrics
        wm = workloads[key]["metadata"]
        owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics", "name": wm["name"], "uid": wm["uid"],
                 "controller": True}
        await first.call(first.custom.patch_namespaced_custom_object, GROUP, VERSION, wm["namespace"],
                         "metricscheckpoints", wm["name"],
                         [{"op": "replace", "path": "/metadata/ownerReferences", "value": [owner]}],
                         _content_type="application/json-patch+json")

    second = await start()  # the upgrade
    await first_cycle(second, "p")
    policy_uid = (await second.policy("p"))["metadata"]["uid"]

    async def adopted() -> bool:
        owners = {key: [(r["kind"], r["uid"]) for r in c["metadata"]["ownerReferences"]]
                  for key, c in (await checkpoints(second)).items()}
        return owners == {key: [("MetricsPolicy", policy_uid)] for key in written}

    await eventually(adopted)
    assert (await checkpoint_results(second)).get("adopted") == len(written)

    # Its WorkloadMetrics deleted (by hand here; with its workload's last pod in the cluster): the checkpoint stays.
    [namespace, name] = sorted(written)[0].split("/")
    sentinel = await sentinel_owned_by(second, workloads[f"{namespace}/{name}"])
    await second.call(second.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, "workloadmetrics", name)
    await collected(second, sentinel)
    assert f"{namespace}/{name}" in await checkpoints(second)


async def test_a_malformed_checkpoint_is_reported_left_alone_and_the_others_restored(start):
    first = await start()
    before = await learned(first)
    await first.thread.stop()
    written = await checkpoints(first)
    broken_key = sorted(written)[0]
    namespace, name = broken_key.split("/")
    broken = written[broken_key]
    container = next(iter(broken["spec"]["containers"]))
    # Valid for the CRD, not for this operator: the layout of a version it does not know.
    patch = [{"op": "replace", "path": f"/spec/containers/{container}/version", "value": 99}]
    await first.call(first.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, "metricscheckpoints",
                     name, patch, _content_type="application/json-patch+json")

    second = await start()
    await first_cycle(second, "p")
    assert await checkpoint_results(second) == {"restored": len(written) - 1, "malformed": 1}
    after = history_seconds(second, "p")
    kind, workload = broken["spec"]["workload"]["kind"], broken["spec"]["workload"]["name"]
    for key, seconds in after.items():
        if key[:3] == (namespace, kind, workload):
            assert seconds == 0.0, "the malformed checkpoint's workload starts afresh: one sample, nothing watched"
        else:
            assert seconds > before[key], key
    still = (await checkpoints(second))[broken_key]
    assert still["spec"]["containers"][container]["version"] == 99, "left as it is"


async def test_checkpoints_are_written_at_most_once_per_interval_each_at_its_own_time(cluster, start):
    op = await start()
    await op.create_policy("p", stepped())
    await first_cycle(op, "p")
    publisher = op.runtime.lifecycle.policies["p"].checkpoints
    names = [o["metadata"]["name"] for o in await op.workload_metrics()]
    namespaces = {o["metadata"]["name"]: o["metadata"]["namespace"] for o in await op.workload_metrics()}
    creates = RequestCounter(cluster, "POST", r"/metricscheckpoints$")
    patches = {name: RequestCounter(cluster, "PATCH", rf"/namespaces/{namespaces[name]}/metricscheckpoints/{name}$")
               for name in names}
    shift, base = [0.0], time.time()
    publisher.clock = lambda: base + shift[0]  # the checkpoint schedule's clock: a third of an interval a cycle
    step, cycles = CHECKPOINT_INTERVAL / 3, 9
    created_by_cycle = []
    for _ in range(cycles):
        shift[0] += step
        await op.cycle("p", pause=0.2)
        await flush_checkpoints(op)
        created_by_cycle.append(creates.count)
    span = step * cycles  # three intervals
    assert creates.count == len(names), "every workload's checkpoint created once"
    assert 0 < created_by_cycle[0] < len(names), "the first writes spread over the interval, not all at once"
    for name, counter in patches.items():
        # Its writes are an interval apart at least: the creation and at most one a further interval.
        assert counter.count + 1 <= span / CHECKPOINT_INTERVAL + 1, name
    assert (await checkpoint_results(op))["written"] == creates.count + sum(c.count for c in patches.values())
    for counter in (creates, *patches.values()):
        counter.stop()


async def test_a_forgotten_workloads_checkpoint_is_deleted(cluster, start):
    op = await start()
    await op.create_policy("p", stepped())
    await first_cycle(op, "p")
    publisher = op.runtime.lifecycle.policies["p"].checkpoints
    shift, base = [0.0], time.time()
    publisher.clock = lambda: base + shift[0]
    shift[0] = 2 * CHECKPOINT_INTERVAL  # every workload's first checkpoint is due
    await op.cycle("p", pause=0.2)
    await flush_checkpoints(op)
    gone = next(o for o in await op.workload_metrics() if o["spec"]["workload"]["kind"] == "Deployment")
    key = f"{gone['metadata']['namespace']}/{gone['metadata']['name']}"
    assert key in await checkpoints(op)

    await cluster.scenario.delete_workload("Deployment", gone["metadata"]["namespace"], gone["spec"]["workload"]["name"])
    # A day later (beyond the default halfLife a Deployment's history outlives its pods by), as the loop sees it.
    op.runtime.deps.clock = lambda: time.time() + 25 * 3600
    shift[0] += 25 * 3600
    report = await op.cycle("p", pause=0.2)
    forgotten = {(ref.namespace, ref.kind, ref.name) for ref in report.histories_forgotten}
    assert forgotten == {(gone["metadata"]["namespace"], "Deployment", gone["spec"]["workload"]["name"])}
    await flush_checkpoints(op)

    async def deleted() -> bool:
        return key not in await checkpoints(op)

    await eventually(deleted, timeout=GC_TIMEOUT)
    assert (await checkpoint_results(op)).get("deleted") == 1


async def test_turning_recommendations_off_deletes_the_policys_checkpoints(start):
    op = await start()
    await learned(op)
    await op.thread.run(op.runtime.lifecycle.policies["p"].checkpoints.write_all())  # as at a shutdown
    assert await checkpoints(op), "a checkpoint per workload"
    await op.patch_policy("p", {"recommendations": {"enabled": False}})

    async def off() -> bool:
        policy = op.runtime.lifecycle.policies["p"]
        return policy.loop.recommender is None

    await eventually(off)
    report = await op.cycle("p", pause=0.2)
    assert report.recommendations == {}

    async def none_left() -> bool:
        return not await checkpoints(op)

    await eventually(none_left, timeout=GC_TIMEOUT)


async def test_a_new_leader_restores_the_histories(start):
    first = await start(identity="replica-a", **LEASE)
    await eventually(lambda: first.runtime.deps.active.is_set())
    second = await start(identity="replica-b", **LEASE)
    before = await learned(first)
    standby = await eventually(lambda: second.runtime.lifecycle.policies.get("p"))
    await first.thread.stop()  # writes the checkpoints, then gives the lease up

    await eventually(lambda: standby.loop.last_report, timeout=3 * LEASE["lease_duration"] + 5)
    after = history_seconds(second, "p")
    assert after.keys() == before.keys()
    assert all(before[key] + 3600.0 > after[key] > before[key] > 0.0 for key in before), (before, after)
    assert (await checkpoint_results(second)).get("restored") == len(await checkpoints(second))


async def test_without_the_checkpoint_crd_the_operator_runs_and_keeps_no_checkpoints(cluster, tmp_path: Path):
    """After a `helm upgrade`, which installs no new CRD: the operator meters as before."""
    older = tmp_path / "crds"
    older.mkdir()
    for name in ("metricspolicies.kubemeter.io.yaml", "workloadmetrics.kubemeter.io.yaml"):
        (older / name).write_text((CRDS_DIR / name).read_text())
    client = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, older)
    thread = await start_operator(cluster)
    try:
        op = Operator(cluster, thread, client)
        await op.create_policy("p", stepped())
        await first_cycle(op, "p")
        assert await op.workload_metrics()
        assert op.runtime.lifecycle.policies["p"].checkpoints is None
        assert "written" not in await checkpoint_results(op)
    finally:
        await thread.stop()
        client.close()
