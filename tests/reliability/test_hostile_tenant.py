"""What a namespace user can create must not break what the cluster-scoped policy shows: values from their
objects (an ownerReference's kind, name and apiVersion are not length-checked by the API server) are kept
within the CRDs' bounds, a pod whose owner cannot be found still counts where it runs, and a status write that
keeps failing anyway says so in Ready."""

from __future__ import annotations

import asyncio

import kubernetes
import pytest

from kubemeter import GROUP, VERSION
from kubemeter.compute.quantity import parse_cpu
from kubemeter_sim.scenario import container, template
from tests.operator.conftest import eventually, stepped
from tests.reliability.support import first_cycle, samples

TENANT = "tenant-a"
# Unvalidated by the API server: the CRDs allow 63 characters of kind, 253 of name, 316 of apiVersion.
HOSTILE_OWNER = {"apiVersion": f"{'g' * 320}.example.com/v1", "kind": "K" * 64, "name": "n" * 300,
                 "uid": "00000000-0000-0000-0000-000000000001", "controller": True}
# A ReplicaSet of an API version removed in Kubernetes 1.16, which no ReplicaSet the operator watches answers to.
# Kept by both backends: the real garbage collector cannot map extensions/v1beta1, so it leaves the pod alone
# (a pod naming an apps/v1 ReplicaSet that does not exist it deletes within seconds).
REMOVED_API_OWNER = {"apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "name": "legacy-5d4f8c7b9",
                     "uid": "00000000-0000-0000-0000-000000000002", "controller": True}


@pytest.fixture
def cluster(any_cluster):
    return any_cluster


async def create_tenant_pod(cluster, name: str, owner: dict) -> dict:
    """A 3-CPU pod of the tenant's whose controller ownerReference is ``owner``; as created, bound to a node."""
    pod = template({"app": name}, [container("app", cpu="3", memory="64Mi")])
    pod["metadata"]["ownerReferences"] = [owner]
    pod["spec"]["nodeName"] = cluster.scenario.nodes[0]  # the real backend's; the simulator's scheduler chooses
    created = cluster.scenario.create_bare_pod(TENANT, name, pod)
    created = await created if asyncio.iscoroutine(created) else created
    # Running: its kubelet reports it from now on (its first cycle is the operator's, not the kubelet's).
    await eventually(lambda: cluster.store.get("v1", "pods", name, TENANT)["status"].get("phase") == "Running")
    return created


async def test_a_tenants_unbounded_owner_reference_cannot_make_a_status_write_invalid(cluster, start):
    await create_tenant_pod(cluster, "hostile", HOSTILE_OWNER)
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


def cpu_requests_on(cluster, node: str) -> float:
    """What the pods on ``node`` request, from the API server: the sum kubectl describe node shows."""
    return sum(parse_cpu(c["resources"].get("requests", {}).get("cpu", "0"))
               for pod in cluster.store.list("v1", "pods", field_selector=f"spec.nodeName={node}")
               if pod["status"].get("phase") not in ("Succeeded", "Failed")
               for c in pod["spec"]["containers"])


