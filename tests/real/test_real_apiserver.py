"""The CRDs, the chart's objects and the example policies on a real kube-apiserver (v1.37, built by
``make controlplane``): accepted as they are, and every invalid policy of the schema table refused by the real
validation (OpenAPI, CEL) with a cause that names the field. Also: the test bed connects to loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from kubemeter import GROUP, VERSION
from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import RestError, wait_for
from tests.packaging.test_crd_schemas import FULL_RECOMMENDATIONS, INVALID_POLICIES, VALID_POLICIES

REPO = Path(__file__).resolve().parents[2]
POLICIES = f"/apis/{GROUP}/{VERSION}/metricspolicies"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def real(tmp_path_factory: pytest.TempPathFactory) -> RealCluster:
    async with RealCluster(nodes=1, scenario="empty", workdir=tmp_path_factory.mktemp("real")) as cluster:
        for path in sorted((REPO / "crds").glob("*.yaml")):
            await cluster.rest.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                      yaml.safe_load(path.read_text()))

        async def served() -> bool:
            try:
                await cluster.rest.get(POLICIES)
                await cluster.rest.get(f"/apis/{GROUP}/{VERSION}/workloadmetrics")
                return True
            except RestError:
                return False
        await wait_for(served, 60, "the CRDs served")
        yield cluster


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("metricspolicy-*.yaml")), ids=lambda p: p.name)
async def test_every_example_policy_is_accepted_and_defaulted(real: RealCluster, example: Path) -> None:
    body = yaml.safe_load(example.read_text())
    created = await real.rest.request("POST", POLICIES, body, params={"dryRun": "All"})
    spec = created["spec"]
    # Not source.timeout and aggregation.window: left unset, the operator derives them from the interval.
    assert spec["interval"] and spec["source"]["endpoint"] and spec["aggregation"]["levels"], spec


async def test_an_empty_spec_gets_every_default(real: RealCluster) -> None:
    created = await real.rest.request("POST", POLICIES, policy("empty", {}), params={"dryRun": "All"})
    assert created["spec"]["interval"] == "30s"
    assert set(created["spec"]) >= {"interval", "source", "aggregation", "output", "recommendations"}
    assert created["spec"]["recommendations"] == {
        "enabled": True, "strategy": "vpa", "halfLife": "24h", "memoryPeakInterval": "24h", "minHistory": "1h",
        "checkpointInterval": "10m", "metrics": "Differences",
    }


async def test_every_recommendations_field_is_kept_not_pruned(real: RealCluster) -> None:
    created = await real.rest.request("POST", POLICIES, policy("sized", {"recommendations": FULL_RECOMMENDATIONS}),
                                      params={"dryRun": "All", "fieldValidation": "Strict"})
    assert created["spec"]["recommendations"] == FULL_RECOMMENDATIONS


@pytest.mark.parametrize("spec", VALID_POLICIES, ids=str)
async def test_valid_policies_are_accepted(real: RealCluster, spec: dict[str, Any]) -> None:
    await real.rest.request("POST", POLICIES, policy("valid", spec), params={"dryRun": "All"})


@pytest.mark.parametrize(("spec", "field", "message"), INVALID_POLICIES)
async def test_invalid_policies_are_refused_naming_the_field(real: RealCluster, spec: dict[str, Any], field: str,
                                                            message: str) -> None:
    with pytest.raises(RestError) as refused:
        await real.rest.request("POST", POLICIES, policy("invalid", spec), params={"dryRun": "All"})
    assert refused.value.status == 422, refused.value
    causes = [(c.get("field", ""), c.get("message", "")) for c in refused.value.body["details"]["causes"]]
    assert any(f == field and message.lower() in m.lower() for f, m in causes), causes


def _connections(pids: set[int]) -> list[tuple[str, str]]:
    """(local, remote) addresses of every TCP socket the processes hold, from /proc."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((_address(fields[1]), _address(fields[2])))
    return found


def _address(hex_address: str) -> str:
    host, _port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


async def test_the_test_bed_connects_to_loopback_only(real: RealCluster) -> None:
    # Traffic of every kind first: watches, leases, a scrape through the fake kubelet.
    await real.rest.get("/api/v1/nodes")
    await asyncio.sleep(11)  # one lease renewal, the controllers' resyncs
    pids = {os.getpid(), *real.control_plane.pids}
    connections = _connections(pids)
    assert connections, "no sockets found: the check would prove nothing"
    for local, remote in connections:
        if remote in ("0.0.0.0", "::"):
            continue  # a listener
        assert ipaddress.ip_address(remote).is_loopback, (local, remote)
        assert ipaddress.ip_address(local).is_loopback, (local, remote)
    # The advertise address (192.0.2.1) is published nowhere a client would dial: no endpoints for `kubernetes`.
    slices = await real.rest.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                                 labelSelector="kubernetes.io/service-name=kubernetes")
    assert [e for s in slices["items"] for e in s.get("endpoints") or []] == []


async def test_a_fake_node_set_unknown_posts_ready_again_and_its_taint_goes(real: RealCluster) -> None:
    """What the node-lifecycle controller does when a node's Lease is late (the test bed stalled: 1,000 nodes on a
    busy machine): Ready Unknown, then the unreachable taint. The fake kubelet posts Ready again, as a kubelet
    posts its status, and the controller lifts the taint: otherwise the node and its pods were lost for good."""
    (name,) = real.fake_nodes.nodes
    node = await real.rest.get(f"/api/v1/nodes/{name}")
    conditions = [dict(c, status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
                  if c["type"] == "Ready" else c for c in node["status"]["conditions"]]
    await real.rest.patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": conditions}})

    async def ready_again() -> bool:
        node = await real.rest.get(f"/api/v1/nodes/{name}")
        (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        taints = {t["key"] for t in node["spec"].get("taints") or ()}
        return ready["status"] == "True" and not taints & {"node.kubernetes.io/unreachable",
                                                            "node.kubernetes.io/not-ready"}
    await wait_for(ready_again, 60, f"node {name} Ready and untainted again")


async def test_a_missing_object_reads_as_the_simulator_stores_not_found(real: RealCluster, tmp_path: Path) -> None:
    """Tests read either backend's objects through ``cluster.store`` and wait out a pod between its deletion and
    its controller's replacement: both backends must fail alike, with the API's NotFound, not an HTTP library's."""
    async with Cluster(nodes=1, scenario="empty", workdir=tmp_path) as sim:
        errors = []
        for store in (sim.store, real.store):
            with pytest.raises(ApiError) as caught:
                await asyncio.to_thread(store.get, "v1", "pods", "missing", "default")
            errors.append((caught.value.code, caught.value.reason, caught.value.message, caught.value.details))
    assert errors[0] == errors[1] == (404, "NotFound", 'pods "missing" not found', {"name": "missing", "kind": "pods"})
