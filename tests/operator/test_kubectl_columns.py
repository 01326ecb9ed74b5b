"""What `kubectl get wm` and `kubectl get mp` show at a glance, run as a user runs them, on both backends: a stale
workload (no pod measured), one without requests and a degraded policy each read differently, and the figures use
the demo table's forms (``2/3``, millicores, ``37%``)."""

from __future__ import annotations

import asyncio
import re
import subprocess

import kubernetes

from kubemeter.compute.quantity import format_cpu, format_percent
from tests.operator.conftest import eventually, stepped

BROKEN = "sim-worker-1"
HEALTHY_NODES = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [BROKEN]}]}
MILLICORES = re.compile(r"\d+m|\d+")


async def kubectl_table(kubeconfig, *args: str) -> list[dict[str, str]]:
    """The rows of a `kubectl get` table, each keyed by its column header: kubectl aligns every cell under its
    header and prints an absent field as an empty cell."""
    result = await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", str(kubeconfig), "get", *args],
                                     capture_output=True, text=True, check=True)
    header, *lines = result.stdout.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None])]
    return [{name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None])}
            for line in lines]


async def _reported(operator, name: str) -> bool:
    return bool(((await operator.policy(name)).get("status") or {}).get("conditions"))


def bare_pod(name: str, node: str, requests: dict[str, str] | None) -> dict:
    resources = {"requests": requests} if requests else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1", "resources": resources}]}}


async def test_kubectl_get_tells_stale_workloads_missing_requests_and_a_degraded_policy_apart(any_operator):
    cluster = any_operator.cluster
    healthy = next(n for n in sorted(cluster.kubelets) if n != BROKEN and "control-plane" not in n)
    # Bare pods placed by hand (a real scheduler places the scenario's own pods as it likes): one on the node
    # about to fail, one without requests and one with them on a healthy node.
    pods = [bare_pod("glance-stale", BROKEN, {"cpu": "100m"}), bare_pod("glance-free", healthy, None),
            bare_pod("glance-requested", healthy, {"cpu": "200m", "memory": "64Mi"})]
    core = kubernetes.client.CoreV1Api(any_operator.client)
    for pod in pods:
        await any_operator.call(core.create_namespaced_pod, "default", pod)
    async def running() -> bool:
        listed = await any_operator.call(core.list_namespaced_pod, "default")
        return {p.metadata.name for p in listed.items if p.status.phase == "Running"} >= {
            p["metadata"]["name"] for p in pods}
    await eventually(running, timeout=60)
    await any_operator.create_policy("glance", stepped(selector={"namespaces": ["default"]}))
    await any_operator.cycle("glance", count=2)  # the second cycle has CPU rates
    await cluster.node_fault(BROKEN, "refused")  # the stale pod measured twice, then no more
    await any_operator.cycle("glance")
    await any_operator.create_policy("nothing", stepped(
        selector={"podSelector": {"matchLabels": {"app": "none"}}, "nodeSelector": HEALTHY_NODES}))
    await any_operator.cycle("nothing")
    await any_operator.create_policy("nonodes", stepped(selector={"nodeSelector": {"matchLabels": {"pool": "none"}}}))
    await any_operator.cycle("nonodes")
    # Valid for the CRD, not for the operator (a label key with a space): nothing runs.
    await any_operator.create_policy("invalid", stepped(selector={"podSelector": {"matchLabels": {"bad key": "x"}}}))
    await eventually(lambda: _reported(any_operator, "invalid"))
    kubeconfig = cluster.kubeconfig

    policies = {row["NAME"]: row for row in await kubectl_table(kubeconfig, "mp", "-o", "wide")}
    shown = {name: (row["READY"], row["DEGRADED"], row["REASON"]) for name, row in policies.items()}
    assert shown["nothing"] == ("True", "True", "NothingSelected"), "READY alone reads as healthy"
    assert shown["glance"] == ("True", "True", "NodesFailing")
    assert shown["nonodes"] == ("False", "False", "NoNodesSelected"), "why it is not Ready, not why not Degraded"
    assert shown["invalid"] == ("False", "", "InvalidSpec")

    objects = {o["metadata"]["name"]: o["status"] for o in await any_operator.workload_metrics("default")}
    rows = {row["NAME"]: row for row in await kubectl_table(kubeconfig, "wm", "-n", "default", "-o", "wide")}
    assert rows.keys() == objects.keys()
    row, status = rows["pod-glance-stale"], objects["pod-glance-stale"]
    assert status["stale"] and status["lastSampleTime"]
    assert (row["PODS"], row["STALE"], row["CPU"], row["CPU/REQ"], row["MEMORY"], row["MEM/REQ"]) == (
        "0/1", "true", "", "", "", ""), row
    assert re.fullmatch(r"\d+s", row["SAMPLED"]), ("how long ago it was last measured", row)

    row, status = rows["pod-glance-free"], objects["pod-glance-free"]
    assert (row["PODS"], row["STALE"], row["CPU/REQ"], row["MEM/REQ"]) == ("1/1", "false", "", ""), row
    assert MILLICORES.fullmatch(row["CPU"]) and row["CPU"] == format_cpu(status["cpu"]["usageCores"]), row

    row, status = rows["pod-glance-requested"], objects["pod-glance-requested"]
    cpu, memory = status["cpu"], status["memory"]
    assert (row["PODS"], row["STALE"], row["CPU PODS"]) == ("1/1", "false", "1"), row
    assert row["CPU"] == format_cpu(cpu["usageCores"]) and MILLICORES.fullmatch(row["CPU"]), row
    assert row["CPU/REQ"] == format_percent(cpu["requestUtilization"]) and row["CPU/REQ"].endswith("%"), row
    assert row["MEM/REQ"] == format_percent(memory["requestUtilization"]) and row["MEM/REQ"].endswith("%"), row
