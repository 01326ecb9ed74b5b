"""Right-sizing on synthetic usage profiles whose answers are known from the profile itself."""

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.compute.histogram_support import assert_percentiles_survive_quantisation
from kubemeter.compute.histogram import CPU_BUCKETS, MEMORY_BUCKETS, ExponentialBuckets
from kubemeter.compute.rightsizing import (
    DAY,
    STRATEGIES,
    ContainerHistory,
    HistoryConfig,
    recommend,
)

START = 1_700_006_400.0  # a UTC midnight: memory intervals are whole days of the profile
HOUR = 3600.0
MB = 1e6
VPA, SIMPLE = STRATEGIES["vpa"], STRATEGIES["simple"]


def feed(history, profile, seconds, interval, start=START):
    """Samples of ``profile(t) -> (cores, bytes)`` every ``interval`` for ``seconds`` from ``start`` (``seconds`` of
    history: the first sample covers none); the time of the last."""
    steps = int(seconds / interval)
    for step in range(steps + 1):
        t = start + step * interval
        history.add(t, *profile(t - START), interval)
    return start + steps * interval


def bucket_span(buckets: ExponentialBuckets, value: float) -> tuple[float, float]:
    index = buckets.index(value)
    return buckets.starts[index], buckets.end(index)


def within_a_bucket_above(buckets, figure, value, margin):
    """``figure`` is ``value`` plus ``margin``, rounded up to the end of ``value``'s bucket (what VPA reports)."""
    start, end = bucket_span(buckets, value)
    return value * (1 + margin) <= figure <= end * (1 + margin) + 1e-9


def steady(t):
    return 0.25, 200 * MB


def test_steady_usage_gives_usage_plus_the_margin_within_a_bucket():
    history = ContainerHistory()
    feed(history, steady, 2 * DAY, 60.0)
    result = recommend(history)
    assert within_a_bucket_above(CPU_BUCKETS, result.cpu.target, 0.25, 0.15)
    assert within_a_bucket_above(MEMORY_BUCKETS, result.memory.target, 200 * MB, 0.15)
    assert within_a_bucket_above(MEMORY_BUCKETS, result.memory_limit, 200 * MB, 0.15)
    assert result.cpu.lower_bound <= result.cpu.target <= result.cpu.upper_bound
    assert result.confidence == pytest.approx(2.0)


def diurnal(t):
    phase = math.sin(2 * math.pi * t / DAY)
    return 0.5 + 0.4 * phase, 300 * MB + 100 * MB * phase


def test_diurnal_cpu_target_is_near_the_days_p90_and_memory_sized_on_the_daily_peak():
    history = ContainerHistory()
    feed(history, diurnal, 7 * DAY, 300.0)
    result = recommend(history)
    day = sorted(diurnal(t)[0] for t in range(0, int(DAY), 300))
    p85, p95 = day[int(0.85 * len(day))], day[int(0.95 * len(day))]
    # Recent hours weigh up to twice as much as the same hour a day earlier: between the day's p85 and p95
    assert p85 * 1.15 <= result.cpu.target <= bucket_span(CPU_BUCKETS, p95)[1] * 1.15
    p40, p60 = day[int(0.40 * len(day))], day[int(0.60 * len(day))]
    lower_bound_base = result.cpu.lower_bound / 1.15 / (1 + 0.001 / 7) ** -2  # p50, after a week's confidence
    assert p40 <= lower_bound_base <= bucket_span(CPU_BUCKETS, p60)[1]
    daily_peak = max(diurnal(t)[1] for t in range(0, int(DAY), 300))
    assert within_a_bucket_above(MEMORY_BUCKETS, result.memory.target, daily_peak, 0.15)


def bursty(t):
    return (1.5 if t % HOUR < 4 * 60 else 0.1), 150 * MB  # 4 minutes an hour: 6.7% of the time


