"""Error text as the real server writes it: ``field.Error`` bodies, Go's printing of bad values, the 422 Status.

Error wording follows the real server: kube-openapi's ``validate`` messages (``spec.x in body should ...``)
wrapped in apimachinery ``field.Error`` bodies (``Invalid value: "x": ...``), CEL rule failures as
``Invalid value: "object": <message>`` and the 422 Status body of ``apierrors.NewInvalid``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TYPE_LABELS = {"FieldValueRequired": "Required value", "FieldValueInvalid": "Invalid value",
               "FieldValueTypeInvalid": "Invalid value", "FieldValueNotSupported": "Unsupported value",
               "FieldValueForbidden": "Forbidden", "FieldValueTooLong": "Too long",
               "FieldValueTooMany": "Too many", "FieldValueDuplicate": "Duplicate value"}
_NO_VALUE_IN_BODY = frozenset({"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"})


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: ``message`` is its ErrorBody (what a Status cause carries)."""

    type: str
    field: str
    message: str
    bad_value: object = None


OMIT_VALUE: Any = object()  # field.OmitValueType: the error names no value (CEL rules on objects and arrays)


def field_error(type_: str, field: str, bad_value: Any, detail: str) -> FieldError:
    body = TYPE_LABELS[type_]
    if type_ not in _NO_VALUE_IN_BODY and bad_value is not OMIT_VALUE:
        body += ": " + _go_value(bad_value)
    if detail:
        body += ": " + detail
    return FieldError(type=type_, field=field, message=body, bad_value=bad_value)


def go_float(number: float) -> str:
    """Go's %v for a float64: no trailing .0, exponent form only for very large or small values."""
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _go_json(value: Any) -> str:
    """encoding/json's Marshal of a decoded JSON value: compact, keys sorted, <, > and & escaped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _go_value(value: Any) -> str:
    """A bad value as ``field.Error.ErrorBody`` prints it: %v for numbers and booleans, %q for strings, JSON
    for anything else (null, maps, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _go_json(value)


def _aggregate(errors: list[FieldError]) -> str:
    """utilerrors.NewAggregate(...).Error(): duplicates dropped, one error bare, several in brackets."""
    messages: list[str] = []
    for error in errors:
        text = f"{error.field}: {error.message}"
        if text not in messages:
            messages.append(text)
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body of apierrors.NewInvalid for these field errors."""
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {json.dumps(name, ensure_ascii=False)} is invalid"
    if errors:
        message += ": " + _aggregate(errors)
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    details = {k: v for k, v in details.items() if v}
    details["causes"] = [
        {k: v for k, v in (("reason", e.type), ("message", e.message), ("field", e.field)) if v} for e in errors
    ]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }
