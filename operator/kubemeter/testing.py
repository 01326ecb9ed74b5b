"""A testing kit: a fake Scraper.

Nothing in the operator imports this module (the layer contract keeps it at the top).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from kubemeter.scrape.client import ScrapeError
from kubemeter.scrape.scraper import Scraped, ScrapeSource
from kubemeter.types import NodeInfo, NodeMetrics


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
