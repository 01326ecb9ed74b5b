"""Ending background tasks: cancelled and awaited, so none outlives the object that started it."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished.

    An error the task had already died of is logged, not raised: at shutdown nobody is left to handle it,
    and raising would skip the rest of the shutdown. A cancellation of the caller propagates at once, even while the
    task is still stopping.
    """
    if task is None:
        return
    task.cancel()
    # asyncio.wait, unlike gather, leaves the task alone when the caller is cancelled: the caller stops at
    # once instead of waiting on a task that takes its time to stop.
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s had failed", task.get_name(), exc_info=task.exception())
