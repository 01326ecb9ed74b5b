"""API errors rendered as metav1.Status bodies, worded like the real kube-apiserver."""
from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class ApiError(Exception):
    """An error answer of the API server; ``status()`` is the wire body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason}
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(name: str, group: str, kind: str, **extra: Any) -> dict:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def qualified(plural: str, group: str) -> str:
    """``deployments.apps`` / ``pods``: how the server names a resource in messages."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found', _details(name, group, plural))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    _details(name, group, plural))


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
                    _details(name, group, plural))


def stale_conflict(plural: str, group: str, name: str) -> ApiError:
    return conflict(plural, group, name,
                    "the object has been modified; please apply your changes to the latest version and try again")


def invalid(kind: str, group: str, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid; causes are ``{"reason", "message", "field"}`` as in metav1.StatusCause."""
    text = "; ".join(f'{c["field"]}: {c["message"]}' if c.get("field") else c["message"] for c in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f'{c["field"]}: {c["message"]}' if c.get("field") else c["message"]
                               for c in causes) + "]"
    return ApiError(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {text}',
                    _details(name, group, kind, causes=causes))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    prefix = f'{qualified(plural, group)} "{name}"' if name else qualified(plural, group)
    return ApiError(403, "Forbidden", f"{prefix} is forbidden: {why}", _details(name, group, plural))


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_old_resource_version(requested: int, oldest: int) -> ApiError:
    return expired(f"too old resource version: {requested} ({oldest})")


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def no_such_resource() -> ApiError:
    """A path under a served group/version that names no resource (or no such subresource)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


class PageNotFound(ApiError):
    """A path no API serves at all: the real server's mux answers it in plain text, not with a Status."""

    def __init__(self) -> None:
        super().__init__(404, "NotFound", "404 page not found")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(accepted))


def unexpected_response(code: int, server_message: str) -> ApiError:
    """What apimachinery's NewGenericServerResponse builds (json-patch apply failures use it with 422)."""
    generic = {422: "the server rejected our request due to an error in our request",
               429: "Too many requests, please try again later.",
               500: "an error on the server has prevented the request from succeeding",
               503: "the server is currently unable to handle the request",
               504: "the server was unable to return a response in the time allotted, but may still be processing the "
                    "request"}
    message = generic.get(code, f"the server responded with the status code {code} but did not return more information")
    causes = [{"reason": "UnexpectedServerResponse", "message": server_message}] if server_message else []
    return ApiError(code, reason_for(code), message, {"causes": causes} if causes else None)


def reason_for(code: int) -> str:
    return _REASONS.get(code, "Unknown")
