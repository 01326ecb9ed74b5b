"""A testing kit, for the tests and the demo: the operator on a thread of its own, and a fake Scraper.

Nothing in the operator imports this module (the layer contract keeps it at the top).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from kubemeter.app import Runtime
from kubemeter.handlers import run_operator
from kubemeter.scrape.client import ScrapeError
from kubemeter.scrape.scraper import Scraped, ScrapeSource
from kubemeter.types import NodeInfo, NodeMetrics

T = TypeVar("T")


class FakeScraper:
    """A Scraper whose kubelets answer what a test sets: decoded metrics, a ScrapeError, or nothing in time.

    ``answers``: node name -> its NodeMetrics or the ScrapeError to raise (a node without one is refused, as a
    kubelet that is not there); ``hanging``: nodes that never answer, so their scrape takes the whole timeout
    and fails as KubeletClient's does. ``requests`` lists the nodes asked, in order.
    """

    def __init__(
        self,
        answers: Mapping[str, NodeMetrics | ScrapeError] | None = None,
        *,
        hanging: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.answers: dict[str, NodeMetrics | ScrapeError] = dict(answers or {})
        self.hanging = hanging
        self.clock = clock
        self.requests: list[str] = []

    async def scrape(self, node: NodeInfo, source: ScrapeSource, timeout: float) -> Scraped:
        self.requests.append(node.name)
        if node.name in self.hanging:
            await asyncio.sleep(timeout)
            raise ScrapeError("timeout", f"no answer from node {node.name} within {timeout:g}s")
        answer = self.answers.get(node.name)
        if answer is None:
            raise ScrapeError("connection", f"node {node.name} has no kubelet in this fake")
        if isinstance(answer, ScrapeError):
            raise answer
        return Scraped(answer, self.clock())


class OperatorThread:
    """The operator on its own thread and event loop, as if it were a separate process.

    For running it next to other asyncio code (the simulator in ``kubemeter demo`` and in tests): when kopf
    stops it cancels every task created on its loop after it started, which must not hit anyone else's.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="kubemeter-operator", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._started.set()
        try:
            self._loop.run_until_complete(run_operator(self.runtime, stop_flag=self.stop_flag))
        except BaseException as exc:  # reported to whoever joins the thread
            self.error = exc
        finally:
            self._loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the operator's loop (for tests and the demo to reach into the runtime)."""
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(coro))

    async def stop(self, timeout: float = 60.0) -> None:
        self.stop_flag.set()
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the operator did not stop within {timeout}s")
        if self.error is not None:
            raise self.error
