"""Status on custom resources: one WorkloadMetrics per workload and the MetricsPolicy summary.

Writes are planned per cycle and sent by a background drain, so a slow API server never delays a cycle:
- an object is written only when a key value moved by more than ``minStatusChange`` (relative), a count
  changed, or its last write is older than ``maxStatusAge``;
- pending writes coalesce per object (the newest desired status replaces an unsent older one, keeping its
  place in the queue), so under a QPS cap every object is eventually written and none is lost;
- every request goes through the operator's one rate limiter (publish.api.KubeApi).
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.compute.quantity import format_bytes, format_cpu
from kubemeter.compute.snapshot import ResourceFigures, Snapshot, WorkloadResult
from kubemeter.compute.types import WorkloadRef
from kubemeter.durations import format_duration
from kubemeter.loop import CycleReport, NodeFailure
from kubemeter.policy import PolicySpec
from kubemeter.publish.api import CONFLICT, KubeApi, describe
from kubemeter.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WORKLOADMETRICS = "workloadmetrics"
METRICSPOLICIES = "metricspolicies"
POLICY_LABEL = "kubemeter.io/policy"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubemeter"}
MAX_FAILED_NODES = 50
# Below these, a relative change is noise (1 millicore, 1 MiB), not worth a write.
_ABSOLUTE_FLOOR = {"cpu": 0.001, "memory": 1024.0 * 1024.0}
_JSON_PATCH = "application/json-patch+json"
_NONE_READY = object()  # no queued write whose object has none in flight (None is the policy's own key)


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def _short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def policy_label_value(policy: str) -> str:
    """Label values are at most 63 characters; a longer policy name is represented by its hash."""
    return policy if len(policy) <= 63 else f"h-{_short_hash(policy, length=20)}"


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def workloadmetrics_name(policy: str, workload: WorkloadRef, hashed: bool = False) -> str:
    """``deployment-web``; with a hash of (policy, workload) when too long, when the short name is taken
    (another policy, or another API group's kind of the same name, already uses it), or when the owner's
    kind or name had characters an object name may not have (an ownerReference's are not validated)."""
    base = readable = f"{workload.kind.lower()}-{workload.name}"
    if not _DNS_SUBDOMAIN.fullmatch(readable):
        base = _NOT_ALPHANUMERIC.sub("-", readable.lower()).strip("-") or "workload"
    if not hashed and len(base) <= 253 and base == readable:
        return base
    suffix = _short_hash(policy, workload.api_version, workload.kind, workload.name)
    return f"{base[: 253 - len(suffix) - 1].rstrip('-.')}-{suffix}"


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def percentile_key(percentile: float) -> str:
    """p50, p99.9, p99.99999, p0.001: each distinct percentile its own key, in plain decimal notation (``:g``
    would make 99.99999 "p100", colliding with p100, and 1e-9 "p1e-09")."""
    text = format(decimal.Decimal(repr(float(percentile))), "f")
    return "p" + (text.rstrip("0").rstrip(".") if "." in text else text)


def resource_status(fig: ResourceFigures, resource: str) -> dict:
    """CPU in cores (floats), memory in bytes (integers), plus a human quantity for printer columns."""
    if resource == "cpu":
        number, fmt, unit = _round, format_cpu, "Cores"
        usage_key = "usageCores"
    else:
        number, fmt, unit = _int, format_bytes, "Bytes"
        usage_key = "workingSetBytes"
    return _compact(
        {
            "usage": None if fig.usage is None else fmt(fig.usage),
            usage_key: number(fig.usage),
            f"avg{unit}": number(fig.avg),
            f"max{unit}": number(fig.max),
            f"percentile{unit}": {percentile_key(p): number(v) for p, v in sorted(fig.percentiles.items())},
            f"requests{unit}": number(fig.requests),
            f"limits{unit}": number(fig.limits),
            "requestUtilization": _round(fig.request_utilization, 4),
        }
    )


def workload_status(result: WorkloadResult, spec: PolicySpec, now: float, last_sample: float | None) -> dict:
    status = {
        "pods": result.pods,
        "podsReporting": result.pods_reporting,
        "window": format_duration(spec.window),
        "samples": result.samples,
        "lastUpdated": rfc3339(now),
        "lastSampleTime": None if last_sample is None else rfc3339(last_sample),
        "stale": result.pods_reporting == 0,
        "cpu": resource_status(result.cpu, "cpu"),
        "memory": resource_status(result.memory, "memory"),
        "containers": [
            {"name": name, "cpu": resource_status(c.cpu, "cpu"), "memory": resource_status(c.memory, "memory")}
            for name, c in sorted(result.containers.items())
        ],
    }
    if spec.endpoint == "summary":
        status["network"] = _compact(
            {
                "receiveBytesPerSecond": _round(result.network_rx_bytes_per_second, 3),
                "transmitBytesPerSecond": _round(result.network_tx_bytes_per_second, 3),
            }
        )
        status["ephemeralStorage"] = _compact({"usedBytes": _int(result.ephemeral_storage_bytes)})
    return _compact(status)


def _key_values(status: Mapping) -> dict[str, object]:
    """What decides whether a status is worth writing again; the rest rides along."""
    cpu, memory = status.get("cpu") or {}, status.get("memory") or {}
    return {
        "pods": status.get("pods"),
        "podsReporting": status.get("podsReporting"),
        "stale": status.get("stale"),
        "cpu": cpu.get("usageCores"),
        "memory": memory.get("workingSetBytes"),
        "cpuRequests": cpu.get("requestsCores"),
        "cpuLimits": cpu.get("limitsCores"),
        "memoryRequests": memory.get("requestsBytes"),
        "memoryLimits": memory.get("limitsBytes"),
    }


def moved(old: Mapping[str, object], new: Mapping[str, object], threshold: float) -> bool:
    """True when a count or flag changed, or a usage moved by more than ``threshold`` (relative)."""
    for key, value in new.items():
        before = old.get(key)
        if key in ("cpu", "memory") and isinstance(value, (int, float)) and isinstance(before, (int, float)):
            floor = _ABSOLUTE_FLOOR[key]
            if abs(value - before) > threshold * max(abs(before), floor):
                return True
        elif value != before:
            return True
    return False


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


def _workload_from_spec(namespace: str, spec: Mapping) -> WorkloadRef | None:
    workload = spec.get("workload") or {}
    if not workload.get("kind") or not workload.get("name"):
        return None
    return WorkloadRef(namespace, workload["kind"], workload["name"], workload.get("apiVersion", ""))


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
        self._pending: dict[WorkloadRef | None, _Write] = {}
        self._sending: dict[WorkloadRef | None, _Write] = {}
        self._wakeup = asyncio.Event()
        self._drain: asyncio.Task | None = None
        self._loaded = False
        self._policy_status: dict | None = None
        self._policy_written: tuple[dict, float] | None = None
        self._in_flight = 0
        self.writes_planned = 0

    def adopt_policy_status(self, status: Mapping | None) -> None:
        """The policy's current status (from its watch event): keeps condition transition times across restarts."""
        if status and self._policy_status is None:
            self._policy_status = dict(status)

    # ---- start-up: adopt what a previous run wrote ----------------------------------------------
    async def load_existing(self) -> None:
        """Adopt the WorkloadMetrics a previous run wrote, so a restart neither recreates nor rewrites them."""
        response = await self.api.call(
            self.api.custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            WORKLOADMETRICS,
            label_selector=f"{POLICY_LABEL}={policy_label_value(self.policy)}",
        )
        for item in response.get("items", []):
            meta, status = item["metadata"], item.get("status") or {}
            ref = _workload_from_spec(meta["namespace"], item.get("spec") or {})
            if ref is None or (item.get("spec") or {}).get("policy") != self.policy:
                continue
            self._published[ref] = _Published(
                name=meta["name"],
                values=_key_values(status),
                written_at=parse_rfc3339(status.get("lastUpdated")) or 0.0,
                last_sample=parse_rfc3339(status.get("lastSampleTime")),
            )
        self._loaded = True

    # ---- planning ------------------------------------------------------------------------------
    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None:
        if not self._loaded:
            await self.load_existing()
        now = report.snapshot.time
        if spec.workload_metrics and "workload" in spec.levels:
            self._plan_workloads(report.snapshot, spec, now)
        else:
            for ref in self._published:
                self._queue(_Write(ref, None, now))
        self._plan_policy(policy_status(report, spec, generation, self._conditions_before()), spec, now)
        self._ensure_drain()

    def _plan_workloads(self, snapshot: Snapshot, spec: PolicySpec, now: float) -> None:
        for ref, result in snapshot.workloads.items():
            published = self._published.get(ref)
            last_sample = now if result.pods_reporting else (published.last_sample if published else None)
            status = workload_status(result, spec, now, last_sample)
            if published is not None:
                published.last_sample = last_sample
                fresh = now - published.written_at < spec.max_status_age
                if fresh and not moved(self._stored_next(ref, published), _key_values(status), spec.min_status_change):
                    # What the object holds (or is being sent) is close enough: a queued write, planned
                    # for a value since gone back, would now be a write that moves nothing.
                    self._pending.pop(ref, None)
                    continue
            self._queue(_Write(ref, status, now))
        for ref in self._published.keys() - snapshot.workloads.keys():
            self._queue(_Write(ref, None, now))

    def _stored_next(self, ref: WorkloadRef, published: _Published) -> dict[str, object]:
        """What the object holds once the write in flight for it (if any) lands. Not a queued write: that
        one is replaced or dropped by this very planning, so comparing with it could queue a value the
        object already holds."""
        sending = self._sending.get(ref)
        if sending is not None and sending.status is not None:
            return _key_values(sending.status)
        return published.values

    def _conditions_before(self) -> list[dict]:
        return list((self._policy_status or {}).get("conditions") or [])

    def _plan_policy(self, status: dict, spec: PolicySpec, now: float) -> None:
        self._policy_status = status
        if self._policy_written is not None:
            written, at = self._policy_written
            if now - at < spec.max_status_age and not policy_status_moved(written, status, spec.min_status_change):
                return
        self._queue(_Write(None, status, now))

    def invalid(self, message: str, generation: int, running: bool) -> None:
        """Report a spec the operator cannot run. ``running``: the last valid spec keeps running (its Ready
        stands); otherwise nothing runs, and Ready says so (a blank READY column would say nothing)."""
        updates = [("Invalid", "True", "InvalidSpec", message)]
        if not running:
            updates.append(("Ready", "False", "InvalidSpec", "nothing runs until the spec is valid; see Invalid"))
        self._report(updates, generation)

    def cycle_failed(self, message: str, generation: int) -> None:
        """Report a cycle that ended in an error before publishing: the figures shown are no longer current."""
        self._report([("Ready", "False", "CycleFailed", message)], generation)

    def _report(self, updates: list[tuple[str, str, str, str]], generation: int) -> None:
        now = self.clock()
        status = dict(self._policy_status or {})
        status["observedGeneration"] = generation
        status["conditions"] = merge_conditions(
            self._conditions_before(), [condition(*update, generation, now) for update in updates], now
        )
        self._policy_status = status
        self._queue(_Write(None, status, now))
        self._ensure_drain()

    def _queue(self, write: _Write) -> None:
        self.writes_planned += 1
        self._pending[write.ref] = write  # an unsent older write of the same object is replaced in place
        self._wakeup.set()

    # ---- sending -------------------------------------------------------------------------------
    def _ensure_drain(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run_drain(), name=f"status-writer-{self.policy}")

    async def _run_drain(self) -> None:
        async def writer() -> None:
            while True:
                # One write per object at a time, so writes of one object land in the order planned.
                ref = next((r for r in self._pending if r not in self._sending), _NONE_READY)
                if ref is _NONE_READY:
                    return
                write = self._pending.pop(ref)
                self._sending[ref] = write
                self._in_flight += 1
                try:
                    await self._send(write)
                except ApiException as exc:
                    log.warning("policy %s: status write for %s failed: %s", self.policy, ref, describe(exc))
                    self._on_write("error")
                except Exception:
                    log.exception("policy %s: status write for %s failed", self.policy, ref)
                    self._on_write("error")
                finally:
                    self._in_flight -= 1
                    if self._sending.get(ref) is write:
                        del self._sending[ref]
                    if ref in self._pending:
                        self._wakeup.set()  # its next write waited for this one

        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.gather(*(writer() for _ in range(self._writers)))

    async def flush(self) -> None:
        """Wait until every planned write was sent (tests, benchmarks, shutdown)."""
        while self._pending or self._in_flight:
            await asyncio.sleep(0.01)

    async def _send(self, write: _Write) -> None:
        if write.ref is None:
            await self._send_policy(write)
        elif write.status is None:
            await self._delete(write.ref)
        else:
            await self._write_workload(write)

    async def _send_policy(self, write: _Write) -> None:
        try:
            await self.api.call(
                self.api.custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                METRICSPOLICIES,
                self.policy,
                [{"op": "add", "path": "/status", "value": write.status}],
                _content_type=_JSON_PATCH,
                also_retry=CONFLICT,
            )
        except ApiException as exc:
            if exc.status != 404:  # a policy deleted meanwhile: nothing to report on
                raise
        self._policy_written = (write.status, write.at)
        self._on_write("success")

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
        published.values = _key_values(status)
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

    def _body(self, ref: WorkloadRef, name: str) -> dict:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkloadMetrics",
            "metadata": {
                "name": name,
                "namespace": ref.namespace,
                "labels": {**MANAGED_BY, POLICY_LABEL: policy_label_value(self.policy)},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "MetricsPolicy",
                        "name": self.policy,
                        "uid": self.policy_uid,
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "policy": self.policy,
                "workload": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name},
            },
        }

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
                    self._body(ref, name),
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                existing = await self.api.call(
                    self.api.custom.get_namespaced_custom_object, GROUP, VERSION, ref.namespace, WORKLOADMETRICS, name
                )
                spec = existing.get("spec") or {}
                if spec.get("policy") != self.policy or _workload_from_spec(ref.namespace, spec) != ref:
                    continue  # the short name belongs to another policy or workload
            published = _Published(name=name, values={}, written_at=0.0, last_sample=None)
            self._published[ref] = published
            return published
        raise RuntimeError(f"no free WorkloadMetrics name for {ref} in policy {self.policy}")

    def step_down(self) -> None:
        """Another replica leads now: drop what is queued or being retried (it would overwrite the new leader's
        newer values) and forget what we believe the objects hold, so a later term adopts them again."""
        self._pending.clear()
        if self._drain is not None:
            self._drain.cancel()
        self._published.clear()
        self._loaded = False
        self._policy_written = None

    async def close(self) -> None:
        await cancel_and_wait(self._drain)


