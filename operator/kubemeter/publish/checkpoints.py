"""Right-sizing checkpoints: one policy's workload histories kept in MetricsCheckpoint objects, so that a restart
or a new leader continues them instead of learning from zero (docs/architecture.md, "Checkpoints").

- **Where**: one MetricsCheckpoint per workload of the policy, in its namespace, labelled with the policy and owned
  by it (the MetricsPolicy: the garbage collector deletes them with it). Not by the workload's WorkloadMetrics,
  which goes with the workload's last pod: a Deployment scaled to zero keeps its history a half-life, and a restart
  meanwhile would lose it. Named as its WorkloadMetrics usually is (``deployment-web``), or with a hash of (policy,
  workload) when another policy's checkpoint has that name (two policies selecting one workload).
- **Written** through the operator's one KubeApi (its rate limiter, retries, timeouts), by a background drain
  (publish/writequeue.py; a write that failed is not sent again, the workload's next turn plans it afresh): a
  workload's at most once per ``checkpointInterval``, each workload at its own phase of the interval (a hash of
  its name) so that the writes spread over it, and only when its history changed since the last write. Once more
  at shutdown, for as long as the shutdown flush allows.
- **Restored** when the policy's loop starts and when this replica becomes leader, before the term's first cycle:
  the policy's checkpoints are listed (label selector) into its Recommender. A malformed or foreign one is
  logged, counted and left as it is; the others are restored, and those an earlier version wrote (owned by their
  WorkloadMetrics) or a policy deleted with ``--cascade=orphan`` left (owned by none) are adopted: their
  ownerReferences patched to the policy, by the drain (not delaying the first cycle).
- **Deleted** when the history is forgotten (a half-life after the workload's last pod), all of the policy's when its
  recommendations are turned off, and by the garbage collector with the policy.
"""

from __future__ import annotations

import asyncio
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
from kubemeter.policy import PolicySpec
from kubemeter.publish.documents import (
    MANAGED_BY,
    POLICY_LABEL,
    is_of,
    owner_references_for,
    policy_label_value,
    policy_owner_reference,
    stored_workload,
    workload_from_spec,
    workloadmetrics_name,
)
from kubemeter.publish.writequeue import WriteQueue
from kubemeter.timefmt import parse_rfc3339, rfc3339
from kubemeter.types import WorkloadRef

log = logging.getLogger(__name__)

METRICSCHECKPOINTS = "metricscheckpoints"
MAX_CHECKPOINT_CONTAINERS = 50
"""Containers one checkpoint holds (the CRD's maxProperties): at most about 5 KiB each (176 buckets per
histogram), so an object stays under 300 KiB, far below the API server's 1.5 MiB; typically 1.3-2.5 KiB each."""
_JSON_PATCH = "application/json-patch+json"



def checkpoint_object(policy: str, policy_uid: str, ref: WorkloadRef, name: str, containers: Mapping[str, Any],
                      now: float) -> dict:
    """The MetricsCheckpoint ``name`` of one workload (``ref`` as WorkloadMetrics store it), owned by its policy."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetricsCheckpoint",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": _labels(policy),
            "ownerReferences": [policy_owner_reference(policy, policy_uid)],
        },
        "spec": {
            "policy": policy,
            "workload": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name},
            "time": rfc3339(now),
            "containers": dict(containers),
        },
    }


def checkpoint_name(policy: str, ref: WorkloadRef, hashed: bool = False) -> str:
    """The name of a workload's (``ref`` as stored) checkpoint: its WorkloadMetrics' usual one, or (``hashed``,
    when another policy's or workload's checkpoint has that) one with a hash of policy and workload, which no
    other policy's can have."""
    return workloadmetrics_name(policy, ref, hashed)


def adopted_owner_references(policy: str, policy_uid: str, references: list[dict]) -> list[dict] | None:
    """The ownerReferences that make the policy a restored checkpoint's owner, or None when it is already (and no
    WorkloadMetrics is): an earlier version's checkpoint is owned by its WorkloadMetrics (and would go with it),
    one a policy deleted with ``--cascade=orphan`` left by nobody (or by that policy's old uid)."""
    api_version = f"{GROUP}/{VERSION}"
    others = [r for r in references if not (r.get("kind") == "WorkloadMetrics" and r.get("apiVersion") == api_version)]
    owned = owner_references_for(policy, policy_uid, others)
    if owned is None:
        return None if len(others) == len(references) else others
    return owned


