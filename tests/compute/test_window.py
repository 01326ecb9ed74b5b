import pytest

from kubemeter.compute.window import Window


def filled(values, seconds=1000.0, **kwargs) -> Window:
    window = Window(seconds, **kwargs)
    for t, value in enumerate(values, start=1):
        window.add(float(t), value)
    return window


def test_avg_max_and_percentiles_match_a_hand_computation():
    # values 1..10 in shuffled order; percentiles interpolate between closest ranks (rank = p/100 * (n-1))
    stats = filled([7, 3, 10, 1, 5, 9, 2, 8, 4, 6]).stats(10.0, (50, 90, 95, 100, 1))
    assert stats.samples == 10
    assert stats.avg == 5.5
    assert stats.max == 10
    assert stats.percentiles == pytest.approx({50: 5.5, 90: 9.1, 95: 9.55, 100: 10.0, 1: 1.09})


def test_single_sample_is_every_percentile():
    stats = filled([42.0]).stats(1.0, (50, 99.9))
    assert (stats.avg, stats.max, stats.percentiles) == (42.0, 42.0, {50: 42.0, 99.9: 42.0})


def test_samples_older_than_the_window_are_evicted_left_open_like_promql():
    window = Window(30.0)
    for t in range(0, 101, 10):
        window.add(float(t), float(t))
    stats = window.stats(100.0, (50,))
    # (70, 100]: the sample at exactly 70 is out, as in a PromQL range selector
    assert stats.samples == 3
    assert stats.avg == 90.0
    assert len(window) == 3


def test_stats_later_than_the_last_sample_drop_what_aged_out():
    window = filled([1.0, 2.0, 3.0], seconds=10.0)
    assert window.stats(12.5, (50,)).samples == 1
    assert window.stats(100.0, (50,)) is None
    assert Window(10.0).stats(0.0, (50,)) is None


def test_memory_is_bounded_by_max_samples_keeping_the_newest():
    window = filled([float(v) for v in range(100)], max_samples=5)
    assert len(window) == 5
    stats = window.stats(100.0, (50,))
    assert (stats.samples, stats.max, stats.avg) == (5, 99.0, 97.0)


def test_clock_stepping_back_drops_the_samples_from_the_abandoned_future():
    window = filled([1.0, 2.0, 3.0])  # t = 1, 2, 3
    window.add(2.0, 10.0)
    stats = window.stats(3.0, (50,))
    assert (stats.samples, stats.max, stats.avg) == (2, 10.0, 5.5)


def test_window_length_can_change_and_applies_on_the_next_read():
    window = filled([1.0, 2.0, 3.0, 4.0])
    window.seconds = 2.0
    assert window.stats(4.0, (50,)).samples == 2
