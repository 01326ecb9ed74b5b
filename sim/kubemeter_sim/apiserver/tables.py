"""meta.k8s.io/v1 Table rendering: CRD additionalPrinterColumns and default columns for built-in kinds."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Callable

from kubemeter_sim.apiserver.resources import ResourceType

_DESCRIPTIONS = {
    "Name": "Name must be unique within a namespace. Is required when creating resources, although some "
            "resources may allow a client to request the generation of an appropriate name automatically. Name is "
            "primarily intended for creation idempotence and configuration definition. Cannot be updated. More "
            "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "Age": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years = hours // (24 * 365)
    if years < 8:
        days = (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def parse_time(timestamp: str | None) -> dt.datetime | None:
    """A metav1.Time (RFC 3339 to the second, UTC), or None when absent or malformed."""
    try:
        return dt.datetime.strptime(timestamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def age(timestamp: str | None, now: dt.datetime) -> str:
    if not timestamp:
        return "<unknown>"
    then = parse_time(timestamp)
    return "<invalid>" if then is None else human_duration((now - then).total_seconds())


# ---- JSONPath subset used by printer columns: .a.b, .a[0], .a[*].b, .a[?(@.k=="v")].b -----------------------
_STEP = re.compile(r'\.([A-Za-z0-9_\-$]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["\']([^"\']*)["\']\)\]'
                   r'|\[["\']([^"\']+)["\']\]')


def jsonpath(obj: Any, path: str) -> list[Any]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    nodes = [obj]
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        if not match:
            return []
        field, index, filter_key, filter_value, quoted = match.groups()
        position = match.end()
        following: list[Any] = []
        for node in nodes:
            if field is not None or quoted is not None:
                key = field if field is not None else quoted
                if isinstance(node, dict) and key in node:
                    following.append(node[key])
            elif index is not None and isinstance(node, list):
                following.extend(node if index == "*" else node[int(index):int(index) + 1])
            elif filter_key is not None and isinstance(node, list):
                following.extend(item for item in node if isinstance(item, dict)
                                 and str(_dig(item, filter_key)) == filter_value)
        nodes = following
    return nodes


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _custom_cell(obj: dict, column: dict, now: dt.datetime) -> Any:
    values = jsonpath(obj, column.get("jsonPath", ""))
    if not values:
        return None
    value = values[0] if len(values) == 1 else ",".join(json.dumps(v) if not isinstance(v, str) else v
                                                         for v in values)
    kind = column.get("type")
    if kind == "date" and isinstance(value, str):
        return age(value, now)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in ("integer", "number", "boolean"):
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _column(name: str, kind: str = "string", format_: str = "", priority: int = 0, description: str = "") -> dict:
    return {"name": name, "type": kind, "format": format_, "description": description or _DESCRIPTIONS.get(name, ""),
            "priority": priority}


# ---- built-in kinds ----------------------------------------------------------------------------------------
def _pod_cells(pod: dict, now: dt.datetime) -> list[Any]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    for container_status in statuses:
        state = container_status.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    # Restarts is a string column: "2 (5m ago)" once a container has restarted (the age of its last exit).
    finished = [((s.get("lastState") or {}).get("terminated") or {}).get("finishedAt") for s in statuses]
    last_exit = max((f for f in finished if f), default=None)
    shown_restarts = f"{restarts} ({age(last_exit, now)} ago)" if restarts and last_exit else str(restarts)
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, shown_restarts,
            age(pod["metadata"].get("creationTimestamp"), now), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", "<none>"]


def _node_cells(node: dict, now: dt.datetime) -> list[Any]:
    status = node.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready", ""), "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [node["metadata"]["name"], state, ",".join(r for r in roles if r) or "<none>",
            age(node["metadata"].get("creationTimestamp"), now), info.get("kubeletVersion", ""),
            addresses.get("InternalIP", "<none>"), addresses.get("ExternalIP", "<none>"), info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def _namespace_cells(namespace: dict, now: dt.datetime) -> list[Any]:
    return [namespace["metadata"]["name"], (namespace.get("status") or {}).get("phase", ""),
            age(namespace["metadata"].get("creationTimestamp"), now)]


# ---- workloads: pkg/printers/internalversion/printers.go (the server always prints the wide cells) ---------------
def _requirement(key: str, operator: str, values: list[str]) -> str:
    """labels.Requirement.String(): ``k=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``."""
    listed = ",".join(sorted(values))
    return {"Equals": f"{key}={listed}", "In": f"{key} in ({listed})", "NotIn": f"{key} notin ({listed})",
            "Exists": key, "DoesNotExist": f"!{key}"}.get(operator, "")


def _selector(selector: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key; empty for none or an empty one."""
    requirements = [(key, "Equals", [value]) for key, value in ((selector or {}).get("matchLabels") or {}).items()]
    requirements += [(e.get("key", ""), e.get("operator", ""), list(e.get("values") or []))
                     for e in (selector or {}).get("matchExpressions") or []]
    return ",".join(_requirement(*r) for r in sorted(requirements, key=lambda r: r[0]))


