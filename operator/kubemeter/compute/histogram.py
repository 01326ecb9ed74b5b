"""Decaying histograms of usage with exponential buckets, as the VPA recommender keeps them.

The design follows the Vertical Pod Autoscaler recommender (k8s.io/autoscaler/vertical-pod-autoscaler,
``pkg/recommender/util``): bucket ``i >= 1`` starts at ``first * (ratio**i - 1) / (ratio - 1)``, so each bucket is
5% wider than the one below it and a percentile is known to within 5% (or the first bucket's size) whatever the
magnitude; a sample's weight is ``2 ** ((t - reference) / half_life)``, so a sample loses half its importance per
half-life relative to a newer one; and a percentile is the *end* of the bucket where the cumulative weight reaches
it (an estimate never below the samples it stands for).

State is a flat array of the bucket weights from the lowest non-empty bucket to the highest (8 bytes a bucket):
at most :attr:`ExponentialBuckets.count` of them (176 for both schemes below), whatever the number of samples, a
few for a steady container; and :meth:`DecayingHistogram.to_dict` writes it as a small
JSON-ready dict (weights quantised to integers, as VPA's checkpoints do).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DECAY_EXPONENT = 100
"""Weights are renormalised (the reference time moved forward) once a new sample's exponent would exceed this:
``2**100`` times the largest sample count stays far from the float range, as in VPA."""

EPSILON = 1e-3
"""A bucket is empty when its weight is below this many fresh samples (a sample added at the histogram's latest
time weighs 1): what is older than ``log2(1/EPSILON)`` (about 10) half-lives, and was alone in its bucket, is
forgotten. VPA's epsilon is the same fraction of its (constant) sample weight."""

MAX_CHECKPOINT_WEIGHT = 10_000
"""Bucket weights are written as integers up to this (the heaviest bucket), as VPA's HistogramCheckpoint."""


@dataclass(frozen=True, slots=True)
class ExponentialBuckets:
    """Bucket boundaries: ``[0, first)``, then each bucket ``ratio`` times wider than the one below it, up to the
    bucket that starts at or above ``max_value`` (which holds everything above it)."""

    first_bucket_size: float
    ratio: float
    max_value: float
    starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 < self.first_bucket_size < self.max_value < math.inf and 1.0 < self.ratio < math.inf):
            raise ValueError(f"invalid bucket scheme {self!r}: need 0 < first_bucket_size < max_value and ratio > 1")
        count = math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first_bucket_size + 1, self.ratio)) + 1
        starts = tuple(self.first_bucket_size * (self.ratio**i - 1) / (self.ratio - 1) for i in range(count))
        object.__setattr__(self, "starts", starts)

    @property
    def count(self) -> int:
        return len(self.starts)

    def index(self, value: float) -> int:
        """The bucket holding ``value``; below 0 the first, beyond the last start the last."""
        return max(bisect_right(self.starts, value) - 1, 0)

    def end(self, index: int) -> float:
        """Where bucket ``index`` ends; the last bucket, open-ended, "ends" where it starts (as in VPA)."""
        return self.starts[min(index + 1, len(self.starts) - 1)]


CPU_BUCKETS = ExponentialBuckets(first_bucket_size=0.01, ratio=1.05, max_value=1000.0)
"""Cores: 10m resolution at the bottom, 5% above 0.2 cores, up to 1,000 cores (VPA's CPU scheme)."""
MEMORY_BUCKETS = ExponentialBuckets(first_bucket_size=1e7, ratio=1.05, max_value=1e12)
"""Bytes: 10 MB resolution at the bottom, 5% above 200 MB, up to 1 TB (VPA's memory scheme)."""


