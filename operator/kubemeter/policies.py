"""The policy lifecycle: a MetricsPolicy event starts, reconfigures or stops its PolicyLoop and publishers.

A spec the operator cannot run is reported on the policy (``Invalid``) and the last valid spec keeps running;
a policy deleted and re-created under the same name (a new uid) starts afresh; the operator's own status writes
(same generation) change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kubemeter import GROUP, VERSION
from kubemeter.kubeapi import KubeApi
from kubemeter.logcontext import log_context
from kubemeter.loop import LoopDeps, PolicyLoop
from kubemeter.policy import PolicyError, parse_policy
from kubemeter.publish.checkpoints import CheckpointPublisher
from kubemeter.publish.documents import failed_nodes
from kubemeter.publish.prometheus import PrometheusPublisher, SnapshotCollector, WriterState
from kubemeter.publish.publisher import Publisher
from kubemeter.publish.status import StatusPublisher
from kubemeter.tasks import cancel_and_wait
from kubemeter.timefmt import format_span

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RunningPolicy:
    uid: str
    generation: int
    publisher: StatusPublisher
    """Its status on the API server: also the place to report an invalid spec, loop or not."""
    loop: PolicyLoop | None = None
    """``None`` until the policy has had a valid spec."""
    task: asyncio.Task | None = None
    checkpoints: CheckpointPublisher | None = None
    """Its right-sizing histories' checkpoints (with its loop)."""


def _policy_ref(meta: Mapping) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "name": meta["name"], "uid": meta.get("uid")}


class PolicyLifecycle:
    def __init__(self, api: KubeApi, deps: LoopDeps, collector: SnapshotCollector) -> None:
        self.api, self.deps, self.collector = api, deps, collector
        self.policies: dict[str, RunningPolicy] = {}
        self.checkpoints_served = True
        """Whether the API server serves MetricsCheckpoints (an upgrade may not have installed the CRD yet)."""

    async def policy_event(self, event_type: str | None, obj: Mapping) -> None:
        # Within the policy's log context, which the tasks started here (its loop, its status writer) keep.
        with log_context(policy=obj["metadata"]["name"]):
            await self._apply(event_type, obj)

    async def _apply(self, event_type: str | None, obj: Mapping) -> None:
        meta = obj["metadata"]
        name, uid, generation = meta["name"], meta.get("uid", ""), meta.get("generation", 0)
        current = self.policies.get(name)
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            await self.stop_policy(name)
            return
        if current is not None and current.uid != uid:  # deleted and re-created while we were not looking
            await self.stop_policy(name)
            current = None
        if current is not None and current.generation == generation:
            return  # our own status write, or a metadata change: nothing to apply
        if current is None:
            current = self.policies[name] = RunningPolicy(uid, generation, self._status_publisher(name, uid))
            current.publisher.adopt_policy_status(obj.get("status"))
        current.generation = generation
        try:
            spec = parse_policy(obj.get("spec"))
        except PolicyError as exc:
            kept = " (the last valid spec keeps running)" if current.loop is not None else ""
            log.warning("policy invalid: %s%s", exc, kept)
            current.publisher.invalid(f"{exc}{kept}", generation, running=current.loop is not None)
            if current.loop is None:
                current.publisher.mark_stale(self.deps.active)
            self.deps.post_event(_policy_ref(meta), "Warning", "InvalidPolicy", str(exc))
            return
        if current.loop is None:
            # Prometheus first: the gauges are up to date before the status writes start queueing; checkpoints
            # last (what users read first).
            publishers: list[Publisher] = [PrometheusPublisher(name, self.collector, self.deps.metrics),
                                           current.publisher]
            if self.checkpoints_served:
                current.checkpoints = self._checkpoint_publisher(name, current, spec.checkpoint_interval)
                publishers.append(current.checkpoints)
            failures = failed_nodes(obj.get("status"))
            current.loop = PolicyLoop(name, spec, generation, self.deps, publishers, failures=failures)
            current.task = asyncio.create_task(current.loop.run(), name=f"policy-{name}")
            standby = "" if self.deps.active.is_set() else "; a standby: it scrapes once it leads"
            log.info("policy started (every %s, timeout %s, window %s, %s via %s%s)", format_span(spec.interval),
                     format_span(spec.timeout), format_span(spec.window), spec.endpoint, spec.via, standby)
        else:
            current.loop.configure(spec, generation)
            log.info("spec generation %s applies from the next cycle", generation)

    def _status_publisher(self, name: str, uid: str) -> StatusPublisher:
        writes = self.deps.metrics.status_writes
        return StatusPublisher(self.api, name, uid, clock=time.time, on_write=lambda r: writes.labels(result=r).inc())

    def _checkpoint_publisher(self, name: str, policy: RunningPolicy, interval: float) -> CheckpointPublisher:
        counter = self.deps.metrics.checkpoints
        return CheckpointPublisher(
            self.api, name, policy.uid, lambda: policy.loop.recommender if policy.loop is not None else None,
            self.deps.active, interval=interval, clock=time.time,
            on_result=lambda result: counter.labels(policy=name, result=result).inc())

    async def stop_policy(self, name: str) -> None:
        policy = self.policies.pop(name, None)
        if policy is None:
            return
        dropped = policy.publisher.pending_writes  # the next run (or leader) writes the objects again
        if policy.task is not None:
            await cancel_and_wait(policy.task)
        if policy.loop is not None:
            await policy.loop.close()
        else:
            await policy.publisher.close()
        log.info("policy stopped; %d pending status writes dropped", dropped, extra={"policy": name})

    async def stop_all(self, flush_within: float = 0.0) -> None:
        """Stop every loop; then their pending status writes get ``flush_within`` seconds (all together) to be
        sent, so a restart right after a cycle does not lose its figures; what is left then is dropped."""
        for policy in self.policies.values():
            await cancel_and_wait(policy.task)
        publishers = [policy.publisher for policy in self.policies.values()]
        checkpoints = [policy.checkpoints for policy in self.policies.values() if policy.checkpoints is not None]
        pending = sum(publisher.pending_writes for publisher in publishers)
        if (pending or checkpoints) and flush_within > 0:
            log.info("stopping: sending the %d pending status writes and the right-sizing checkpoints that changed "
                     "(for up to %gs)", pending, flush_within)
            # The status first (what users read); what is left at the deadline is dropped.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_within):
                    await asyncio.gather(*(publisher.flush() for publisher in publishers))
                    await asyncio.gather(*(checkpoint.write_all() for checkpoint in checkpoints))
        for name in list(self.policies):
            await self.stop_policy(name)

    def step_down(self) -> None:
        """This replica lost the lease: every loop withdraws what it publishes (it keeps running, idle)."""
        for policy in self.policies.values():
            if policy.loop is not None:
                policy.loop.step_down()

    def writer_states(self) -> list[WriterState]:
        return [WriterState(name, p.publisher.pending_writes, p.publisher.stalled_for())
                for name, p in self.policies.items()]

    def stalled_writers(self, limit: float) -> list[str]:
        """Policies whose status writes have waited longer than ``limit`` seconds with none finishing."""
        return [name for name, p in self.policies.items() if p.publisher.stalled_for() > limit]

    def stopped_loops(self) -> list[str]:
        """Policies whose loop task ended (a loop never returns: it died of a bug)."""
        return [name for name, p in self.policies.items() if p.task is not None and p.task.done()]
