"""What the status documents look like, as plain dictionaries: no I/O, no state (status.py sends them).

- names: a WorkloadMetrics per workload (``workloadmetrics_name``), the policy label, the object to create;
- rendering: a workload's status from its WorkloadResult, the MetricsPolicy's from a cycle's CycleReport
  (conditions follow the API conventions: a transition time moves only when a condition's status does);
- change detection: whether a new WorkloadMetrics status moved enough from what the object holds to be worth
  a write (``moved``), and what of a previous run's status a restart continues
  (``failed_nodes``).
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kubemeter import GROUP, VERSION
from kubemeter.compute.quantity import format_bytes, format_cpu, format_percent
from kubemeter.compute.report import CycleReport
from kubemeter.compute.rightsizing import (
    JUDGED_VERDICTS,
    ContainerRecommendation,
    ResourceRecommendation,
    WorkloadRecommendation,
)
from kubemeter.compute.snapshot import ResourceFigures, WorkloadResult
from kubemeter.names import MAX_NAME, cut_with_hash, short_hash
from kubemeter.policy import PolicySpec
from kubemeter.timefmt import format_duration, parse_rfc3339, rfc3339
from kubemeter.types import NodeFailure, PodInfo, WorkloadRef

WORKLOADMETRICS = "workloadmetrics"
METRICSPOLICIES = "metricspolicies"
POLICY_LABEL = "kubemeter.io/policy"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubemeter"}
MAX_FAILED_NODES = 50
MAX_UNRESOLVED_PODS = 20
# Below these, a relative change is noise (1 millicore, 1 MiB), not worth a write.
_ABSOLUTE_FLOOR = {"cpu": 0.001, "memory": 1024.0 * 1024.0}


def policy_label_value(policy: str) -> str:
    """Label values are at most 63 characters; a longer policy name is represented by its hash."""
    return policy if len(policy) <= 63 else f"h-{short_hash(policy, length=20)}"


# The CRDs' bounds on what names a workload (hack/gen-crds.py writes them from these). A pod's ownerReference
# is set by whoever can create pods in a namespace, and the API server checks none of its lengths.
MAX_KIND_LENGTH = 63
MAX_NAME_LENGTH = 253
MAX_API_VERSION_LENGTH = 316


def _bounded(value: str, limit: int) -> str:
    """``value`` if it fits, else its beginning and a hash of all of it (distinct values stay distinct)."""
    return value if len(value) <= limit else cut_with_hash(value, limit, value)


def stored_workload(workload: WorkloadRef) -> WorkloadRef:
    """The workload as status and WorkloadMetrics name it: within the CRDs' bounds, so that no value a
    namespace user chose can make a status write invalid (the namespace is a validated name already)."""
    return WorkloadRef(
        workload.namespace,
        _bounded(workload.kind, MAX_KIND_LENGTH),
        _bounded(workload.name, MAX_NAME_LENGTH),
        _bounded(workload.api_version, MAX_API_VERSION_LENGTH),
    )


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def workloadmetrics_name(policy: str, workload: WorkloadRef, hashed: bool = False) -> str:
    """``deployment-web``; with a hash of (policy, workload) when too long, when the short name is taken
    (another policy, or another API group's kind of the same name, already uses it), or when the owner's
    kind or name had characters an object name may not have (an ownerReference's are not validated)."""
    base = readable = f"{workload.kind.lower()}-{workload.name}"
    if not _DNS_SUBDOMAIN.fullmatch(readable):
        base = _NOT_ALPHANUMERIC.sub("-", readable.lower()).strip("-") or "workload"
    if not hashed and len(base) <= MAX_NAME and base == readable:
        return base
    return cut_with_hash(base, MAX_NAME, policy, workload.api_version, workload.kind, workload.name)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != {}}


@functools.lru_cache(maxsize=256)  # a policy's few percentiles, formatted for every figure of every workload
def percentile_key(percentile: float) -> str:
    """p50, p99.9, p99.99999, p0.001: each distinct percentile its own key, in plain decimal notation (``:g``
    would make 99.99999 "p100", colliding with p100, and 1e-9 "p1e-09")."""
    text = format(decimal.Decimal(repr(float(percentile))), "f")
    return "p" + (text.rstrip("0").rstrip(".") if "." in text else text)


def resource_status(fig: ResourceFigures, resource: str) -> dict:
    """CPU in cores (floats), memory in bytes (integers), plus strings for printer columns (which print a
    field as it is): the usage as a quantity and the request utilization as a percentage."""
    if resource == "cpu":
        number, fmt, unit = _round, format_cpu, "Cores"
        usage_key = "usageCores"
    else:
        number, fmt, unit = _int, format_bytes, "Bytes"
        usage_key = "workingSetBytes"
    # The strings are formatted from the published numbers, not from the unrounded ones: rounded twice, a
    # utilization of 0.88501 would read 0.885 in one field and 89% in the other.
    usage, utilization = number(fig.usage), _round(fig.request_utilization, 4)
    return _compact(
        {
            "usage": None if usage is None else fmt(usage),
            usage_key: usage,
            f"avg{unit}": number(fig.avg),
            f"max{unit}": number(fig.max),
            f"percentile{unit}": {percentile_key(p): number(v) for p, v in sorted(fig.percentiles.items())},
            f"requests{unit}": number(fig.requests),
            f"limits{unit}": number(fig.limits),
            "requestUtilization": utilization,
            "requestPercent": None if utilization is None else format_percent(utilization),
        }
    )


def reporting(pods_reporting: int, pods: int | None) -> str | None:
    """``2/3``: pods reporting of the workload's pods, for ``kubectl get wm`` (kubectl's form for READY)."""
    return None if pods is None else f"{pods_reporting}/{pods}"


# ---- right-sizing ------------------------------------------------------------------------------
SIZING_ORDER = ("under", "over", "unset", "learning", "fit")
"""How a workload's containers' verdicts of one resource read as one, the first that any container has: a
container short of its need is the one to fix first, then one requesting beyond it, then one with no request;
``learning`` before ``fit``, so that a workload reads fit only once every container with a request is known to."""
MAX_RECOMMENDATION_NAMESPACES = 50
"""The namespaces the policy status's right-sizing roll-up lists (``recommendations.namespaces`` counts them all)."""


def resource_sizing(verdicts: list[str]) -> str:
    """One resource's verdict for a workload from its containers' (see :data:`SIZING_ORDER`)."""
    return next(v for v in SIZING_ORDER if v in verdicts)


def sizing_summary(recommendation: WorkloadRecommendation) -> str:
    """What the SIZING column of `kubectl get wm` shows: ``cpu:over mem:fit``; ``learning`` or ``unset`` alone
    when both resources read so."""
    containers = recommendation.containers.values()
    cpu = resource_sizing([c.cpu_verdict for c in containers])
    memory = resource_sizing([c.memory_verdict for c in containers])
    if cpu == memory and cpu in ("learning", "unset"):
        return cpu
    return f"cpu:{cpu} mem:{memory}"


def _recommended(figure: ResourceRecommendation | None, resource: str) -> dict:
    if figure is None:
        return {}
    number, fmt, unit = (_round, format_cpu, "Cores") if resource == "cpu" else (_int, format_bytes, "Bytes")
    target = number(figure.target)
    return {"target": fmt(target), f"target{unit}": target, f"lowerBound{unit}": number(figure.lower_bound),
            f"upperBound{unit}": number(figure.upper_bound)}


def _container_sizing(c: ContainerRecommendation, resource: str) -> dict:
    """One container's request, recommendation, verdict and difference (target minus request) for one resource:
    numbers for machines, the request and target also as quantities for people. The differences are of the
    published (rounded) figures, so they add up as a reader adds them."""
    made = c.recommendation
    if resource == "cpu":
        number, fmt, unit = _round, format_cpu, "Cores"
        request, recommended, verdict = number(c.cpu_request), made.cpu, c.cpu_verdict
        extra: dict = {}
    else:
        number, fmt, unit = _int, format_bytes, "Bytes"
        request, recommended, verdict = number(c.memory_request), made.memory, c.memory_verdict
        extra = {"limitBytes": number(c.memory_limit), "recommendedLimitBytes": number(made.memory_limit)}
    figures = _recommended(recommended, resource)
    target = figures.get(f"target{unit}")
    # Only with a verdict (as the policy's roll-up): a target from too little history is no change to make yet.
    counted = verdict in JUDGED_VERDICTS and request is not None and target is not None
    difference = number(target - request) if counted else None
    return _compact({
        "verdict": verdict,
        "request": None if request is None else fmt(request),
        f"request{unit}": request,
        **figures,
        **extra,
        f"difference{unit}": difference,
        f"workloadDifference{unit}": None if difference is None else number(difference * c.pods),
    })


def recommendation_status(recommendation: WorkloadRecommendation) -> dict:
    """``status.recommendation`` of a WorkloadMetrics (see the CRD and README, "Right-sizing")."""
    return {
        "lastUpdateTime": rfc3339(recommendation.time),
        "summary": sizing_summary(recommendation),
        "containers": [
            {
                "name": name,
                "pods": c.pods,
                "confidenceDays": round(c.recommendation.confidence, 6),
                "historySeconds": _int(c.history_seconds),
                "cpu": _container_sizing(c, "cpu"),
                "memory": _container_sizing(c, "memory"),
            }
            for name, c in sorted(recommendation.containers.items())
        ],
    }


def workload_status(result: WorkloadResult, spec: PolicySpec, now: float, last_sample: float | None,
                    recommendation: WorkloadRecommendation | None = None) -> dict:
    """``recommendation``: the workload's right-sizing, if it has one (none: no section, not zeros)."""
    status = {
        "pods": result.pods,
        "podsReporting": result.pods_reporting,
        "reporting": reporting(result.pods_reporting, result.pods),
        "window": format_duration(spec.window),
        "samples": result.samples,
        "lastUpdated": rfc3339(now),
        "lastSampleTime": None if last_sample is None else rfc3339(last_sample),
        "stale": result.pods_reporting == 0,
        # How many pods the usage covers: fewer than podsReporting while a new pod waits for its first CPU rate.
        "cpu": {"podsMeasured": result.cpu_measured_pods, **resource_status(result.cpu, "cpu")},
        "memory": {"podsMeasured": result.memory_measured_pods, **resource_status(result.memory, "memory")},
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
    if recommendation is not None and recommendation.containers:
        status["recommendation"] = recommendation_status(recommendation)
    return _compact(status)


_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def _shape(value: object) -> tuple | None:
    """The structure of a status document without its values: for a mapping its keys in order, each with its
    value's structure (``None`` for a scalar), for a list its items by their names. Run for every workload of
    every cycle: scalars are told by their type before the (slower) ``Mapping`` ABC is asked."""
    if type(value) is dict or isinstance(value, Mapping):
        return tuple((key, None if type(child) in _LEAF_TYPES else _shape(child))
                     for key, child in sorted(value.items()))
    if isinstance(value, list):
        return tuple((item.get("name", "") if type(item) is dict or isinstance(item, Mapping) else "", _shape(item))
                     for item in value)
    return None


def stale_workload_status(status: Mapping, now: float) -> dict:
    """A previous run's status of a workload nothing measures now (its policy's spec is invalid, so no cycle
    runs): stale, no pod reporting, every measured figure gone; what the pods declare (requests, limits) and
    when the workload was last measured (``lastSampleTime``) stay."""

    def declared(figures: Mapping | None) -> dict:
        return {k: v for k, v in (figures or {}).items() if k.startswith(("requests", "limits"))}

    return _compact(
        {
            "pods": status.get("pods"),
            "podsReporting": 0,
            "reporting": reporting(0, status.get("pods")),
            "window": status.get("window"),
            "lastUpdated": rfc3339(now),
            "lastSampleTime": status.get("lastSampleTime"),
            "stale": True,
            "cpu": {"podsMeasured": 0, **declared(status.get("cpu"))},
            "memory": {"podsMeasured": 0, **declared(status.get("memory"))},
            "containers": [
                _compact({"name": c.get("name"), "cpu": declared(c.get("cpu")), "memory": declared(c.get("memory"))})
                for c in status.get("containers") or ()
            ] or None,
        }
    )


def key_values(status: Mapping) -> dict[str, object]:
    """What decides whether a status is worth writing again; the rest rides along. A policy edit that changes
    what a status holds (its window, its percentiles, the summary's sections) or a container coming or going
    changes its shape: written at once, never left showing the old spec's figures as current."""
    cpu, memory = status.get("cpu") or {}, status.get("memory") or {}
    sized = (status.get("recommendation") or {}).get("containers") or ()
    return {
        "window": status.get("window"),
        # a hash: this is kept per workload between cycles, and the paths are many
        "shape": hash(_shape({k: v for k, v in status.items() if k not in ("lastUpdated", "lastSampleTime")})),
        "pods": status.get("pods"),
        "podsReporting": status.get("podsReporting"),
        "stale": status.get("stale"),
        "cpu": cpu.get("usageCores"),
        "memory": memory.get("workingSetBytes"),
        "cpuPods": cpu.get("podsMeasured"),
        "memoryPods": memory.get("podsMeasured"),
        "cpuRequests": cpu.get("requestsCores"),
        "cpuLimits": cpu.get("limitsCores"),
        "memoryRequests": memory.get("requestsBytes"),
        "memoryLimits": memory.get("limitsBytes"),
        # Right-sizing: a verdict that changes is written at once, a target that moves as a usage does; the
        # bounds and the confidence ride along (they move a little every refresh while the history is young).
        "sizing": tuple((c.get("name"), (c.get("cpu") or {}).get("verdict"), (c.get("memory") or {}).get("verdict"))
                        for c in sized),
        "cpuTarget": tuple((c.get("cpu") or {}).get("targetCores") for c in sized),
        "memoryTarget": tuple((c.get("memory") or {}).get("targetBytes") for c in sized),
    }


_RELATIVE = {"cpu": "cpu", "memory": "memory", "cpuTarget": "cpu", "memoryTarget": "memory"}
"""The key values compared relatively (to ``minStatusChange``), and the resource whose noise floor applies."""


def _number_moved(before: object, value: object, threshold: float, floor: float) -> bool:
    if isinstance(value, (int, float)) and isinstance(before, (int, float)):
        return abs(value - before) > threshold * max(abs(before), floor)
    return value != before


def moved(old: Mapping[str, object], new: Mapping[str, object], threshold: float) -> bool:
    """True when a count, flag or verdict changed, or a usage or recommended target moved by more than
    ``threshold`` (relative)."""
    for key, value in new.items():
        before = old.get(key)
        resource = _RELATIVE.get(key)
        if resource is None:
            if value != before:
                return True
            continue
        floor = _ABSOLUTE_FLOOR[resource]
        if isinstance(value, tuple) and isinstance(before, tuple):
            if len(value) != len(before) or any(_number_moved(b, v, threshold, floor) for b, v in zip(before, value)):
                return True
        elif _number_moved(before, value, threshold, floor):
            return True
    return False


def workload_from_spec(namespace: str, spec: Mapping) -> WorkloadRef | None:
    workload = spec.get("workload") or {}
    if not workload.get("kind") or not workload.get("name"):
        return None
    return WorkloadRef(namespace, workload["kind"], workload["name"], workload.get("apiVersion", ""))


def is_of(obj: Mapping, policy: str, workload: WorkloadRef) -> bool:
    """Whether a WorkloadMetrics or MetricsCheckpoint (``obj``) is of ``policy`` and ``workload`` (as stored): a
    name may be taken by another policy's object, or another workload's."""
    spec = obj.get("spec") or {}
    return spec.get("policy") == policy and workload_from_spec(workload.namespace, spec) == workload


def policy_owner_reference(policy: str, policy_uid: str) -> dict:
    """What makes the garbage collector delete a WorkloadMetrics with its policy."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "name": policy, "uid": policy_uid,
            "controller": True}


def owner_references_for(policy: str, policy_uid: str, references: list[dict]) -> list[dict] | None:
    """The ownerReferences an adopted WorkloadMetrics needs, or None when it has them: a policy deleted with
    ``--cascade=orphan`` left it without an owner (or a deleted policy's uid is still named), and a re-created
    policy of the same name must own it again, or it would outlive that policy."""
    ours = policy_owner_reference(policy, policy_uid)
    if any(r.get("uid") == policy_uid and r.get("controller") for r in references):
        return None
    others = [r for r in references if not (r.get("kind") == "MetricsPolicy" and r.get("apiVersion") == ours["apiVersion"])]
    return [*others, ours]


def workloadmetrics_object(policy: str, policy_uid: str, ref: WorkloadRef, name: str) -> dict:
    """A new WorkloadMetrics (its status is written next), labelled and owned by its policy."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadMetrics",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": {**MANAGED_BY, POLICY_LABEL: policy_label_value(policy)},
            "ownerReferences": [policy_owner_reference(policy, policy_uid)],
        },
        "spec": {
            "policy": policy,
            "workload": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name},
        },
    }


