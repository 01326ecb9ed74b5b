"""Go durations for the simulator distribution (kubemeter-sim imports this path); the operator's own code
imports them from kubemeter.timefmt, where they live with the RFC 3339 helpers."""

from kubemeter.timefmt import DURATION_PATTERN, format_duration, parse_duration

__all__ = ["DURATION_PATTERN", "format_duration", "parse_duration"]
