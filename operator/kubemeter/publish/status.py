"""The status write engine: one policy's WorkloadMetrics and MetricsPolicy status, sent to the API server.

What to write comes from documents.py (pure); this module decides when and sends it. Writes are planned per
cycle and sent by a background drain (publish/writequeue.py), so a slow API server never delays a cycle:
- a WorkloadMetrics is written only when a key value moved by more than ``minStatusChange`` (relative), a
  count changed, or its last write is older than ``maxStatusAge``; the policy's own status every cycle (one
  object per interval), so its ``lastScrapeTime`` says the cycles run even while no value moves;
- pending writes coalesce per object (the newest desired status replaces an unsent older one, keeping its
  place in the queue), so under a QPS cap every object is eventually written and none is lost;
- every request goes through the operator's one rate limiter (kubemeter.kubeapi.KubeApi);
- a write that failed (after KubeApi's retries) is sent again later, with a growing delay, unless a newer
  write of the same object replaces it: a status planned once (an invalid spec's, with no cycle to plan
  another) lands once the API server answers again, whatever happened in between;
- the policy's own status goes first, so it can say what is wrong with the others: WorkloadMetrics writes
  that keep failing turn its Ready False (``StatusWriteFailed``);
- at start-up (and after a step-down) the objects a previous run wrote are adopted, not recreated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import WorkloadRecommendation
from kubemeter.compute.snapshot import Snapshot
from kubemeter.kubeapi import CONFLICT, KubeApi, describe
from kubemeter.policy import PolicySpec
from kubemeter.publish.documents import (
    MANAGED_BY,
    METRICSPOLICIES,
    POLICY_LABEL,
    WORKLOADMETRICS,
    InvalidGeneration,
    condition,
    is_of,
    key_values,
    merge_conditions,
    moved,
    observed_generation,
    owner_references_for,
    policy_label_value,
    policy_status,
    stale_workload_status,
    stored_workload,
    with_reason,
    without_measured_figures,
    workload_from_spec,
    workload_status,
    workloadmetrics_name,
    workloadmetrics_object,
)
from kubemeter.publish.writequeue import Backoff, WriteQueue
from kubemeter.tasks import cancel_and_wait
from kubemeter.timefmt import parse_rfc3339
from kubemeter.types import WorkloadRef

log = logging.getLogger(__name__)

_JSON_PATCH = "application/json-patch+json"
FAILING_AFTER = 3
"""WorkloadMetrics writes failed in a row (each after KubeApi's retries) that make the policy's Ready False."""
STALE_AFTER_FAILED_CYCLES = 3
"""Cycles failed in a row after which the WorkloadMetrics say they are stale."""
RETRY_FIRST, RETRY_MAX = 2.0, 60.0
"""Seconds before a failed write is sent again, doubling per failure of the same object up to RETRY_MAX."""


@dataclass(slots=True)
class _Published:
    name: str
    values: dict[str, object]
    written_at: float
    last_sample: float | None


@dataclass(slots=True)
class _Write:
    """A pending write to one object: create (if needed) then status, or delete."""

    ref: WorkloadRef | None  # None: the MetricsPolicy itself
    status: dict | None  # None: delete
    at: float


async def delete_orphaned_objects(api: KubeApi, plurals: tuple[str, ...] = (WORKLOADMETRICS,)) -> None:
    """Delete the WorkloadMetrics (and the other ``plurals``: MetricsCheckpoints) whose policy no longer exists
    (deleted with ``--cascade=orphan``, so the garbage collector left them, with figures nobody updates). The
    objects are listed before the policies: one created meanwhile belongs to a policy the second list shows."""
    selector = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
    listed = [(plural, await api.call(api.custom.list_cluster_custom_object, GROUP, VERSION, plural,
                                      label_selector=selector)) for plural in plurals]
    policies = await api.call(api.custom.list_cluster_custom_object, GROUP, VERSION, METRICSPOLICIES)
    existing = {item["metadata"]["name"] for item in policies.get("items", [])}
    for plural, objects in listed:
        for item in objects.get("items", []):
            meta, policy = item["metadata"], (item.get("spec") or {}).get("policy")
            if policy in existing:
                continue
            try:
                await api.call(api.custom.delete_namespaced_custom_object, GROUP, VERSION, meta["namespace"],
                               plural, meta["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
            log.info("deleted %s %s/%s: its policy %s no longer exists", item.get("kind", plural), meta["namespace"],
                     meta["name"], policy, extra={"policy": policy, "namespace": meta["namespace"]})


class StatusPublisher:
    """Publishes one policy's cycles as status (the loop.Publisher of the operator)."""

    def __init__(
        self,
        api: KubeApi,
        policy: str,
        policy_uid: str,
        *,
        clock: Callable[[], float],
        on_write: Callable[[str], None] = lambda result: None,
        writers: int = 4,
    ) -> None:
        self.api = api
        self.policy, self.policy_uid = policy, policy_uid
        self.clock = clock
        self._on_write = on_write
        self._writers = writers
        self._published: dict[WorkloadRef, _Published] = {}
        # One write per object at a time, so writes of one object land in the order planned; the policy's own
        # (key None) first, so it can report on the others.
        self._writes: WriteQueue[WorkloadRef | None, _Write] = WriteQueue(
            lambda ref, write: self._send(write), name=f"status-writer-{policy}", clock=lambda: self.clock(),
            writers=writers, failed=self._write_failed, sent=self._write_sent, retry=Backoff(RETRY_FIRST, RETRY_MAX),
            first=None, fields=_fields, context={"policy": policy})
        self._loaded = False
        self._policy_status: dict | None = None
        self._policy_written: dict | None = None  # what the policy's status holds, as far as this run knows
        self._invalid: InvalidGeneration | None = None
        self._marking_stale: asyncio.Task | None = None
        self._failed_in_a_row = 0
        self._last_failure = ""
        self._failed_cycles = 0

    def adopt_policy_status(self, status: Mapping | None) -> None:
        """The policy's current status (from its watch event): keeps condition transition times across restarts."""
        if status and self._policy_status is None:
            self._policy_status = dict(status)

    # ---- start-up: adopt what a previous run wrote ----------------------------------------------
    async def load_existing(self) -> list[tuple[WorkloadRef, dict]]:
        """Adopt the WorkloadMetrics a previous run wrote, so a restart neither recreates nor rewrites them;
        each adopted one's workload and status."""
        response = await self.api.call(
            self.api.custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            WORKLOADMETRICS,
            label_selector=f"{POLICY_LABEL}={policy_label_value(self.policy)}",
        )
        adopted = []
        for item in response.get("items", []):
            meta, status = item["metadata"], item.get("status") or {}
            ref = workload_from_spec(meta["namespace"], item.get("spec") or {})
            if ref is None or (item.get("spec") or {}).get("policy") != self.policy:
                continue
            if not await self._own(meta):
                continue  # deleted meanwhile
            self._published[ref] = _Published(
                name=meta["name"],
                values=key_values(status),
                written_at=parse_rfc3339(status.get("lastUpdated")) or 0.0,
                last_sample=parse_rfc3339(status.get("lastSampleTime")),
            )
            adopted.append((ref, status))
        self._loaded = True
        return adopted

    async def start_term(self) -> None:
        """Nothing here: the first cycle's publish adopts the objects a previous run (or leader) wrote."""

    async def _mark_stale(self, leading: asyncio.Event | None) -> None:
        """Left alone, the objects would show their last figures as current. Kept rather than deleted: a valid
        spec continues them (same objects, no delete and re-create), and their requests and last sample stay."""
        if leading is not None:
            await leading.wait()  # a standby's leader may still be running the last valid spec
        try:
            adopted = await self.load_existing()
        except Exception:  # tried again with the next invalid generation
            log.exception("marking its WorkloadMetrics stale failed", extra={"policy": self.policy})
            self._marking_stale = None
            return
        now = self.clock()
        for ref, status in adopted:
            if status and not status.get("stale"):
                self._queue(_Write(ref, stale_workload_status(status, now), now))
        self._writes.start()

    async def _own(self, meta: Mapping) -> bool:
        """Make this policy the controller owner of an adopted object; False if the object is gone."""
        references = owner_references_for(self.policy, self.policy_uid, list(meta.get("ownerReferences") or []))
        if references is None:
            return True
        try:
            await self.api.call(
                self.api.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                meta["namespace"],
                WORKLOADMETRICS,
                meta["name"],
                [{"op": "add", "path": "/metadata/ownerReferences", "value": references}],
                _content_type=_JSON_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
        log.info("adopted WorkloadMetrics %s/%s", meta["namespace"], meta["name"],
                 extra={"policy": self.policy, "namespace": meta["namespace"]})
        return True

    # ---- planning ------------------------------------------------------------------------------
    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None:
        await self._stop_marking_stale()  # a cycle runs: it writes what is current
        self._failed_cycles = 0
        if not self._loaded:
            await self.load_existing()
        now = report.snapshot.time
        if spec.workload_metrics and "workload" in spec.levels:
            self._plan_workloads(report.snapshot, spec, now, report.recommendations)
        else:
            for ref in self._published:
                self._queue(_Write(ref, None, now))
        invalid = self._invalid_beyond(generation)
        status = policy_status(report, spec, generation, self._conditions_before(), invalid, self._write_failure())
        self._plan_policy(status, now)

    def _plan_workloads(self, snapshot: Snapshot, spec: PolicySpec, now: float,
                        recommendations: Mapping[WorkloadRef, WorkloadRecommendation] | None = None) -> None:
        """``recommendations``: the cycle's right-sizing, per workload that has one."""
        recommendations = recommendations or {}
        for workload, result in snapshot.workloads.items():
            ref = stored_workload(workload)
            published = self._published.get(ref)
            last_sample = now if result.pods_reporting else (published.last_sample if published else None)
            status = workload_status(result, spec, now, last_sample, recommendations.get(workload))
            if published is not None:
                published.last_sample = last_sample
                fresh = now - published.written_at < spec.max_status_age
                if fresh and not moved(self._stored_next(ref, published), key_values(status), spec.min_status_change):
                    # What the object holds (or is being sent) is close enough: a queued write, planned
                    # for a value since gone back, would now be a write that moves nothing.
                    self._writes.discard(ref)
                    continue
            self._queue(_Write(ref, status, now))
        for ref in self._published.keys() - {stored_workload(workload) for workload in snapshot.workloads}:
            self._queue(_Write(ref, None, now))

    def _stored_next(self, ref: WorkloadRef, published: _Published) -> dict[str, object]:
        """What the object holds once the write in flight for it (if any) lands. Not a queued write: that
        one is replaced or dropped by this very planning, so comparing with it could queue a value the
        object already holds."""
        sending = self._writes.sending(ref)
        if sending is not None and sending.status is not None:
            return key_values(sending.status)
        return published.values

    def _conditions_before(self) -> list[dict]:
        return list((self._policy_status or {}).get("conditions") or [])

    def invalid(self, message: str, generation: int, running: bool) -> None:
        """Report a spec the operator cannot run. ``running``: the last valid spec keeps running (its Ready
        stands); otherwise nothing runs, and Ready says so (a blank READY column would say nothing)."""
        self._invalid = InvalidGeneration(generation, message)
        updates = []
        if not running:
            updates.append(("Ready", "False", "InvalidSpec", "nothing runs until the spec is valid; see Invalid"))
        self._report(updates, generation, measured=running)

    def _invalid_beyond(self, generation: int) -> InvalidGeneration | None:
        """The invalid generation still to report alongside a status of the spec ``generation``: none once a
        newer generation runs (a valid spec applied since)."""
        if self._invalid is not None and generation > self._invalid.generation:
            self._invalid = None
        return self._invalid

    def mark_stale(self, leading: asyncio.Event | None) -> None:
        """Nothing runs (the spec was invalid since this run started; or cycles keep failing, ``leading`` None):
        once this replica leads, the objects a previous run wrote say they are stale, until a cycle of a valid
        spec writes them again."""
        if self._marking_stale is None:
            self._marking_stale = asyncio.create_task(self._mark_stale(leading), name=f"mark-stale-{self.policy}")

    async def _stop_marking_stale(self) -> None:
        await cancel_and_wait(self._marking_stale)
        self._marking_stale = None

    def cycle_failed(self, message: str, generation: int) -> None:
        """Report a cycle that ended in an error before publishing: the figures shown are no longer current.
        Once cycles keep failing, the WorkloadMetrics say so too (not at the first: marking them reads them
        all and writes each twice, too much for one failed cycle in a cluster of thousands of workloads)."""
        self._report([("Ready", "False", "CycleFailed", message)], generation, measured=False)
        self._failed_cycles += 1
        if self._failed_cycles == STALE_AFTER_FAILED_CYCLES:
            self.mark_stale(None)

    def _report(self, updates: list[tuple[str, str, str, str]], generation: int, *, measured: bool = True) -> None:
        """``measured`` False: the figures the status holds are no longer current (nothing runs, or the cycle
        failed), so the measured ones go, as a stale WorkloadMetrics' do: `kubectl get mp` shows no old CPU
        beside a Ready False."""
        now = self.clock()
        invalid = self._invalid_beyond(generation)
        status = dict(self._policy_status or {})
        if not measured:
            status = without_measured_figures(status)
        status["observedGeneration"] = observed_generation(generation, invalid)
        reported = [condition(*update, generation, now) for update in updates]
        if invalid is not None:
            reported.append(invalid.condition(now))
        status["conditions"] = merge_conditions(self._conditions_before(), reported, now)
        self._plan_policy(status, now)

    def _plan_policy(self, status: dict, now: float) -> None:
        """Write the policy's status, moved or not: its lastScrapeTime (the SCRAPED column) is how a user tells
        current figures."""
        self._policy_status = status
        self._queue(_Write(None, status, now))
        self._writes.start()

    def _queue(self, write: _Write) -> None:
        self._writes.put(write.ref, write)  # an unsent older write of the same object is replaced in place

    @property
    def writes_planned(self) -> int:
        """Writes queued (those sent again after a failure included)."""
        return self._writes.planned

    # ---- failed writes: sent again later (the queue's Backoff), and reported ---------------------------
    def _write_sent(self, ref: WorkloadRef | None, write: _Write) -> None:
        if ref is not None:
            self._failed_in_a_row = 0

    def _write_failed(self, ref: WorkloadRef | None, write: _Write, exc: Exception) -> None:
        """In the ``except`` of the failed write, within its log context; the queue sends it again later."""
        if isinstance(exc, ApiException):
            log.warning("status write for %s failed: %s", _object(ref), describe(exc))
        else:
            log.exception("status write for %s failed", _object(ref))
        self._on_write("error")
        if ref is not None:
            self._failed_in_a_row += 1
            self._last_failure = describe(exc)

    def _write_failure(self) -> str | None:
        """Why the policy's Ready is False although its cycles run: its WorkloadMetrics cannot be written."""
        if self._failed_in_a_row < FAILING_AFTER:
            return None
        return (f"the last {self._failed_in_a_row} WorkloadMetrics status writes failed, so they show old figures; "
                f"the last error: {self._last_failure}")

    @property
    def busy(self) -> bool:
        """Writes wait to be sent or are being sent (a failed one waiting to be sent again is not counted)."""
        return self._writes.busy

    @property
    def pending_writes(self) -> int:
        return self._writes.pending

    def stalled_for(self) -> float:
        """Seconds the writer has had writes to send and finished none (0 when idle). Every request has a
        timeout, so a writer that makes no progress for long is wedged (a liveness failure)."""
        return self._writes.stalled_for()

    async def flush(self) -> None:
        """Wait until every planned write was sent (tests, benchmarks, shutdown)."""
        await self._writes.flush()

    async def _send(self, write: _Write) -> None:
        if write.ref is None:
            await self._send_policy(write)
        elif write.status is None:
            await self._delete(write.ref)
        else:
            await self._write_workload(write)

    async def _send_policy(self, write: _Write) -> None:
        assert write.status is not None
        status = write.status
        try:
            await self._patch_policy_status(status)
        except ApiException as exc:
            if exc.status == 422:
                # Refused as invalid (a CRD stricter than this operator): the policy would go on showing the
                # last status it accepted, as if current. Say so instead, with no figures left to mislead.
                self._on_write("error")
                log.warning("its status was refused: %s", describe(exc))
                status = self._write_refused(status, describe(exc), write.at)
                await self._patch_policy_status(status)
            elif exc.status != 404:  # a policy deleted meanwhile: nothing to report on
                raise
        self._policy_written = status
        self._on_write("success")

    def _write_refused(self, refused: dict, reason: str, now: float) -> dict:
        """The status saying a write of ``refused`` failed: its conditions, Ready False with the reason; the
        transition times those of what the object holds."""
        generation = refused.get("observedGeneration", 0)
        ready = condition("Ready", "False", "StatusWriteFailed", f"the status write was refused: {reason}"[:1024],
                          generation, now)
        held = self._policy_written or self._policy_status or {}
        others = [c for c in refused.get("conditions", ()) if c["type"] != "Ready"]
        conditions = merge_conditions(list(held.get("conditions") or []), [*others, ready], now)
        self._policy_status = {"observedGeneration": generation, "conditions": conditions}
        return self._policy_status

    async def _patch_policy_status(self, status: dict) -> None:
        await self.api.call(
            self.api.custom.patch_cluster_custom_object_status,
            GROUP,
            VERSION,
            METRICSPOLICIES,
            self.policy,
            [{"op": "add", "path": "/status", "value": with_reason(status)}],
            _content_type=_JSON_PATCH,
            also_retry=CONFLICT,
        )

    async def _delete(self, ref: WorkloadRef) -> None:
        published = self._published.pop(ref, None)
        if published is None:
            return
        try:
            await self.api.call(
                self.api.custom.delete_namespaced_custom_object, GROUP, VERSION, ref.namespace, WORKLOADMETRICS,
                published.name,
            )
        except ApiException as exc:
            if exc.status != 404:
                self._published.setdefault(ref, published)
                raise
        self._on_write("success")

    async def _write_workload(self, write: _Write) -> None:
        ref, status = write.ref, write.status
        assert ref is not None and status is not None
        published = self._published.get(ref)
        if published is None:
            published = await self._create(ref)
        try:
            await self._patch_status(ref.namespace, published.name, status)
        except ApiException as exc:
            if exc.status != 404:
                raise
            # Deleted behind our back: create it again and write the status once more.
            published = await self._create(ref)
            await self._patch_status(ref.namespace, published.name, status)
        published.values = key_values(status)
        published.written_at = write.at
        # A new object's first write carries its first measurement: a stale status later must still show it.
        sampled = parse_rfc3339(status.get("lastSampleTime"))
        if sampled is not None and (published.last_sample is None or sampled > published.last_sample):
            published.last_sample = sampled
        self._on_write("success")

    async def _patch_status(self, namespace: str, name: str, status: dict) -> None:
        await self.api.call(
            self.api.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            WORKLOADMETRICS,
            name,
            [{"op": "add", "path": "/status", "value": status}],
            _content_type=_JSON_PATCH,
            also_retry=CONFLICT,
        )

    async def _create(self, ref: WorkloadRef) -> _Published:
        for hashed in (False, True):
            name = workloadmetrics_name(self.policy, ref, hashed)
            try:
                await self.api.call(
                    self.api.custom.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    ref.namespace,
                    WORKLOADMETRICS,
                    workloadmetrics_object(self.policy, self.policy_uid, ref, name),
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                existing = await self.api.call(
                    self.api.custom.get_namespaced_custom_object, GROUP, VERSION, ref.namespace, WORKLOADMETRICS, name
                )
                if not is_of(existing, self.policy, ref):
                    continue  # the short name belongs to another policy or workload
            published = _Published(name=name, values={}, written_at=0.0, last_sample=None)
            self._published[ref] = published
            return published
        raise RuntimeError(f"no free WorkloadMetrics name for {ref} in policy {self.policy}")

    def step_down(self) -> None:
        """Another replica leads now: drop what is queued or being retried (it would overwrite the new leader's
        newer values) and forget what we believe the objects hold, so a later term adopts them again."""
        self._writes.clear()
        self._published.clear()
        self._loaded = False
        self._policy_written = None

    async def close(self) -> None:
        await self._stop_marking_stale()
        await self._writes.close()


def _object(ref: WorkloadRef | None) -> str:
    return "the policy" if ref is None else f"{ref.kind} {ref.namespace}/{ref.name}"


def _fields(ref: WorkloadRef | None) -> dict[str, str]:
    """The log fields naming the object a write is for (none for the policy's own status)."""
    return {} if ref is None else {"namespace": ref.namespace, "kind": ref.kind, "workload": ref.name}