# ---- MetricsPolicy status ------------------------------------------------------------------------
MAX_CONDITION_MESSAGE = 32768
"""metav1.Condition's bound (the CRD's too): a message quoting what a user wrote or a server answered may be longer."""


def condition(type_: str, status: str, reason: str, message: str, generation: int, now: float) -> dict:
    if len(message) > MAX_CONDITION_MESSAGE:
        message = message[: MAX_CONDITION_MESSAGE - 3] + "..."
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
    pods = report.snapshot.cluster.pods
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
    warnings = []
    counted = "counted in its namespace, node and the cluster, in no workload"
    if report.waiting:
        waiting = "1 pod waits for its owner" if report.waiting == 1 else f"{report.waiting} pods wait for their owners"
        warnings.append(f"{waiting} to be known: each {counted} until then")
    if report.unresolved:
        count = len(report.unresolved)
        owners = "1 pod has a controller owner" if count == 1 else f"{count} pods have controller owners"
        warnings.append(f"{owners} that cannot be found (see unresolvedPods): each {counted}")
    return [ready, degraded], warnings


def unresolved_pod(pod: PodInfo) -> dict:
    """A pod whose owner cannot be found, as the policy status lists it: the owner reference is the tenant's own,
    so it is kept within the CRD's bounds as workloads are (``stored_workload``)."""
    owner = pod.owner or {}
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "node": pod.node,
        "owner": {
            "apiVersion": _bounded(owner.get("apiVersion", ""), MAX_API_VERSION_LENGTH),
            "kind": _bounded(owner.get("kind", ""), MAX_KIND_LENGTH),
            "name": _bounded(owner.get("name", ""), MAX_NAME_LENGTH),
        },
    }


