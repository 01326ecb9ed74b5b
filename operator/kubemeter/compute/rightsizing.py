"""Right-sizing: per-container history of CPU usage and memory peaks, and request recommendations from it.

The method is the VPA recommender's (k8s.io/autoscaler/vertical-pod-autoscaler, ``pkg/recommender/logic``):

- **History** (:class:`ContainerHistory`): a decaying histogram of CPU usage (a sample per pod per cycle) and one of
  memory *peaks*, one peak per aggregation interval (24 h by default): within an interval a higher sample
  replaces the interval's peak. Both with a 24 h half-life by default. Memory is sized on peaks because a
  container is OOM-killed by its peak, not its typical usage; CPU on usage because CPU is throttled, not killed.
- **Target** (:func:`recommend`): a percentile of each histogram plus a safety margin, VPA's p90 + 15% for both.
- **Bounds**: the same at p50 (lower) and p95 (upper), widened when history is short by VPA's confidence
  multipliers: upper ``* (1 + 1/confidence)``, lower ``* (1 + 0.001/confidence) ** -2``, where confidence is
  ``min(lifespan, samples * interval)`` in days: 1 day of history gives an upper bound twice p95's, a week 1.14
  times; the lower bound is within 5% after an hour.
- **Memory limit**: the highest peak plus the memory margin (never below the target): a limit is where the
  container is killed, so it is sized on the worst interval, not a percentile.
- **Bounds a user sets** (``cpu_min`` .. ``memory_max``, as a LimitRange's min/max) are applied last, to every
  figure.

Two presets (:data:`STRATEGIES`): ``vpa`` (the default) and ``simple``, KRR's simple strategy: CPU p95 without a
margin, memory the highest peak + 15% (request = limit). The VPA method is the default because it answers what
the issue asks beyond a number, how far a request may be from the target before it matters (the bounds) and how
much history backs it, and because its p90 of *decayed* peaks follows a workload that changed, where the highest
peak stays until the history forgets it (about 10 half-lives). The ``simple`` preset suits a user who prefers
never to be below any peak seen.

CPU samples are **unweighted** (each cycle's sample weighs 1, before decay). VPA's code weighted them by the
container's CPU request (at least 0.1 core), but since aggregation by label set the request was never filled in,
so every sample weighed 0.1, and VPA dropped the weighting in 2025 (kubernetes/autoscaler#7818). Unweighted, a
percentile is a percentile of time, and the recommendation does not depend on the request it is meant to replace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubemeter.compute.histogram import CPU_BUCKETS, MEMORY_BUCKETS, DecayingHistogram, is_number

DAY = 86_400.0
CHECKPOINT_VERSION = 1
"""Bumped when the bucket schemes or the layout of :meth:`ContainerHistory.to_dict` change."""

# VPA's confidence multipliers: the upper bound * (1 + 1/confidence)**1, the lower bound * (1 + 0.001/confidence)**-2.
_UPPER_MULTIPLIER, _UPPER_EXPONENT = 1.0, 1.0
_LOWER_MULTIPLIER, _LOWER_EXPONENT = 0.001, -2.0


def _check_positive(value: float, what: str) -> None:
    if not (is_number(value) and 0.0 < value < math.inf):
        raise ValueError(f"{what} must be a positive number, not {value!r}")


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    half_life: float = DAY
    """Seconds after which a sample weighs half as much as a new one (CPU and memory)."""
    memory_peak_interval: float = DAY
    """Seconds of each memory aggregation interval (one peak each), aligned to multiples of it since the epoch,
    so that every replica and restart cuts the same intervals."""

    def __post_init__(self) -> None:
        _check_positive(self.half_life, "half-life")
        _check_positive(self.memory_peak_interval, "memory peak interval")


class ContainerHistory:
    """The usage history of one workload container (a container name of a workload, all its pods' samples): what
    recommendations are made from. Each cycle adds one sample per pod, all at the cycle's time: CPU counts every
    pod's sample (the distribution is over pods and time, as VPA's); memory keeps one peak per interval, the
    highest of any pod (VPA keeps one per pod and interval: one per workload container keeps the state, and its
    checkpoint, independent of the number of replicas, and sizes the request on the largest pod).

    Its size is bounded by the histograms' bucket count, not by time: see ``bench/bench_recommend.py``.
    """

    __slots__ = ("config", "cpu", "memory_peaks", "first_sample_start", "last_sample", "covered_seconds",
                 "_peak", "_peak_end")

    def __init__(self, config: HistoryConfig = HistoryConfig()) -> None:
        self.config = config
        self.cpu = DecayingHistogram(CPU_BUCKETS, config.half_life)
        self.memory_peaks = DecayingHistogram(MEMORY_BUCKETS, config.half_life)
        self.first_sample_start: float | None = None
        """Start of the interval the first sample measured (its time minus its interval)."""
        self.last_sample: float | None = None
        self.covered_seconds = 0.0
        """The sum of the intervals the samples measured (less than the lifespan when cycles were missed)."""
        self._peak = 0.0
        self._peak_end: float | None = None
        """End of the current memory interval, whose peak so far (``_peak``) is in the histogram at this time."""

    def add(self, t: float, cpu_cores: float | None, memory_bytes: float | None, interval: float) -> bool:
        """One pod's sample at the cycle's time ``t`` (seconds since the epoch), measured over the ``interval``
        seconds before it; ``None`` where a value was not measured. The other pods' samples of the cycle come at
        the same ``t`` (the time covered counts once). A sample before the last one, or with neither value, is
        ignored (returns False), as VPA ignores out-of-order samples."""
        if not (is_number(t) and math.isfinite(t)):
            raise ValueError(f"sample time must be a finite number of seconds, not {t!r}")
        _check_positive(interval, "sample interval")
        for what, value in (("CPU", cpu_cores), ("memory", memory_bytes)):
            # checked before anything changes, so that a bad value leaves the history as it was
            if value is not None and not (is_number(value) and 0.0 <= value < math.inf):
                raise ValueError(f"{what} sample must be a finite non-negative number, not {value!r}")
        if (cpu_cores is None and memory_bytes is None) or (self.last_sample is not None and t < self.last_sample):
            return False
        if cpu_cores is not None:
            self.cpu.add(cpu_cores, t)
        if memory_bytes is not None:
            self._add_memory(t, memory_bytes)
        if self.first_sample_start is None:
            self.first_sample_start = t - interval
        if self.last_sample is None or t > self.last_sample:
            self.last_sample = t
            self.covered_seconds += interval
        return True

    def _add_memory(self, t: float, memory_bytes: float) -> None:
        if self._peak_end is None or t >= self._peak_end:
            step = self.config.memory_peak_interval
            self._peak_end = (math.floor(t / step) + 1) * step
        elif memory_bytes > self._peak:
            self.memory_peaks.subtract(self._peak, self._peak_end)
        else:
            return
        self.memory_peaks.add(memory_bytes, self._peak_end)
        self._peak = memory_bytes

    def confidence(self, confidence_interval: float = DAY) -> float:
        """How much history backs a recommendation, in ``confidence_interval`` units (days by default):
        ``min(lifespan, covered seconds)``, as VPA (which counts samples as minutes); 0 without samples."""
        if self.last_sample is None or self.first_sample_start is None:
            return 0.0
        return min(self.last_sample - self.first_sample_start, self.covered_seconds) / confidence_interval

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, restored by :meth:`from_dict` (histogram weights quantised as VPA's checkpoints)."""
        return {"version": CHECKPOINT_VERSION, "cpu": self.cpu.to_dict(), "memoryPeaks": self.memory_peaks.to_dict(),
                "firstSampleStart": self.first_sample_start, "lastSample": self.last_sample,
                "coveredSeconds": self.covered_seconds, "memoryPeak": self._peak, "memoryPeakEnd": self._peak_end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: HistoryConfig = HistoryConfig()) -> ContainerHistory:
        """The history :meth:`to_dict` wrote; ValueError saying what is wrong with a malformed or foreign ``data``.
        A half-life that changed since applies to the samples added from now on."""
        if not isinstance(data, Mapping) or data.get("version") != CHECKPOINT_VERSION:
            version = data.get("version") if isinstance(data, Mapping) else None
            raise ValueError(f"unsupported container history checkpoint version {version!r} (expected "
                             f"{CHECKPOINT_VERSION})")
        expected = {"version", "cpu", "memoryPeaks", "firstSampleStart", "lastSample", "coveredSeconds",
                    "memoryPeak", "memoryPeakEnd"}
        if set(data) != expected:
            raise ValueError(f"invalid container history checkpoint: expected the keys {sorted(expected)}")
        history = cls(config)
        history.cpu = DecayingHistogram.from_dict(data["cpu"], CPU_BUCKETS, config.half_life)
        history.memory_peaks = DecayingHistogram.from_dict(data["memoryPeaks"], MEMORY_BUCKETS, config.half_life)
        times = {name: data[name] for name in ("firstSampleStart", "lastSample", "memoryPeakEnd")}
        for name, value in times.items():
            if value is not None and not (is_number(value) and math.isfinite(value)):
                raise ValueError(f"invalid container history checkpoint: {name} {value!r} is not a finite time")
        for name in ("coveredSeconds", "memoryPeak"):
            if not (is_number(data[name]) and 0.0 <= data[name] < math.inf):
                raise ValueError(f"invalid container history checkpoint: {name} {data[name]!r} is not a finite "
                                 "number >= 0")
        if (times["firstSampleStart"] is None) != (times["lastSample"] is None):
            raise ValueError("invalid container history checkpoint: firstSampleStart and lastSample must both be set "
                             "or both null")
        history.first_sample_start = times["firstSampleStart"]
        history.last_sample = times["lastSample"]
        history.covered_seconds = float(data["coveredSeconds"])
        history._peak = float(data["memoryPeak"])
        history._peak_end = times["memoryPeakEnd"]
        if history.confidence() == 0.0 and not (history.cpu.is_empty() and history.memory_peaks.is_empty()):
            raise ValueError("invalid container history checkpoint: its histograms hold samples but it covers no time")
        return history