def test_bursts_below_ten_percent_of_the_time_stay_out_of_the_vpa_target_but_not_out_of_its_upper_bound():
    history = ContainerHistory()
    feed(history, bursty, 3 * DAY, 60.0)
    vpa, simple = recommend(history, VPA), recommend(history, SIMPLE)
    assert within_a_bucket_above(CPU_BUCKETS, vpa.cpu.target, 0.1, 0.15)
    assert vpa.cpu.upper_bound >= 1.5 * 1.15
    # KRR's simple strategy: CPU p95 without a margin catches the bursts
    assert within_a_bucket_above(CPU_BUCKETS, simple.cpu.target, 1.5, 0.0)


def leaking(t):
    return 0.1, 200 * MB + 100 * MB * t / DAY  # +100 MB a day


def test_leaking_memory_target_follows_the_growing_peaks_as_old_ones_lose_weight():
    decayed, undecayed = ContainerHistory(), ContainerHistory(HistoryConfig(half_life=1000 * DAY))
    for history in (decayed, undecayed):
        end = feed(history, leaking, 5 * DAY - 600.0, 600.0)
        assert within_a_bucket_above(MEMORY_BUCKETS, recommend(history).memory.target, leaking(end - START)[1], 0.15)
        end = feed(history, leaking, 5 * DAY, 600.0, start=end)
    peaks = [leaking((day + 1) * DAY - 600.0)[1] for day in range(10)]  # each day's last sample
    # With a 24 h half-life the latest peak weighs half of all: the p90 is the latest peak
    assert within_a_bucket_above(MEMORY_BUCKETS, recommend(decayed).memory.target, peaks[-1], 0.15)
    # Without decay (a half-life of years) the p85 of ten daily peaks is the ninth, a bucket or two below the
    # latest, and the p45 the fifth (p90 and p50 would be ties); with decay, the latest and one of the last two.
    assert undecayed.memory_peaks.percentile(85.0) == bucket_span(MEMORY_BUCKETS, peaks[-2])[1]
    assert decayed.memory_peaks.percentile(85.0) == bucket_span(MEMORY_BUCKETS, peaks[-1])[1]
    assert undecayed.memory_peaks.percentile(45.0) == bucket_span(MEMORY_BUCKETS, peaks[4])[1]
    assert decayed.memory_peaks.percentile(45.0) >= peaks[-2]


def test_short_history_has_low_confidence_and_wide_bounds():
    short, week = ContainerHistory(), ContainerHistory()
    feed(short, steady, 600.0, 10.0)
    feed(week, steady, 7 * DAY, 300.0)
    ten_minutes, seven_days = recommend(short), recommend(week)
    assert ten_minutes.confidence == pytest.approx(600.0 / DAY) and seven_days.confidence == pytest.approx(7.0)
    assert ten_minutes.cpu.target == seven_days.cpu.target  # same usage, same target
    for result in (ten_minutes, seven_days):
        assert result.cpu.lower_bound <= result.cpu.target <= result.cpu.upper_bound
    assert ten_minutes.cpu.upper_bound / ten_minutes.cpu.target > 100  # VPA: p95 * (1 + 1/confidence)
    assert seven_days.cpu.upper_bound / seven_days.cpu.target < 1.2
    assert ten_minutes.memory.lower_bound < seven_days.memory.lower_bound


def test_history_is_the_time_watched_not_the_interval_of_a_sample():
    """An hour-long interval credits no hour to its first sample, and cycles closer than the interval (a new spec
    runs one at once) cover only the time between them."""
    history = ContainerHistory()
    assert history.add(START, 0.1, 100 * MB, HOUR)
    first = recommend(history)
    assert first.confidence == 0.0, "one sample: nothing watched yet"
    assert first.cpu.lower_bound <= first.cpu.target <= first.cpu.upper_bound, "finite bounds, however wide"
    assert math.isfinite(first.cpu.upper_bound) and math.isfinite(first.memory.upper_bound)
    assert history.add(START + 120.0, 0.1, 100 * MB, HOUR)  # two minutes later
    assert history.confidence() * DAY == pytest.approx(120.0)
    assert history.add(START + 120.0 + 3 * HOUR, 0.1, 100 * MB, HOUR)  # two cycles missed: one interval covered
    assert history.confidence() * DAY == pytest.approx(120.0 + HOUR)


