"""What the real registry strategies do to an object before it is stored: name checks, defaults, status rules,
generation, and CRD schema pruning/defaulting/validation (through the schema package)."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from kubemeter_sim.apiserver.errors import ApiError, bad_request, invalid
from kubemeter_sim.apiserver.jsonutil import clone
from kubemeter_sim.apiserver.resources import ResourceType
from kubemeter_sim.apiserver.schema import TYPE_LABELS, CompiledSchema, invalid_status

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
                  "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_RBAC_KINDS = frozenset({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
# Built-in kinds whose create resets status (their strategies' PrepareForCreate).
_STATUS_RESET_ON_CREATE = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_ZERO_QUANTITY = re.compile(r"^0+(\.0*)?[a-zA-Z]*$")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def field_invalid(field: str, value: Any, message: str) -> dict:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {shown}: {message}", "field": field}


def field_required(field: str, message: str) -> dict:
    text = f"Required value: {message}" if message else "Required value"
    return {"reason": "FieldValueRequired", "message": text, "field": field}


def field_forbidden(field: str, message: str) -> dict:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {message}", "field": field}


def name_causes(rtype: ResourceType, obj: dict) -> list[dict]:
    """Name rules by kind: DNS label for namespaces, DNS-1035 for services, path segment for RBAC, else subdomain."""
    meta = obj["metadata"]
    name = meta.get("name") or ""
    if not name:
        return [field_required("metadata.name", "name or generateName is required")]
    if rtype.kind in _RBAC_KINDS:
        bad = name in (".", "..") or "/" in name or "%" in name
        return [field_invalid("metadata.name", name, "may not contain '/'")] if bad else []
    if rtype.kind == "Namespace":
        pattern, message, limit = _LABEL, _LABEL_MSG, 63
    elif rtype.kind == "Service":
        pattern, message, limit = _DNS1035, _DNS1035_MSG, 63
    else:
        pattern, message, limit = _SUBDOMAIN, _SUBDOMAIN_MSG, 253
    causes = []
    if len(name) > limit:
        causes.append(field_invalid("metadata.name", name, f"must be no more than {limit} characters"))
    if not pattern.match(name):
        causes.append(field_invalid("metadata.name", name, message))
    if rtype.kind == "CustomResourceDefinition":
        spec = obj.get("spec") or {}
        expected = f'{(spec.get("names") or {}).get("plural", "")}.{spec.get("group", "")}'
        if name != expected:
            causes.append(field_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return causes


def label_causes(obj: dict) -> list[dict]:
    """metadata.labels: qualified-name keys (optional DNS-subdomain prefix) and label values."""
    causes = []
    for key, value in (obj["metadata"].get("labels") or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix))) or len(name) > 63 \
                or not _QUALIFIED_NAME.match(name):
            causes.append(field_invalid("metadata.labels", key, NAME_PART_MSG))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(field_invalid("metadata.labels", value, LABEL_VALUE_MSG))
    return causes


def pod_causes(pod: dict) -> list[dict]:
    """The pod spec checks every client hits first: at least one container, each with a name and an image."""
    containers = (pod.get("spec") or {}).get("containers")
    if not containers:
        return [field_required("spec.containers", "")]
    causes = []
    for index, container in enumerate(containers):
        name = container.get("name") if isinstance(container, dict) else None
        if not name:
            causes.append(field_required(f"spec.containers[{index}].name", ""))
        elif not _LABEL.match(name) or len(name) > 63:
            causes.append(field_invalid(f"spec.containers[{index}].name", name, _LABEL_MSG))
        if not (isinstance(container, dict) and container.get("image")):
            causes.append(field_required(f"spec.containers[{index}].image", ""))
    return causes


_TEMPLATED_KINDS = frozenset({("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"),
                              ("apps", "DaemonSet")})


def template_label_causes(rtype: ResourceType, obj: dict) -> list[dict]:
    """apps/v1 controllers: a non-empty spec.selector must match the pod template's labels, or the controller
    would create pods it does not own (ValidatePodTemplateSpecForReplicaSet)."""
    if (rtype.group, rtype.kind) not in _TEMPLATED_KINDS:
        return []
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return []
    # Imported here: both modules import this one.
    from kubemeter_sim.apiserver.scale import selector_string
    from kubemeter_sim.apiserver.selectors import label_matcher

    matches = label_matcher(selector_string(selector))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if matches is None or matches({"metadata": {"labels": labels}}):
        return []
    shown = json.dumps(labels, sort_keys=True, separators=(",", ":"))  # the real server shows the map as JSON
    return [{"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
             "message": f"Invalid value: {shown}: `selector` does not match template `labels`"}]


def event_causes(event: dict) -> list[dict]:
    """core/v1 Events: the Event's namespace must be its object's, or ``default`` for a cluster-scoped object
    (``kube-system`` too when the Event has an eventTime), as the legacy Event validation has it."""
    involved = (event.get("involvedObject") or {}).get("namespace") or ""
    namespace = event["metadata"].get("namespace") or ""
    allowed = {involved} if involved else ({"default", "kube-system"} if event.get("eventTime") else {"default"})
    if namespace in allowed:
        return []
    return [field_invalid("involvedObject.namespace", involved, "does not match event.namespace")]


def crd_causes(obj: dict) -> list[dict]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    for field, value in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                         ("spec.names.kind", names.get("kind"))):
        if not value:
            causes.append(field_required(field, ""))
    if spec.get("scope") not in ("Cluster", "Namespaced"):
        causes.append({"reason": "FieldValueNotSupported", "field": "spec.scope",
                       "message": f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", '
                                  f'"Namespaced"'})
    versions = spec.get("versions") or []
    if not versions:
        causes.append(field_invalid("spec.versions", versions, "must have exactly one version marked as storage "
                                                                "version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(field_invalid("spec.versions", versions, "must have exactly one version marked as storage "
                                                                "version"))
    return causes


def crd_schema_causes(crd: dict) -> list[dict]:
    """Each version's openAPIV3Schema must compile (structural, CEL rules that compile) and its defaults must
    pass the schema and CEL rules they sit under, as apiextensions-apiserver checks when a CRD is written.
    Versions that share one schema are checked once, named as the internal API names it: ``spec.validation``."""
    versions = [v for v in (crd.get("spec") or {}).get("versions") or [] if isinstance(v, dict)]
    schemas = [(v.get("schema") or {}).get("openAPIV3Schema") for v in versions]
    if schemas and all(schema == schemas[0] for schema in schemas):
        located = [("spec.validation", schemas[0])]
    else:
        located = [(f"spec.versions[{index}].schema", schema) for index, schema in enumerate(schemas)]
    causes = []
    for where, raw in located:
        if raw is None:
            continue
        try:
            compiled = CompiledSchema.compile(raw)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            label = message.partition(":")[0]
            reason = next((r for r, text in TYPE_LABELS.items() if text == label), "FieldValueInvalid")
            causes.append({"reason": reason, "message": message, "field": f"{where}.{field}"})
            continue
        causes.extend({"reason": e.type, "message": e.message, "field": e.field}
                      for e in compiled.default_errors(f"{where}.openAPIV3Schema"))
    return causes


def pod_qos_class(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_set = limits_set = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests = {k: v for k, v in (resources.get("requests") or {}).items() if not _ZERO_QUANTITY.match(str(v))}
        limits = {k: v for k, v in (resources.get("limits") or {}).items() if not _ZERO_QUANTITY.match(str(v))}
        requests_set |= bool(requests)
        limits_set |= bool(limits)
        # Requests default to limits, so Guaranteed means cpu and memory limits with equal (or absent) requests.
        if not all(r in limits and requests.get(r, limits[r]) == limits[r] for r in ("cpu", "memory")):
            guaranteed = False
    if not requests_set and not limits_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _generate_job_selector(job: dict) -> None:
    """The Job strategy's generateSelector: the pod template gets the job-name and controller-uid labels (legacy and
    batch.kubernetes.io/ names; one the user set is kept) and the selector the controller-uid one, which is unique."""
    meta = job["metadata"]
    spec = job.setdefault("spec", {})
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = template_meta.get("labels") or {}
    template_meta["labels"] = labels
    for key in ("job-name", "batch.kubernetes.io/job-name"):
        labels.setdefault(key, meta["name"])
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        labels.setdefault(key, meta["uid"])
    selector = spec.get("selector") or {}
    spec["selector"] = selector
    match_labels = selector.get("matchLabels") or {}
    selector["matchLabels"] = match_labels
    match_labels.setdefault("batch.kubernetes.io/controller-uid", meta["uid"])


def prepare_for_create(rtype: ResourceType, obj: dict, now: str) -> None:
    """Defaults and status resets the registry applies on create (mutates obj)."""
    meta = obj["metadata"]
    if rtype.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif rtype.kind == "Pod":
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            _default_requests_to_limits(container)
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj)}
    elif rtype.kind == "Service":
        obj["status"] = {"loadBalancer": {}}
    elif rtype.kind == "Event" and not rtype.group:
        # fields of core/v1 Event without omitempty: serialised even when a client left them out
        obj.setdefault("eventTime", None)
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")
    elif rtype.kind in _STATUS_RESET_ON_CREATE:
        obj["status"] = {}
        if rtype.kind == "Job" and (obj.get("spec") or {}).get("manualSelector") is not True:
            _generate_job_selector(obj)
    elif rtype.custom and "status" in rtype.subresources:
        obj.pop("status", None)
    if rtype.kind == "CustomResourceDefinition":
        obj["status"] = crd_status(obj, now)


def _default_requests_to_limits(container: dict) -> None:
    """A resource with a limit and no request is requested at its limit (core/v1 SetDefaults_Pod); a container
    without resources gets an empty ``resources``."""
    if not isinstance(container, dict):
        return
    resources = container.setdefault("resources", {})
    limits = resources.get("limits") if isinstance(resources, dict) else None
    if isinstance(limits, dict) and limits:
        requests = resources.setdefault("requests", {})
        for name, quantity in limits.items():
            requests.setdefault(name, quantity)


def crd_status(crd: dict, now: str) -> dict:
    """Names accepted and established at once; conditions keep their lastTransitionTime across updates."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    previous = crd.get("status") or {}
    stored = list(previous.get("storedVersions") or [])
    stored.extend(v["name"] for v in spec.get("versions") or [] if v.get("storage") and v["name"] not in stored)
    earlier = {c.get("type"): c for c in previous.get("conditions") or []}
    conditions = [
        {"type": "NamesAccepted", "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}]
    return {"acceptedNames": names, "storedVersions": stored, "conditions": [
        earlier.get(c["type"]) or {**c, "status": "True", "lastTransitionTime": now} for c in conditions]}


def apply_status_rules(rtype: ResourceType, new: dict, old: dict, subresource: str | None) -> dict:
    """Main endpoint ignores .status; /status ignores everything else (pods/nodes keep metadata changes,
    except pods' ownerReferences)."""
    if "status" not in rtype.subresources:
        return new
    if subresource == "status":
        result = clone(old)
        if rtype.status_keeps_metadata:
            result["metadata"] = new["metadata"]
            if rtype.kind == "Pod":
                _copy_key(old["metadata"], result["metadata"], "ownerReferences")
        _copy_key(new, result, "status")
        return result
    _copy_key(old, new, "status")
    return new


def _copy_key(source: dict, target: dict, key: str) -> None:
    if key in source:
        target[key] = clone(source[key])
    else:
        target.pop(key, None)


def spec_changed(rtype: ResourceType, new: dict, old: dict) -> bool:
    if rtype.custom:
        ignored = {"metadata", "status"} if "status" in rtype.subresources else {"metadata"}
        keys = (set(new) | set(old)) - ignored
        return any(new.get(k) != old.get(k) for k in keys)
    return new.get("spec") != old.get("spec")


def compiled_schema(rtype: ResourceType) -> CompiledSchema | None:
    """The CompiledSchema of a CR type, or None for a schemaless one."""
    if rtype.schema is None:
        return None
    if rtype.compiled_schema is None:
        rtype.compiled_schema = CompiledSchema.compile(rtype.schema)
    return rtype.compiled_schema


def admit_custom(rtype: ResourceType, obj: dict, old: dict | None, field_validation: str,
                 warnings: list[str]) -> dict:
    """Prune + default, then validate against the CRD schema; 400 on unknown fields with Strict, 422 when invalid."""
    schema = compiled_schema(rtype)
    if schema is None:
        return obj
    unknown = sorted(schema.unknown_fields(obj))
    if unknown and field_validation == "Strict":
        raise bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: strict '
                          "decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
    if unknown and field_validation == "Warn":
        warnings.extend(f'unknown field "{f}"' for f in unknown)
    prepared = schema.prepare(obj, old)
    errors = schema.validate(prepared, old)
    if errors:
        status = invalid_status(rtype.kind, rtype.group, obj["metadata"].get("name", ""), errors)
        raise ApiError(status.get("code", 422), status.get("reason", "Invalid"), status.get("message", ""),
                       status.get("details"))
    return prepared


def check_invalid(rtype: ResourceType, causes: list[dict], name: str) -> None:
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)