@dataclass(frozen=True, slots=True)
class RecommendationConfig:
    """How a recommendation is made from a history; percentiles in [0, 100], margins as fractions (0.15 = 15%).

    The defaults are VPA's (see the module's docstring); :data:`STRATEGIES` names the presets.
    """

    cpu_percentile: float = 90.0
    """Of CPU usage, for the CPU target."""
    memory_percentile: float = 90.0
    """Of memory peaks, for the memory target."""
    lower_bound_percentile: float = 50.0
    upper_bound_percentile: float = 95.0
    cpu_margin: float = 0.15
    memory_margin: float = 0.15
    """Added to every memory figure, the limit included."""
    confidence_interval: float = DAY
    """Seconds of history that count as a confidence of 1 (VPA: a day)."""
    cpu_min: float | None = None
    """Cores; applied last to every CPU figure, as a LimitRange's min."""
    cpu_max: float | None = None
    memory_min: float | None = None
    """Bytes; applied last to every memory figure, the limit included."""
    memory_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_percentile", "memory_percentile", "lower_bound_percentile", "upper_bound_percentile"):
            value = getattr(self, name)
            if not (is_number(value) and 0.0 <= value <= 100.0):
                raise ValueError(f"{name} must be a number in [0, 100], not {value!r}")
        if self.lower_bound_percentile > self.upper_bound_percentile:
            raise ValueError(f"lower_bound_percentile {self.lower_bound_percentile} is above upper_bound_percentile "
                             f"{self.upper_bound_percentile}")
        for name in ("cpu_margin", "memory_margin"):
            value = getattr(self, name)
            if not (is_number(value) and 0.0 <= value < math.inf):
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        _check_positive(self.confidence_interval, "confidence interval")
        for resource in ("cpu", "memory"):
            low, high = getattr(self, f"{resource}_min"), getattr(self, f"{resource}_max")
            for name, value in ((f"{resource}_min", low), (f"{resource}_max", high)):
                if value is not None and not (is_number(value) and 0.0 <= value < math.inf):
                    raise ValueError(f"{name} must be a number >= 0, not {value!r}")
            if low is not None and high is not None and low > high:
                raise ValueError(f"{resource}_min {low} is above {resource}_max {high}")


