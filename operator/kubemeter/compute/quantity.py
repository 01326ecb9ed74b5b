"""Kubernetes resource quantities (``100m``, ``1.5Gi``, ``1e3``) to numbers and back, for CPU and memory.

Grammar (k8s.io/apimachinery ``resource.Quantity``): ``<sign>?<number><suffix>`` where the number is
``1``, ``1.5``, ``1.`` or ``.5`` and the suffix is binary SI (``Ki`` .. ``Ei``), decimal SI (``n u m k M G T P E``
or none) or a decimal exponent (``e3``, ``E-2``). ``1E`` is exa, ``1E3`` is an exponent.
"""

from __future__ import annotations

import math
import re

_SUFFIX_FACTOR = {
    "": 1.0,
    "n": 1e-9, "u": 1e-6, "m": 1e-3,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
# The exponent alternative comes first so that "1E3" is 1000, while a bare trailing "E" is exa.
_QUANTITY = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?"
)
_MEBI = 2.0**20
_KIBI = 2.0**10


def _parse_quantity(q: str | int | float, what: str) -> float:
    if isinstance(q, bool) or not isinstance(q, (str, int, float)):
        raise ValueError(f"invalid {what} quantity {q!r}: expected a string such as 100m, 1.5Gi or 1e3")
    if isinstance(q, str):
        match = _QUANTITY.fullmatch(q)
        if match is None:
            raise ValueError(f"invalid {what} quantity {q!r}: expected a Kubernetes quantity such as 100m, 1.5Gi or 1e3")
        number, exponent, suffix = match.groups()
        value = float(number + exponent) if exponent else float(number) * _SUFFIX_FACTOR[suffix or ""]
    else:
        value = float(q)
    if not math.isfinite(value):
        raise ValueError(f"invalid {what} quantity {q!r}: not a finite number")
    return value


def parse_cpu(q: str | int | float) -> float:
    """Cores in a CPU quantity: ``"100m"`` -> 0.1, ``"2"`` -> 2.0; ValueError naming the bad input."""
    return _parse_quantity(q, "CPU")


def parse_bytes(q: str | int | float) -> float:
    """Bytes in a memory or storage quantity: ``"128Mi"`` -> 134217728.0; ValueError naming the bad input."""
    return _parse_quantity(q, "memory")


def _check_finite(value: float, what: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"cannot format {what} value {value!r}: not a finite number")


def format_cpu(cores: float) -> str:
    """Cores as a short quantity like ``kubectl top``: whole cores ``"2"``, else millicores ``"250m"``, ``"1500m"``.

    Rounded to the millicore, as ``kubectl top`` shows CPU: a small non-zero usage reads ``"0m"`` (measured,
    near zero), never a micro- or nanocore figure such as ``"884u"``; the exact value is in the status's
    cores fields.
    """
    _check_finite(cores, "CPU")
    milli = round(abs(cores) * 1000)
    if milli == 0:
        return "0m"
    sign = "-" if cores < 0 else ""
    return f"{sign}{milli // 1000}" if milli % 1000 == 0 else f"{sign}{milli}m"


def format_percent(ratio: float) -> str:
    """A ratio as a whole percentage, ``0.3714`` -> ``"37%"``, as the demo table and printer columns show it."""
    _check_finite(ratio, "ratio")
    return f"{ratio * 100:.0f}%"


def format_bytes(b: float) -> str:
    """Bytes as a short quantity like ``kubectl top``: mebibytes from 1Mi on (``"128Mi"``, ``"1536Mi"``),
    kibibytes (``"100Ki"``) or plain bytes below that; rounded to the nearest unit."""
    _check_finite(b, "memory")
    sign = "-" if b < 0 else ""
    size = abs(b)
    if size >= _MEBI:
        return f"{sign}{round(size / _MEBI)}Mi"
    if size >= _KIBI:
        return f"{sign}{round(size / _KIBI)}Ki"
    return f"{sign}{round(size)}"
