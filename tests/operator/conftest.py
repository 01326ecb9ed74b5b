"""End-to-end harness: the simulated cluster, the CRDs, and the real operator (kopf, HTTP) in this process.

Everything shares one event loop with the simulator, so every blocking client call in a test goes through
``asyncio.to_thread``. Policies use a one-hour interval and the tests step cycles themselves
(``Operator.cycle``), so nothing waits on wall-clock intervals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.app import RunSettings, Runtime
from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.demo import install_crds
from kubemeter.testing import OperatorThread
from kubemeter.kube import load_configuration
from kubemeter.loop import PolicyLoop
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"

# Cycles are stepped by the tests: a long interval keeps the loop's own timer out of the way.
STEPPED = {"interval": "1h", "aggregation": {"window": "1h"}, "source": {"timeout": "5s"}}


def stepped(**overrides: dict) -> dict:
    spec = {key: dict(value) if isinstance(value, dict) else value for key, value in STEPPED.items()}
    for key, value in overrides.items():
        if isinstance(value, dict):
            spec.setdefault(key, {}).update(value)
        else:
            spec[key] = value
    return spec


def unrunnable_policy(name: str) -> dict:
    """A new MetricsPolicy whose spec the operator cannot run, as a server without the CRD's validation (an older
    CRD version) could deliver it: for ``lifecycle.policy_event``, the API server would refuse to create it."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"interval": "1h", "source": {"endpoint": "cadvisor"}}}


async def eventually(check, timeout: float = 15.0, interval: float = 0.05):
    """Await ``check()`` (sync or async) until it returns something truthy (an API error on either backend, e.g.
    a pod between its deletion and its controller's replacement, counts as not yet); the last error otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            error: Exception | None = None
        except (AssertionError, KeyError, ApiException, ApiError) as exc:
            error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {error or 'falsy result'}")
        await asyncio.sleep(interval)


class Operator:
    """The running operator plus an admin client for reading what it published."""

    def __init__(self, cluster: Cluster, thread: OperatorThread, client: kubernetes.client.ApiClient) -> None:
        self.cluster, self.thread, self.client = cluster, thread, client
        self.runtime = thread.runtime
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.clock_ahead = 0.0
        """Seconds the loop's clock is ahead of the real one (see :meth:`cycle`)."""

    async def call(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def create_policy(self, name: str, spec: dict) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "metadata": {"name": name}, "spec": spec}
        return await self.call(self.custom.create_cluster_custom_object, GROUP, VERSION, "metricspolicies", body)

    async def patch_policy(self, name: str, spec: dict) -> dict:
        return await self.call(
            self.custom.patch_cluster_custom_object, GROUP, VERSION, "metricspolicies", name, {"spec": spec}
        )

    async def policy(self, name: str) -> dict:
        return await self.call(self.custom.get_cluster_custom_object, GROUP, VERSION, "metricspolicies", name)

    async def loop(self, name: str) -> PolicyLoop:
        """The policy's loop once its first cycle is done (and published)."""
        loop = await eventually(lambda: (p := self.runtime.lifecycle.policies.get(name)) and p.loop and p.loop.cycles_published and p.loop)
        await self.thread.run(self.runtime.lifecycle.policies[name].publisher.flush())
        return loop

    async def cycle(self, name: str, count: int = 1, pause: float = 0.7, advance: float = 0.0):
        """Run ``count`` more cycles (a short pause first, so counters advance), publish, and return the last report.
        ``advance``: seconds the loop's clock moves ahead before each (stepped cycles an interval apart as the loop,
        and so the right-sizing history, sees them; the kubelets' clocks and the scrapes' times stay real)."""
        loop = await self.loop(name)
        report = None
        for _ in range(count):
            await asyncio.sleep(pause)
            if advance:
                self.clock_ahead += advance
                ahead = self.clock_ahead
                self.runtime.deps.clock = lambda: time.time() + ahead
            report = await self.thread.run(loop.run_cycle())
        await self.thread.run(self.runtime.lifecycle.policies[name].publisher.flush())
        return report

    async def cycle_until_measured(self, name: str, timeout: float = 60.0):
        """Run cycles (no clock advance) until one measures every pod the policy selects, each in its workload, and
        return its report: what the watch or the kubelets lagged behind on a loaded machine is then in, and so the
        first right-sizing sample of every container (a history counts from it)."""
        async def measured():
            report = await self.cycle(name, pause=0.3)
            workloads = report.snapshot.workloads.values()
            return report if workloads and not report.waiting and all(
                w.pods_reporting == w.memory_measured_pods == w.pods for w in workloads) else None
        return await eventually(measured, timeout=timeout)

    async def workload_metrics(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            result = await self.call(self.custom.list_cluster_custom_object, GROUP, VERSION, "workloadmetrics")
        else:
            result = await self.call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "workloadmetrics"
            )
        return result["items"]

    async def scrape_metrics(self) -> str:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.runtime.metrics_port}/metrics") as response:
                assert response.status == 200
                return await response.text()