STRATEGIES: Mapping[str, RecommendationConfig] = {
    "vpa": RecommendationConfig(),
    "simple": RecommendationConfig(cpu_percentile=95.0, memory_percentile=100.0, cpu_margin=0.0, memory_margin=0.15),
}
"""The presets by name; override a field with ``dataclasses.replace(STRATEGIES[name], ...)``."""


@dataclass(frozen=True, slots=True)
class ResourceRecommendation:
    """One resource's request recommendation (cores or bytes): ``lower_bound <= target <= upper_bound``."""

    target: float
    lower_bound: float
    upper_bound: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    cpu: ResourceRecommendation | None
    """Cores; ``None`` until a CPU sample is in the history."""
    memory: ResourceRecommendation | None
    """Bytes; ``None`` until a memory sample is in the history."""
    memory_limit: float | None
    """Bytes: the highest memory peak plus the memory margin, at least the target."""
    confidence: float
    """Days (``confidence_interval`` units) of history behind it: see :meth:`ContainerHistory.confidence`."""


def recommend(history: ContainerHistory, config: RecommendationConfig = STRATEGIES["vpa"]) -> Recommendation:
    """The recommendation for one container from its history (``None`` fields where it holds no sample)."""
    confidence = history.confidence(config.confidence_interval)
    cpu = _resource(history.cpu, config.cpu_percentile, config.cpu_margin, confidence, config, config.cpu_min,
                    config.cpu_max)
    memory = _resource(history.memory_peaks, config.memory_percentile, config.memory_margin, confidence, config,
                       config.memory_min, config.memory_max)
    memory_limit = None
    if memory is not None:
        highest = history.memory_peaks.percentile(100.0) * (1.0 + config.memory_margin)
        memory_limit = _clamp(max(highest, memory.target), config.memory_min, config.memory_max)
    return Recommendation(cpu, memory, memory_limit, confidence)


def _resource(histogram: DecayingHistogram, percentile: float, margin: float, confidence: float,
              config: RecommendationConfig, low: float | None, high: float | None) -> ResourceRecommendation | None:
    target = histogram.percentile(percentile)
    if target is None:
        return None
    scale = 1.0 + margin
    target *= scale
    # The confidence is > 0 whenever a histogram holds a sample (a sample covers its interval).
    lower = histogram.percentile(config.lower_bound_percentile) * scale * (
        1.0 + _LOWER_MULTIPLIER / confidence) ** _LOWER_EXPONENT
    upper = histogram.percentile(config.upper_bound_percentile) * scale * (
        1.0 + _UPPER_MULTIPLIER / confidence) ** _UPPER_EXPONENT
    # A target percentile outside the bounds' (the simple preset's p100 memory) widens them to hold it.
    return ResourceRecommendation(_clamp(target, low, high), _clamp(min(lower, target), low, high),
                                  _clamp(max(upper, target), low, high))


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return low
    if high is not None and value > high:
        return high
    return value
