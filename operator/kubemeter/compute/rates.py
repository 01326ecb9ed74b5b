"""Per-second rates from cumulative counters (CPU core-seconds, network bytes); docs/architecture.md, "Rates from
counters"."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

# Start times come from different payload formats (float text, RFC 3339 seconds); closer than this is the same start.
_START_TIME_TOLERANCE = 1e-3


def _finite(x: object) -> bool:
    # type() rather than isinstance(): rejects bool and None cheaply on a path taken ~100k times a cycle.
    return (type(x) is float or type(x) is int) and math.isfinite(x)  # type: ignore[arg-type]


class CounterRates:
    """CPU (or network) rates from cumulative counters, keyed by an opaque hashable key
    (e.g. ``(pod_uid, container_name)``).

    A restart (counter going down, or a changed start time) never yields a negative rate or a spike: the
    rate is taken from the new start time's zero point when that lies after the previous sample, and is
    ``None`` otherwise, the new sample becoming the baseline. A timestamp that does not advance (the kubelet
    served the same sample again) yields the rate of the two latest samples again, as metrics-server does; one
    that goes backwards (kubelet clock stepped) yields ``None`` and re-baselines. Odd input (NaN, inf, a
    negative counter, non-numbers) yields ``None`` and leaves the state untouched; nothing here raises.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # key -> (value, timestamp, start_time, seen_at, the rate that sample gave)
        self._last: dict[Hashable, tuple[float, float, float | None, float, float | None]] = {}

    def observe(
        self,
        key: Hashable,
        value: float,
        timestamp: float,
        start_time: float | None = None,
        interval: float | None = None,
        seen_at: float | None = None,
    ) -> float | None:
        """The rate since the previous sample of ``key``, or ``None`` when there is no sound one.

        A key first seen uses ``(start_time, 0)`` as its previous point when ``start_time`` lies within
        ``interval`` before ``timestamp`` (a container that started since the last cycle, as metrics-server
        does). ``seen_at`` is the caller's clock for :meth:`prune` (default: ``timestamp``); pass it when
        kubelet clocks may be skewed, so that a skewed node's state is not pruned every cycle.
        """
        if not (_finite(value) and _finite(timestamp)) or value < 0:
            return None
        if start_time is not None and not _finite(start_time):
            start_time = None
        seen = seen_at if seen_at is not None and _finite(seen_at) else timestamp
        previous = self._last.get(key)
        if previous is None:
            earliest = timestamp - interval if interval is not None and _finite(interval) else math.inf
            rate = _rate_from_start(value, timestamp, start_time, earliest)
        else:
            prev_value, prev_timestamp, prev_start, _, prev_rate = previous
            restarted = value < prev_value or (
                start_time is not None
                and prev_start is not None
                and abs(start_time - prev_start) > _START_TIME_TOLERANCE
            )
            if restarted:
                rate = _rate_from_start(value, timestamp, start_time, prev_timestamp)
            elif timestamp == prev_timestamp:
                # The same sample again (kubelet cache, scrapes closer than its housekeeping): nothing new, so
                # the older baseline stays, and so does its rate (else the pod would drop out of the sums).
                self._last[key] = previous[:3] + (seen, prev_rate)
                return prev_rate
            elif timestamp < prev_timestamp:
                rate = None
            else:
                rate = _bounded((value - prev_value) / (timestamp - prev_timestamp))
        self._last[key] = (value, timestamp, start_time, seen, rate)
        return rate

    def prune(self, older_than: float, keep: Callable[[Hashable], bool] | None = None) -> None:
        """Forget keys last observed (``seen_at``) before ``older_than`` (pods and containers that went away)
        and, in the same pass, those ``keep`` rejects (e.g. containers of pods that left the cluster)."""
        self._last = {
            key: state
            for key, state in self._last.items()
            if state[3] >= older_than and (keep is None or keep(key))
        }

    def __len__(self) -> int:
        return len(self._last)


def _rate_from_start(value: float, timestamp: float, start_time: float | None, earliest: float) -> float | None:
    """The rate since ``(start_time, 0)`` when the counter started after ``earliest``, else ``None``."""
    if start_time is None or not earliest <= start_time < timestamp:
        return None
    return _bounded(value / (timestamp - start_time))


def _bounded(rate: float) -> float | None:
    # Huge counters over a tiny time step overflow to inf; that is no rate either.
    return rate if rate < math.inf else None
