"""Go's ``time.ParseDuration``, which CEL's ``duration()`` uses on the real API server.

The simulator's own parser, on purpose not the operator's (``kubemeter.timefmt``): with one shared parser a bug
in it would pass the schema tests on both sides unseen.
"""

from __future__ import annotations

_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000,  # U+00B5 micro sign and U+03BC Greek mu
          "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_LIMIT = 1 << 63  # magnitudes are counted unsigned; the result must fit an int64
_DIGITS = "0123456789"


class GoDurationError(ValueError):
    """Worded as Go's: ``time: invalid duration "x"``, ``time: missing unit ...``, ``time: unknown unit ...``."""


def _quote(text: str) -> str:
    """Go's time.quote: printable ASCII as is (quotes and backslashes escaped), any other byte as \\xNN."""
    out = []
    for char in text:
        if char < " " or ord(char) >= 0x80:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
        else:
            out.append("\\" + char if char in '"\\' else char)
    return '"' + "".join(out) + '"'


def _leading_int(text: str) -> tuple[int, str]:
    """The digits at the start of ``text`` as an integer; GoDurationError (by the caller) past 2^63."""
    value, index = 0, 0
    while index < len(text) and text[index] in _DIGITS:
        value = value * 10 + int(text[index])
        if value > _LIMIT:
            raise OverflowError
        index += 1
    return value, text[index:]


def _leading_fraction(text: str) -> tuple[int, int, str]:
    """Fraction digits as (value, 10^digits kept, rest); digits that would overflow are skipped, as in Go."""
    value, scale, index, overflowed = 0, 1, 0, False
    while index < len(text) and text[index] in _DIGITS:
        if not overflowed:
            candidate = value * 10 + int(text[index])
            if value > (_LIMIT - 1) // 10 or candidate > _LIMIT:
                overflowed = True
            else:
                value, scale = candidate, scale * 10
        index += 1
    return value, scale, text[index:]


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration such as ``1h30m``, ``-1.5s``, ``.5ms`` or ``0``; GoDurationError otherwise."""
    invalid = GoDurationError(f"time: invalid duration {_quote(text)}")
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if rest[0] != "." and rest[0] not in _DIGITS:
            raise invalid
        before = len(rest)
        try:
            whole, rest = _leading_int(rest)
        except OverflowError:
            raise invalid from None
        has_whole = len(rest) != before
        fraction, scale, has_fraction = 0, 1, False
        if rest.startswith("."):
            rest = rest[1:]
            before = len(rest)
            fraction, scale, rest = _leading_fraction(rest)
            has_fraction = len(rest) != before
        if not has_whole and not has_fraction:
            raise invalid
        end = 0
        while end < len(rest) and rest[end] != "." and rest[end] not in _DIGITS:
            end += 1
        if end == 0:
            raise GoDurationError(f"time: missing unit in duration {_quote(text)}")
        unit, rest = rest[:end], rest[end:]
        if unit not in _NANOS:
            raise GoDurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(text)}")
        nanos = _NANOS[unit]
        if whole > _LIMIT // nanos:
            raise invalid
        value = whole * nanos
        if fraction:
            value += int(float(fraction) * (float(nanos) / float(scale)))  # float64, as Go: exact to the ns
            if value > _LIMIT:
                raise invalid
        total += value
        if total > _LIMIT:
            raise invalid
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total