# ---- MetricsPolicy status ------------------------------------------------------------------------
def condition(type_: str, status: str, reason: str, message: str, generation: int, now: float) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": rfc3339(now),
    }


def merge_conditions(before: list[dict], updates: list[dict], now: float) -> list[dict]:
    """API conventions: lastTransitionTime changes only when a condition's status changes."""
    by_type = {c["type"]: c for c in before}
    for update in updates:
        old = by_type.get(update["type"])
        if old is not None and old.get("status") == update["status"]:
            update = {**update, "lastTransitionTime": old.get("lastTransitionTime", rfc3339(now))}
        by_type[update["type"]] = update
    return [by_type[t] for t in sorted(by_type)]


def _readiness(report: CycleReport) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    selected, failed = len(report.selection.nodes), len(report.failures)
    pods = sum(w.pods for w in report.snapshot.workloads.values())
    if selected == 0:
        ready = ("Ready", "False", "NoNodesSelected", "the node selector matches no node")
    elif failed == selected:
        ready = ("Ready", "False", "AllNodesFailing", f"none of the {selected} selected kubelets answered")
    else:
        ready = ("Ready", "True", "Scraping", f"{selected - failed} of {selected} kubelets scraped")
    if failed:
        nothing = "; and no running pod matches the policy's selectors" if pods == 0 else ""
        degraded = ("Degraded", "True", "NodesFailing", f"{failed} of {selected} kubelets failed; see failedNodes{nothing}")
    elif selected and pods == 0:
        degraded = ("Degraded", "True", "NothingSelected", "no running pod matches the policy's selectors")
    else:
        degraded = ("Degraded", "False", "AllNodesScraped", "every selected kubelet answered")
    invalid = ("Invalid", "False", "ValidSpec", "the spec is valid")
    warnings = []
    if report.selection.unresolved_pods:
        count = report.selection.unresolved_pods
        waiting = "1 pod waits for its owner" if count == 1 else f"{count} pods wait for their owners"
        warnings.append(f"{waiting} to be known (not counted until then)")
    return [ready, degraded, invalid], warnings


