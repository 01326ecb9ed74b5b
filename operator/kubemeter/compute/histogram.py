"""Decaying histograms of usage with exponential buckets, as the VPA recommender keeps them.

The design follows the Vertical Pod Autoscaler recommender (k8s.io/autoscaler/vertical-pod-autoscaler,
``pkg/recommender/util``): bucket ``i >= 1`` starts at ``first * (ratio**i - 1) / (ratio - 1)``, so each bucket is
5% wider than the one below it and a percentile is known to within 5% (or the first bucket's size) whatever the
magnitude; a sample's weight is ``2 ** ((t - reference) / half_life)``, so a sample loses half its importance per
half-life relative to a newer one; and a percentile is the *end* of the bucket where the cumulative weight reaches
it (an estimate never below the samples it stands for).

State is a sparse ``{bucket index: weight}`` dict: at most :attr:`ExponentialBuckets.count` entries (176 for
both schemes below), whatever the number of samples, and :meth:`DecayingHistogram.to_dict` writes it as a small
JSON-ready dict (weights quantised to integers, as VPA's checkpoints do).
"""

from __future__ import annotations

import math
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
    and buckets that fell below :data:`EPSILON` are dropped then.
    """

    __slots__ = ("buckets", "half_life", "_weights", "_total", "_reference", "_latest")

    def __init__(self, buckets: ExponentialBuckets, half_life: float) -> None:
        if not 0.0 < half_life < math.inf:
            raise ValueError(f"half-life must be a positive number of seconds, not {half_life!r}")
        self.buckets = buckets
        self.half_life = half_life
        self._weights: dict[int, float] = {}
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
        self._weights[index] = self._weights.get(index, 0.0) + weight
        self._total += weight
        if self._latest is None or t > self._latest:
            self._latest = t

    def subtract(self, value: float, t: float) -> None:
        """Take back a sample :meth:`add` added with the same ``value`` and ``t`` (a memory peak that was beaten)."""
        weight = self._weight_at(t)
        index = self.buckets.index(value)
        remaining = self._weights.get(index, 0.0) - weight
        if remaining < self._empty_below():
            self._weights.pop(index, None)
        else:
            self._weights[index] = remaining
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
        """Buckets held (the size of the state)."""
        return len(self._weights)

    def _alive(self) -> list[tuple[int, float]]:
        """(bucket, weight) of the non-empty buckets, lowest first."""
        empty_below = self._empty_below()
        return [(index, weight) for index, weight in sorted(self._weights.items()) if weight >= empty_below]

    def _weight_at(self, t: float) -> float:
        if self._reference is None:
            self._reference = math.floor(t / self.half_life) * self.half_life
        elif t - self._reference > MAX_DECAY_EXPONENT * self.half_life:
            self._shift_reference(math.floor((t - self._reference) / self.half_life))
        return 2.0 ** ((t - self._reference) / self.half_life)

    def _shift_reference(self, half_lives: int) -> None:
        self._reference += half_lives * self.half_life
        scaled = {index: math.ldexp(weight, -half_lives) for index, weight in self._weights.items()}
        empty_below = self._empty_below()
        self._weights = {index: weight for index, weight in scaled.items() if weight >= empty_below}
        self._total = math.fsum(self._weights.values())

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
        if not all(t is None or (_is_number(t) and math.isfinite(t)) for t in times) or (reference is None) != (
                latest is None):
            raise ValueError(f"invalid histogram checkpoint: reference {reference!r} and latest {latest!r} must both "
                             "be finite times or both null")
        if not (_is_number(total) and 0.0 <= total < math.inf):
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
        histogram._weights = {index: weight * ratio for index, weight in parsed.items()}
        histogram._total = total if parsed else 0.0
        histogram._reference = float(reference) if reference is not None else None
        histogram._latest = float(latest) if latest is not None else None
        return histogram


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