def failed_nodes(status: Mapping | None) -> dict[str, NodeFailure]:
    """The failing nodes a policy status shows (a previous run's): a restart continues them, so ``since`` is kept
    and no second ScrapeFailed Event is posted for a failure already reported."""
    failures = {}
    for entry in (status or {}).get("failedNodes") or []:
        since = parse_rfc3339(entry.get("since"))
        if entry.get("name") and entry.get("reason") and since is not None:
            failures[entry["name"]] = NodeFailure(entry["reason"], entry.get("message", ""), since)
    return failures


@dataclass(frozen=True, slots=True)
class InvalidGeneration:
    """A generation newer than the running spec that the operator cannot run: reported (with its generation)
    by every status written until a valid generation runs, while the last valid spec keeps running."""

    generation: int
    message: str

    def condition(self, now: float) -> dict:
        return condition("Invalid", "True", "InvalidSpec", self.message, self.generation, now)


def with_reason(status: Mapping) -> dict:
    """``status`` with ``reason``, what the REASON column of `kubectl get mp -o wide` shows (a printer column reads
    one path): the reason of the condition that explains the state, Ready's when it is False, else Degraded's when
    True, else Invalid's when True (a newer spec rejected while the last valid one runs); none when all is well."""
    by_type = {c["type"]: c for c in status.get("conditions") or ()}
    explaining = (("Ready", "False"), ("Degraded", "True"), ("Invalid", "True"))
    reason = next((by_type[kind]["reason"] for kind, state in explaining
                   if kind in by_type and by_type[kind]["status"] == state), None)
    shown = {key: value for key, value in status.items() if key != "reason"}
    return shown if reason is None else {**shown, "reason": reason}


