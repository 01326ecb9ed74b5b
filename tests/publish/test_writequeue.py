"""The keyed write queue both publishers send through: the newest write of a key replaces an unsent older one in
its place, one write per key in flight (in order), the first key ahead of the others, at most ``writers`` at once, a
failed write sent again with a growing delay unless a newer one replaces it, progress and stalls, and a clear that
drops everything and cancels what is in flight."""

from __future__ import annotations

import asyncio

import pytest

from kubemeter.publish.writequeue import Backoff, WriteQueue


class Server:
    """Records each write as it starts and as it finishes; ``gates[key]``, when set, holds the key's writes until
    it is set; ``failing``: keys whose writes raise."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.finished: list[tuple[str, str]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.in_flight = self.most_in_flight = 0

    async def send(self, key: str, write: str) -> None:
        self.started.append((key, write))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            gate = self.gates.get(key)
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0)
            if key in self.failing:
                raise RuntimeError(f"{key} refused")
            self.finished.append((key, write))
        finally:
            self.in_flight -= 1


def queue(server: Server, now: list[float] | None = None, failures: list | None = None, **options) -> WriteQueue:
    clock = (lambda: now[0]) if now is not None else (lambda: 0.0)
    failed = (lambda key, write, exc: failures.append((key, write, str(exc)))) if failures is not None else \
        (lambda key, write, exc: None)
    return WriteQueue(server.send, name="test-writer", clock=clock, writers=options.pop("writers", 2), failed=failed,
                      **options)


async def test_the_newest_write_of_a_key_replaces_an_unsent_one_in_its_place_and_the_first_key_goes_first():
    server = Server()
    writes = queue(server, writers=1, first="policy")
    for key, write in (("a", "a1"), ("b", "b1"), ("a", "a2"), ("policy", "p1"), ("c", "c1")):
        writes.put(key, write)
    assert list(writes.queued.items()) == [("a", "a2"), ("b", "b1"), ("policy", "p1"), ("c", "c1")]
    assert writes.pending == 4 and writes.planned == 5
    writes.start()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert server.finished == [("policy", "p1"), ("a", "a2"), ("b", "b1"), ("c", "c1")]
    assert writes.pending == 0 and not writes.busy
    await writes.close()


async def test_a_keys_writes_land_in_order_and_no_more_than_writers_are_in_flight():
    server = Server()
    server.gates["a"] = asyncio.Event()
    writes = queue(server, writers=3)
    for key in "abcdef":
        writes.put(key, f"{key}1")
    writes.start()
    while len(server.finished) < 5:  # a1 hangs; the other writers send the rest meanwhile
        await asyncio.sleep(0)
    writes.put("a", "a2")  # waits for a1
    await asyncio.sleep(0.01)
    assert ("a", "a2") not in server.started and writes.sending("a") == "a1"
    assert writes.pending == 2, "a1 in flight, a2 queued"
    server.gates["a"].set()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert [w for k, w in server.finished if k == "a"] == ["a1", "a2"]
    assert server.most_in_flight == 3
    await writes.close()


async def test_a_failed_write_is_sent_again_later_unless_a_newer_one_replaced_it():
    server, failures = Server(), []
    server.failing.add("a")
    writes = queue(server, failures=failures, retry=Backoff(0.01, 0.04))
    writes.put("a", "a1")
    writes.start()

    async def failed_times(count: int) -> None:
        while len(failures) < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(failed_times(3), timeout=10)  # sent again and again while it fails
    assert {write for _, write, _ in failures} == {"a1"} and failures[0][2] == "a refused"
    assert writes.planned > 1, "each resend is a put"
    server.failing.clear()

    async def written(key: str, write: str) -> None:
        while (key, write) not in server.finished:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(written("a", "a1"), timeout=10)
    assert writes.pending == 0

    # A newer write of the key replaces the failed one: only it is sent.
    server.failing.add("b")
    writes.put("b", "b1")
    await asyncio.wait_for(failed_times(len(failures) + 1), timeout=10)
    server.failing.clear()
    writes.put("b", "b2")
    await asyncio.wait_for(writes.flush(), timeout=10)
    # A later failure's first resend comes after b1's would have (timers fire by deadline, and b1's delay was the
    # first one too).
    server.failing.add("c")
    writes.put("c", "c1")
    await asyncio.wait_for(failed_times(len(failures) + 2), timeout=10)
    assert [w for k, w in server.started if k == "b"] == ["b1", "b2"], "b1 not sent again"
    await writes.close()


def test_the_backoff_doubles_up_to_its_most():
    assert [Backoff(2.0, 60.0).delay(n) for n in range(7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


async def test_without_a_backoff_a_failed_write_is_reported_and_dropped():
    server, failures = Server(), []
    server.failing.add("a")
    writes = queue(server, failures=failures)
    writes.put("a", "a1")
    writes.start()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert failures == [("a", "a1", "a refused")] and writes.planned == 1 and not writes.busy
    await writes.close()


async def test_stalled_for_counts_from_the_last_progress_while_writes_wait():
    server, now = Server(), [100.0]
    server.gates["a"] = asyncio.Event()
    writes = queue(server, now=now)
    assert writes.stalled_for() == 0.0
    writes.put("a", "a1")
    writes.start()
    now[0] += 30.0
    assert writes.stalled_for() == 30.0, "work arrived at 100 and nothing finished since"
    server.gates["a"].set()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert writes.stalled_for() == 0.0, "idle"
    await writes.close()


async def test_discard_drops_a_queued_write_and_clear_drops_everything_and_cancels_what_is_in_flight():
    server = Server()
    server.gates["a"] = asyncio.Event()
    writes = queue(server, writers=1)
    writes.put("a", "a1")
    writes.put("b", "b1")
    writes.put("c", "c1")
    writes.discard("b")
    assert list(writes.queued) == ["a", "c"]
    writes.start()
    while not server.started:
        await asyncio.sleep(0)
    writes.clear()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert server.finished == [] and writes.pending == 0
    assert writes.drain is not None and writes.drain.cancelled()
    writes.put("d", "d1")  # a later term: the drain starts again
    writes.start()
    await asyncio.wait_for(writes.flush(), timeout=10)
    assert server.finished == [("d", "d1")]
    await writes.close()


@pytest.mark.parametrize("writers", [1, 4])
async def test_every_key_is_written_once_with_its_newest_write(writers: int):
    server = Server()
    writes = queue(server, writers=writers)
    writes.start()
    for round_ in range(3):
        for key in "abcdefgh":
            writes.put(key, f"{key}{round_}")
        await asyncio.sleep(0)
    await asyncio.wait_for(writes.flush(), timeout=10)
    newest = {key: write for key, write in server.finished}
    assert newest == {key: f"{key}2" for key in "abcdefgh"}
    await writes.close()
