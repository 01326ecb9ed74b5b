"""Reading what the operator left behind: Events, Prometheus counters, API server request counts."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import kubernetes
from kubemeter.compute.report import CycleReport
from kubemeter_sim.cluster import Cluster
from prometheus_client.parser import text_string_to_metric_families

from kubemeter_sim.real.cluster import RealCluster
from tests.operator.conftest import Operator, eventually


async def events(client: kubernetes.client.ApiClient, reason: str | None = None) -> list[dict]:
    """core/v1 Events from the API server (all namespaces), as plain dicts, optionally of one reason."""
    core = kubernetes.client.CoreV1Api(client)
    result = await asyncio.to_thread(core.list_event_for_all_namespaces, _preload_content=False)
    items = json.loads(result.data)["items"]
    return [e for e in items if reason is None or e.get("reason") == reason]


async def node_events(client: kubernetes.client.ApiClient, reason: str, expected: dict[str, int]) -> Counter[str]:
    """How many Events of ``reason`` each Node got, once each node of ``expected`` got at least as many as
    expected (kopf posts Events in the background), for the caller to compare with ``expected``."""

    async def counts() -> Counter[str] | None:
        about = [e["involvedObject"] for e in await events(client, reason)]
        found = Counter(o.get("name") for o in about if o["kind"] == "Node")
        return found if all(found[node] >= n for node, n in expected.items()) else None

    return await eventually(counts)


def samples(text: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric ``name`` whose labels include ``labels``, keyed by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def scrape_errors(text: str, policy: str) -> dict[tuple[str, str], float]:
    """``kubemeter_scrape_errors_total`` of one policy by (node, reason)."""
    by_labels = samples(text, "kubemeter_scrape_errors_total", policy=policy)
    return {(dict(k)["node"], dict(k)["reason"]): v for k, v in by_labels.items()}


class RequestCounter:
    """Counts API server requests matching a method and path pattern from now on, without changing their
    answers. On the simulator a fault with no status and no delay lets each request through (it hides faults
    injected after it for the same requests, as only the first matching fault applies); on the real control
    plane the audit log is read (it records every request for kubemeter's resources)."""

    _VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

    def __init__(self, cluster: Cluster | RealCluster, method: str, path: str) -> None:
        self._cluster = cluster
        if isinstance(cluster, RealCluster):
            self._verb, self._path = self._VERBS[method], re.compile(path)
            self._seen = len(cluster.control_plane.audit_events())
        else:
            self._handle = cluster.apiserver.inject_fault(method=method, path=path)

    @property
    def count(self) -> int:
        if not isinstance(self._cluster, RealCluster):
            return self._handle.hits
        return sum(1 for event in self._cluster.control_plane.audit_events()[self._seen:]
                   if event["verb"] == self._verb and self._path.search(event["requestURI"].split("?")[0]))

    def stop(self) -> None:
        if not isinstance(self._cluster, RealCluster):
            self._handle.remove()


async def first_cycle(op: Operator, policy: str) -> CycleReport:
    """The policy's first cycle, once published. (``Operator.loop`` can flush before that cycle's publish has
    planned its writes: the report is set first, and the publisher first lists what a previous run wrote.)"""
    loop = await eventually(lambda: (p := op.runtime.lifecycle.policies.get(policy)) and p.loop and p.loop.last_report and p.loop)
    publisher = op.runtime.lifecycle.policies[policy].publisher

    async def planned() -> bool:  # read on the operator's thread, between its tasks
        return publisher.writes_planned > 0

    await eventually(lambda: op.thread.run(planned()))
    await op.thread.run(publisher.flush())
    return loop.last_report
