"""Two replicas: only the lease holder runs cycles and writes; when it stops, the other takes over."""

from __future__ import annotations

import asyncio
import logging

import kubernetes
import pytest

from kubemeter.timefmt import rfc3339

from tests.operator.conftest import eventually, stepped
from tests.reliability.support import first_cycle, samples

@pytest.fixture
def cluster(any_cluster):
    """Both backends (the Lease is the real coordination API's on the real control plane)."""
    return any_cluster


LEASE = {"leader_election": True, "lease_namespace": "default", "lease_duration": 2.0, "renew_deadline": 1.5,
         "retry_period": 0.2}


async def test_only_the_leader_publishes_and_a_standby_takes_over(start, admin):
    coordination = kubernetes.client.CoordinationV1Api(admin)

    async def holder() -> str:
        lease = await asyncio.to_thread(coordination.read_namespaced_lease, "kubemeter", "default")
        return lease.spec.holder_identity

    first = await start(identity="replica-a", **LEASE)
    await eventually(lambda: first.runtime.deps.active.is_set())
    second = await start(identity="replica-b", **LEASE)
    await first.create_policy("p", stepped())
    await first_cycle(first, "p")
    leader_loop = first.runtime.lifecycle.policies["p"].loop
    status = (await first.policy("p"))["status"]
    assert status["nodes"]["scraped"] == 3

    # The standby follows the policy and keeps a warm model, but neither scrapes nor writes.
    standby = await eventually(lambda: second.runtime.lifecycle.policies.get("p"))
    await asyncio.sleep(4 * LEASE["retry_period"])
    assert not second.runtime.deps.active.is_set()
    assert standby.loop is not None and standby.loop.last_report is None
    assert standby.publisher.writes_planned == 0
    assert second.runtime.model.pod_count == first.runtime.model.pod_count > 0
    assert await holder() == "replica-a"
    assert samples(await first.scrape_metrics(), "kubemeter_is_leader") == {(): 1.0}
    standby_metrics = await second.scrape_metrics()
    assert samples(standby_metrics, "kubemeter_is_leader") == {(): 0.0}
    # What KubemeterPolicyStale reads: every replica exports its policies' writers, only the leader their cycles.
    assert samples(standby_metrics, "kubemeter_status_writes_pending", policy="p")
    assert not samples(standby_metrics, "kubemeter_policy_last_cycle_timestamp_seconds")
    assert samples(await first.scrape_metrics(), "kubemeter_policy_last_cycle_timestamp_seconds", policy="p")

    await first.thread.stop()
    assert leader_loop.last_report is not None
    assert await holder() != "replica-a", "a leader that stops cleanly gives the lease up"
    # Takeover within a retry period of the release (at worst lease_duration + retry_period after a crash),
    # with slack for a busy machine.
    taken = await eventually(lambda: standby.loop.last_report, timeout=3 * LEASE["lease_duration"] + 5)

    async def published_by_second() -> dict | None:
        status = (await second.policy("p"))["status"]
        return status if status["lastScrapeTime"] >= rfc3339(taken.started) else None

    assert (await eventually(published_by_second))["nodes"]["scraped"] == 3
    assert await holder() == "replica-b"
    assert samples(await second.scrape_metrics(), "kubemeter_is_leader") == {(): 1.0}