def test_confidence_counts_only_the_time_samples_cover():
    history = ContainerHistory()
    end = feed(history, steady, DAY, 60.0)
    feed(history, steady, DAY, 60.0, start=end + DAY)  # a day without samples between two days of them
    # the first sample after the gap covers one interval, not the day missed
    assert history.confidence() == pytest.approx(2.0 + 60.0 / DAY)
    assert history.last_sample - history.first_sample_start == pytest.approx(3 * DAY)


def test_pods_of_a_workload_share_its_history_cpu_per_pod_memory_the_highest_pod():
    history = ContainerHistory()
    pods = ((0.1, 100 * MB), (0.1, 150 * MB), (1.0, 400 * MB))  # one busy pod of three
    for step in range(int(DAY / 60.0) + 1):
        for cpu, memory in pods:
            assert history.add(START + step * 60.0, cpu, memory, 60.0)
    result = recommend(history)
    assert within_a_bucket_above(CPU_BUCKETS, result.cpu.target, 1.0, 0.15)  # a third of the samples: above p90
    assert history.cpu.percentile(50.0) == bucket_span(CPU_BUCKETS, 0.1)[1]
    assert within_a_bucket_above(MEMORY_BUCKETS, result.memory.target, 400 * MB, 0.15)
    # a day of three pods is a day of history, not three: what a gap in the cycles would lower
    assert result.confidence == pytest.approx(1.0) and history.covered_seconds == pytest.approx(DAY)


def test_target_follows_a_step_change_up_at_once_and_down_within_a_few_half_lives():
    config = HistoryConfig(half_life=HOUR)
    down = ContainerHistory(config)
    end = feed(down, lambda t: (1.0, 100 * MB), 3 * HOUR, 60.0)
    end = feed(down, lambda t: (0.2, 100 * MB), 2 * HOUR, 60.0, start=end)
    assert recommend(down).cpu.target >= 1.15  # two half-lives on, the old usage is still more than 10%
    feed(down, lambda t: (0.2, 100 * MB), 2 * HOUR, 60.0, start=end)
    assert within_a_bucket_above(CPU_BUCKETS, recommend(down).cpu.target, 0.2, 0.15)

    up = ContainerHistory(config)
    end = feed(up, lambda t: (0.2, 100 * MB), 3 * HOUR, 60.0)
    feed(up, lambda t: (1.0, 100 * MB), HOUR / 2, 60.0, start=end)
    assert within_a_bucket_above(CPU_BUCKETS, recommend(up).cpu.target, 1.0, 0.15)


def test_min_and_max_bounds_apply_last_to_every_figure():
    history = ContainerHistory()
    feed(history, steady, 600.0, 10.0)  # short: an upper bound far above the target
    config = dataclasses.replace(VPA, cpu_min=0.5, cpu_max=2.0, memory_max=100 * MB)
    result = recommend(history, config)
    assert (result.cpu.lower_bound, result.cpu.target, result.cpu.upper_bound) == (0.5, 0.5, 2.0)
    assert (result.memory.target, result.memory.upper_bound, result.memory_limit) == (100 * MB,) * 3
    assert recommend(history).cpu.upper_bound > 2.0  # negative control: without the bounds


