"""Label and field selectors with the apiserver's syntax and error wording."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from kubemeter_sim.apiserver.admission import LABEL_VALUE_MSG, NAME_PART_MSG, field_invalid
from kubemeter_sim.apiserver.errors import bad_request

_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
# Tokens apimachinery's label lexer knows; any other run of characters is an identifier.
_OPERATORS = frozenset({")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "("})
_BINARY = ("in", "notin", "=", "==", "!=", "gt", "lt")
_END = ("end", "")

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


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs as apimachinery's label Lexer makes them: kind is the operator itself,
    ``id`` for an identifier, ``error`` for a run of symbols that is no operator, then ("end", "")."""
    tokens, index = [], 0
    while True:
        while index < len(text) and text[index] in _WHITESPACE:
            index += 1
        if index == len(text):
            return tokens + [_END]
        start = index
        if text[index] in _SPECIAL:
            longest = ""
            while index < len(text) and text[index] in _SPECIAL:
                if text[start:index + 1] in _OPERATORS:
                    longest = text[start:index + 1]
                elif longest:
                    break
                index += 1
            if not longest:
                tokens.append(("error", f"error expected: keyword found '{text[start:index]}'"))
                continue
            index = start + len(longest)
            tokens.append((longest, longest))
        else:
            while index < len(text) and text[index] not in _SPECIAL and text[index] not in _WHITESPACE:
                index += 1
            word = text[start:index]
            tokens.append((word if word in _OPERATORS else "id", word))


class _LabelParser:
    """apimachinery's recursive-descent label selector parser, with its error wording. ``in`` and ``notin``
    are identifiers wherever a value may stand."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0

    def peek(self, as_value: bool = True) -> tuple[str, str]:
        kind, literal = self.tokens[self.position]
        return ("id", literal) if as_value and kind in ("in", "notin") else (kind, literal)

    def take(self, as_value: bool = True) -> tuple[str, str]:
        token = self.peek(as_value)
        self.position += 1
        return token

    def parse(self) -> tuple[Requirement, ...]:
        requirements = []
        while True:
            kind, literal = self.peek()
            if kind == "end":
                return tuple(requirements)
            if kind not in ("id", "!"):
                raise bad_request(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except ValueError as error:
                raise bad_request(f"unable to parse requirement: {error}") from None
            kind, literal = self.take()
            if kind == "end":
                return tuple(requirements)
            if kind != ",":
                raise bad_request(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in ("id", "!"):
                raise bad_request(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        kind, key = self.take()
        absent = kind == "!"
        if absent:
            kind, key = self.take()
        if kind != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        if len(key) > 316 or not _KEY.match(key):
            raise ValueError(_field_error("<nil>", key, NAME_PART_MSG))   # the parser's field path is nil
        if absent:
            return Requirement(key, "!", ())   # whatever follows is the caller's to refuse
        if self.peek()[0] in ("end", ","):
            return Requirement(key, "exists", ())
        kind, literal = self.take(as_value=False)
        if kind not in ("in", "notin", "=", "==", "!=", ">", "<"):
            raise ValueError(f"found '{literal}', expected: {', '.join(_BINARY)}")
        values = self.value_set() if kind in ("in", "notin") else self.exact_value()
        for index, value in enumerate(values):
            if len(value) > 63 or not _VALUE.match(value):
                raise ValueError(_field_error(f"values[{index}][{key}]", value, LABEL_VALUE_MSG))
        if kind in (">", "<") and not values[0].lstrip("-").isdigit():
            raise ValueError(_field_error("values[0]", values[0], "for 'Gt', 'Lt' operators, the value must be an "
                                                                  "integer"))
        return Requirement(key, "=" if kind == "==" else kind, values)

    def value_set(self) -> tuple[str, ...]:
        kind, literal = self.take()
        if kind != "(":
            raise ValueError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == ")":
            self.take()
            return ("",)
        if kind not in ("id", ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            kind, literal = self.take()
            if kind == "id":
                values.add(literal)
                after, after_literal = self.peek()
                if after == ")":
                    break
                if after != ",":
                    raise ValueError(f"found '{after_literal}', expected: ',' or ')'")
            elif kind == ",":
                if not values or self.peek()[0] in (")", ","):
                    values.add("")           # "(,", ",)" and ",," hold an empty value
                if self.peek()[0] == ")":
                    break
            else:
                raise ValueError(f"found '{literal}', expected: ',', or identifier")
        self.take()
        return tuple(sorted(values))

    def exact_value(self) -> tuple[str, ...]:
        kind, literal = self.peek()
        if kind in ("end", ","):
            return ("",)
        self.take()
        if kind != "id":
            raise ValueError(f"found '{literal}', expected: identifier")
        return (literal,)


def _field_error(field: str, value: str, why: str) -> str:
    cause = field_invalid(field, value, why)
    return f"{cause['field']}: {cause['message']}"


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``a=b,c in (x,y),!d``; ApiError 400 worded as apimachinery's parser on a malformed selector."""
    if not text or not text.strip():
        return ()
    return _LabelParser(text).parse()


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
