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
from tests.operator.conftest import REPO, Operator, operator, sim_cluster, start_operator  # noqa: F401

StartOperator = Callable[..., Awaitable[Operator]]


@pytest.fixture
async def admin(sim_cluster: Cluster) -> AsyncIterator[kubernetes.client.ApiClient]:  # noqa: F811
    """An admin client on a cluster with the CRDs installed (and no operator)."""
    client = kubernetes.client.ApiClient(load_configuration(str(sim_cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, REPO / "crds")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def start(sim_cluster: Cluster, admin: kubernetes.client.ApiClient) -> AsyncIterator[StartOperator]:  # noqa: F811
    """``await start(**RunSettings fields)`` runs one more operator on the cluster; all stop at teardown."""
    running: list[Operator] = []

    async def start_one(kubeconfig: Path | None = None, **settings: object) -> Operator:
        thread = await start_operator(sim_cluster, kubeconfig, **settings)
        running.append(Operator(sim_cluster, thread, admin))
        return running[-1]

    try:
        yield start_one
    finally:
        for op in running:
            if op.thread.alive:
                await op.thread.stop()
