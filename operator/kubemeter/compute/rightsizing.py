"""Right-sizing: per-container history of CPU usage and memory peaks, and request recommendations from it.

The method is the VPA recommender's (k8s.io/autoscaler/vertical-pod-autoscaler, ``pkg/recommender/logic``):

- **History** (:class:`ContainerHistory`): a decaying histogram of CPU usage (a sample per pod per cycle) and one of
  memory *peaks*, one peak per aggregation interval (24 h by default): within an interval a higher sample
  replaces the interval's peak. Both with a 24 h half-life by default. Memory is sized on peaks because a
  container is OOM-killed by its peak, not its typical usage; CPU on usage because CPU is throttled, not killed.
- **Target** (:func:`recommend`): a percentile of each histogram plus a safety margin, VPA's p90 + 15% for both.
- **Bounds**: the same at p50 (lower) and p95 (upper), widened when history is short by VPA's confidence
  multipliers: upper ``* (1 + 1/confidence)``, lower ``* (1 + 0.001/confidence) ** -2``, where confidence is
  ``min(lifespan, seconds covered)`` in days: 1 day of history gives an upper bound twice p95's, a week 1.14
  times; the lower bound is within 5% after an hour. History is the time the operator watched: the lifespan runs
  from the first sample to the latest, and each sample after the first covers the time since the one before,
  at most an interval (cycles missed are not covered). One sample is no history (VPA: a lifespan of 0); its
  bounds are those of one second of history, VPA's being infinite.
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubemeter.compute.histogram import CPU_BUCKETS, MEMORY_BUCKETS, DecayingHistogram, is_number
from kubemeter.types import PodInfo, Usage, WorkloadRef

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
        """The first sample's time: where the history's lifespan starts."""
        self.last_sample: float | None = None
        self.covered_seconds = 0.0
        """The time the samples cover: each after the first, the time since the one before up to its interval (less
        than the lifespan when cycles were missed; 0 for a single sample)."""
        self._peak = 0.0
        self._peak_end: float | None = None
        """End of the current memory interval, whose peak so far (``_peak``) is in the histogram at this time."""

    def add(self, t: float, cpu_cores: float | None, memory_bytes: float | None, interval: float) -> bool:
        """One pod's sample at the cycle's time ``t`` (seconds since the epoch) of a policy cycling every
        ``interval`` seconds; ``None`` where a value was not measured. It covers the time since the history's last
        sample, at most ``interval`` (a cycle missed is not watched); the first covers none, however long the
        interval: the operator watched nothing before it. The other pods' samples of the cycle come at the same
        ``t`` (the time covered counts once). A sample before the last one, or with neither value, is ignored
        (returns False), as VPA ignores out-of-order samples."""
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
            self.first_sample_start = t
        if self.last_sample is None:
            self.last_sample = t
        elif t > self.last_sample:
            self.covered_seconds += min(t - self.last_sample, interval)
            self.last_sample = t
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
        if history.last_sample is None and not (history.cpu.is_empty() and history.memory_peaks.is_empty()):
            raise ValueError("invalid container history checkpoint: its histograms hold samples but it has no "
                             "sample time")
        if history.last_sample is not None and history.first_sample_start > history.last_sample:
            raise ValueError("invalid container history checkpoint: firstSampleStart is after lastSample")
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
    # A single sample is no history (confidence 0): VPA's bounds would be 0 and infinite, these are one second's.
    confidence = max(confidence, 1.0 / config.confidence_interval)
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


# ---- per policy: every workload container's history, and what is recommended for it ------------------------------
VERDICTS = ("over", "under", "fit", "unset", "learning")
"""How a current request compares with its recommendation: above the upper bound (``over``), below the lower
bound (``under``), between them (``fit``), no request set (``unset``), or too little history to say
(``learning``). The bounds, not the target, decide: VPA's updater evicts a pod only outside them too."""
JUDGED_VERDICTS = frozenset({"over", "under", "fit"})
"""The verdicts of a request compared with enough history: the ones whose differences count."""

REFRESH_SECONDS = 60.0
"""Recommendations are computed again every this many seconds of cycles (every cycle from a 60 s interval on), as
the VPA recommender's loop runs every minute: a recommendation costs about 50 us per container (1.5 s a cycle
at 30,000 workload containers), and a day-long history barely moves in a minute."""

SHORT_LIVED_KINDS = frozenset({"Pod", "Job"})
"""Workloads that never come back once their pods are gone (a bare pod, a Job not run by a CronJob: each run has
a new name), so their histories go with the aggregation window. Every other kind keeps its history one half-life
after its last pod: a CronJob run daily, or a Deployment scaled to zero for the night, comes back to it."""