def _format_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector."""
    return _selector(selector) or "<none>"


def _containers(template: dict | None) -> list[str]:
    """layoutContainerCells: the template's container names and images, comma-separated."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def _deployment_cells(deployment: dict, now: dt.datetime) -> list[Any]:
    status, spec = deployment.get("status") or {}, deployment.get("spec") or {}
    return [deployment["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            age(deployment["metadata"].get("creationTimestamp"), now), *_containers(spec.get("template")),
            _selector(spec.get("selector"))]


def _replicaset_cells(replicaset: dict, now: dt.datetime) -> list[Any]:
    status, spec = replicaset.get("status") or {}, replicaset.get("spec") or {}
    return [replicaset["metadata"]["name"], spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), age(replicaset["metadata"].get("creationTimestamp"), now),
            *_containers(spec.get("template")), _format_selector(spec.get("selector"))]


def _statefulset_cells(statefulset: dict, now: dt.datetime) -> list[Any]:
    status, spec = statefulset.get("status") or {}, statefulset.get("spec") or {}
    return [statefulset["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            age(statefulset["metadata"].get("creationTimestamp"), now), *_containers(spec.get("template"))]


def _daemonset_cells(daemonset: dict, now: dt.datetime) -> list[Any]:
    status, spec = daemonset.get("status") or {}, daemonset.get("spec") or {}
    node_selector = (((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {})
    return [daemonset["metadata"]["name"], *(status.get(field, 0) for field in (
                "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled",
                "numberAvailable")),
            ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>",
            age(daemonset["metadata"].get("creationTimestamp"), now), *_containers(spec.get("template")),
            _format_selector(spec.get("selector"))]


# The first condition (status True) of these names the Job's STATUS; a deleted Job is Terminating before Suspended.
_JOB_STATES = (("Complete", "Complete"), ("Failed", "Failed"), (None, "Terminating"), ("Suspended", "Suspended"),
               ("FailureTarget", "FailureTarget"), ("SuccessCriteriaMet", "SuccessCriteriaMet"))


def _job_cells(job: dict, now: dt.datetime) -> list[Any]:
    status, spec = job.get("status") or {}, job.get("spec") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    started, finished = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if started is None else human_duration(((finished or now) - started).total_seconds())
    true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    deleted = bool(job["metadata"].get("deletionTimestamp"))
    state = next((shown for condition, shown in _JOB_STATES
                  if (condition in true if condition else deleted)), "Running")
    return [job["metadata"]["name"], state, completions, duration, age(job["metadata"].get("creationTimestamp"), now),
            *_containers(spec.get("template")), _format_selector(spec.get("selector"))]


def _cronjob_cells(cronjob: dict, now: dt.datetime) -> list[Any]:
    status, spec = cronjob.get("status") or {}, cronjob.get("spec") or {}
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return [cronjob["metadata"]["name"], spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else str(bool(suspend)), len(status.get("active") or []),
            "<none>" if last is None else age(last, now), age(cronjob["metadata"].get("creationTimestamp"), now),
            *_containers(job_spec.get("template")), _format_selector(job_spec.get("selector"))]


def _event_cells(event: dict, now: dt.datetime) -> list[Any]:
    """core/v1 and events.k8s.io/v1 Events (the latter say note/regarding/deprecated* for the same things)."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    last = event.get("lastTimestamp") or event.get("deprecatedLastTimestamp") or event.get("eventTime") \
        or event["metadata"].get("creationTimestamp")
    first = event.get("firstTimestamp") or event.get("deprecatedFirstTimestamp") or last
    source = (event.get("source") or {}).get("component") or event.get("reportingController") or ""
    count = event.get("count") or event.get("deprecatedCount") or 1
    return [age(_seconds_precision(last), now), event.get("type", ""), event.get("reason", ""),
            f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}", involved.get("fieldPath", ""),
            source, event.get("message") or event.get("note") or "", age(_seconds_precision(first), now), count,
            event["metadata"]["name"]]


def _seconds_precision(timestamp: str | None) -> str | None:
    """eventTime is a MicroTime ("...05.123456Z"); ages need seconds."""
    return timestamp[:19] + "Z" if timestamp and len(timestamp) > 20 else timestamp


_WIDE_TEMPLATE = [_column("Containers", priority=1), _column("Images", priority=1)]
_BUILTIN: dict[str, tuple[list[dict], Callable[[dict, dt.datetime], list[Any]]]] = {
    "Event": ([_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
               _column("Subobject", priority=1), _column("Source", priority=1), _column("Message"),
               _column("First Seen", priority=1), _column("Count", "integer", priority=1),
               _column("Name", format_="name", priority=1)], _event_cells),
    "Pod": ([_column("Name", format_="name"), _column("Ready"), _column("Status"), _column("Restarts"),
             _column("Age"), _column("IP", priority=1), _column("Node", priority=1),
             _column("Nominated Node", priority=1), _column("Readiness Gates", priority=1)], _pod_cells),
    "Node": ([_column("Name", format_="name"), _column("Status"), _column("Roles"), _column("Age"),
              _column("Version"), _column("Internal-IP", priority=1), _column("External-IP", priority=1),
              _column("OS-Image", priority=1), _column("Kernel-Version", priority=1),
              _column("Container-Runtime", priority=1)], _node_cells),
    "Namespace": ([_column("Name", format_="name"), _column("Status"), _column("Age")], _namespace_cells),
    "Deployment": ([_column("Name", format_="name"), _column("Ready"), _column("Up-to-date"), _column("Available"),
                    _column("Age"), *_WIDE_TEMPLATE, _column("Selector", priority=1)], _deployment_cells),
    "ReplicaSet": ([_column("Name", format_="name"), _column("Desired", "integer"), _column("Current", "integer"),
                    _column("Ready", "integer"), _column("Age"), *_WIDE_TEMPLATE, _column("Selector", priority=1)],
                   _replicaset_cells),
    "StatefulSet": ([_column("Name", format_="name"), _column("Ready"), _column("Age"), *_WIDE_TEMPLATE],
                    _statefulset_cells),
    "DaemonSet": ([_column("Name", format_="name"), _column("Desired", "integer"), _column("Current", "integer"),
                   _column("Ready", "integer"), _column("Up-to-date", "integer"), _column("Available", "integer"),
                   _column("Node Selector"), _column("Age"), *_WIDE_TEMPLATE, _column("Selector", priority=1)],
                  _daemonset_cells),
    "Job": ([_column("Name", format_="name"), _column("Status"), _column("Completions"), _column("Duration"),
             _column("Age"), *_WIDE_TEMPLATE, _column("Selector", priority=1)], _job_cells),
    "CronJob": ([_column("Name", format_="name"), _column("Schedule"), _column("Timezone"),
                 _column("Suspend", "boolean"), _column("Active", "integer"), _column("Last Schedule"), _column("Age"),
                 *_WIDE_TEMPLATE, _column("Selector", priority=1)], _cronjob_cells),
}


def columns(rtype: ResourceType) -> list[dict]:
    if rtype.custom:
        declared = list(rtype.printer_columns) or [{"name": "Age", "type": "date",
                                                    "jsonPath": ".metadata.creationTimestamp"}]
        return [_column("Name", format_="name")] + [
            _column(c["name"], c.get("type", "string"), c.get("format", ""), int(c.get("priority", 0)),
                    c.get("description", "")) for c in declared]
    if rtype.kind in _BUILTIN:
        return _BUILTIN[rtype.kind][0]
    return [_column("Name", format_="name"), _column("Age")]


def cells(rtype: ResourceType, obj: dict, now: dt.datetime) -> list[Any]:
    if rtype.custom:
        declared = list(rtype.printer_columns) or [{"name": "Age", "type": "date",
                                                    "jsonPath": ".metadata.creationTimestamp"}]
        return [obj["metadata"]["name"]] + [_custom_cell(obj, c, now) for c in declared]
    if rtype.kind in _BUILTIN:
        return _BUILTIN[rtype.kind][1](obj, now)
    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"), now)]


def row(rtype: ResourceType, obj: dict, include_object: str, now: dt.datetime) -> dict:
    result: dict[str, Any] = {"cells": cells(rtype, obj, now)}
    if include_object == "Object":
        result["object"] = obj
    elif include_object != "None":
        result["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                            "metadata": obj["metadata"]}
    return result


def table(rtype: ResourceType, objects: list[dict], include_object: str, list_metadata: dict,
          with_columns: bool = True) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata,
            "columnDefinitions": columns(rtype) if with_columns else [],
            "rows": [row(rtype, obj, include_object, now) for obj in objects]}
