import math

from hypothesis import given
from hypothesis import strategies as st

from kubemeter.compute.rates import CounterRates

KEY = ("pod-uid", "app")


def test_steady_counter_gives_the_rate_from_the_second_sample():
    rates = CounterRates()
    assert rates.observe(KEY, 100.0, 1000.0, start_time=0.0, interval=10.0) is None
    assert rates.observe(KEY, 100.5, 1010.0, start_time=0.0, interval=10.0) == 0.05
    assert rates.observe(KEY, 102.5, 1020.0, start_time=0.0, interval=10.0) == 0.2


def test_container_started_within_the_last_interval_uses_its_zero_point():
    rates = CounterRates()
    assert rates.observe(KEY, 1.5, 1000.0, start_time=995.0, interval=10.0) == 0.3


def test_container_started_long_ago_has_no_rate_on_first_sight():
    rates = CounterRates()
    assert rates.observe(KEY, 5000.0, 1000.0, start_time=100.0, interval=10.0) is None
    assert rates.observe(KEY, 9.0, 1000.0, start_time=None, interval=10.0) is None


def test_counter_going_down_is_a_restart_not_a_negative_rate():
    rates = CounterRates()
    rates.observe(KEY, 500.0, 1000.0)
    assert rates.observe(KEY, 2.0, 1010.0) is None
    # the restarted counter is the new baseline
    assert rates.observe(KEY, 3.0, 1020.0) == 0.1


def test_restart_between_scrapes_with_counter_above_the_old_value_is_no_spike():
    rates = CounterRates()
    rates.observe(KEY, 1.0, 1000.0, start_time=900.0)
    # The container restarted at 1005 and has used 4 core-seconds since: without the start time this would
    # read as (4 - 1) / 10 = 0.3; the truth is 4 / 5.
    assert rates.observe(KEY, 4.0, 1010.0, start_time=1005.0, interval=10.0) == 0.8
    assert rates.observe(KEY, 5.0, 1020.0, start_time=1005.0, interval=10.0) == 0.1


def test_restart_with_a_start_time_before_the_previous_sample_gives_no_rate():
    rates = CounterRates()
    rates.observe(KEY, 1.0, 1000.0, start_time=900.0)
    assert rates.observe(KEY, 40.0, 1010.0, start_time=950.0) is None
    assert rates.observe(KEY, 41.0, 1020.0, start_time=950.0) == 0.1


def test_the_same_sample_again_gives_the_same_rate_again_and_keeps_the_older_baseline():
    """Two scrapes within one kubelet housekeeping period: the second has nothing new, and the latest rate is
    still the one of the two latest samples (metrics-server serves it too); no rate would drop the pod out."""
    rates = CounterRates()
    assert rates.observe(KEY, 10.0, 1000.0) is None
    assert rates.observe(KEY, 10.0, 1000.0) is None, "a repeated first sample still has no rate"
    assert rates.observe(KEY, 11.0, 1010.0) == 0.1
    assert rates.observe(KEY, 11.0, 1010.0) == 0.1
    assert rates.observe(KEY, 13.0, 1020.0) == 0.2


def test_clock_going_backwards_gives_none_and_rebaselines():
    rates = CounterRates()
    rates.observe(KEY, 10.0, 1000.0)
    assert rates.observe(KEY, 11.0, 900.0) is None
    assert rates.observe(KEY, 12.0, 910.0) == 0.1


def test_odd_values_give_none_and_leave_the_state_alone():
    rates = CounterRates()
    rates.observe(KEY, 10.0, 1000.0)
    for value, timestamp in [(math.nan, 1005.0), (math.inf, 1005.0), (11.0, math.nan), (-1.0, 1005.0),
                             (None, 1005.0), ("11", 1005.0), (True, 1005.0)]:
        assert rates.observe(KEY, value, timestamp) is None
    assert rates.observe(KEY, 11.0, 1010.0, start_time=math.nan, interval=math.inf) == 0.1


def test_keys_are_independent():
    rates = CounterRates()
    rates.observe(("a", "app"), 10.0, 1000.0)
    rates.observe(("b", "app"), 50.0, 1000.0)
    assert rates.observe(("a", "app"), 11.0, 1010.0) == 0.1
    assert rates.observe(("b", "app"), 55.0, 1010.0) == 0.5


def test_prune_forgets_keys_not_seen_since_and_uses_the_callers_clock():
    rates = CounterRates()
    rates.observe(("gone", "app"), 1.0, 1000.0)
    # a node whose clock is an hour behind is still observed "now" by the caller
    rates.observe(("skewed", "app"), 1.0, 1000.0 - 3600, seen_at=1000.0)
    rates.observe(("alive", "app"), 1.0, 1030.0)
    rates.prune(older_than=1000.0)
    assert len(rates) == 3
    rates.prune(older_than=1010.0)
    assert len(rates) == 1
    assert rates.observe(("alive", "app"), 2.0, 1040.0) == 0.1
    assert rates.observe(("gone", "app"), 5.0, 1040.0) is None


def test_prune_also_forgets_the_keys_the_caller_rejects():
    rates = CounterRates()
    for pod in ("left-the-cluster", "running"):
        rates.observe((pod, "app"), 1.0, 1000.0)
    rates.observe(("stale", "app"), 1.0, 900.0)
    rates.prune(older_than=950.0, keep=lambda key: key[0] != "left-the-cluster")
    assert len(rates) == 1
    assert rates.observe(("running", "app"), 2.0, 1010.0) == 0.1


samples = st.lists(
    st.tuples(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
        st.one_of(st.floats(min_value=-1e10, max_value=1e10), st.just(math.nan)),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    ),
    max_size=30,
)


@given(samples, st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)))
def test_rates_are_never_negative_or_infinite_and_never_raise(sequence, interval):
    rates = CounterRates()
    for value, timestamp, start_time in sequence:
        rate = rates.observe(KEY, value, timestamp, start_time=start_time, interval=interval)
        assert rate is None or (math.isfinite(rate) and rate >= 0)