class DecayingHistogram:
    """The distribution of one series, newer samples weighing more: weight ``2 ** ((t - reference) / half_life)``.

    Only relative weights matter, so the reference time can move: it is moved forward (by whole half-lives, so
    the rescaling by a power of two is exact) when a sample's exponent would exceed :data:`MAX_DECAY_EXPONENT`,
    and the buckets that became empty (below :data:`EPSILON` of a fresh sample) are dropped then. Percentiles skip
    empty buckets at any time, so what is forgotten does not depend on when the last renormalisation was.
    """

    __slots__ = ("buckets", "half_life", "_first", "_weights", "_total", "_reference", "_latest")

    def __init__(self, buckets: ExponentialBuckets, half_life: float) -> None:
        if not 0.0 < half_life < math.inf:
            raise ValueError(f"half-life must be a positive number of seconds, not {half_life!r}")
        self.buckets = buckets
        self.half_life = half_life
        self._first = 0
        """The bucket index of ``_weights[0]``."""
        self._weights = array("d")
        """Weights of the buckets ``_first``, ``_first + 1``, ... (only as far as samples went)."""
        self._total = 0.0
        self._reference: float | None = None
        """Weights are relative to a sample at this time (weight 1); set by the first sample."""
        self._latest: float | None = None
        """The latest time a sample was added at: a sample then weighs ``2 ** ((latest - reference) / half_life)``."""

    def add(self, value: float, t: float) -> None:
        """One sample of ``value`` (non-negative; beyond the last bucket it counts in the last) at time ``t``."""
        if not 0.0 <= value < math.inf:
            raise ValueError(f"histogram sample must be a finite non-negative number, not {value!r}")
        weight = self._weight_at(t)
        index = self.buckets.index(value)
        self._span(index)
        self._weights[index - self._first] += weight
        self._total += weight
        if self._latest is None or t > self._latest:
            self._latest = t

    def subtract(self, value: float, t: float) -> None:
        """Take back a sample :meth:`add` added with the same ``value`` and ``t`` (a memory peak that was beaten)."""
        weight = self._weight_at(t)
        offset = self.buckets.index(value) - self._first
        if 0 <= offset < len(self._weights):
            remaining = self._weights[offset] - weight
            self._weights[offset] = remaining if remaining >= self._empty_below() else 0.0
            self._trim()
        self._total = max(self._total - weight, 0.0)

    def percentile(self, percentile: float) -> float | None:
        """The end of the bucket where the cumulative weight reaches ``percentile`` (in [0, 100]) of the total;
        ``None`` when the histogram holds no sample."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], not {percentile!r}")
        alive = self._alive()
        if not alive:
            return None
        threshold = percentile / 100.0 * math.fsum(weight for _, weight in alive)
        partial = 0.0
        for index, weight in alive:
            partial += weight
            if partial >= threshold:
                break
        return self.buckets.end(index)

    def is_empty(self) -> bool:
        return self.percentile(0.0) is None

    def __len__(self) -> int:
        """Buckets held: from the lowest non-empty one to the highest (the size of the state)."""
        return len(self._weights)

    def _alive(self) -> list[tuple[int, float]]:
        """(bucket, weight) of the non-empty buckets, lowest first."""
        empty_below = self._empty_below()
        return [(self._first + offset, weight) for offset, weight in enumerate(self._weights) if weight >= empty_below]

    def _span(self, index: int) -> None:
        """Make the weights reach bucket ``index``."""
        weights = self._weights
        if not weights:
            self._first = index
            weights.append(0.0)
        elif index < self._first:
            weights[0:0] = array("d", [0.0]) * (self._first - index)
            self._first = index
        elif index >= self._first + len(weights):
            weights.extend(array("d", [0.0]) * (index - self._first - len(weights) + 1))

    def _trim(self) -> None:
        """Drop the empty buckets at either end."""
        weights, empty_below = self._weights, self._empty_below()
        start, end = 0, len(weights)
        while start < end and weights[start] < empty_below:
            start += 1
        while end > start and weights[end - 1] < empty_below:
            end -= 1
        del weights[end:]
        del weights[:start]
        self._first += start

    def _weight_at(self, t: float) -> float:
        if self._reference is None:
            self._reference = math.floor(t / self.half_life) * self.half_life
        elif t - self._reference > MAX_DECAY_EXPONENT * self.half_life:
            self._shift_reference(math.floor((t - self._reference) / self.half_life))
        return 2.0 ** ((t - self._reference) / self.half_life)

    def _shift_reference(self, half_lives: int) -> None:
        self._reference += half_lives * self.half_life
        empty_below = self._empty_below()
        scaled = (math.ldexp(weight, -half_lives) for weight in self._weights)
        self._weights = array("d", (weight if weight >= empty_below else 0.0 for weight in scaled))
        self._trim()
        self._total = math.fsum(self._weights)

    def _empty_below(self) -> float:
        if self._latest is None or self._reference is None:
            return EPSILON
        return EPSILON * 2.0 ** ((self._latest - self._reference) / self.half_life)

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: ``{"reference", "latest", "total", "weights": {"<bucket>": int}}``, the weights
        scaled so that the heaviest bucket is :data:`MAX_CHECKPOINT_WEIGHT` (empty buckets, and those that round to
        0, are left out);
        at most :attr:`ExponentialBuckets.count` weights."""
        alive = self._alive()
        heaviest = max((weight for _, weight in alive), default=0.0)
        scale = MAX_CHECKPOINT_WEIGHT / heaviest if heaviest > 0.0 else 0.0
        weights = {str(index): round(weight * scale) for index, weight in alive}
        return {"reference": self._reference, "latest": self._latest, "total": math.fsum(w for _, w in alive),
                "weights": {index: weight for index, weight in weights.items() if weight > 0}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], buckets: ExponentialBuckets, half_life: float) -> DecayingHistogram:
        """The histogram :meth:`to_dict` wrote; ValueError saying what is wrong with a malformed ``data``."""
        histogram = cls(buckets, half_life)
        if not isinstance(data, Mapping) or set(data) != {"reference", "latest", "total", "weights"}:
            raise ValueError("invalid histogram checkpoint: expected the keys reference, latest, total and weights")
        reference, latest, total, weights = data["reference"], data["latest"], data["total"], data["weights"]
        times = (reference, latest)
        if not all(t is None or (is_number(t) and math.isfinite(t)) for t in times) or (reference is None) != (
                latest is None):
            raise ValueError(f"invalid histogram checkpoint: reference {reference!r} and latest {latest!r} must both "
                             "be finite times or both null")
        if not (is_number(total) and 0.0 <= total < math.inf):
            raise ValueError(f"invalid histogram checkpoint: total weight {total!r} is not a finite number >= 0")
        if not isinstance(weights, Mapping):
            raise ValueError("invalid histogram checkpoint: weights must be a mapping of bucket index to weight")
        parsed: dict[int, int] = {}
        for key, weight in weights.items():
            if not (isinstance(key, str) and key.isdigit() and int(key) < buckets.count):
                raise ValueError(f"invalid histogram checkpoint: bucket {key!r} is not an index in [0, "
                                 f"{buckets.count - 1}]")
            if not (isinstance(weight, int) and not isinstance(weight, bool) and weight > 0):
                raise ValueError(f"invalid histogram checkpoint: bucket {key} has weight {weight!r}, not a positive "
                                 "integer")
            parsed[int(key)] = weight
        if parsed and reference is None:
            raise ValueError("invalid histogram checkpoint: weights without a reference time")
        ratio = total / sum(parsed.values()) if parsed else 0.0
        for index, weight in parsed.items():
            histogram._span(index)
            histogram._weights[index - histogram._first] = weight * ratio
        histogram._total = total if parsed else 0.0
        histogram._reference = float(reference) if reference is not None else None
        histogram._latest = float(latest) if latest is not None else None
        return histogram


def is_number(value: object) -> bool:
    """An int or a float (not a bool), as JSON numbers are read."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