def _labels(policy: str) -> dict[str, str]:
    return {**MANAGED_BY, POLICY_LABEL: policy_label_value(policy)}


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
    owned: bool
    """Whether the policy (its uid) is its owner, and no WorkloadMetrics."""
    digest: str


@dataclass(slots=True)
class _Write:
    ref: WorkloadRef
    name: str
    body: dict | None  # None: delete, or (``owners``) adopt
    digest: str = ""
    owners: list[dict] | None = None
    """Adopt a restored checkpoint: only its ownerReferences, these."""


class CheckpointPublisher:
    """Writes, restores and deletes one policy's checkpoints (a loop.Publisher, after the StatusPublisher)."""

    def __init__(
        self,
        api: KubeApi,
        policy: str,
        policy_uid: str,
        recommender: Callable[[], Recommender | None],
        active: asyncio.Event,
        *,
        interval: float,
        clock: Callable[[], float],
        on_result: Callable[[str], None] = lambda result: None,
        writers: int = 2,
    ) -> None:
        """``policy_uid``: the policy's, which owns its checkpoints; ``recommender``: the policy's current one (None
        when its recommendations are off); ``active``: set while this replica may write; ``on_result``: written,
        deleted, restored, adopted, malformed or failed, once each."""
        self.api, self.policy, self.policy_uid = api, policy, policy_uid
        self._recommender, self._active = recommender, active
        self.interval = interval
        self.clock = clock
        self._on_result = on_result
        self._writers = writers
        self._kept: dict[WorkloadRef, _Kept] = {}
        self._due: dict[WorkloadRef, float] = {}
        """When each workload's history is next compared with its checkpoint (and written if it changed)."""
        # Not sent again when a write fails: the workload's next turn (or the next term) plans it afresh.
        self._writes: WriteQueue[WorkloadRef, _Write] = WriteQueue(
            lambda ref, write: self._send(write), name=f"checkpoint-writer-{policy}", clock=lambda: self.clock(),
            writers=writers, failed=self._write_failed, context={"policy": policy},
            fields=lambda ref: {"namespace": ref.namespace, "kind": ref.kind, "workload": ref.name})
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
        restored = malformed = adopting = 0
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
            owners = adopted_owner_references(self.policy, self.policy_uid, list(meta.get("ownerReferences") or []))
            # What the history holds now, as the next comparison will see it (the API server may have turned a
            # float such as 7200.0 into 7200, which would look like a change).
            held = self._bounded(recommender, ref) if recommender is not None else containers
            self._kept[ref] = _Kept(meta["name"], owners is None, _digest(held))
            if owners is not None and recommender is not None:
                # Sent now, not at its next turn: until then, its WorkloadMetrics' going would take it along.
                adopting += 1
                self._queue(_Write(ref, meta["name"], None, owners=owners))
            # The previous writer's schedule goes on, shifted by this workload's phase: a restart right after a
            # shutdown (which wrote every checkpoint at once) does not make them all due together.
            self._due[ref] = written + self.interval * (1.0 + _phase(ref))
        if restored or malformed:
            log.info("restored the right-sizing histories of %d workloads from their MetricsCheckpoints%s%s", restored,
                     f"; {malformed} malformed ones left as they are" if malformed else "",
                     f"; adopting {adopting} (owned by their WorkloadMetrics, as an earlier version wrote them, or by "
                     "no live policy)" if adopting else "")
        self._writes.start()

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
            self._writes.start()
            return
        now = self.clock()
        for ref in recommender.workloads():
            due = self._due.get(ref)
            if due is None:
                due = self._due[ref] = now + self.interval * _phase(ref)
            if now >= due:
                self._plan(recommender, ref, now)
                self._due[ref] = now + self.interval
        self._writes.start()

    def _plan(self, recommender: Recommender, ref: WorkloadRef, now: float) -> None:
        """Queue the workload's checkpoint if its history changed since the last one (or it is not the policy's
        yet)."""
        containers = self._bounded(recommender, ref)
        if not containers:
            return
        digest = _digest(containers)
        kept = self._kept.get(ref)
        if kept is not None and kept.digest == digest and kept.owned:
            return  # unchanged: nothing to write
        stored = stored_workload(ref)
        name = kept.name if kept is not None else checkpoint_name(self.policy, stored)
        self._queue(_Write(ref, name, checkpoint_object(self.policy, self.policy_uid, stored, name, containers, now),
                           digest))

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
            self._writes.discard(ref)

    def _queue(self, write: _Write) -> None:
        self._writes.put(write.ref, write)  # replaces an unsent older one of the same workload

    # ---- sending ---------------------------------------------------------------------------------------------
    def _write_failed(self, ref: WorkloadRef, write: _Write, exc: Exception) -> None:
        self._on_result("failed")
        self._kept.pop(ref, None)  # not known to hold what was planned: compared afresh next time
        what = "deleting" if write.body is None and write.owners is None else "writing"
        log.warning("%s MetricsCheckpoint %s/%s failed: %s", what, ref.namespace, write.name, describe(exc))

    async def _send(self, write: _Write) -> None:
        if write.owners is not None:
            await self._adopt(write)
        elif write.body is None:
            await self._remove(write)
        else:
            await self._write(write)

    async def _remove(self, write: _Write) -> None:
        self._kept.pop(write.ref, None)
        try:
            await self.api.call(self.api.custom.delete_namespaced_custom_object, GROUP, VERSION, write.ref.namespace,
                                METRICSCHECKPOINTS, write.name)
        except ApiException as exc:
            if exc.status != 404:  # gone already
                raise
        self._on_result("deleted")

    async def _adopt(self, write: _Write) -> None:
        patch = [{"op": "add", "path": "/metadata/ownerReferences", "value": write.owners}]
        try:
            await self.api.call(self.api.custom.patch_namespaced_custom_object, GROUP, VERSION, write.ref.namespace,
                                METRICSCHECKPOINTS, write.name, patch, _content_type=_JSON_PATCH, also_retry=CONFLICT)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._kept.pop(write.ref, None)  # gone meanwhile (with its WorkloadMetrics): its next turn creates it
            return
        kept = self._kept.get(write.ref)
        if kept is not None:
            kept.owned = True
        self._on_result("adopted")

    async def _write(self, write: _Write) -> None:
        """Create or patch the checkpoint: 404 on a patch, created again; 409 on a create, this policy's (a
        previous run's) is patched, another's makes it take the hashed name."""
        custom, namespace, name, body = self.api.custom, write.ref.namespace, write.name, write.body
        assert body is not None
        exists = write.ref in self._kept
        for attempt in range(3):
            self.writes += 1
            try:
                if exists:
                    meta = body["metadata"]
                    patch = [{"op": "add", "path": "/metadata/labels", "value": meta["labels"]},
                             {"op": "add", "path": "/metadata/ownerReferences", "value": meta["ownerReferences"]},
                             {"op": "add", "path": "/spec", "value": body["spec"]}]
                    await self.api.call(custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                                        METRICSCHECKPOINTS, name, patch, _content_type=_JSON_PATCH,
                                        also_retry=CONFLICT)
                else:
                    await self.api.call(custom.create_namespaced_custom_object, GROUP, VERSION, namespace,
                                        METRICSCHECKPOINTS, body)
                break
            except ApiException as exc:
                if attempt == 2 or exc.status != (404 if exists else 409):
                    raise
            if exists:
                exists = False  # deleted behind our back: created again
            elif is_of(await self.api.call(custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                                           METRICSCHECKPOINTS, name), self.policy, stored_workload(write.ref)):
                exists = True  # a previous run's (or leader's): overwritten
            else:
                hashed = checkpoint_name(self.policy, stored_workload(write.ref), hashed=True)
                if hashed == name:
                    raise RuntimeError(f"no free MetricsCheckpoint name for {write.ref} in policy {self.policy}")
                log.info("MetricsCheckpoint %s/%s belongs to another policy or workload: this one is %s", namespace,
                         name, hashed)
                name, body = hashed, {**body, "metadata": {**body["metadata"], "name": hashed}}
        self._kept[write.ref] = _Kept(name, True, write.digest)
        self._on_result("written")

    @property
    def pending_writes(self) -> int:
        return self._writes.pending

    async def flush(self) -> None:
        """Wait until every planned write was sent (tests, shutdown)."""
        await self._writes.flush()

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
                self._writes.start()
                await asyncio.sleep(0)  # the drain sends while the rest is planned
        self._writes.start()
        await self.flush()

    # ---- publisher lifecycle ---------------------------------------------------------------------------------
    def cycle_failed(self, message: str, generation: int) -> None:
        """Nothing to withdraw: the histories are as good as before the failed cycle."""

    def step_down(self) -> None:
        """Another replica leads now and writes the checkpoints: drop what is planned and what this run knew of
        them; the next term restores them afresh (it may be a later one of this replica)."""
        self._writes.clear()
        self._kept.clear()
        self._due.clear()
        self._restored = False

    async def close(self) -> None:
        await self._writes.close()
