"""kubemeter and metrics-server side by side on the real control plane: ``kubectl top`` works on the test bed,
and both publish the same CPU and memory for every workload and node.

metrics-server (v0.8.0, ``kubemeter_sim.real.metrics_server``) and the operator scrape the same fake kubelets
every 10 s (its ``--metric-resolution`` and the policy's interval), each on its own timer. Both take CPU as the
rate of the kubelet's cumulative counter between their last two samples, with the kubelet's own sample
timestamps, and memory as the working set of the latest sample; metrics-server per container, summed here over
each workload's pods (found independently, by walking ownerReferences), kubemeter per workload.

The tolerance: the two read the kubelets at different moments, so each container's latest sample may be one
housekeeping tick apart between them (a kubelet samples each cgroup every 10 s, on its own phase), and a scrape
that slipped past a tick gives a window of two ticks. So, per container, the tolerance is the spread of its own
usage profile (``kubemeter_sim.profiles``) over every window either could have measured: windows of one and two
ticks ending at any of its ticks from kubemeter's sample or one resolution before the comparison (metrics-server's
latest scrape is no older), whichever is earlier, to the comparison; and of the working set at those ticks. That
is 1-5% of a steady container's CPU (its +-5% ripple over 97 s moves a 10 s mean by up to 3.2% per tick) and
under 1% of its memory; up to 8% of a diurnal one's CPU; nothing within a bursty container's 15 s slot but its
whole range across a slot boundary; a leaking container's growth over those ticks, or its restart. A workload's
tolerance is the sum over its containers. A figure outside it is a bug in one of the two. (Measured: most figures
are identical, both having read the same two samples; the median difference is under 1%; a bursty container whose
samples straddle a slot boundary may differ sixfold, within its tolerance.)

Compared only where both cover the same pods (kubemeter's ``podsMeasured`` equals the number of PodMetrics and
of running pods): metrics-server leaves out a pod until each of its containers has two samples, for instance
after a restart of a leaking container. Every workload and node must be compared in at least one cycle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest
import pytest_asyncio
from kubernetes.utils.quantity import parse_quantity

from kubemeter.kube import load_configuration
from kubemeter_sim.demo import install_crds
from kubemeter_sim.kubelet import ContainerRuntime, Kubelet
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.controlplane import COMPONENTS, ControlPlaneError, binaries_dir
from kubemeter_sim.real.metrics_server import METRICS_API
from tests.operator.conftest import CRDS_DIR, Operator, eventually, start_operator
from tests.operator.test_e2e_metering import _series, top_owner
from tests.real.test_real_apiserver import _connections

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTERVAL = 10.0
"""The policy's interval and metrics-server's resolution: the shortest metrics-server allows."""
HOUSEKEEPING = 10.0
"""The kubelets' sampling period (cAdvisor's default)."""
CYCLES = 4
SCRAPE_SLACK = 2.0
"""Seconds metrics-server may take to scrape the three kubelets and store the batch, on a loaded machine."""
ABSOLUTE_SLACK = {"cpu": 2e-6, "memory": 0.0}
"""Rounding of the published quantities (kubemeter's cores to microcores); memory is whole bytes on both sides."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> RealCluster:
    async with RealCluster(nodes=3, pods_per_node=6, seed=11, workdir=tmp_path_factory.mktemp("ms"),
                           housekeeping_interval=HOUSEKEEPING, metrics_server=True,
                           metric_resolution=INTERVAL) as real:
        yield real


def _kubectl(cluster: RealCluster, *args: str) -> str:
    result = subprocess.run(["kubectl", *args], env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_kubectl_top_shows_every_node_and_running_pod(cluster: RealCluster) -> None:
    nodes = await asyncio.to_thread(_kubectl, cluster, "top", "nodes", "--no-headers")
    assert sorted(line.split()[0] for line in nodes.splitlines()) == sorted(cluster.kubelets)
    running = await asyncio.to_thread(cluster.store.list, "v1", "pods", field_selector="status.phase=Running")
    assert running

    async def every_pod() -> bool:
        # A pod whose container just started (or restarted) is listed from its second scrape on.
        pods = await asyncio.to_thread(_kubectl, cluster, "top", "pods", "-A", "--no-headers")
        assert {tuple(line.split()[:2]) for line in pods.splitlines()} == {
            (p["metadata"]["namespace"], p["metadata"]["name"]) for p in running}
        return True

    await eventually(every_pod, timeout=3 * INTERVAL, interval=1.0)


async def test_metrics_server_listens_and_connects_on_loopback_only(cluster: RealCluster) -> None:
    assert cluster.metrics_server is not None
    await asyncio.sleep(INTERVAL)  # a scrape of every kubelet, and the aggregator's availability checks
    sockets = _connections(set(cluster.control_plane.pids))
    listening = [local for local, remote in sockets if remote in ("0.0.0.0", "::")]
    assert "127.0.0.1" in listening and sockets, sockets
    for local, remote in sockets:  # listeners included: nothing is bound beyond loopback
        assert ipaddress.ip_address(local).is_loopback, (local, remote)
        assert remote in ("0.0.0.0", "::") or ipaddress.ip_address(remote).is_loopback, (local, remote)
    kubelets = {kubelet.ip for kubelet in cluster.kubelets.values()}
    assert kubelets & {remote for _, remote in sockets}, "metrics-server's scrapes are among the sockets checked"


async def test_a_missing_metrics_server_or_a_resolution_it_refuses_is_said_before_the_cluster_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binaries = tmp_path / "bin"  # the control plane's binaries, but no metrics-server
    binaries.mkdir()
    for component in COMPONENTS:
        (binaries / component).symlink_to(binaries_dir() / component)
    monkeypatch.setenv("KUBEMETER_CONTROL_PLANE_BIN", str(binaries))
    with pytest.raises(ControlPlaneError, match="no metrics-server in .*: build it with `make controlplane`"):
        async with RealCluster(nodes=1, scenario="empty", workdir=tmp_path, metrics_server=True):
            pass
    assert not (tmp_path / "control-plane").exists(), "nothing was started"
    with pytest.raises(ValueError, match="needs at least 10s"):
        RealCluster(nodes=1, metrics_server=True, metric_resolution=5)


# -- the agreement ----------------------------------------------------------------------------------------------
@dataclass
class Figure:
    """One workload's or node's usage as metrics-server serves it, with its tolerance."""

    cpu: float = 0.0
    memory: float = 0.0
    pods: int = 0
    tolerance: dict[str, float] = field(default_factory=lambda: {"cpu": 0.0, "memory": 0.0})


def _ticks(kubelet: Kubelet, container: ContainerRuntime, earliest: float, latest: float) -> list[float]:
    """The container's sample instants from its last one at ``earliest`` to its last one at ``latest``."""
    first = kubelet.tick(earliest, container.tick_phase)
    return [first + n * HOUSEKEEPING for n in range(round((kubelet.tick(latest, container.tick_phase) - first)
                                                          / HOUSEKEEPING) + 1)]


def _spread(kubelet: Kubelet, container: ContainerRuntime, earliest: float, latest: float) -> dict[str, float]:
    """How far apart any two readings of the container's usage within [earliest, latest] may be (see above)."""
    profile = container.profile
    ends = _ticks(kubelet, container, earliest, latest)
    rates = [profile.mean_cpu_rate(end - width, end) for end in ends for width in (HOUSEKEEPING, 2 * HOUSEKEEPING)]
    memory = [profile.memory_working_set(profile.current_start(container.anchor_start, end)[0], end) for end in ends]
    return {"cpu": max(rates) - min(rates), "memory": max(memory) - min(memory)}


def _metrics_server_figures(cluster: RealCluster, pods: list[dict], pod_metrics: list[dict], earliest: float,
                            latest: float) -> tuple[dict[tuple, Figure], dict[str, Figure]]:
    """metrics-server's PodMetrics summed per workload and per node, with each sum's tolerance."""
    by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
    runtimes = {(pod.namespace, pod.name): (kubelet, pod) for kubelet in cluster.kubelets.values()
                for pod in kubelet.pods.values()}
    workloads: dict[tuple, Figure] = defaultdict(Figure)
    nodes: dict[str, Figure] = defaultdict(Figure)
    for metrics in pod_metrics:
        key = (metrics["metadata"]["namespace"], metrics["metadata"]["name"])
        pod = by_name[key]
        kubelet, runtime = runtimes[key]
        for figure in (workloads[top_owner(cluster.store, pod)], nodes[pod["spec"]["nodeName"]]):
            figure.pods += 1
            for container in metrics["containers"]:
                figure.cpu += float(parse_quantity(container["usage"]["cpu"]))
                figure.memory += float(parse_quantity(container["usage"]["memory"]))
            for container in runtime.containers:
                for resource, spread in _spread(kubelet, container, earliest, latest).items():
                    figure.tolerance[resource] += spread
    return workloads, nodes


def _outside(kubemeter: float, metrics_server: float, tolerance: float, resource: str) -> bool:
    return abs(kubemeter - metrics_server) > tolerance + ABSOLUTE_SLACK[resource] + 1e-9 * metrics_server


async def test_kubemeter_agrees_with_metrics_server_for_every_workload_and_node(cluster: RealCluster) -> None:
    client = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, CRDS_DIR)
    thread = await start_operator(cluster)
    try:
        operator = Operator(cluster, thread, client)
        await operator.create_policy("all", {"interval": f"{INTERVAL:g}s", "output": {"minStatusChange": "0"}})
        loop = await operator.loop("all")
        compared: dict[tuple, int] = defaultdict(int)
        disagreements: list[str] = []
        deviations: list[float] = []  # relative, of the figures within their tolerance
        tolerances: list[float] = []  # relative
        for _ in range(CYCLES):
            seen = loop.cycles_published
            await eventually(lambda: loop.cycles_published > seen, timeout=3 * INTERVAL)
            assert loop.last_report is not None
            sampled = loop.last_report.started
            await thread.run(operator.runtime.lifecycle.policies["all"].publisher.flush())
            published = await operator.workload_metrics()
            gauges = _series(await operator.scrape_metrics())
            pod_metrics = (await cluster.rest.get(f"{METRICS_API}/pods"))["items"]
            node_metrics = {n["metadata"]["name"]: n for n in (await cluster.rest.get(f"{METRICS_API}/nodes"))["items"]}
            read = time.time()
            pods = await asyncio.to_thread(cluster.store.list, "v1", "pods", field_selector="status.phase=Running")
            # metrics-server's latest stored scrape began at most one resolution and the time it takes to scrape
            # every node (SCRAPE_SLACK) before it was read.
            workloads, nodes = _metrics_server_figures(cluster, pods, pod_metrics,
                                                       min(sampled, read - INTERVAL - SCRAPE_SLACK), read)
            running: dict[tuple, int] = defaultdict(int)
            for pod in pods:
                running[top_owner(cluster.store, pod)] += 1
                running[("node", pod["spec"]["nodeName"])] += 1

            ours: dict[tuple, tuple[float, float, int]] = {}
            for obj in published:
                status = obj["status"]
                key = (obj["metadata"]["namespace"], obj["spec"]["workload"]["kind"], obj["spec"]["workload"]["name"])
                if "cpu" in status and status["cpu"]["podsMeasured"] == status["memory"]["podsMeasured"]:
                    ours[key] = (status["cpu"]["usageCores"], status["memory"]["workingSetBytes"],
                                 status["cpu"]["podsMeasured"])
            node_gauges = {name: {s.labels["node"]: s.value for s in gauges[name] if s.labels["policy"] == "all"}
                           for name in ("kubemeter_node_cpu_usage_cores", "kubemeter_node_memory_working_set_bytes",
                                        "kubemeter_node_cpu_measured_pods")}
            for node in cluster.kubelets:
                if node in node_gauges["kubemeter_node_cpu_usage_cores"]:
                    ours[("node", node)] = (node_gauges["kubemeter_node_cpu_usage_cores"][node],
                                            node_gauges["kubemeter_node_memory_working_set_bytes"][node],
                                            int(node_gauges["kubemeter_node_cpu_measured_pods"][node]))
            theirs = {**workloads, **{("node", name): figure for name, figure in nodes.items()}}
            for key, (cpu, memory, measured) in ours.items():
                figure = theirs.get(key)
                if figure is None or not measured == figure.pods == running[key]:
                    continue  # one of the two does not cover every pod this cycle (a new sample pending)
                compared[key] += 1
                for resource, value, reference in (("cpu", cpu, figure.cpu), ("memory", memory, figure.memory)):
                    if _outside(value, reference, figure.tolerance[resource], resource):
                        disagreements.append(f"{key} {resource}: kubemeter {value:.6g}, metrics-server {reference:.6g}, "
                                             f"tolerance {figure.tolerance[resource]:.3g}")
                    elif reference:
                        deviations.append(abs(value - reference) / reference)
                        tolerances.append(figure.tolerance[resource] / reference)
                if key[0] == "node":
                    _check_node_total(cluster.kubelets[key[1]], node_metrics[key[1]], cpu, memory, figure.tolerance,
                                      disagreements)
        assert not disagreements, "\n".join(disagreements)
        workload_keys = {(o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"])
                         for o in await operator.workload_metrics()}
        assert {kind for _, kind, _ in workload_keys} >= {"Deployment", "StatefulSet", "DaemonSet", "Pod"}
        keys = workload_keys | {("node", name) for name in cluster.kubelets}
        assert not keys - set(compared), f"never compared: {sorted(keys - set(compared))}"
        median_tolerance = sorted(tolerances)[len(tolerances) // 2]
        # Else the check would prove little: most figures must be held to a few percent (steady profiles dominate).
        assert median_tolerance < 0.1, f"median tolerance {median_tolerance:.1%}"
        print(f"compared {sum(compared.values())} figures of {len(keys)} workloads and nodes over {CYCLES} cycles; "
              f"median deviation {sorted(deviations)[len(deviations) // 2]:.2%}, largest {max(deviations):.2%}; "
              f"median tolerance {median_tolerance:.2%}")
    finally:
        await thread.stop()
        client.close()


def _check_node_total(kubelet: Kubelet, node_metrics: dict, cpu: float, memory: float, tolerance: dict[str, float],
                      disagreements: list[str]) -> None:
    """NodeMetrics is the node's whole usage (its root cgroup), which kubemeter does not publish: its node figures
    sum the containers of the node's pods. The difference must be what the kubelet reports outside containers
    (system daemons, the pod cgroups' own overhead), within the pods' tolerance and 5% of it: the pod cgroups'
    working set is sampled apart from their containers'."""
    reading = kubelet.read()
    containers = [c for pod in reading.pods for c in pod.containers]
    outside = {"cpu": (reading.cpu_nano_cores - sum(c.cpu_nano_cores for c in containers)) / 1e9,
               "memory": reading.memory_working_set_bytes - sum(c.memory_working_set_bytes for c in containers)}
    for resource, ours in (("cpu", cpu), ("memory", memory)):
        whole = float(parse_quantity(node_metrics["usage"][resource]))
        if not math.isclose(whole - ours, outside[resource], rel_tol=0.05, abs_tol=tolerance[resource]):
            disagreements.append(f"node {kubelet.node_name} {resource}: NodeMetrics {whole:.6g} is kubemeter's "
                                 f"{ours:.6g} and {whole - ours:.6g} more; the kubelet reports {outside[resource]:.6g} "
                                 "outside containers")