@pytest.fixture
def housekeeping_interval() -> float:
    """Seconds between a simulated kubelet's samples (cAdvisor's housekeeping): short, as cycles here are a second
    apart. A test parametrizes ``housekeeping_interval`` to change it."""
    return 0.5


@pytest.fixture
async def sim_cluster(tmp_path: Path, housekeeping_interval: float) -> AsyncIterator[Cluster]:
    async with Cluster(nodes=3, pods_per_node=6, seed=11, workdir=tmp_path / "sim",
                       housekeeping_interval=housekeeping_interval) as cluster:
        yield cluster


BACKENDS = {"sim": Cluster, "real": RealCluster}
"""The simulator, and a real control plane with fake nodes (``make controlplane`` builds it; ``make test``
always does)."""


@pytest.fixture(params=BACKENDS)
async def any_cluster(
    request: pytest.FixtureRequest, tmp_path: Path, housekeeping_interval: float,
) -> AsyncIterator[Cluster | RealCluster]:
    """The same cluster on both backends."""
    async with BACKENDS[request.param](nodes=3, pods_per_node=6, seed=11, workdir=tmp_path / request.param,
                                       housekeeping_interval=housekeeping_interval) as cluster:
        yield cluster


async def start_operator(
    cluster: Cluster, kubeconfig: Path | None = None, *, wait_synced: bool = True, in_cluster: bool = False,
    base: RunSettings | None = None, **settings,
) -> OperatorThread:
    """Start the operator on its own thread; return once its model is seeded (or, with ``wait_synced``
    false, once it serves HTTP: for tests of a start-up that cannot complete). ``in_cluster``: no kubeconfig,
    as in a pod (the caller provides the service-account files and environment). ``base``: settings to start
    from (as the chart's command line gives them) instead of the defaults; /metrics always on a free loopback port."""
    runtime = Runtime(dataclasses.replace(
        base or RunSettings(),
        kubeconfig=None if in_cluster else str(kubeconfig or cluster.kubeconfig),
        metrics_host="127.0.0.1",
        metrics_port=0,
        relist_debounce=0.5,
        **settings,
    ))
    thread = OperatorThread(runtime)
    thread.start()
    started = runtime.relister.synced.is_set if wait_synced else lambda: runtime.metrics_port is not None
    await eventually(lambda: started() or not thread.alive)
    if not thread.alive:
        await thread.stop()  # surfaces the start-up error
    return thread


ADMIN_USER_AGENT = "e2e-admin/1.0"
"""The tests' own client's: what the operator sends is told apart from it."""


async def running_operator(cluster: Cluster | RealCluster) -> AsyncIterator[Operator]:
    """The CRDs installed and the operator running on ``cluster`` (for fixtures of any scope)."""
    client = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
    client.user_agent = ADMIN_USER_AGENT
    await asyncio.to_thread(install_crds, client, CRDS_DIR)
    thread = await start_operator(cluster)
    try:
        yield Operator(cluster, thread, client)
    finally:
        await thread.stop()
        client.close()


@pytest.fixture
async def operator(sim_cluster: Cluster) -> AsyncIterator[Operator]:
    async for running in running_operator(sim_cluster):
        yield running


@pytest.fixture
async def any_operator(any_cluster: Cluster | RealCluster) -> AsyncIterator[Operator]:
    """The operator on each backend in turn (see ``any_cluster``)."""
    async for running in running_operator(any_cluster):
        yield running