def observed_generation(generation: int, invalid: InvalidGeneration | None) -> int:
    """The newest generation the operator has seen: the running one, or a newer one it reports invalid."""
    return generation if invalid is None else max(generation, invalid.generation)


def policy_status(
    report: CycleReport,
    spec: PolicySpec,
    generation: int,
    before: list[dict],
    invalid: InvalidGeneration | None = None,
    write_failure: str | None = None,
) -> dict:
    """``generation``: the spec that ran; ``invalid``: a newer one that cannot run, if any; ``write_failure``:
    why the policy's WorkloadMetrics cannot be written (its cycles run, but what users read is not current)."""
    snapshot, now = report.snapshot, report.snapshot.time
    checks, warnings = _readiness(report)
    if write_failure is not None and checks[0][1] == "True":
        checks[0] = ("Ready", "False", "StatusWriteFailed", write_failure)
    updates = [condition(t, s, r, m, generation, now) for t, s, r, m in checks]
    if invalid is None:
        updates.append(condition("Invalid", "False", "ValidSpec", "the spec is valid", generation, now))
    else:
        updates.append(invalid.condition(now))
    if spec.insecure_skip_tls_verify and spec.via == "direct":
        warnings.append(
            "insecureSkipTLSVerify is set: kubelet certificates are not verified, so the operator's "
            "service-account token goes to whoever answers at a node's address"
        )
    cluster = snapshot.cluster
    failed = sorted(report.failures.items())
    return _compact(
        {
            "observedGeneration": observed_generation(generation, invalid),
            "conditions": merge_conditions(before, updates, now),
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
                    # So that a fall in usage can be told from a fall in coverage (pods on failing nodes).
                    "pods": cluster.pods,
                    "podsReporting": cluster.pods_reporting,
                    "podsUnresolved": len(report.unresolved),
                    "cpuCores": _round(cluster.cpu_cores),
                    "memoryBytes": _int(cluster.memory_bytes),
                    "cpuPodsMeasured": cluster.cpu_measured_pods,
                    "memoryPodsMeasured": cluster.memory_measured_pods,
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
                        "kind": stored.kind,
                        "name": stored.name,
                        "cpuCores": _round(w.cpu.usage),
                        "memoryBytes": _int(w.memory.usage),
                    }
                )
                for w in snapshot.top_workloads(spec.top_workloads)
                for stored in (stored_workload(w.workload),)
            ],
            "recommendations": recommendations_rollup(report.recommendations),
            "unresolvedPods": [
                unresolved_pod(pod)
                for pod in sorted(report.unresolved, key=lambda p: (p.namespace, p.name))[:MAX_UNRESOLVED_PODS]
            ],
            "warnings": warnings or None,
        }
    )


