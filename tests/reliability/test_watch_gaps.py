"""A gap in the operator's watches: pods deleted while no watch is open, and the history that would replay
them gone, so the re-opened watches get 410 Gone inside the stream and kopf lists again. The operator's own
re-list must find the deletions kopf never hears of. On both backends: the simulator drops its watches and
expires its resourceVersions; on the real control plane the operator talks through a relay that is cut, and
kube-apiserver is restarted in the gap (its watch cache starts afresh, so the old resourceVersion is too old)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.relay import Relay
from tests.operator.conftest import eventually
from tests.reliability.support import samples
from tests.reliability.test_apiserver_faults import LIVE, keys, model_pods


@pytest.fixture
def cluster(any_cluster):
    return any_cluster


class WatchGap:
    """Where the operator connects (``kubeconfig``), and how to open and close a gap in its watches."""

    def __init__(self, cluster: Cluster | RealCluster, relay: Relay | None, kubeconfig: Path) -> None:
        self.cluster, self.relay, self.kubeconfig = cluster, relay, kubeconfig

    async def open(self) -> None:
        if self.relay is None:
            await self.cluster.apiserver.drop_watches()
        else:
            self.relay.cut()

    async def close(self) -> None:
        if self.relay is None:
            self.cluster.apiserver.expire_resource_versions()
        else:
            await self.cluster.control_plane.restart_apiserver()
            self.relay.restore()


@pytest.fixture
async def gap(cluster: Cluster | RealCluster, tmp_path: Path) -> AsyncIterator[WatchGap]:
    if isinstance(cluster, Cluster):
        yield WatchGap(cluster, None, cluster.kubeconfig)
        return
    async with Relay(cluster.url) as relay:
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = relay.url
        kubeconfig = tmp_path / "through-relay.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        yield WatchGap(cluster, relay, kubeconfig)


async def test_deletions_missed_during_an_expired_watch_are_repaired_by_a_relist(cluster, gap: WatchGap, start):
    operator = await start(kubeconfig=gap.kubeconfig)
    runtime = operator.runtime
    await operator.create_policy("p", LIVE)
    await operator.cycle("p")
    assert ("default", "Pod", "debug-shell") in keys(await operator.workload_metrics())
    replaced = next(p["metadata"] for p in cluster.store.list("v1", "pods", "data"))
    dropped_before = runtime.relister.dropped

    await gap.open()
    await cluster.scenario.delete_pod("default", "debug-shell")
    await cluster.scenario.delete_pod("data", replaced["name"])  # the StatefulSet brings it back with a new uid

    def replacement_uid() -> str | None:
        uid = cluster.store.get("v1", "pods", replaced["name"], "data")["metadata"]["uid"]
        return uid if uid != replaced["uid"] else None

    async def deleted() -> bool:
        return not [p for p in cluster.store.list("v1", "pods", "default") if p["metadata"]["name"] == "debug-shell"]

    served_uid = await eventually(replacement_uid, timeout=60)
    await eventually(deleted, timeout=60)
    await gap.close()

    async def repaired() -> bool:
        pods = await model_pods(operator)
        return ("default", "debug-shell") not in pods and pods[("data", replaced["name"])].uid == served_uid

    await eventually(repaired, timeout=60)
    assert runtime.relister.dropped > dropped_before, "the deletions were found by the re-list, not by a watch"
    await operator.cycle("p")
    assert ("default", "Pod", "debug-shell") not in keys(await operator.workload_metrics())
    text = await operator.scrape_metrics()
    assert not samples(text, "kubemeter_workload_pods", policy="p", workload="debug-shell")
