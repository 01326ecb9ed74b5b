import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.compute.histogram_support import assert_percentiles_survive_quantisation
from kubemeter.compute.histogram import (
    CPU_BUCKETS,
    MAX_DECAY_EXPONENT,
    MEMORY_BUCKETS,
    DecayingHistogram,
    ExponentialBuckets,
)

HOUR = 3600.0
cores = st.floats(min_value=0.0, max_value=2000.0, allow_nan=False)


def test_buckets_are_vpas_exponential_scheme():
    # VPA: first bucket [0, first), bucket n >= 1 starts at first * (ratio**n - 1) / (ratio - 1), each 5% wider
    for buckets, first, top in ((CPU_BUCKETS, 0.01, 1000.0), (MEMORY_BUCKETS, 1e7, 1e12)):
        starts = buckets.starts
        assert starts[0] == 0.0 and starts[1] == pytest.approx(first)
        widths = [b - a for a, b in zip(starts, starts[1:])]
        assert all(w2 / w1 == pytest.approx(1.05) for w1, w2 in zip(widths, widths[1:]))
        assert starts[-2] < top <= starts[-1]
        assert buckets.count == 176


@given(cores)
def test_a_value_falls_in_the_bucket_that_spans_it(value):
    index = CPU_BUCKETS.index(value)
    assert CPU_BUCKETS.starts[index] <= value
    assert index == CPU_BUCKETS.count - 1 or value < CPU_BUCKETS.starts[index + 1]


def test_invalid_bucket_scheme_is_refused():
    with pytest.raises(ValueError, match="ratio > 1"):
        ExponentialBuckets(0.01, 1.0, 10.0)


@given(st.lists(cores, min_size=1, max_size=60), st.floats(min_value=0.0, max_value=100.0))
def test_percentile_is_the_end_of_the_bucket_of_the_nearest_rank_sample(values, percentile):
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    for value in values:
        histogram.add(value, 0.0)  # one time: every sample weighs exactly 1
    ordered = sorted(values)
    rank = max(math.ceil(percentile / 100.0 * len(values)), 1)
    assert histogram.percentile(percentile) == CPU_BUCKETS.end(CPU_BUCKETS.index(ordered[rank - 1]))


@given(st.lists(st.tuples(cores, st.floats(min_value=0.0, max_value=50 * HOUR)), min_size=1, max_size=40))
def test_percentiles_grow_with_the_percentile(samples):
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    for value, t in sorted(samples, key=lambda s: s[1]):
        histogram.add(value, t)
    results = [histogram.percentile(p) for p in range(0, 101, 5)]
    assert results == sorted(results)


@given(st.lists(st.tuples(cores, st.integers(min_value=0, max_value=300 * 3600)), min_size=1, max_size=40),
       st.integers(min_value=-100_000, max_value=500_000).map(lambda half_lives: half_lives * HOUR))
def test_only_relative_times_matter(samples, offset):
    # Shifted by whole half-lives (so that the weights are the same floats), and across renormalisations (300
    # half-lives > MAX_DECAY_EXPONENT), whose rescaling by powers of two is exact.
    def percentiles(shift):
        histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
        for value, t in sorted(samples, key=lambda s: s[1]):
            histogram.add(value, t + shift)
        return [histogram.percentile(p) for p in (0, 10, 50, 90, 100)]

    assert percentiles(offset) == percentiles(0.0)


def test_a_sample_half_a_life_older_weighs_half():
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    histogram.add(1.0, 0.0)
    histogram.add(3.0, HOUR)  # weighs 2: the older 1.0 is a third of the total
    assert histogram.percentile(33.0) == CPU_BUCKETS.end(CPU_BUCKETS.index(1.0))
    assert histogram.percentile(34.0) == CPU_BUCKETS.end(CPU_BUCKETS.index(3.0))


