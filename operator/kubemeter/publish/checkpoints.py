"""Right-sizing checkpoints: one policy's workload histories kept in MetricsCheckpoint objects, so that a restart
or a new leader continues them instead of learning from zero (docs/architecture.md, "Checkpoints").

- **Where**: one MetricsCheckpoint per WorkloadMetrics, same namespace and name, labelled with the policy, owned by
  that WorkloadMetrics (the garbage collector deletes it with it, and so with its policy).
- **Written** through the operator's one KubeApi (its rate limiter, retries, timeouts), by a background drain: a
  workload's at most once per ``checkpointInterval``, each workload at its own phase of the interval (a hash of
  its name) so that the writes spread over it, and only when its history changed since the last write. Once more
  at shutdown, for as long as the shutdown flush allows.
- **Restored** when the policy's loop starts and when this replica becomes leader, before the term's first cycle:
  the policy's checkpoints are listed (label selector) into its Recommender. A malformed or foreign one is
  logged, counted and left as it is; the others are restored.
- **Deleted** when the history is forgotten (the workload went), and all of the policy's when its recommendations
  are turned off.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import Recommender
from kubemeter.kubeapi import CONFLICT, KubeApi, describe
from kubemeter.logcontext import log_context
from kubemeter.policy import PolicySpec
from kubemeter.publish.documents import (
    MANAGED_BY,
    POLICY_LABEL,
    policy_label_value,
    stored_workload,
    workload_from_spec,
)
from kubemeter.tasks import cancel_and_wait
from kubemeter.timefmt import parse_rfc3339, rfc3339
from kubemeter.types import WorkloadRef

log = logging.getLogger(__name__)

METRICSCHECKPOINTS = "metricscheckpoints"
MAX_CHECKPOINT_CONTAINERS = 50
"""Containers one checkpoint holds (the CRD's maxProperties): at most about 5 KiB each (176 buckets per
histogram), so an object stays under 300 KiB, far below the API server's 1.5 MiB; typically 1.3-2.5 KiB each."""
_JSON_PATCH = "application/json-patch+json"

Owner = tuple[str, str]
"""A WorkloadMetrics' (name, uid)."""


def checkpoint_object(policy: str, ref: WorkloadRef, owner: Owner, containers: Mapping[str, Any], now: float) -> dict:
    """The MetricsCheckpoint of one workload (``ref`` as WorkloadMetrics store it), owned by its WorkloadMetrics."""
    name, uid = owner
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetricsCheckpoint",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": _labels(policy),
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "policy": policy,
            "workload": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name},
            "time": rfc3339(now),
            "containers": dict(containers),
        },
    }


def _labels(policy: str) -> dict[str, str]:
    return {**MANAGED_BY, POLICY_LABEL: policy_label_value(policy)}


def _owner_reference(owner: Owner) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics", "name": owner[0], "uid": owner[1],
            "controller": True}


def read_checkpoint(item: Mapping, policy: str) -> tuple[WorkloadRef, Mapping[str, Any], float]:
    """(workload, containers, time written) of a listed checkpoint of ``policy``; ValueError saying why not."""
    spec = item.get("spec")
    if not isinstance(spec, Mapping):
        raise ValueError("it has no spec")
    if spec.get("policy") != policy:
        raise ValueError(f"it belongs to policy {spec.get('policy')!r}, not {policy!r}, although labelled with it")
    ref = workload_from_spec(item["metadata"]["namespace"], spec) if isinstance(spec.get("workload"), Mapping) else None
    if ref is None:
        raise ValueError("spec.workload names no workload (kind and name)")
    written = parse_rfc3339(spec.get("time")) if isinstance(spec.get("time"), str) else None
    if written is None:
        raise ValueError(f"spec.time {spec.get('time')!r} is not an RFC 3339 time")
    containers = spec.get("containers")
    if not isinstance(containers, Mapping):
        raise ValueError("spec.containers must map container names to histories")
    return ref, containers, written


