"""The composed Cluster: kubeconfig for kubectl and the official client, tokens, OOM restarts, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import kubernetes
import pytest
from cryptography import x509

from kubemeter_sim import cli
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.scenario import container, template


async def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", str(kubeconfig), *args],
                                   capture_output=True, text=True, timeout=60)


async def test_kubectl_lists_pods_and_sees_kubelet_endpoints(tmp_path: Path) -> None:
    async with Cluster(nodes=2, pods_per_node=5, workdir=tmp_path) as cluster:
        assert cluster.kubeconfig == tmp_path / "kubeconfig" and cluster.ca_path == tmp_path / "kubeconfig.kubelet-ca.crt"
        listed = await _kubectl(cluster.kubeconfig, "get", "pods", "-A")
        assert listed.returncode == 0, listed.stderr
        names = {line.split()[1] for line in listed.stdout.splitlines()[1:]}
        assert names == {p["metadata"]["name"] for p in cluster.store.list("v1", "pods")}
        nodes = json.loads((await _kubectl(cluster.kubeconfig, "get", "nodes", "-o", "json")).stdout)["items"]
        for node in nodes:
            kubelet = cluster.kubelets[node["metadata"]["name"]]
            assert {"type": "InternalIP", "address": kubelet.ip} in node["status"]["addresses"]
            assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
        raw = await _kubectl(cluster.kubeconfig, "get", "--raw", f"/api/v1/nodes/{nodes[0]['metadata']['name']}"
                             "/proxy/metrics/resource")
        assert raw.returncode == 0 and "resource_scrape_error 0" in raw.stdout
    assert tmp_path.exists()  # a given workdir is left in place


async def test_official_client_works_with_the_kubeconfig() -> None:
    async with Cluster(nodes=1, pods_per_node=8) as cluster:
        def list_pods() -> set[str]:
            client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
            with client:
                return {p.metadata.name for p in kubernetes.client.CoreV1Api(client).list_pod_for_all_namespaces().items}
        assert await asyncio.to_thread(list_pods) == {p["metadata"]["name"] for p in cluster.store.list("v1", "pods")}
        workdir = cluster.workdir
        certificate = x509.load_pem_x509_certificate(cluster.ca_path.read_bytes())
        assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not workdir.exists()  # a temporary workdir is removed


async def test_token_for_binds_rbac_rules() -> None:
    async with Cluster(nodes=1, pods_per_node=2, scenario="empty") as cluster:
        reader = cluster.token_for([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}])
        assert cluster.apiserver.authorize(reader, "list", "", "nodes")[0]
        assert not cluster.apiserver.authorize(reader, "list", "", "pods")[0]
        assert cluster.store.list("v1", "pods") == []
        assert [n["metadata"]["name"] for n in cluster.store.list("v1", "nodes")] == ["sim-control-plane"]


async def test_oom_kills_show_up_as_restarts_in_the_api() -> None:
    async with Cluster(nodes=1, pods_per_node=2, scenario="empty") as cluster:
        scenario = cluster.scenario
        scenario.create_bare_pod("default", "leaky", template(
            {"run": "leaky"}, [container("app", cpu="100m", memory="64Mi", memory_limit="128Mi")], profiles="leak"))
        kubelet = cluster.kubelets["sim-control-plane"]
        period = next(iter(kubelet.pods.values())).containers[0].profile.oom_period()
        kubelet.check_restarts(kubelet.clock() + 2.5 * period)
        await asyncio.sleep(0)  # the status write is deferred to the event loop
        status = cluster.store.get("v1", "pods", "leaky", "default")["status"]["containerStatuses"][0]
        assert status["restartCount"] == 2
        assert status["lastState"]["terminated"]["reason"] == "OOMKilled"
        assert status["lastState"]["terminated"]["exitCode"] == 137


async def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    kubeconfig = tmp_path / "sim.kubeconfig"
    args = parser.parse_args(["--nodes", "2", "--pods-per-node", "4", "--kubeconfig", str(kubeconfig),
                              "--fail-node", "sim-worker-1:http500"])
    running = asyncio.create_task(cli.run(args))
    while not kubeconfig.exists():
        await asyncio.sleep(0.05)
    nodes = await _kubectl(kubeconfig, "get", "nodes")
    assert nodes.returncode == 0 and "sim-worker-1" in nodes.stdout
    proxied = await _kubectl(kubeconfig, "get", "--raw", "/api/v1/nodes/sim-worker-1/proxy/metrics/resource")
    assert proxied.returncode != 0  # the injected HTTP 500
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(running, 30) == 0


def test_cli_rejects_malformed_faults() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--kubeconfig", "k", "--fail-node", "sim-worker-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--kubeconfig", "k", "--fail-node", "sim-worker-1:meltdown"])
