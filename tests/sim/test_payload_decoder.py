"""Simulated kubelet payloads read by the operator's own decoder exactly as the real captures are."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubemeter.scrape.decode import decode, detect_format
from kubemeter_sim.cluster import Cluster

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kubelet"
REAL = {
    ("resource", "1.30.0"): "metrics-resource-eks-stable-ersilia-2025-06.txt",  # [STABLE], start time untimestamped
    ("resource", "1.28.0"): "metrics-resource-k8s-1.28-minikube-2023-12.txt",  # [ALPHA], start time timestamped
    ("summary", "1.30.0"): "stats-summary-k8s-1.30.0-minikube-containerd.json",
}
PATHS = {"resource": "/metrics/resource", "summary": "/stats/summary"}


def conventions(metrics) -> dict:
    """What a decoded payload says about its format, independent of its numbers."""
    containers = [c for p in metrics.pods for c in p.containers]
    return {
        "node": {f for f in ("cpu_seconds", "cpu_nano_cores", "memory_working_set_bytes", "timestamp")
                 if getattr(metrics.node, f) is not None},
        "pod": {f for f in ("cpu_seconds", "memory_working_set_bytes", "timestamp", "uid", "network_rx_bytes",
                            "ephemeral_storage_bytes") if all(getattr(p, f) is not None for p in metrics.pods)},
        "container": {f for f in ("cpu_seconds", "cpu_nano_cores", "memory_working_set_bytes", "timestamp",
                                  "start_time") if all(getattr(c, f) is not None for c in containers)},
        "timestamps_differ_per_series": len({c.timestamp for c in containers}) > 1,
    }


@pytest.mark.parametrize(("endpoint", "version"), sorted(REAL))
async def test_simulated_payload_decodes_like_the_real_capture(endpoint, version):
    real_body = (FIXTURES / REAL[(endpoint, version)]).read_bytes()
    # The kubelet's own 10 s housekeeping: series sampled at different instants, as in the captures, even where
    # /stats/summary rounds times to the second (a 0.5 s tick would often put them all in one second).
    async with Cluster(nodes=1, pods_per_node=12, seed=5, kubelet_version=version, housekeeping_interval=10) as cluster:
        kubelet = next(iter(cluster.kubelets.values()))
        body, _ = kubelet.render(PATHS[endpoint], time.time())
    assert detect_format(body) == detect_format(real_body) == endpoint
    simulated, real = decode(body, time.time()), decode(real_body, time.time())
    assert simulated.pods and real.pods
    sim_conventions, real_conventions = conventions(simulated), conventions(real)
    if endpoint == "summary":
        # Real captures have usageNanoCores 0 or absent on some containers; the simulator always reports it.
        real_conventions["container"].discard("cpu_nano_cores")
        sim_conventions["container"].discard("cpu_nano_cores")
    assert sim_conventions == real_conventions
