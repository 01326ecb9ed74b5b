"""Durations as log lines show them."""

import pytest

from kubemeter.timefmt import format_span


@pytest.mark.parametrize(("seconds", "shown"), [
    (9.99446, "9.99s"),  # a request's remaining deadline: no five decimals
    (0.5, "0.5s"), (0.25, "0.25s"), (8.0, "8s"), (300.0, "5m"), (3600.0, "1h"), (90.0, "1m30s"),
    (123.4, "2m3s"),  # beyond 100 s a fraction says nothing
])
def test_a_duration_in_a_log_line_is_short_and_readable(seconds, shown):
    assert format_span(seconds) == shown
