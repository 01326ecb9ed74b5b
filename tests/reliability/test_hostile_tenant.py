"""What a namespace user can create must not break what the cluster-scoped policy shows: values from their
objects (an ownerReference's kind, name and apiVersion are not length-checked by the API server) are kept
within the CRDs' bounds, and a status write that keeps failing anyway says so in Ready."""

from __future__ import annotations

import asyncio

import kubernetes
import pytest

from kubemeter import GROUP
from kubemeter_sim.scenario import container, template
from tests.operator.conftest import eventually, stepped
from tests.reliability.support import first_cycle

TENANT = "tenant-a"
# Unvalidated by the API server: the CRDs allow 63 characters of kind, 253 of name, 316 of apiVersion.
HOSTILE_OWNER = {"apiVersion": f"{'g' * 320}.example.com/v1", "kind": "K" * 64, "name": "n" * 300,
                 "uid": "00000000-0000-0000-0000-000000000001", "controller": True}


@pytest.fixture
def cluster(any_cluster):
    return any_cluster


async def test_a_tenants_unbounded_owner_reference_cannot_make_a_status_write_invalid(cluster, start):
    pod = template({"app": "hostile"}, [container("app", cpu="3", memory="64Mi")])
    pod["metadata"]["ownerReferences"] = [HOSTILE_OWNER]
    pod["spec"]["nodeName"] = cluster.scenario.nodes[0]
    result = cluster.scenario.create_bare_pod(TENANT, "hostile", pod)
    if asyncio.iscoroutine(result):
        await result
    op = await start()
    await op.create_policy("p", stepped(output={"topWorkloads": 100}))
    report = await first_cycle(op, "p")
    assert any(ref.namespace == TENANT for ref in report.snapshot.workloads), "the tenant's pod is measured"

    status = (await op.policy("p"))["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True", ready
    assert status["pods"] == report.snapshot.cluster.pods, "the policy status is the last cycle's"
    [hostile] = [w for w in status["topWorkloads"] if w["namespace"] == TENANT]
    assert len(hostile["kind"]) <= 63 and len(hostile["name"]) <= 253
    assert hostile["kind"].startswith("K" * 40) and hostile["name"].startswith("n" * 200), "still recognisable"

    [metrics] = await op.workload_metrics(TENANT)
    assert metrics["status"]["pods"] == 1
    workload = metrics["spec"]["workload"]
    assert (len(workload["apiVersion"]), len(workload["kind"]), len(workload["name"])) <= (316, 63, 253)

    # A restart adopts that object (it is the same workload), neither deleting nor duplicating it.
    await op.thread.stop()
    second = await start()
    await first_cycle(second, "p")
    assert [o["metadata"]["uid"] for o in await second.workload_metrics(TENANT)] == [metrics["metadata"]["uid"]]


async def test_a_policy_status_write_that_keeps_failing_makes_ready_false_with_the_reason(cluster, start, admin):
    op = await start()
    await op.create_policy("p", stepped())
    await op.cycle("p")
    # A CRD stricter than what the operator writes (an older or a hand-edited one): every full status write
    # of the policy is refused with a 422.
    extensions = kubernetes.client.ApiextensionsV1Api(admin)
    crd = await asyncio.to_thread(extensions.read_custom_resource_definition, f"metricspolicies.{GROUP}")
    status_schema = crd.spec.versions[0].schema.open_apiv3_schema.properties["status"]
    status_schema.properties["topWorkloads"].max_items = 0
    await asyncio.to_thread(extensions.replace_custom_resource_definition, crd.metadata.name, crd)

    async def ready_false() -> dict | None:
        await op.cycle("p")
        ready = {c["type"]: c for c in (await op.policy("p"))["status"]["conditions"]}["Ready"]
        return ready if ready["status"] == "False" else None

    ready = await eventually(ready_false, timeout=60)
    assert ready["reason"] == "StatusWriteFailed"
    assert "topWorkloads" in ready["message"], ready["message"]
    status = (await op.policy("p"))["status"]
    assert "cluster" not in status and "topWorkloads" not in status, "no figures left to pass for current"
