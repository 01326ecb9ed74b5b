"""The simulator's Go duration parser (CEL ``duration()``) against Go's time.ParseDuration semantics: its
accepted forms (fractions without a whole part, ``µs`` and ``μs``, signs, a bare ``0``), its int64 nanosecond
range and its three error messages."""

from __future__ import annotations

import pytest

from kubemeter_sim.apiserver.goduration import GoDurationError, parse_go_duration

S, MS, US, NS = 1_000_000_000, 1_000_000, 1_000, 1
MINUTE, HOUR = 60 * S, 3600 * S

VALID = [
    ("0", 0), ("-0", 0), ("+0", 0),
    ("5s", 5 * S), ("30s", 30 * S), ("1478s", 1478 * S), ("-5s", -5 * S), ("+5s", 5 * S), ("-0s", 0),
    ("5.0s", 5 * S), ("5.6s", 5 * S + 600 * MS), ("5.s", 5 * S), (".5s", 500 * MS), ("1.004s", 1 * S + 4 * MS),
    ("1.0040s", 1 * S + 4 * MS), ("100.00100s", 100 * S + 1 * MS),
    ("10ns", 10 * NS), ("11us", 11 * US), ("12µs", 12 * US), ("12μs", 12 * US), ("13ms", 13 * MS),
    ("14s", 14 * S), ("15m", 15 * MINUTE), ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE), ("10.5s4m", 4 * MINUTE + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * MINUTE + 3 * S + 400 * MS)), ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * S + 4 * MS + 5 * US + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * S + 425 * MS), ("52763797000ns", 52763797000),
    ("0.3333333333333333333h", 20 * MINUTE), ("0.100000000000000000000h", 6 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1),  # beyond a float's integers: counted exactly
    ("9223372036854775807ns", (1 << 63) - 1), ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1), ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036854775.808us", -(1 << 63)), ("-2562047h47m16.854775808s", -(1 << 63)),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * S + 372539827),
]


@pytest.mark.parametrize(("text", "nanoseconds"), VALID)
def test_go_accepts(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


INVALID = [
    ("", 'time: invalid duration ""'),
    ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1 m", 'time: unknown unit " m" in duration "1 m"'),
    ("1.5", 'time: missing unit in duration "1.5"'),
    ("5s-1s", 'time: unknown unit "s-" in duration "5s-1s"'),  # a unit runs to the next digit or dot
    ("1µ", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),  # non-ASCII shown byte by byte
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("9223372036854775.808us", None),  # one past the int64 range either way round
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775807ns1ns", None),
    ("99999999999999999999s", None),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_go_refuses_with_its_message(text: str, message: str | None) -> None:
    with pytest.raises(GoDurationError) as refused:
        parse_go_duration(text)
    assert str(refused.value) == (message or f'time: invalid duration "{text}"')