def _digest(containers: Mapping[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(containers, sort_keys=True).encode(), digest_size=16).hexdigest()


def _phase(ref: WorkloadRef) -> float:
    """The workload's own point of the interval, in [0, 1): the same in every replica and run."""
    key = "\0".join((ref.namespace, ref.api_version, ref.kind, ref.name)).encode()
    return zlib.crc32(key) / 2**32


@dataclass(slots=True)
class _Kept:
    """A checkpoint that exists (as far as this run knows)."""

    name: str
    owner_uid: str
    digest: str


@dataclass(slots=True)
class _Write:
    ref: WorkloadRef
    name: str
    body: dict | None  # None: delete
    digest: str = ""


class CheckpointPublisher:
    """Writes, restores and deletes one policy's checkpoints (a loop.Publisher, after the StatusPublisher, whose
    WorkloadMetrics own them)."""

    def __init__(
        self,
        api: KubeApi,
        policy: str,
        recommender: Callable[[], Recommender | None],
        owner: Callable[[WorkloadRef], Owner | None],
        active: asyncio.Event,
        *,
        interval: float,
        clock: Callable[[], float],
        on_result: Callable[[str], None] = lambda result: None,
        writers: int = 2,
    ) -> None:
        """``recommender``: the policy's current one (None when its recommendations are off); ``owner``: the
        WorkloadMetrics written for a workload (as stored), None until it exists; ``active``: set while this
        replica may write; ``on_result``: written, deleted, restored, malformed or failed, once each."""
        self.api, self.policy = api, policy
        self._recommender, self._owner, self._active = recommender, owner, active
        self.interval = interval
        self.clock = clock
        self._on_result = on_result
        self._writers = writers
        self._kept: dict[WorkloadRef, _Kept] = {}
        self._due: dict[WorkloadRef, float] = {}
        """When each workload's history is next compared with its checkpoint (and written if it changed)."""
        self._pending: dict[WorkloadRef, _Write] = {}
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._drain: asyncio.Task | None = None
        self._restored = False
        self._too_many_warned: set[WorkloadRef] = set()
        self.writes = 0
        """Checkpoint writes sent (creates and patches), for tests and benchmarks."""

    # ---- restore ---------------------------------------------------------------------------------------------
    async def start_term(self) -> None:
        """Before the first cycle of a term (the loop's start, or leading again): restore the checkpoints."""
        await self._restore()

    async def _restore(self) -> None:
        try:
            response = await self.api.call(
                self.api.custom.list_cluster_custom_object, GROUP, VERSION, METRICSCHECKPOINTS,
                label_selector=f"{POLICY_LABEL}={policy_label_value(self.policy)}")
        except Exception as exc:  # noqa: BLE001 - tried again at the next cycle; the histories start afresh meanwhile
            log.warning("cannot list its MetricsCheckpoints (the histories are not restored yet; tried again next "
                        "cycle): %s", describe(exc))
            return
        self._restored = True
        recommender, now = self._recommender(), self.clock()
        restored = malformed = 0
        for item in response.get("items", []):
            meta = item.get("metadata") or {}
            where = f"{meta.get('namespace')}/{meta.get('name')}"
            try:
                ref, containers, written = read_checkpoint(item, self.policy)
                if recommender is not None:
                    recommender.restore(ref, containers, now)
            except ValueError as exc:
                malformed += 1
                self._on_result("malformed")
                log.warning("MetricsCheckpoint %s not restored (left as it is): %s", where, exc,
                            extra={"namespace": meta.get("namespace")})
                continue
            restored += 1
            self._on_result("restored")
            owners = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "WorkloadMetrics"]
            # What the history holds now, as the next comparison will see it (the API server may have turned a
            # float such as 7200.0 into 7200, which would look like a change).
            held = self._bounded(recommender, ref) if recommender is not None else containers
            self._kept[ref] = _Kept(meta["name"], owners[0].get("uid", "") if owners else "", _digest(held))
            # The previous writer's schedule goes on, shifted by this workload's phase: a restart right after a
            # shutdown (which wrote every checkpoint at once) does not make them all due together.
            self._due[ref] = written + self.interval * (1.0 + _phase(ref))
        if restored or malformed:
            log.info("restored the right-sizing histories of %d workloads from their MetricsCheckpoints%s", restored,
                     f"; {malformed} malformed ones left as they are" if malformed else "")

    # ---- planning --------------------------------------------------------------------------------------------
    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None:
        self.interval = spec.checkpoint_interval
        if not self._restored:
            await self._restore()
        for ref in report.histories_forgotten:
            self._due.pop(ref, None)
            self._delete(ref)
        recommender = self._recommender()
        if recommender is None:  # recommendations off: the histories are gone, and so go their checkpoints
            for ref in list(self._kept):
                self._delete(ref)
            self._due.clear()
            self._ensure_drain()
            return
        now = self.clock()
        for ref in recommender.workloads():
            due = self._due.get(ref)
            if due is None:
                due = self._due[ref] = now + self.interval * _phase(ref)
            if now >= due and self._plan(recommender, ref, now):
                self._due[ref] = now + self.interval
        self._ensure_drain()

    def _plan(self, recommender: Recommender, ref: WorkloadRef, now: float) -> bool:
        """Queue the workload's checkpoint if its history changed since the last one; False while its
        WorkloadMetrics is not written yet (it owns the checkpoint)."""
        stored = stored_workload(ref)
        owner = self._owner(stored)
        if owner is None:
            return False
        containers = self._bounded(recommender, ref)
        if not containers:
            return True
        digest = _digest(containers)
        kept = self._kept.get(ref)
        if kept is not None and kept.digest == digest and kept.owner_uid == owner[1] and kept.name == owner[0]:
            return True  # unchanged: nothing to write
        self._queue(_Write(ref, owner[0], checkpoint_object(self.policy, stored, owner, containers, now), digest))
        return True

    def _bounded(self, recommender: Recommender, ref: WorkloadRef) -> dict[str, Any]:
        """The workload's histories as its checkpoint holds them: the first MAX_CHECKPOINT_CONTAINERS by name."""
        containers = recommender.export(ref)
        if len(containers) <= MAX_CHECKPOINT_CONTAINERS:
            return containers
        if ref not in self._too_many_warned:
            self._too_many_warned.add(ref)
            log.warning("%s %s/%s has %d containers: its checkpoint keeps the first %d (by name)", ref.kind,
                        ref.namespace, ref.name, len(containers), MAX_CHECKPOINT_CONTAINERS)
        return {name: containers[name] for name in sorted(containers)[:MAX_CHECKPOINT_CONTAINERS]}

    def _delete(self, ref: WorkloadRef) -> None:
        kept = self._kept.get(ref)
        if kept is not None:
            self._queue(_Write(ref, kept.name, None))
        else:
            self._pending.pop(ref, None)

    def _queue(self, write: _Write) -> None:
        self._pending[write.ref] = write  # replaces an unsent older one of the same workload

    # ---- sending ---------------------------------------------------------------------------------------------
    def _ensure_drain(self) -> None:
        if not self._pending:
            return
        self._wakeup.set()
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run_drain(), name=f"checkpoint-writer-{self.policy}",
                                              context=contextvars.Context())

    async def _run_drain(self) -> None:
        async def writer() -> None:
            while self._pending:
                ref = next(iter(self._pending))
                write = self._pending.pop(ref)
                self._in_flight += 1
                try:
                    with log_context(namespace=ref.namespace, kind=ref.kind, workload=ref.name):
                        await self._send(write)
                except Exception as exc:  # noqa: BLE001 - the next due write (or the next term) tries again
                    self._on_result("failed")
                    self._kept.pop(ref, None)  # not known to hold what was planned: compared afresh next time
                    what = "deleting" if write.body is None else "writing"
                    log.warning("%s MetricsCheckpoint %s/%s failed: %s", what, ref.namespace, write.name,
                                describe(exc))
                finally:
                    self._in_flight -= 1

        with log_context(policy=self.policy):
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                await asyncio.gather(*(writer() for _ in range(self._writers)))

    async def _send(self, write: _Write) -> None:
        custom, namespace = self.api.custom, write.ref.namespace
        if write.body is None:
            self._kept.pop(write.ref, None)
            try:
                await self.api.call(custom.delete_namespaced_custom_object, GROUP, VERSION, namespace,
                                    METRICSCHECKPOINTS, write.name)
            except ApiException as exc:
                if exc.status != 404:  # gone already (with its WorkloadMetrics)
                    raise
            self._on_result("deleted")
            return
        meta = write.body["metadata"]
        patch = [{"op": "add", "path": "/metadata/labels", "value": meta["labels"]},
                 {"op": "add", "path": "/metadata/ownerReferences", "value": meta["ownerReferences"]},
                 {"op": "add", "path": "/spec", "value": write.body["spec"]}]
        exists = write.ref in self._kept
        for attempt in range(2):
            self.writes += 1
            try:
                if exists:
                    await self.api.call(custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                                        METRICSCHECKPOINTS, write.name, patch, _content_type=_JSON_PATCH,
                                        also_retry=CONFLICT)
                else:
                    await self.api.call(custom.create_namespaced_custom_object, GROUP, VERSION, namespace,
                                        METRICSCHECKPOINTS, write.body)
                break
            except ApiException as exc:
                # Deleted behind our back (404: create it), or there already (409: a previous run's, overwritten).
                if attempt == 1 or exc.status != (404 if exists else 409):
                    raise
                exists = not exists
        owner_uid = meta["ownerReferences"][0]["uid"]
        self._kept[write.ref] = _Kept(write.name, owner_uid, write.digest)
        self._on_result("written")

    @property
    def pending_writes(self) -> int:
        return len(self._pending) + self._in_flight

    async def flush(self) -> None:
        """Wait until every planned write was sent (tests, shutdown)."""
        while self._pending or self._in_flight:
            await asyncio.sleep(0.01)

    async def write_all(self) -> None:
        """At shutdown, while leading: every changed history written once more, the longest unwritten first
        (the caller bounds the time this may take)."""
        recommender = self._recommender()
        if recommender is None or not self._active.is_set():
            return
        now = self.clock()
        for count, ref in enumerate(sorted(recommender.workloads(), key=lambda r: self._due.get(r, now))):
            self._plan(recommender, ref, now)
            if count % 100 == 99:
                self._ensure_drain()
                await asyncio.sleep(0)  # the drain sends while the rest is planned
        self._ensure_drain()
        await self.flush()

    # ---- publisher lifecycle ---------------------------------------------------------------------------------
    def cycle_failed(self, message: str, generation: int) -> None:
        """Nothing to withdraw: the histories are as good as before the failed cycle."""

    def step_down(self) -> None:
        """Another replica leads now and writes the checkpoints: drop what is planned and what this run knew of
        them; the next term restores them afresh (it may be a later one of this replica)."""
        self._pending.clear()
        if self._drain is not None:
            self._drain.cancel()
        self._kept.clear()
        self._due.clear()
        self._restored = False

    async def close(self) -> None:
        await cancel_and_wait(self._drain)
