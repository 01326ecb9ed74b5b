"""Rolling time windows of one series and their statistics (avg, max, percentiles)."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple

MAX_WINDOW_SAMPLES = 1440
"""Samples a window keeps at most (4 h at the minimum 10 s interval); the oldest go first beyond that.
Policy validation should keep ``window / interval`` below it."""


class WindowStats(NamedTuple):
    avg: float
    max: float
    percentiles: dict[float, float]
    """Percentile as given, in (0, 100] -> value (see :func:`percentiles_of`)."""
    samples: int


def percentiles_of(values: Sequence[float], percentiles: Sequence[float]) -> dict[float, float]:
    """Percentiles of non-empty ``values``, keyed as given (each in (0, 100]).

    Linear interpolation between the closest ranks, as Prometheus ``quantile_over_time`` does: rank
    ``p/100 * (n - 1)`` of the sorted values, weighted between the values just below and above it.
    """
    ordered = sorted(values)
    last = len(ordered) - 1
    result = {}
    for p in percentiles:
        rank = p * last / 100.0
        lower = int(rank)
        weight = rank - lower
        result[p] = ordered[lower] if weight == 0.0 else ordered[lower] * (1.0 - weight) + ordered[lower + 1] * weight
    return result


class Window:
    """The samples of one series within the last ``seconds``, in two flat arrays (16 bytes a sample).

    Samples are expected in time order (one per cycle); the window is left-open like a PromQL range
    selector: at ``now`` it holds the samples with ``now - seconds < t <= now``.
    """

    __slots__ = ("seconds", "max_samples", "_times", "_values")

    def __init__(self, seconds: float, max_samples: int = MAX_WINDOW_SAMPLES) -> None:
        self.seconds = seconds
        self.max_samples = max_samples
        self._times = array("d")
        self._values = array("d")

    def add(self, t: float, value: float) -> None:
        times = self._times
        if times and t <= times[-1]:
            # The clock stepped back: samples "after" t describe a time line that no longer holds.
            keep = bisect_left(times, t)
            del times[keep:]
            del self._values[keep:]
        times.append(t)
        self._values.append(value)
        self._evict(t)

    def values(self, now: float) -> array | None:
        """A copy of the values in the window ending at ``now``, oldest first (older samples are dropped);
        ``None`` when there are none."""
        self._evict(now)
        times = self._times
        if not times:
            return None
        count = len(times) if times[-1] <= now else bisect_right(times, now)
        return self._values[:count] if count else None

    def stats(self, now: float, percentiles: Sequence[float]) -> WindowStats | None:
        """Average, maximum and percentiles of the window ending at ``now``; ``None`` when it is empty."""
        values = self.values(now)
        if values is None:
            return None
        return WindowStats(math.fsum(values) / len(values), max(values), percentiles_of(values, percentiles),
                           len(values))

    def __len__(self) -> int:
        return len(self._times)

    def _evict(self, now: float) -> None:
        times = self._times
        if times and (times[0] <= now - self.seconds or len(times) > self.max_samples):
            cut = max(bisect_right(times, now - self.seconds), len(times) - self.max_samples)
            del times[:cut]
            del self._values[:cut]
