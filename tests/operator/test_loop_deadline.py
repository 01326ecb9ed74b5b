"""A cycle is bounded: no scrape starts after the cycle's deadline (start + timeout), whatever the queue."""

from __future__ import annotations

import time

from kubemeter.loop import LoopDeps, PolicyLoop
from kubemeter.policy import parse_policy
from kubemeter.publish.prometheus import build_registry
from kubemeter.types import NodeInfo, Selection
from kubemeter.watch.model import ClusterModel


class NeverCalled:
    async def fetch(self, *args, **kwargs):
        raise AssertionError("a node past the cycle's deadline must not be requested")


class NoPublisher:
    async def publish(self, report, spec, generation) -> None: ...

    def step_down(self) -> None: ...

    def cycle_failed(self, message: str, generation: int) -> None: ...

    async def close(self) -> None: ...


async def test_a_node_reached_after_the_deadline_fails_fast_as_a_timeout():
    _, collector, metrics = build_registry()
    deps = LoopDeps(ClusterModel(), NeverCalled(), collector, metrics, post_event=lambda *a: None)
    spec = parse_policy({})
    loop = PolicyLoop("p", spec, 1, deps, NoPublisher())
    node = NodeInfo("late", "uid", {}, "127.0.0.1", 10250)
    error = await loop._scrape_node(spec, time.monotonic() - 0.1, node, Selection(nodes=[node]), {}, {})
    assert error is not None and error.reason == "timeout" and "deadline" in error.message
