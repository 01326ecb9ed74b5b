"""Two replicas: only the lease holder runs cycles and writes; when it stops, the other takes over."""

from __future__ import annotations

import asyncio

import kubernetes

from kubemeter.publish.status import rfc3339
from tests.operator.conftest import eventually, stepped
from tests.reliability.support import first_cycle

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
    leader_loop = first.runtime.policies["p"].loop
    status = (await first.policy("p"))["status"]
    assert status["nodes"]["scraped"] == 3

    # The standby follows the policy and keeps a warm model, but neither scrapes nor writes.
    standby = await eventually(lambda: second.runtime.policies.get("p"))
    await asyncio.sleep(4 * LEASE["retry_period"])
    assert not second.runtime.deps.active.is_set()
    assert standby.loop is not None and standby.loop.last_report is None
    assert standby.publisher.writes_planned == 0
    assert second.runtime.model.pod_count == first.runtime.model.pod_count > 0
    assert await holder() == "replica-a"

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

