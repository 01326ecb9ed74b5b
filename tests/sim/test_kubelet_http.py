"""Simulated kubelets over HTTPS and through the API server's node proxy: auth, TLS, faults."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.faults import Fault

METRICS_RULES = [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster(nodes=2, pods_per_node=5, housekeeping_interval=1.0) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _context(cluster: Cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cluster.ca_path))


def _endpoint(cluster: Cluster, node: str) -> str:
    """Where an operator finds a kubelet: InternalIP and daemonEndpoints port from the Node object."""
    status = cluster.store.get("v1", "nodes", node)["status"]
    ip = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    return f"https://{ip}:{status['daemonEndpoints']['kubeletEndpoint']['Port']}"


async def _get(session: aiohttp.ClientSession, cluster: Cluster, node: str, path: str, token: str | None,
               timeout: float = 10.0) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(_endpoint(cluster, node) + path, ssl=_context(cluster), headers=headers,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, await response.read()


async def _proxied(session: aiohttp.ClientSession, cluster: Cluster, node: str, path: str,
                   timeout: float = 10.0) -> tuple[int, bytes]:
    url = f"{cluster.apiserver.url}/api/v1/nodes/{node}/proxy{path}"
    async with session.get(url, ssl=_context(cluster), headers={"Authorization": f"Bearer {cluster.token}"},
                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, await response.read()


WORKER = "sim-worker-1"


async def test_authentication_and_authorization(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    assert await _get(session, cluster, WORKER, "/metrics/resource", None) == (401, b"Unauthorized")
    assert (await _get(session, cluster, WORKER, "/metrics/resource", "not-a-token"))[0] == 401
    metrics_only = cluster.token_for(METRICS_RULES, user="system:serviceaccount:kubemeter:kubemeter")
    status, body = await _get(session, cluster, WORKER, "/metrics/resource", metrics_only)
    assert status == 200 and body.startswith(b"# HELP container_cpu_usage_seconds_total")
    assert await _get(session, cluster, WORKER, "/stats/summary", metrics_only) == (
        403, b"Forbidden (user=system:serviceaccount:kubemeter:kubemeter, verb=get, resource=nodes, "
             b"subresource=stats)")
    assert (await _get(session, cluster, WORKER, "/pods", metrics_only))[0] == 403
    nothing = cluster.token_for([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], user="alice")
    assert (await _get(session, cluster, WORKER, "/metrics/resource", nothing)) == (
        403, b"Forbidden (user=alice, verb=get, resource=nodes, subresource=metrics)")


async def test_endpoints_serve_the_pods_bound_to_the_node(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    bound = {p["metadata"]["name"] for p in cluster.store.list("v1", "pods", field_selector=f"spec.nodeName={WORKER}")
             if p["status"]["phase"] == "Running"}
    status, body = await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    served = {s.labels["pod"] for f in text_string_to_metric_families(body.decode()) if f.name == "pod_cpu_usage_seconds"
              for s in f.samples}
    assert status == 200 and served == bound
    status, body = await _get(session, cluster, WORKER, "/stats/summary", cluster.token)
    assert {p["podRef"]["name"] for p in json.loads(body)["pods"]} == bound
    status, body = await _get(session, cluster, WORKER, "/pods", cluster.token)
    pod_list = json.loads(body)
    assert pod_list["kind"] == "PodList" and {p["metadata"]["name"] for p in pod_list["items"]} >= bound
    assert await _get(session, cluster, WORKER, "/healthz", cluster.token) == (200, b"ok")
    assert (await _get(session, cluster, WORKER, "/nope", cluster.token))[0] == 404


async def test_each_node_serves_its_own_certificate_and_pods(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    bodies = {node: (await _get(session, cluster, node, "/stats/summary", cluster.token))[1] for node in cluster.kubelets}
    assert {node: json.loads(body)["node"]["nodeName"] for node, body in bodies.items()} == {n: n for n in bodies}


async def test_snapshots_tell_what_the_last_two_scrapes_served(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    kubelet = cluster.kubelets[WORKER]
    await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    await asyncio.sleep(1.1)  # the next housekeeping tick (1 s in this cluster), so the samples move
    _, body = await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    first, second = kubelet.snapshots
    served = {(s.labels["namespace"], s.labels["pod"], s.labels["container"]): s.value
              for f in text_string_to_metric_families(body.decode()) if f.name == "container_cpu_usage_seconds"
              for s in f.samples}
    assert served == {key: point.cpu_seconds for key, point in second.containers.items()}
    assert all(second.containers[k].cpu_seconds >= first.containers[k].cpu_seconds for k in first.containers)


async def test_proxy_path_serves_the_same_kubelet(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    status, body = await _proxied(session, cluster, WORKER, "/metrics/resource")
    assert status == 200 and b'resource_scrape_error 0\n' in body
    assert cluster.kubelets[WORKER].snapshots[-1].endpoint == "/metrics/resource"
    status, body = await _proxied(session, cluster, WORKER, "/stats/summary")
    assert status == 200 and json.loads(body)["node"]["nodeName"] == WORKER


@pytest.mark.parametrize("via_proxy", [False, True])
async def test_http_level_faults(cluster: Cluster, session: aiohttp.ClientSession, via_proxy: bool) -> None:
    async def scrape(timeout: float = 10.0) -> tuple[int, bytes]:
        if via_proxy:
            return await _proxied(session, cluster, WORKER, "/metrics/resource", timeout)
        return await _get(session, cluster, WORKER, "/metrics/resource", cluster.token, timeout)

    await cluster.node_fault(WORKER, Fault("http500"))
    assert (await scrape())[0] == 500
    served_before = list(cluster.kubelets[WORKER].snapshots)
    await cluster.node_fault(WORKER, "garbage")
    status, body = await scrape()
    assert status == 200 and b"# HELP" not in body
    assert list(cluster.kubelets[WORKER].snapshots) == served_before  # nothing usable was served
    await cluster.node_fault(WORKER, "truncated")
    with pytest.raises(aiohttp.ClientError):
        await scrape()
    await cluster.node_fault(WORKER, Fault("oversized", size_bytes=3 * 1024 * 1024))
    status, body = await scrape()
    assert status == 200 and len(body) == 3 * 1024 * 1024
    await cluster.node_fault(WORKER, "timeout")
    with pytest.raises(asyncio.TimeoutError):
        await scrape(timeout=0.3)
    await cluster.node_fault(WORKER, "latency=30s")
    with pytest.raises(asyncio.TimeoutError):
        await scrape(timeout=0.3)
    await cluster.node_fault(WORKER, "flapping")
    assert [(await scrape())[0] for _ in range(4)] == [200, 500, 200, 500]
    await cluster.node_fault(WORKER, None)
    assert (await scrape())[0] == 200


async def test_auth_faults(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    await cluster.node_fault(WORKER, "unauthorized")
    assert (await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[0] == 401
    await cluster.node_fault(WORKER, "forbidden")
    status, body = await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    assert status == 403 and body.startswith(b"Forbidden (user=")


async def test_connection_refused_and_recovery(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    await _get(session, cluster, WORKER, "/healthz", cluster.token)  # leaves a pooled keep-alive connection
    await cluster.node_fault(WORKER, "refused")
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    status, body = await _proxied(session, cluster, WORKER, "/metrics/resource")
    assert status == 503 and b"connect: connection refused" in body
    assert (await _get(session, cluster, "sim-control-plane", "/healthz", cluster.token))[0] == 200
    await cluster.node_fault(WORKER, None)
    assert (await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[0] == 200


async def test_tls_fault_serves_a_certificate_from_another_ca(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    await cluster.node_fault(WORKER, "tls")
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(session, cluster, WORKER, "/metrics/resource", cluster.token)
    status, body = await _proxied(session, cluster, WORKER, "/metrics/resource")
    assert status == 503 and b"x509: certificate signed by unknown authority" in body
    await cluster.node_fault(WORKER, None)
    assert (await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[0] == 200


def _node_timestamp(body: bytes) -> float:
    line = next(l for l in body.decode().splitlines() if l.startswith("node_cpu_usage_seconds_total "))
    return int(line.rsplit(" ", 1)[1]) / 1000


async def test_timestamp_faults(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    honest = _node_timestamp((await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[1])
    await cluster.node_fault(WORKER, "clock_skew=-1h")
    skewed = _node_timestamp((await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[1])
    assert skewed <= honest - 3600 + 2
    await cluster.node_fault(WORKER, "backwards")
    first = _node_timestamp((await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[1])
    second = _node_timestamp((await _get(session, cluster, WORKER, "/metrics/resource", cluster.token))[1])
    assert second < first < honest


def test_fault_parsing() -> None:
    assert Fault.parse("latency=1.5s") == Fault("latency", seconds=1.5)
    assert Fault.parse("clock-skew=-5m") == Fault("clock_skew", seconds=-300)
    assert Fault.parse("oversized=1024") == Fault("oversized", size_bytes=1024)
    assert Fault.parse("timeout") == Fault("timeout")
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("meltdown")
