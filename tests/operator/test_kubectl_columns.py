"""What `kubectl get wm` and `kubectl get mp` show at a glance, run as a user runs them, on both backends: a stale
workload (no pod measured), one without requests and a degraded policy each read differently, and the figures use
the demo table's forms (``2/3``, millicores, ``37%``)."""

from __future__ import annotations

import asyncio
import re
import subprocess

from kubemeter.compute.quantity import format_cpu, format_percent
from tests.operator.conftest import stepped

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


async def test_kubectl_get_tells_stale_workloads_missing_requests_and_a_degraded_policy_apart(any_operator):
    await any_operator.create_policy("glance", stepped())
    await any_operator.cycle("glance", count=2)  # the second cycle has CPU rates
    await any_operator.cluster.node_fault(BROKEN, "refused")  # its pods' workloads measured once, then stale
    await any_operator.cycle("glance")
    await any_operator.create_policy("nothing", stepped(
        selector={"podSelector": {"matchLabels": {"app": "none"}}, "nodeSelector": HEALTHY_NODES}))
    await any_operator.cycle("nothing")
    kubeconfig = any_operator.cluster.kubeconfig

    policies = {row["NAME"]: row for row in await kubectl_table(kubeconfig, "mp", "-o", "wide")}
    assert (policies["nothing"]["READY"], policies["nothing"]["DEGRADED"], policies["nothing"]["REASON"]) == (
        "True", "True", "NothingSelected"), "READY alone reads as healthy"
    assert (policies["glance"]["READY"], policies["glance"]["DEGRADED"], policies["glance"]["REASON"]) == (
        "True", "True", "NodesFailing")

    objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["status"]
               for o in await any_operator.workload_metrics()}
    rows = {(row["NAMESPACE"], row["NAME"]): row for row in await kubectl_table(kubeconfig, "wm", "-A", "-o", "wide")}
    assert rows.keys() == objects.keys()
    stale = [key for key, status in objects.items() if status["stale"]]
    without_requests = [key for key, status in objects.items()
                        if not status["stale"] and "requestsCores" not in status["cpu"] and "usage" in status["cpu"]]
    with_requests = [key for key, status in objects.items() if "requestUtilization" in status["cpu"]]
    assert stale and without_requests and with_requests, "the scenario has each kind of workload"

    for key in stale:
        row, pods = rows[key], objects[key]["pods"]
        assert (row["PODS"], row["STALE"], row["CPU"], row["CPU/REQ"], row["MEMORY"]) == (
            f"0/{pods}", "true", "", "", ""), row
        assert re.fullmatch(r"\d+s", row["SAMPLED"]), ("how long ago it was last measured", row)
    for key in without_requests:
        row, status = rows[key], objects[key]
        assert row["PODS"] == f"{status['podsReporting']}/{status['pods']}" and row["STALE"] == "false", row
        assert MILLICORES.fullmatch(row["CPU"]) and row["CPU/REQ"] == "", row
    for key in with_requests:
        row, cpu, memory = rows[key], objects[key]["cpu"], objects[key]["memory"]
        assert row["CPU"] == format_cpu(cpu["usageCores"]) and MILLICORES.fullmatch(row["CPU"]), row
        assert row["CPU/REQ"] == format_percent(cpu["requestUtilization"]), row
        assert row["MEM/REQ"] == (format_percent(memory["requestUtilization"])
                                  if "requestUtilization" in memory else ""), row
        assert row["CPU PODS"] == str(cpu["podsMeasured"])