@dataclass(frozen=True, slots=True)
class RightsizingConfig:
    """A policy's ``spec.recommendations``."""

    history: HistoryConfig = HistoryConfig()
    recommendation: RecommendationConfig = STRATEGIES["vpa"]
    strategy: str = "vpa"
    min_history: float = 3600.0
    """Seconds of history before a request is called over, under or fit (``learning`` until then)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not (is_number(self.min_history) and 0.0 <= self.min_history < math.inf):
            raise ValueError(f"minimum history must be a number of seconds >= 0, not {self.min_history!r}")


@dataclass(frozen=True, slots=True)
class ContainerRecommendation:
    """One workload container: its current requests (per pod), what is recommended, and how they compare."""

    name: str
    pods: int
    """The workload's pods that run this container now."""
    cpu_request: float | None
    """Cores per pod, the value most of the pods have (they differ during a rollout); ``None`` when unset."""
    memory_request: float | None
    memory_limit: float | None
    """Bytes per pod, as the request."""
    recommendation: Recommendation
    history_seconds: float
    """Seconds of samples behind it (``confidence`` * the confidence interval)."""
    cpu_verdict: str
    memory_verdict: str

    @property
    def cpu_difference(self) -> float | None:
        """Recommended minus requested cores per pod (negative: requested beyond need), ``None`` without both."""
        return _difference(self.cpu_request, self.recommendation.cpu)

    @property
    def memory_difference(self) -> float | None:
        return _difference(self.memory_request, self.recommendation.memory)

    def workload_difference(self, resource: str) -> float | None:
        """Recommended minus requested over the pods that run it (``resource`` "cpu" or "memory"), only with a
        verdict in :data:`JUDGED_VERDICTS`: a target from too little history is no change to make yet."""
        if getattr(self, f"{resource}_verdict") not in JUDGED_VERDICTS:
            return None
        return getattr(self, f"{resource}_difference") * self.pods


@dataclass(frozen=True, slots=True)
class WorkloadRecommendation:
    time: float
    """When it was computed (it is refreshed every :data:`REFRESH_SECONDS`)."""
    containers: dict[str, ContainerRecommendation]

    def total_difference(self, resource: str) -> float | None:
        """Recommended minus requested over the workload's pods (``resource`` "cpu" or "memory"): the sum of the
        containers' :meth:`ContainerRecommendation.workload_difference`; ``None`` when none has one."""
        parts = [d for c in self.containers.values() if (d := c.workload_difference(resource)) is not None]
        return math.fsum(parts) if parts else None


def _difference(request: float | None, recommended: ResourceRecommendation | None) -> float | None:
    return None if request is None or recommended is None else recommended.target - request


def verdict(request: float | None, recommended: ResourceRecommendation | None, history_seconds: float,
            min_history: float, resolution: float = 0.0) -> str:
    """See :data:`VERDICTS`. ``resolution``: the lowest lower bound the histogram can tell from "all samples in
    its first bucket" (10m CPU, 10 MB, plus the margin): a request under that bound is not called ``under``, since a
    container using 1m of its 5m would otherwise be, whatever it uses."""
    if request is None:
        return "unset"
    if recommended is None or history_seconds < min_history:
        return "learning"
    if request > recommended.upper_bound:
        return "over"
    if request < recommended.lower_bound and recommended.lower_bound > resolution:
        return "under"
    return "fit"


