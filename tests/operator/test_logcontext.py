"""The log context: fields that follow asyncio tasks, so each policy's records say which policy, cycle, node and
workload they are about, and never another's."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from kubernetes.client.exceptions import ApiException

from kubemeter.logcontext import ContextFilter, log_context, record_fields
from kubemeter.publish.status import StatusPublisher, _Published, _Write
from kubemeter.types import WorkloadRef

log = logging.getLogger("kubemeter.test")


class Captured(logging.Handler):
    """What the operator's handler gets: the records with their context fields."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ContextFilter())
        self.fields: list[tuple[str, dict]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append((record.getMessage(), record_fields(record)))


def captured() -> Captured:
    handler = Captured()
    logger = logging.getLogger("kubemeter")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


async def test_tasks_keep_the_fields_they_were_started_with_and_never_see_another_policys():
    handler = captured()
    try:
        async def policy_loop(name: str, started: asyncio.Event) -> None:
            with log_context(policy=name):
                await started.wait()
                with log_context(cycle=1, node=None):  # None: left out
                    log.info("cycle of %s", name)

        starts = {name: asyncio.Event() for name in ("a", "b")}
        with log_context(policy="outer"):
            tasks = [asyncio.create_task(policy_loop(name, started)) for name, started in starts.items()]
        log.info("outside")
        for started in starts.values():
            started.set()
        await asyncio.gather(*tasks)
        log.warning("explicit", extra={"node": "n1"})
    finally:
        logging.getLogger("kubemeter").removeHandler(handler)
    assert sorted(handler.fields, key=lambda entry: entry[0]) == [
        ("cycle of a", {"policy": "a", "cycle": 1}),
        ("cycle of b", {"policy": "b", "cycle": 1}),
        ("explicit", {"node": "n1"}),
        ("outside", {}),
    ]


async def test_a_status_write_logs_its_policy_and_object_but_not_the_cycle_that_planned_it():
    """The status writer outlives the cycle that started it: its records name the policy and the object written,
    never a cycle number long past."""
    web, now = WorkloadRef("shop", "Deployment", "web", "apps/v1"), 1_700_000_000.0

    class RefusingApi:
        custom = SimpleNamespace(patch_cluster_custom_object_status="patch",
                                 patch_namespaced_custom_object_status="patch")

        async def call(self, fn, *args, **kwargs):
            raise ApiException(status=403, reason="Forbidden")

    handler = captured()
    publisher = StatusPublisher(RefusingApi(), "team-a", "uid", clock=lambda: now)  # type: ignore[arg-type]
    publisher._published[web] = _Published("deployment-web", {}, 0.0, None)
    try:
        with log_context(policy="team-a", cycle=7):
            publisher._queue(_Write(web, {"pods": 1}, now))
            publisher.cycle_failed("the last cycle failed", 1)
        await publisher.flush()
    finally:
        await publisher.close()
        logging.getLogger("kubemeter").removeHandler(handler)
    assert sorted(entry for entry in handler.fields if "status write" in entry[0]) == [
        ("status write for Deployment shop/web failed: 403 Forbidden",
         {"policy": "team-a", "namespace": "shop", "kind": "Deployment", "workload": "web"}),
        ("status write for the policy failed: 403 Forbidden", {"policy": "team-a"}),
    ]