async def test_a_pod_whose_owner_cannot_be_found_counts_in_its_namespace_node_and_cluster_and_is_named(cluster, start):
    node = (await create_tenant_pod(cluster, "legacy-5d4f8c7b9-x2b7k", REMOVED_API_OWNER))["spec"]["nodeName"]
    op = await start()
    await op.create_policy("p", stepped())
    await first_cycle(op, "p")
    status = (await op.policy("p"))["status"]
    assert status["unresolvedPods"] == [], "its owner may yet be seen: it waits one cycle"
    assert any(w.startswith("1 pod waits for its owner") for w in status["warnings"]), status["warnings"]

    await op.cycle("p")
    status = (await op.policy("p"))["status"]
    assert status["unresolvedPods"] == [{"namespace": TENANT, "name": "legacy-5d4f8c7b9-x2b7k", "node": node, "owner": {
        "apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "name": "legacy-5d4f8c7b9"}}]
    assert status["cluster"]["podsUnresolved"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert await op.workload_metrics(TENANT) == [], "in no workload"
    in_workloads = sum(o["status"]["cpu"].get("requestsCores", 0.0) for o in await op.workload_metrics())
    assert status["cluster"]["cpuRequestsCores"] == pytest.approx(in_workloads + 3.0), "its 3 cores are not hidden"

    async def measured() -> str | None:
        """/metrics once a cycle measured the pod: a busy kubelet may report a new container a cycle late."""
        text = await op.scrape_metrics()
        reporting = samples(text, "kubemeter_namespace_pods_reporting", policy="p", namespace=TENANT)
        if list(reporting.values()) == [1.0]:
            return text
        await op.cycle("p")
        return None

    text = await eventually(measured)

    def gauge(name: str, **labels: str) -> float:
        [value] = samples(text, name, policy="p", **labels).values()
        return value

    assert gauge("kubemeter_unresolved_pods") == 1
    assert gauge("kubemeter_node_cpu_requests_cores", node=node) == pytest.approx(cpu_requests_on(cluster, node))
    assert gauge("kubemeter_namespace_cpu_requests_cores", namespace=TENANT) == 3.0
    # Scraped as any pod: its usage is in its namespace's and so in the cluster's.
    assert gauge("kubemeter_namespace_memory_working_set_bytes", namespace=TENANT) > 0
    tenant_cpu = gauge("kubemeter_namespace_cpu_usage_cores", namespace=TENANT)
    workloads_cpu = sum(samples(text, "kubemeter_workload_cpu_usage_cores", policy="p").values())
    assert gauge("kubemeter_cluster_cpu_usage_cores") == pytest.approx(workloads_cpu + tenant_cpu)


async def test_a_policy_status_write_that_keeps_failing_makes_ready_false_with_the_reason(cluster, start, admin):
    op = await start()
    # Every change written: a cycle whose figures moved less than 5% would write nothing to be refused.
    await op.create_policy("p", stepped(output={"minStatusChange": "0"}))
    await op.cycle("p")
    # A CRD stricter than what the operator writes (an older or a hand-edited one): every full status write
    # of the policy is refused with a 422.
    extensions = kubernetes.client.ApiextensionsV1Api(admin)
    crd = await asyncio.to_thread(extensions.read_custom_resource_definition, f"metricspolicies.{GROUP}")
    status_schema = crd.spec.versions[0].schema.open_apiv3_schema.properties["status"]
    status_schema.properties["topWorkloads"].max_items = 0
    await asyncio.to_thread(extensions.replace_custom_resource_definition, crd.metadata.name, crd)
    # kube-apiserver applies a changed CRD schema a while later (seconds, tens of seconds under load): wait until
    # a dry-run write of other top workloads is refused, so the operator's next cycle meets the new schema. (Not
    # the ones held: validation ratcheting lets a write keep a value the new schema would refuse.)
    other_top = (await op.policy("p"))["status"]["topWorkloads"][1:]
    assert other_top, "the first cycle ranked at least two workloads"

    async def schema_in_effect() -> bool:
        try:
            await asyncio.to_thread(
                op.custom.patch_cluster_custom_object_status, GROUP, VERSION, "metricspolicies", "p",
                [{"op": "add", "path": "/status/topWorkloads", "value": other_top}], dry_run="All",
                _content_type="application/json-patch+json")
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 422:
                return True
            raise AssertionError(f"the dry-run write failed otherwise: {exc.status} {exc.body}") from None
        return False

    await eventually(schema_in_effect, timeout=120, interval=0.5)

    async def ready_false() -> dict | None:
        await op.cycle("p")
        ready = {c["type"]: c for c in (await op.policy("p"))["status"]["conditions"]}["Ready"]
        return ready if ready["status"] == "False" else None

    ready = await eventually(ready_false, timeout=60)
    assert ready["reason"] == "StatusWriteFailed"
    assert "topWorkloads" in ready["message"], ready["message"]
    status = (await op.policy("p"))["status"]
    assert "cluster" not in status and "topWorkloads" not in status, "no figures left to pass for current"
