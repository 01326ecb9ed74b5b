"""Resident memory per kubelet connection: asyncio's TLS read buffer is shrunk, and large payloads still
arrive whole through it."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl

from kubemeter.kube import credentials, load_configuration
from kubemeter.memory import TLS_READ_BUFFER_BYTES, shrink_tls_read_buffers
from kubemeter.scrape.client import KubeletClient
from kubemeter.scrape.decode import decode
from kubemeter.types import NodeInfo
from kubemeter.watch.model import node_endpoint
from kubemeter_sim.cluster import Cluster


async def test_a_tls_connection_holds_a_small_read_buffer():
    shrink_tls_read_buffers()
    protocol = asyncio.sslproto.SSLProtocol(
        asyncio.get_running_loop(), asyncio.Protocol(), ssl.create_default_context(), None
    )
    assert len(protocol._ssl_buffer) == TLS_READ_BUFFER_BYTES  # CPython's default: 256 KiB


async def test_a_payload_many_buffers_long_arrives_whole_over_tls(tmp_path):
    shrink_tls_read_buffers()
    async with Cluster(nodes=1, pods_per_node=110, seed=3, workdir=tmp_path / "sim") as cluster:
        kubelet = next(iter(cluster.kubelets.values()))
        node = cluster.store.get("v1", "nodes", kubelet.node_name)
        address, port = node_endpoint(node["status"])
        config = load_configuration(str(cluster.kubeconfig))
        client = KubeletClient(lambda: credentials(config))
        try:
            body = await client.fetch(NodeInfo(kubelet.node_name, "", {}, address, port), "resource", "direct", 10)
        finally:
            await client.close()
    assert len(body) > 4 * TLS_READ_BUFFER_BYTES
    assert decode(body, 0.0, "resource").pods and body.endswith(b"resource_scrape_error 0\n")
