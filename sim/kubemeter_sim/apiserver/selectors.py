"""Label and field selectors with the apiserver's syntax and error wording."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from kubemeter_sim.apiserver.errors import ApiError, bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*(?=,|$)")
_CMP_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})\s*(?=,|$)")

Matcher = Callable[[dict], bool]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str          # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...]

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        try:
            number = int(value) if present else None
        except (TypeError, ValueError):
            return False
        bound = int(self.values[0])
        return number is not None and (number > bound if self.op == ">" else number < bound)


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``a=b,c in (x,y),!d``; ApiError 400 on a malformed selector."""
    if not text or not text.strip():
        return ()
    requirements = []
    rest = text
    while rest.strip():
        if match := _SET_RE.match(rest):
            values = tuple(v.strip() for v in match.group(4).split(",") if v.strip())
            if not values:
                raise _bad_selector("for 'in', 'notin' operators, values set can't be empty")
            requirements.append(Requirement(match.group(1), match.group(3), values))
        elif match := _CMP_RE.match(rest):
            op = "=" if match.group(3) == "==" else match.group(3)
            if op in (">", "<") and not match.group(4).isdigit():
                raise _bad_selector("for 'Gt', 'Lt' operators, the value must be an integer")
            requirements.append(Requirement(match.group(1), op, (match.group(4),)))
        elif match := _EXISTS_RE.match(rest):
            requirements.append(Requirement(match.group(2), "!" if match.group(1) else "exists", ()))
        else:
            raise _bad_selector(f"found '{rest.strip()}', expected: valid label requirement")
        rest = rest[match.end():]
        if rest.strip():
            if not rest.lstrip().startswith(","):
                raise _bad_selector(f"found '{rest.strip()}', expected: ',' or end of string")
            rest = rest.lstrip()[1:]
            if not rest.strip():
                raise _bad_selector("found '', expected: identifier")
    return tuple(requirements)


def _bad_selector(why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why}")


def label_matcher(text: str | None) -> Matcher | None:
    requirements = parse_label_selector(text)
    if not requirements:
        return None

    def matches(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)
    return matches


# Field labels each kind supports (besides metadata.name and metadata.namespace), from the registry strategies.
_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "Secret": ("type",),
    "Job": ("status.successful",),
    "ReplicaSet": ("status.replicas",),
}


def _field_value(obj: dict, path: str) -> str:
    if path == "source":  # events: source.component
        return str((obj.get("source") or {}).get("component") or "")
    value: object = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return "false" if path in ("spec.hostNetwork", "spec.unschedulable") else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_matcher(text: str | None, kind: str, custom: bool) -> Matcher | None:
    """Parse ``a=b,c!=d``; 400 for a field the kind does not index, worded per built-in / custom resource."""
    if not text or not text.strip():
        return None
    allowed = ("metadata.name", "metadata.namespace") + _FIELD_LABELS.get(kind, ())
    terms: list[tuple[str, bool, str]] = []
    for part in text.split(","):
        match = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = match.groups()
        if path not in allowed:
            # Kinds with field labels of their own have a conversion function that words it differently.
            if custom or kind not in _FIELD_LABELS:
                raise bad_request(f'"{path}" is not a known field selector: only "metadata.name", '
                                  f'"metadata.namespace"')
            raise bad_request(f"field label not supported: {path}")
        terms.append((path, op == "!=", value))

    def matches(obj: dict) -> bool:
        for path, negate, value in terms:
            actual = (obj.get("metadata", {}).get(path[9:], "") or "") if path.startswith("metadata.") \
                else _field_value(obj, path)
            if (actual == value) == negate:
                return False
        return True
    return matches