def _most_common(values: list[float | None]) -> float | None:
    """The value most pods have; between equally common ones the largest (the safer request to compare)."""
    counts: dict[float | None, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return max(counts, key=lambda v: (counts[v], -math.inf if v is None else v))


class Recommender:
    """A policy's right-sizing state: the history of every workload container it selects (see
    :class:`ContainerHistory`) and the latest recommendations made from them."""

    def __init__(self, config: RightsizingConfig = RightsizingConfig()) -> None:
        self.config = config
        self._histories: dict[WorkloadRef, dict[str, ContainerHistory]] = {}
        self._last_seen: dict[WorkloadRef, float] = {}
        self._recommendations: dict[WorkloadRef, WorkloadRecommendation] = {}
        self._computed_at: float | None = None

    def reconfigure(self, config: RightsizingConfig) -> None:
        """New settings; a new half-life or memory peak interval applies to the samples added from now on."""
        if config.history != self.config.history:
            for containers in self._histories.values():
                for name, history in containers.items():
                    containers[name] = ContainerHistory.from_dict(history.to_dict(), config.history)
        self.config = config
        self._computed_at = None  # the next cycle recomputes with the new settings

    def observe(self, now: float, pods: Iterable[PodInfo], usage: Mapping[str, Mapping[str, Usage]],
                interval: float) -> None:
        """One cycle's samples: every measured container of every selected pod that has a workload."""
        histories, seen = self._histories, self._last_seen
        config = self.config.history
        for pod in pods:
            ref = pod.workload
            if ref is None:
                continue
            seen[ref] = now
            measured = usage.get(pod.uid)
            if not measured:
                continue
            containers = histories.get(ref)
            if containers is None:
                containers = histories[ref] = {}
            for spec in pod.containers:
                sample = measured.get(spec.name)
                if sample is None:
                    continue
                history = containers.get(spec.name)
                if history is None:
                    history = containers[spec.name] = ContainerHistory(config)
                history.add(now, sample.cpu_cores, sample.memory_bytes, interval)

    def recommendations(self, now: float, pods: Iterable[PodInfo], interval: float,
                        ) -> dict[WorkloadRef, WorkloadRecommendation]:
        """The recommendation of every workload among ``pods`` with a history, computed again when
        :data:`REFRESH_SECONDS` have passed since the last time (else the last ones, for the same workloads)."""
        due = self._computed_at is None or now - self._computed_at >= REFRESH_SECONDS - interval / 2
        if not due:
            return self._recommendations
        requests: dict[WorkloadRef, dict[str, list[tuple[float | None, float | None, float | None]]]] = {}
        for pod in pods:
            if pod.workload is not None and pod.workload in self._histories:
                containers = requests.setdefault(pod.workload, {})
                for spec in pod.containers:
                    containers.setdefault(spec.name, []).append(
                        (spec.cpu_request, spec.memory_request, spec.memory_limit))
        config = self.config
        fresh: dict[WorkloadRef, WorkloadRecommendation] = {}
        for ref, containers in requests.items():
            histories = self._histories[ref]
            made = {}
            for name, specs in sorted(containers.items()):
                history = histories.get(name)
                if history is None:
                    continue
                made[name] = self._container(name, specs, history, config)
            if made:
                fresh[ref] = WorkloadRecommendation(now, made)
        self._recommendations, self._computed_at = fresh, now
        return fresh

    @staticmethod
    def _container(name: str, specs: list[tuple[float | None, float | None, float | None]],
                   history: ContainerHistory, config: RightsizingConfig) -> ContainerRecommendation:
        made = recommend(history, config.recommendation)
        seconds = made.confidence * config.recommendation.confidence_interval
        cpu_request = _most_common([s[0] for s in specs])
        memory_request = _most_common([s[1] for s in specs])
        return ContainerRecommendation(
            name=name, pods=len(specs), cpu_request=cpu_request, memory_request=memory_request,
            memory_limit=_most_common([s[2] for s in specs]), recommendation=made, history_seconds=seconds,
            cpu_verdict=verdict(cpu_request, made.cpu, seconds, config.min_history,
                                CPU_BUCKETS.end(0) * (1.0 + config.recommendation.cpu_margin)),
            memory_verdict=verdict(memory_request, made.memory, seconds, config.min_history,
                                   MEMORY_BUCKETS.end(0) * (1.0 + config.recommendation.memory_margin)))

    def forget_unseen(self, now: float, short_retention: float) -> list[WorkloadRef]:
        """Drop the histories of workloads no pod was selected for since ``short_retention`` seconds (bare pods
        and Jobs, see :data:`SHORT_LIVED_KINDS`) or a half-life (the others); returns them (their checkpoints go
        too)."""
        long_retention = max(short_retention, self.config.history.half_life)
        gone = [ref for ref, seen in self._last_seen.items()
                if now - seen > (short_retention if ref.kind in SHORT_LIVED_KINDS else long_retention)]
        for ref in gone:
            del self._last_seen[ref]
            self._histories.pop(ref, None)
            self._recommendations.pop(ref, None)
        return gone

    # ---- checkpoints --------------------------------------------------------------------------------------------
    def workloads(self) -> list[WorkloadRef]:
        return list(self._histories)

    def export(self, ref: WorkloadRef) -> dict[str, dict[str, Any]]:
        """Container name -> :meth:`ContainerHistory.to_dict` of one workload ({} when it has none)."""
        return {name: history.to_dict() for name, history in self._histories.get(ref, {}).items()}

    def restore(self, ref: WorkloadRef, containers: Mapping[str, Any], now: float) -> None:
        """Put back what :meth:`export` wrote (a checkpoint read on start or by a new leader); containers with a
        history already are kept as they are (theirs is newer). ValueError naming the container when one is
        malformed; nothing of the workload is restored then."""
        if not isinstance(containers, Mapping):
            raise ValueError("a workload's checkpoint must map container names to histories")
        restored = {}
        for name, data in containers.items():
            try:
                restored[str(name)] = ContainerHistory.from_dict(data, self.config.history)
            except ValueError as exc:
                raise ValueError(f"container {name!r}: {exc}") from None
        if not restored:
            return
        mine = self._histories.setdefault(ref, {})
        for name, history in restored.items():
            mine.setdefault(name, history)
        self._last_seen.setdefault(ref, now)
        self._computed_at = None

    def __len__(self) -> int:
        """Container histories held."""
        return sum(len(containers) for containers in self._histories.values())
