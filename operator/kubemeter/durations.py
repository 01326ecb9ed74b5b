"""Go-style durations (``30s``, ``1m30s``, ``1.5h``, ``500ms``) as used in Kubernetes API fields."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# The same grammar as a CRD ``pattern``, so the API server rejects what parse_duration would.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError naming the bad input."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}: expected a Go duration such as 30s, 1m30s or 2h")
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
