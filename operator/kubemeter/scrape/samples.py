"""What the decoders share: the bounds of a plausible value and their error.

Their output, ``kubemeter.types.NodeMetrics``, is a cross-stage type. A value no kubelet can mean (negative,
NaN, infinite, or beyond MAX_QUANTITY) is decoded as missing (``None``), never kept.
"""

from __future__ import annotations

MAX_QUANTITY = 2.0**53
"""The largest value kept: 8 PiB, or 285 million years of CPU time, and exact as a float. Sums of a few
thousand of them stay within the int64 the WorkloadMetrics schema holds; a larger value is corruption."""


def plausible(value: float) -> bool:
    """Whether a decoded counter or gauge can be a real reading (NaN fails every comparison)."""
    return 0.0 <= value <= MAX_QUANTITY


class DecodeError(ValueError):
    """A kubelet payload that cannot be decoded: malformed, truncated or of an unknown format."""