@pytest.mark.parametrize("any_cluster", ["sim"], indirect=True)
async def test_a_leader_that_cannot_renew_steps_down_and_publishes_nothing_until_it_leads_again(start):
    """Simulator only: it injects the API server's refusal of Lease requests."""
    op = await start(identity="replica-a", **LEASE)
    await eventually(lambda: op.runtime.deps.active.is_set())
    await op.create_policy("p", stepped())
    await first_cycle(op, "p")
    assert samples(await op.scrape_metrics(), "kubemeter_workload_pods", policy="p")
    before = {o["metadata"]["uid"]: o["status"]["lastUpdated"] for o in await op.workload_metrics()}
    publisher = op.runtime.lifecycle.policies["p"].publisher

    # The API server refuses every Lease request: the renewal fails past renew_deadline.
    outage = op.cluster.apiserver.inject_fault(status=503, path=r"/leases/")
    await eventually(lambda: not op.runtime.deps.active.is_set(), timeout=3 * LEASE["lease_duration"] + 5)
    text = await op.scrape_metrics()
    assert not samples(text, "kubemeter_workload_pods", policy="p"), "no stale gauges"
    assert not samples(text, "kubemeter_policy_last_cycle_timestamp_seconds", policy="p"), "no stalled-policy alert"
    assert not samples(text, "kubemeter_nodes", policy="p"), "nodes not counted twice next to the leader's"
    assert samples(text, "kubemeter_is_leader") == {(): 0.0}
    loop = op.runtime.lifecycle.policies["p"].loop
    planned, published = publisher.writes_planned, loop.cycles_published
    await op.thread.run(loop.run_cycle())  # a cycle that ends after the step-down
    assert (publisher.writes_planned, loop.cycles_published) == (planned, published)
    assert not samples(await op.scrape_metrics(), "kubemeter_workload_pods", policy="p")

    # Leading again: it adopts the objects anew (same uids, no re-creation) and publishes at once.
    outage.remove()
    await eventually(lambda: op.runtime.deps.active.is_set(), timeout=3 * LEASE["lease_duration"] + 5)
    report = await op.cycle("p")
    after = {o["metadata"]["uid"]: o for o in await op.workload_metrics()}
    assert after.keys() == before.keys()
    text = await op.scrape_metrics()
    assert samples(text, "kubemeter_workload_pods", policy="p")
    assert samples(text, "kubemeter_is_leader") == {(): 1.0}
    assert (await op.policy("p"))["status"]["lastScrapeTime"] == rfc3339(report.started)


def failing_logged(caplog: pytest.LogCaptureFixture, node: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"node {node} failing (")]


async def failed_nodes_published(op, policy: str) -> list[str]:
    async def published() -> list[str]:
        status = (await op.policy(policy)).get("status") or {}
        return [f["name"] for f in status.get("failedNodes", [])]
    return await eventually(published)


async def test_a_new_leader_logs_each_node_already_failing_once(start, cluster, caplog):
    """The standby's loop knows the failure from the status the leader wrote, so it is no transition to it; its log
    still says so once, at its first cycle, and not at every cycle."""
    caplog.set_level(logging.INFO, logger="kubemeter.loop")
    broken = sorted(cluster.kubelets)[0]
    await cluster.node_fault(broken, "http500")
    first = await start(identity="replica-a", **LEASE)
    await eventually(lambda: first.runtime.deps.active.is_set())
    await first.create_policy("p", stepped())
    await first_cycle(first, "p")
    assert await failed_nodes_published(first, "p") == [broken]
    assert len(failing_logged(caplog, broken)) == 1, "the leader logs the node starting to fail"
    second = await start(identity="replica-b", **LEASE)  # follows the policy as its status has the failure
    standby = await eventually(lambda: (p := second.runtime.lifecycle.policies.get("p")) and p.loop and p)
    assert broken in standby.loop.failures

    await first.thread.stop()
    caplog.clear()
    await eventually(lambda: standby.loop.last_report, timeout=3 * LEASE["lease_duration"] + 5)
    await second.cycle("p")
    [logged] = failing_logged(caplog, broken)
    assert "server_error" in logged and "since" in logged, logged


async def test_a_restarted_operator_logs_each_node_already_failing_once(start, cluster, caplog):
    caplog.set_level(logging.INFO, logger="kubemeter.loop")
    broken = sorted(cluster.kubelets)[0]
    await cluster.node_fault(broken, "http500")
    first = await start()
    await first.create_policy("p", stepped())
    await first_cycle(first, "p")
    assert await failed_nodes_published(first, "p") == [broken]
    await first.thread.stop()
    caplog.clear()

    second = await start()
    await first_cycle(second, "p")
    await second.cycle("p")
    assert len(failing_logged(caplog, broken)) == 1