@pytest.mark.parametrize("overrides, message", [
    ({"cpu_min": 2.0, "cpu_max": 1.0}, "cpu_min 2.0 is above cpu_max 1.0"),
    ({"cpu_percentile": 150.0}, r"cpu_percentile must be a number in \[0, 100\]"),
    ({"lower_bound_percentile": 96.0}, "above upper_bound_percentile"),
    ({"memory_margin": -0.1}, "memory_margin must be a number >= 0"),
    ({"memory_max": math.nan}, "memory_max must be a number >= 0"),
    ({"confidence_interval": 0}, "confidence interval must be a positive number"),
])
def test_invalid_recommendation_settings_are_refused_saying_which(overrides, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(VPA, **overrides)


def test_simple_strategy_requests_the_highest_memory_peak_and_limits_there():
    history = ContainerHistory()
    feed(history, leaking, 3 * DAY, 600.0)
    result = recommend(history, SIMPLE)
    assert result.memory_limit == result.memory.target
    assert within_a_bucket_above(MEMORY_BUCKETS, result.memory.target, leaking(3 * DAY)[1], 0.15)


def test_no_samples_no_recommendation_and_missing_values_stay_missing():
    history = ContainerHistory()
    assert recommend(history).cpu is None and recommend(history).confidence == 0.0
    assert not history.add(START, None, None, 10.0)
    history.add(START, None, 100 * MB, 10.0)
    result = recommend(history)
    assert result.cpu is None and result.memory is not None
    assert not history.add(START - 10.0, 0.5, 100 * MB, 10.0)  # out of order: ignored
    assert recommend(history).cpu is None


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="sample interval"):
        ContainerHistory().add(START, 0.1, 1.0, 0.0)
    with pytest.raises(ValueError, match="CPU sample must be a finite non-negative number"):
        ContainerHistory().add(START, -0.1, 1.0, 10.0)
    history = ContainerHistory()
    history.add(START, 0.1, 100 * MB, 10.0)
    with pytest.raises(ValueError, match="memory sample must be a finite non-negative number, not inf"):
        history.add(START + 10.0, 0.1, math.inf, 10.0)
    assert history.last_sample == START and recommend(history).memory.target > 100 * MB  # left as it was
    with pytest.raises(ValueError, match="sample time"):
        ContainerHistory().add(math.nan, 0.1, 1.0, 10.0)


samples = st.lists(st.tuples(st.floats(min_value=1.0, max_value=3 * HOUR),
                             st.floats(min_value=0.0, max_value=64.0), st.floats(min_value=0.0, max_value=64e9)),
                   min_size=1, max_size=60)


@settings(deadline=None)
@given(samples)
def test_checkpoint_round_trip_keeps_the_recommendation_and_goes_on_from_there(steps):
    config = HistoryConfig(half_life=HOUR, memory_peak_interval=HOUR)
    history = ContainerHistory(config)
    t = START
    for dt, cpu, memory in steps:
        t += dt
        history.add(t, cpu, memory, dt)
    restored = ContainerHistory.from_dict(json.loads(json.dumps(history.to_dict())), config)
    before, after = recommend(history), recommend(restored)
    assert after.confidence == before.confidence
    assert (after.cpu is None, after.memory is None) == (before.cpu is None, before.memory is None)
    # the interval's peak goes on being replaced, not added again, after a restore
    for h in (history, restored):
        h.add(t + 1.0, 0.1, 70e9, 1.0)
    assert_percentiles_survive_quantisation(history.cpu, restored.cpu)
    assert_percentiles_survive_quantisation(history.memory_peaks, restored.memory_peaks)


def test_state_is_bounded_by_the_buckets_not_by_time():
    history = ContainerHistory()
    week = 7 * DAY
    # a sweep over every bucket, several times: the worst case for the state's size
    feed(history, lambda t: (0.01 * 1e5 ** (t % DAY / DAY), 1e7 * 1e5 ** (t % DAY / DAY)), week, 60.0)
    document = history.to_dict()
    assert len(history.cpu) <= CPU_BUCKETS.count and len(history.memory_peaks) <= MEMORY_BUCKETS.count
    assert len(document["cpu"]["weights"]) > 100  # the sweep did fill the buckets
    longest_weight = len('"175": 10000, ')
    assert len(json.dumps(document)) <= (CPU_BUCKETS.count + MEMORY_BUCKETS.count) * longest_weight + 500


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, "unsupported container history checkpoint version 2"),
    ({"coveredSeconds": -1.0}, "coveredSeconds"),
    ({"lastSample": None}, "both be set"),
    ({"lastSample": "yesterday"}, "lastSample 'yesterday' is not a finite time"),
])
def test_malformed_history_checkpoints_are_refused_saying_why(change, message):
    history = ContainerHistory()
    feed(history, steady, HOUR, 60.0)
    with pytest.raises(ValueError, match=message):
        ContainerHistory.from_dict({**history.to_dict(), **change})
