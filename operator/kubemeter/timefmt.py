"""Time as Kubernetes API fields spell it: RFC 3339 timestamps and Go durations (``30s``, ``1m30s``, ``500ms``)."""

from __future__ import annotations

import datetime
import re

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# The same grammar as a CRD ``pattern``, so the API server rejects what parse_duration would; a bare 0 is a duration
# in Go (time.ParseDuration, metav1.Duration) too. No signs: no kubemeter duration may be negative.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError naming the bad input."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}: expected a Go duration such as 30s, 1m30s or 2h")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}: expected a Go duration such as 30s, 1m30s or 2h")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style rendering of whole seconds, e.g. 300 -> '5m', 90 -> '1m30s'."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def format_span(seconds: float) -> str:
    """A duration in a log line: Go style when whole (``5m``, ``1m30s``), else three significant digits (``9.99s``
    for a remaining deadline of 9.99446 s), as sub-second differences matter only there."""
    if seconds == int(seconds) or seconds >= 100:
        return format_duration(seconds)
    return f"{seconds:.3g}s"


def rfc3339(t: float) -> str:
    """A metav1.Time: whole seconds, UTC (``2026-12-02T13:33:22Z``)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    """A metav1.MicroTime (Lease times): microseconds, UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_millis(t: float) -> str:
    """Log times: milliseconds, UTC (``2026-12-03T14:05:07.123Z``)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_rfc3339(text: str | None) -> float | None:
    """Unix seconds, or ``None`` for a missing or malformed timestamp."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None
