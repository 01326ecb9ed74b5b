"""Fixtures for the reliability tests: the operator harness of tests/operator, plus admin access and a
factory for operators with non-default settings (several replicas, a small body cap)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import kubernetes
import pytest

from kubemeter_sim.demo import install_crds
from kubemeter.kube import load_configuration
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from tests.operator.conftest import (  # noqa: F401 (fixtures)
    REPO, Operator, any_cluster, any_operator, housekeeping_interval, operator, sim_cluster, start_operator,
)

StartOperator = Callable[..., Awaitable[Operator]]


@pytest.fixture
def cluster(sim_cluster: Cluster) -> Cluster:  # noqa: F811
    """The cluster ``admin`` and ``start`` work on: the simulator; a module whose tests also run on the real
    control plane overrides it with ``any_cluster``."""
    return sim_cluster


@pytest.fixture
async def admin(cluster: Cluster | RealCluster) -> AsyncIterator[kubernetes.client.ApiClient]:
    """An admin client on a cluster with the CRDs installed (and no operator)."""
    client = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, REPO / "crds")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def start(cluster: Cluster | RealCluster, admin: kubernetes.client.ApiClient) -> AsyncIterator[StartOperator]:
    """``await start(**RunSettings fields)`` runs one more operator on the cluster; all stop at teardown."""
    running: list[Operator] = []

    async def start_one(kubeconfig: Path | None = None, **settings: object) -> Operator:
        thread = await start_operator(cluster, kubeconfig, **settings)
        running.append(Operator(cluster, thread, admin))
        return running[-1]

    try:
        yield start_one
    finally:
        for op in running:
            if op.thread.alive:
                await op.thread.stop()