def failed_nodes(status: Mapping | None) -> dict[str, NodeFailure]:
    """The failing nodes a policy status shows (a previous run's): a restart continues them, so ``since`` is kept
    and no second ScrapeFailed Event is posted for a failure already reported."""
    failures = {}
    for entry in (status or {}).get("failedNodes") or []:
        since = parse_rfc3339(entry.get("since"))
        if entry.get("name") and entry.get("reason") and since is not None:
            failures[entry["name"]] = NodeFailure(entry["reason"], entry.get("message", ""), since)
    return failures


def policy_status(report: CycleReport, spec: PolicySpec, generation: int, before: list[dict]) -> dict:
    snapshot, now = report.snapshot, report.snapshot.time
    checks, warnings = _readiness(report)
    if spec.insecure_skip_tls_verify and spec.via == "direct":
        warnings.append(
            "insecureSkipTLSVerify is set: kubelet certificates are not verified, so the operator's "
            "service-account token goes to whoever answers at a node's address"
        )
    cluster = snapshot.cluster
    failed = sorted(report.failures.items())
    return _compact(
        {
            "observedGeneration": generation,
            "conditions": merge_conditions(
                before, [condition(t, s, r, m, generation, now) for t, s, r, m in checks], now
            ),
            "lastScrapeTime": rfc3339(report.started),
            "lastCycleSeconds": round(report.duration, 3),
            "nodes": {"selected": len(report.selection.nodes), "scraped": report.scraped, "failed": len(failed)},
            "failedNodes": [
                {"name": name, "reason": f.reason, "message": f.message[:512], "since": rfc3339(f.since)}
                for name, f in failed[:MAX_FAILED_NODES]
            ],
            "pods": cluster.pods,
            "workloads": len(snapshot.workloads),
            "namespaces": len(snapshot.namespaces),
            "cluster": _compact(
                {
                    "cpuCores": _round(cluster.cpu_cores),
                    "memoryBytes": _int(cluster.memory_bytes),
                    "cpuRequestsCores": _round(cluster.cpu_requests_cores),
                    "memoryRequestsBytes": _int(cluster.memory_requests_bytes),
                    "cpu": None if cluster.cpu_cores is None else format_cpu(cluster.cpu_cores),
                    "memory": None if cluster.memory_bytes is None else format_bytes(cluster.memory_bytes),
                }
            ),
            "topWorkloads": [
                _compact(
                    {
                        "namespace": w.workload.namespace,
                        "kind": w.workload.kind,
                        "name": w.workload.name,
                        "cpuCores": _round(w.cpu.usage),
                        "memoryBytes": _int(w.memory.usage),
                    }
                )
                for w in snapshot.top_workloads(spec.top_workloads)
            ],
            "warnings": warnings or None,
        }
    )


def policy_status_moved(old: Mapping, new: Mapping, threshold: float) -> bool:
    def shape(status: Mapping) -> tuple:
        conditions = tuple((c["type"], c["status"], c["reason"]) for c in status.get("conditions", ()))
        failed = tuple((f["name"], f["reason"]) for f in status.get("failedNodes", ()))
        return (status.get("observedGeneration"), conditions, failed, status.get("nodes"), status.get("pods"),
                status.get("workloads"), status.get("warnings"))

    if shape(old) != shape(new):
        return True
    old_cluster, new_cluster = old.get("cluster") or {}, new.get("cluster") or {}
    return moved(
        {"cpu": old_cluster.get("cpuCores"), "memory": old_cluster.get("memoryBytes")},
        {"cpu": new_cluster.get("cpuCores"), "memory": new_cluster.get("memoryBytes")},
        threshold,
    )
