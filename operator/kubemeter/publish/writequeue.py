"""One keyed write queue: how the publishers' writes reach the API server (status.py: WorkloadMetrics and the
policy's status; checkpoints.py: MetricsCheckpoints), in the background, so a slow API server never delays a cycle.

- ``put`` queues a key's write; a newer write of the same key replaces an unsent older one, keeping its place in
  the queue, so under a QPS cap every key is eventually written and none is lost;
- one write per key in flight at a time, so a key's writes land in the order planned; the ``first`` key (the
  policy's own status) goes before the others; at most ``writers`` writes in flight, in rounds: the writers
  send until nothing is ready, and a write queued while one of them is still sending waits for the round to end
  (its slowest write, which the request timeout bounds);
- a write that failed (the ``failed`` callback says how, within the write's log context) is sent again later with
  a ``Backoff`` (a delay doubling per failure of the same key), unless a newer write of the key replaces it;
  without one it is dropped (the caller plans the next one);
- ``stalled_for``: how long writes have waited with none finishing (every request has a timeout, so a queue that
  makes no progress for long is wedged);
- ``clear`` (a step-down) drops what is queued and what waits to be sent again, and cancels what is in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubemeter.logcontext import log_context
from kubemeter.tasks import cancel_and_wait

K = TypeVar("K", bound=Hashable)
W = TypeVar("W")
_NO_KEY = object()  # no first key; or no queued write whose key has none in flight


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before a failed write is sent again: ``first``, doubling per failure of the same key up to ``most``."""

    first: float
    most: float

    def delay(self, failures: int) -> float:
        """Before the send after ``failures`` failures in a row (0: the first failure)."""
        return min(self.most, self.first * 2**failures)


class WriteQueue(Generic[K, W]):
    """Writes by key, sent by a background drain (see the module docstring)."""

    def __init__(
        self,
        send: Callable[[K, W], Awaitable[None]],
        *,
        name: str,
        clock: Callable[[], float],
        writers: int,
        failed: Callable[[K, W, Exception], None],
        sent: Callable[[K, W], None] = lambda key, write: None,
        retry: Backoff | None = None,
        first: object = _NO_KEY,
        fields: Callable[[K], Mapping[str, str]] = lambda key: {},
        context: Mapping[str, str] | None = None,
    ) -> None:
        """``send``: one write (raises when it failed); ``name``: the drain task's; ``failed``: called in the
        ``except`` of a failed write (so ``log.exception`` works), within its log context; ``sent``: after a
        write that worked; ``first``: the key sent before all others; ``fields``: a write's log context;
        ``context``: the drain's."""
        self._send, self._name, self._clock, self._writers = send, name, clock, writers
        self._failed, self._sent, self._retry = failed, sent, retry
        self._first, self._fields, self._context = first, fields, dict(context or {})
        self.queued: dict[K, W] = {}
        """The writes waiting to be sent, in the order they go (a replaced one keeps its place)."""
        self._sending: dict[K, W] = {}
        self._in_flight = 0
        self._retries: dict[K, tuple[asyncio.TimerHandle, int]] = {}  # timer, failures so far
        self._wakeup = asyncio.Event()
        self._drain: asyncio.Task | None = None
        self._progress_at = 0.0  # when a write last finished, or work arrived while there was none
        self.planned = 0
        """Writes put, those sent again after a failure included."""

    # ---- queueing ------------------------------------------------------------------------------------------
    def put(self, key: K, write: W) -> None:
        """Queue ``write`` (it replaces the key's unsent one, and its pending retry); ``start`` sends it."""
        self.planned += 1
        if not self.busy:
            self._progress_at = self._clock()
        self._cancel_retry(key)
        self.queued[key] = write
        self._wakeup.set()

    def discard(self, key: K) -> None:
        """Drop the key's queued write and its pending retry (not one in flight)."""
        self.queued.pop(key, None)
        self._cancel_retry(key)

    def sending(self, key: K) -> W | None:
        """The key's write in flight, if any."""
        return self._sending.get(key)

    def start(self) -> None:
        """Make sure the drain runs (after a ``clear`` too)."""
        if self._drain is None or self._drain.done():
            # A context of its own: it outlives the cycle that started it, whose log fields (cycle) it must not keep.
            self._drain = asyncio.create_task(self._run(), name=self._name, context=contextvars.Context())

    # ---- state ---------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Writes wait to be sent or are being sent (a failed one waiting to be sent again is not counted)."""
        return bool(self.queued) or self._in_flight > 0

    @property
    def pending(self) -> int:
        """Writes queued or in flight."""
        return len(self.queued) + self._in_flight

    def stalled_for(self) -> float:
        """Seconds the queue has had writes to send and finished none (0 when idle)."""
        return max(0.0, self._clock() - self._progress_at) if self.busy else 0.0

    @property
    def drain(self) -> asyncio.Task | None:
        return self._drain

    async def flush(self) -> None:
        """Wait until every queued write was sent (tests, benchmarks, shutdown)."""
        while self.queued or self._in_flight:
            await asyncio.sleep(0.01)

    # ---- sending -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        with log_context(**self._context):
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                await asyncio.gather(*(self._writer() for _ in range(self._writers)))

    def _next(self) -> tuple[K, W] | None:
        """The next write to send, taken off the queue: the first key's if queued and not in flight, else the
        oldest queued one whose key is not in flight; None when there is none."""
        if self._first in self.queued and self._first not in self._sending:
            key = self._first
        else:
            key = next((k for k in self.queued if k not in self._sending), _NO_KEY)
            if key is _NO_KEY:
                return None
        return key, self.queued.pop(key)

    async def _writer(self) -> None:
        while (taken := self._next()) is not None:
            key, write = taken
            self._sending[key] = write
            self._in_flight += 1
            with log_context(**self._fields(key)):
                try:
                    await self._send(key, write)
                except Exception as exc:  # noqa: BLE001 - reported by ``failed``, sent again later (``retry``)
                    self._progress_at = self._clock()
                    self._failed(key, write, exc)
                    self._retry_later(key, write)
                else:
                    self._progress_at = self._clock()
                    self._retries.pop(key, None)
                    self._sent(key, write)
                finally:
                    self._in_flight -= 1
                    if self._sending.get(key) is write:
                        del self._sending[key]
                    if key in self.queued:
                        self._wakeup.set()  # its next write waited for this one

    # ---- failed writes: sent again later -------------------------------------------------------------------
    def _retry_later(self, key: K, write: W) -> None:
        if self._retry is None or key in self.queued:
            return  # not sent again, or a newer write of the key is queued: it replaces this one
        _, failures = self._retries.pop(key, (None, 0))
        timer = asyncio.get_running_loop().call_later(self._retry.delay(failures), self._resend, key, write)
        self._retries[key] = (timer, failures + 1)

    def _resend(self, key: K, write: W) -> None:
        timer, failures = self._retries.pop(key)
        self.put(key, write)
        self._retries[key] = (timer, failures)  # kept (its timer spent) for the next delay
        self.start()

    def _cancel_retry(self, key: K) -> None:
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry[0].cancel()

    def _cancel_retries(self) -> None:
        for key in list(self._retries):
            self._cancel_retry(key)

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Drop what is queued and what waits to be sent again; cancel what is in flight (a step-down)."""
        self.queued.clear()
        self._cancel_retries()
        if self._drain is not None:
            self._drain.cancel()

    async def close(self) -> None:
        self._cancel_retries()
        await cancel_and_wait(self._drain)