def _reclaimable(workloads: int, cpu: float, memory: float) -> dict:
    cpu, memory = round(cpu, 6), round(memory)
    return {"workloads": workloads, "reclaimableCpuCores": cpu, "reclaimableMemoryBytes": memory,
            "cpu": format_cpu(cpu), "memory": format_bytes(memory)}


def recommendations_rollup(recommendations: Mapping[WorkloadRef, WorkloadRecommendation]) -> dict | None:
    """Requested minus recommended (the capacity that could be given back; negative: under-requested) over the
    cluster and per namespace, of the containers with a verdict (``WorkloadRecommendation.total_difference``:
    not ``learning`` nor ``unset``); ``workloads``: how many workloads have such a container. The namespaces most
    to give back first (by CPU, then memory), at most :data:`MAX_RECOMMENDATION_NAMESPACES`. None when no
    workload has a verdict yet."""
    per_namespace: dict[str, list[float]] = {}
    for ref, recommendation in recommendations.items():
        cpu, memory = recommendation.total_difference("cpu"), recommendation.total_difference("memory")
        if cpu is None and memory is None:
            continue
        totals = per_namespace.setdefault(ref.namespace, [0, 0.0, 0.0])
        totals[0] += 1
        totals[1] -= cpu or 0.0
        totals[2] -= memory or 0.0
    if not per_namespace:
        return None
    ranked = sorted(per_namespace.items(), key=lambda item: (-item[1][1], -item[1][2], item[0]))
    return {
        "cluster": _reclaimable(sum(int(t[0]) for t in per_namespace.values()),
                                math.fsum(t[1] for t in per_namespace.values()),
                                math.fsum(t[2] for t in per_namespace.values())),
        "namespaceCount": len(per_namespace),
        "namespaces": [{"namespace": name, **_reclaimable(int(t[0]), t[1], t[2])}
                       for name, t in ranked[:MAX_RECOMMENDATION_NAMESPACES]],
    }


_MEASURED_CLUSTER_FIGURES = ("cpuCores", "memoryBytes", "cpu", "memory", "cpuPodsMeasured", "memoryPodsMeasured")


def without_measured_figures(status: Mapping) -> dict:
    """A policy status whose figures are no longer current: what was measured goes (the cluster's usage, the
    top workloads, the right-sizing roll-up), what is declared or counted stays (requests, pods, nodes, the
    failing nodes and since when)."""
    kept = {key: value for key, value in status.items() if key not in ("topWorkloads", "recommendations")}
    if "cluster" in kept:
        kept["cluster"] = {k: v for k, v in kept["cluster"].items() if k not in _MEASURED_CLUSTER_FIGURES}
    return kept
