"""Shutting background tasks down: cancelled, awaited, and an earlier failure logged rather than raised."""

import asyncio
import logging

import pytest

from kubemeter.tasks import cancel_and_wait


async def test_a_running_task_is_cancelled_and_finished_when_it_returns():
    task = asyncio.create_task(asyncio.sleep(3600))
    await cancel_and_wait(task)
    assert task.cancelled()
    await cancel_and_wait(None)  # nothing started: nothing to do


async def test_a_task_that_had_failed_is_logged_and_the_shutdown_goes_on(caplog):
    async def fail() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fail(), name="writer")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="kubemeter.tasks"):
        await cancel_and_wait(task)
    assert "task writer had failed" in caplog.text and "boom" in caplog.text


async def test_the_callers_own_cancellation_is_not_swallowed():
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # takes its time to stop

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not inner.done()  # the caller did not wait for the slow task to stop
    inner.cancel()
    await asyncio.gather(inner, return_exceptions=True)
