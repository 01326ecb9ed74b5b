"""Per-container usage profiles: CPU rate, its integral, and memory working set as pure functions of time.

Every profile is deterministic given its seed and the wall-clock time, so a counter read at any moment is
continuous with the previous read and a test can recompute what any scrape must have shown. CPU is
modelled by an antiderivative ``cpu_integral(t)`` in absolute time; the cumulative counter of a container
started at ``s`` is ``cpu_integral(t) - cpu_integral(s)``, which resets to ~0 whenever ``s`` moves
(a restart).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Literal

ProfileKind = Literal["steady", "diurnal", "bursty", "leak", "idle"]
PROFILE_KINDS: tuple[ProfileKind, ...] = ("steady", "diurnal", "bursty", "leak", "idle")

DIURNAL_PERIOD_SECONDS = 600.0
"""One simulated "day", compressed so that a demo visibly moves within minutes."""
BURST_SLOT_SECONDS = 15.0
BURST_PATTERN_SLOTS = 64
"""The bursty pattern repeats every 64 slots (16 min): prefix sums make its integral O(1)."""
RIPPLE_PERIOD_SECONDS = 97.0
RIPPLE_FRACTION = 0.05
"""Steady containers still wobble by +-5 %, as real ones do; integrated analytically."""


def seed_for(*parts: object) -> int:
    """A stable 64-bit seed from any identifying parts (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(slots=True)
class UsageProfile:
    """How one container uses CPU (cores) and memory (bytes) over absolute unix time."""

    kind: ProfileKind
    cpu_cores: float
    """Mean CPU rate in cores."""
    memory_bytes: float
    """Baseline working set in bytes (for ``leak``: the working set just after a start)."""
    seed: int = 0
    memory_limit_bytes: float | None = None
    leak_bytes_per_second: float = 0.0
    phase: float = field(init=False)
    _burst_prefix: list[float] = field(init=False, repr=False)
    _burst_levels: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.phase = rng.uniform(0.0, 2.0 * math.pi)
        self._burst_levels = []
        self._burst_prefix = [0.0]
        if self.kind == "bursty":
            # Mostly quiet at 40 % of the mean, with a fifth of the slots bursting to make up the mean.
            quiet, loud = 0.4 * self.cpu_cores, 2.8 * self.cpu_cores
            self._burst_levels = [loud if rng.random() < 0.2 else quiet for _ in range(BURST_PATTERN_SLOTS)]
            for level in self._burst_levels:
                self._burst_prefix.append(self._burst_prefix[-1] + level * BURST_SLOT_SECONDS)

    # -- CPU --------------------------------------------------------------------------------------------
    def cpu_rate(self, t: float) -> float:
        """Instantaneous CPU usage in cores at unix time ``t``."""
        if self.kind == "bursty":
            slot = int(math.floor(t / BURST_SLOT_SECONDS)) % BURST_PATTERN_SLOTS
            return self._burst_levels[slot]
        amplitude, period = self._wave()
        return self.cpu_cores * (1.0 + amplitude * math.sin(2.0 * math.pi * t / period + self.phase))

    def cpu_integral(self, t: float) -> float:
        """An antiderivative of :meth:`cpu_rate` (core-seconds); only differences are meaningful."""
        if self.kind == "bursty":
            slot_index = math.floor(t / BURST_SLOT_SECONDS)
            cycles, slot = divmod(int(slot_index), BURST_PATTERN_SLOTS)
            into_slot = t - slot_index * BURST_SLOT_SECONDS
            return (cycles * self._burst_prefix[-1] + self._burst_prefix[slot]
                    + self._burst_levels[slot] * into_slot)
        amplitude, period = self._wave()
        omega = 2.0 * math.pi / period
        return self.cpu_cores * (t - amplitude / omega * math.cos(omega * t + self.phase))

    def cpu_seconds(self, started_at: float, t: float) -> float:
        """Cumulative CPU of a container started at ``started_at``, read at ``t`` (0 before the start)."""
        if t <= started_at:
            return 0.0
        return self.cpu_integral(t) - self.cpu_integral(started_at)

    def mean_cpu_rate(self, t0: float, t1: float) -> float:
        """Average cores over ``[t0, t1]``: what a rate computed from two counter reads must show."""
        return (self.cpu_integral(t1) - self.cpu_integral(t0)) / (t1 - t0)

    def _wave(self) -> tuple[float, float]:
        if self.kind == "diurnal":
            return 0.8, DIURNAL_PERIOD_SECONDS
        return RIPPLE_FRACTION, RIPPLE_PERIOD_SECONDS

    # -- memory -----------------------------------------------------------------------------------------
    def memory_working_set(self, started_at: float, t: float) -> float:
        """Working set in bytes, whole pages (4 KiB), as the kernel reports it."""
        age = max(0.0, t - started_at)
        if self.kind == "leak":
            value = self.memory_bytes + self.leak_bytes_per_second * age
        elif self.kind == "diurnal":
            value = self.memory_bytes * (1.0 + 0.3 * math.sin(2.0 * math.pi * t / DIURNAL_PERIOD_SECONDS + self.phase))
        elif self.kind == "bursty":
            value = self.memory_bytes * (0.8 + 0.2 * self.cpu_rate(t) / max(self.cpu_cores, 1e-9))
        else:
            value = self.memory_bytes * (1.0 + 0.02 * math.sin(2.0 * math.pi * t / RIPPLE_PERIOD_SECONDS + self.phase))
        if self.memory_limit_bytes is not None:
            value = min(value, self.memory_limit_bytes)
        return float(int(value) // 4096 * 4096)

    # -- restarts ---------------------------------------------------------------------------------------
    def oom_period(self) -> float | None:
        """Seconds from a start to the OOM kill, for a leaking container with a limit; else ``None``."""
        if self.kind != "leak" or self.memory_limit_bytes is None or self.leak_bytes_per_second <= 0:
            return None
        return max(1.0, (self.memory_limit_bytes - self.memory_bytes) / self.leak_bytes_per_second)

    def current_start(self, first_started_at: float, t: float) -> tuple[float, int]:
        """The start time in effect at ``t`` and the number of OOM restarts since ``first_started_at``.

        A leaking container is killed when it reaches its limit and started again at once, so its
        start time advances by whole OOM periods; other profiles never restart on their own.
        """
        period = self.oom_period()
        if period is None or t <= first_started_at:
            return first_started_at, 0
        restarts = int((t - first_started_at) // period)
        return first_started_at + restarts * period, restarts


def make_profile(kind: ProfileKind, *, seed: int, memory_limit_bytes: float | None = None,
                 cpu_cores: float | None = None, memory_bytes: float | None = None) -> UsageProfile:
    """A profile of ``kind`` with sizes drawn deterministically from ``seed`` unless given."""
    rng = random.Random(seed)
    if kind == "idle":
        cores, memory = cpu_cores or rng.uniform(0.0005, 0.002), memory_bytes or rng.uniform(2e6, 8e6)
    else:
        cores, memory = cpu_cores or rng.uniform(0.01, 0.5), memory_bytes or rng.uniform(16e6, 256e6)
    leak_rate = 0.0
    if kind == "leak":
        # Without a limit the leak still ends in an OOM kill, at what the node would tolerate.
        memory_limit_bytes = memory_limit_bytes or memory * 4
        memory = min(memory, memory_limit_bytes * 0.25)
        leak_rate = (memory_limit_bytes - memory) / rng.uniform(180.0, 420.0)  # an OOM kill every 3-7 min
    if memory_limit_bytes is not None:
        memory = min(memory, memory_limit_bytes * 0.9)
    return UsageProfile(kind=kind, cpu_cores=cores, memory_bytes=memory, seed=seed,
                        memory_limit_bytes=memory_limit_bytes, leak_bytes_per_second=leak_rate)