def test_weights_stay_finite_and_old_samples_are_forgotten_over_many_half_lives():
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=60.0)
    histogram.add(5.0, 0.0)
    for step in range(1, 60):  # 0.1 core every 10 s for 10 half-lives: the outlier still counts
        histogram.add(0.1, step * 10.0)
    assert histogram.percentile(100.0) == CPU_BUCKETS.end(CPU_BUCKETS.index(5.0))
    for step in range(60, 6 * 3 * MAX_DECAY_EXPONENT):  # 3 * MAX_DECAY_EXPONENT half-lives (6 steps each)
        histogram.add(0.1, step * 10.0)
    assert histogram.percentile(100.0) == CPU_BUCKETS.end(CPU_BUCKETS.index(0.1))
    assert len(histogram) == 1
    assert math.isfinite(histogram.to_dict()["total"])


def test_subtract_takes_a_sample_back():
    histogram = DecayingHistogram(MEMORY_BUCKETS, half_life=HOUR)
    histogram.add(100e6, 10.0)
    histogram.add(500e6, 20.0)
    histogram.subtract(500e6, 20.0)
    assert histogram.percentile(100.0) == MEMORY_BUCKETS.end(MEMORY_BUCKETS.index(100e6))
    assert len(histogram) == 1


def test_empty_histogram_has_no_percentile_not_zero():
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    assert histogram.percentile(90.0) is None and histogram.is_empty()
    restored = DecayingHistogram.from_dict(histogram.to_dict(), CPU_BUCKETS, HOUR)
    assert restored.is_empty()


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf])
def test_bad_samples_are_refused(value):
    with pytest.raises(ValueError, match="finite non-negative"):
        DecayingHistogram(CPU_BUCKETS, half_life=HOUR).add(value, 0.0)


def test_bad_percentile_and_half_life_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        DecayingHistogram(CPU_BUCKETS, half_life=HOUR).percentile(101.0)
    with pytest.raises(ValueError, match="half-life"):
        DecayingHistogram(CPU_BUCKETS, half_life=0.0)


@given(st.lists(st.tuples(cores, st.floats(min_value=0.0, max_value=30 * HOUR)), min_size=1, max_size=80))
def test_checkpoint_round_trip_keeps_percentiles_within_a_bucket(samples):
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    for value, t in sorted(samples, key=lambda s: s[1]):
        histogram.add(value, t)
    document = json.loads(json.dumps(histogram.to_dict()))
    restored = DecayingHistogram.from_dict(document, CPU_BUCKETS, HOUR)
    assert_percentiles_survive_quantisation(histogram, restored)
    assert len(document["weights"]) <= CPU_BUCKETS.count


def test_checkpoint_round_trip_is_exact_when_weights_are_in_round_ratios():
    histogram = DecayingHistogram(CPU_BUCKETS, half_life=HOUR)
    for value, t in ((0.5, 0.0), (0.5, 0.0), (2.0, HOUR), (0.1, 2 * HOUR)):  # weights 2, 2 and 4
        histogram.add(value, t)
    restored = DecayingHistogram.from_dict(histogram.to_dict(), CPU_BUCKETS, HOUR)
    assert [restored.percentile(p) for p in range(0, 101, 5)] == [histogram.percentile(p) for p in range(0, 101, 5)]


@pytest.mark.parametrize("document, message", [
    ({"reference": 0.0, "latest": 0.0, "total": 1.0}, "expected the keys"),
    ({"reference": 0.0, "latest": 0.0, "total": 1.0, "weights": {"176": 10}}, "bucket '176'"),
    ({"reference": 0.0, "latest": 0.0, "total": 1.0, "weights": {"3": -1}}, "not a positive integer"),
    ({"reference": 0.0, "latest": 0.0, "total": -1.0, "weights": {}}, "total weight"),
    ({"reference": None, "latest": 0.0, "total": 1.0, "weights": {}}, "both"),
])
def test_malformed_checkpoints_are_refused_saying_why(document, message):
    with pytest.raises(ValueError, match=message):
        DecayingHistogram.from_dict(document, CPU_BUCKETS, HOUR)
