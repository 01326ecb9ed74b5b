"""Durations as log lines show them."""

import re

import pytest

from kubemeter.timefmt import DURATION_PATTERN, format_span, parse_duration


@pytest.mark.parametrize(("seconds", "shown"), [
    (9.99446, "9.99s"),  # a request's remaining deadline: no five decimals
    (0.5, "0.5s"), (0.25, "0.25s"), (8.0, "8s"), (300.0, "5m"), (3600.0, "1h"), (90.0, "1m30s"),
    (123.4, "2m3s"),  # beyond 100 s a fraction says nothing
])
def test_a_duration_in_a_log_line_is_short_and_readable(seconds, shown):
    assert format_span(seconds) == shown


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("0s", 0.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("500ms", 0.5)])
def test_a_go_duration_parses_and_matches_the_crds_pattern(text, seconds):
    assert parse_duration(text) == seconds
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", "00", "-1s", "1", "1d", "s", "1h 30m"])
def test_what_is_not_a_go_duration_is_refused_by_both(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
    assert not re.fullmatch(DURATION_PATTERN, text)
