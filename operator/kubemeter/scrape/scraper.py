"""The scrape stage's seam: one node in, its decoded metrics or a typed ScrapeError out.

As metrics-server's ``pkg/scraper/client`` interface: the policy loop depends on ``Scraper`` only, so a test
stands a fake in for every kubelet (``kubemeter.testing.FakeScraper``) and the loop never sees HTTP or bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubemeter.scrape.client import KubeletClient, ScrapeError
from kubemeter.scrape.decode import decode
from kubemeter.scrape.resource import kubelet_scrape_error
from kubemeter.scrape.samples import DecodeError
from kubemeter.types import NodeInfo, NodeMetrics


@dataclass(frozen=True, slots=True)
class ScrapeSource:
    """What to ask a kubelet for, and how (a policy's ``spec.source``)."""

    endpoint: str
    """``resource`` or ``summary``."""
    via: str
    """``direct`` or ``proxy``."""
    insecure_skip_tls_verify: bool = False


@dataclass(slots=True)
class Scraped:
    metrics: NodeMetrics
    time: float
    """When the answer arrived (unix seconds): the time of samples that carry none."""
    kubelet_reported_errors: bool = False
    """The kubelet says its own collection partly failed (what it served is still good)."""


class Scraper(Protocol):
    async def scrape(self, node: NodeInfo, source: ScrapeSource, timeout: float) -> Scraped:
        """The node's decoded metrics within ``timeout`` seconds; raises ScrapeError (reason, message) otherwise."""
        ...


class KubeletScraper:
    """Scraper over HTTPS (or the API server's nodes/proxy), decoding what the kubelet answered."""

    def __init__(self, client: KubeletClient, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock

    async def scrape(self, node: NodeInfo, source: ScrapeSource, timeout: float) -> Scraped:
        body = await self.client.fetch(
            node, source.endpoint, source.via, timeout, insecure=source.insecure_skip_tls_verify
        )
        at = self.clock()
        try:
            metrics = decode(body, at, source.endpoint)
        except DecodeError as exc:
            raise ScrapeError("decode", f"cannot decode {source.endpoint} payload from node {node.name}: {exc}") from None
        # The flag's families sort last in /metrics/resource: reading the tail avoids a scan of the body.
        flagged = source.endpoint == "resource" and kubelet_scrape_error(body[-1024:])
        return Scraped(metrics, at, flagged)
