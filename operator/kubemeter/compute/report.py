"""CycleReport: what one policy cycle produced, the input of every publisher (status and Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass

from kubemeter.compute.snapshot import Snapshot
from kubemeter.types import NodeFailure, Selection


@dataclass(slots=True)
class CycleReport:
    started: float
    """Unix time the cycle started."""
    duration: float
    selection: Selection
    snapshot: Snapshot
    scraped: int
    """Selected nodes whose kubelet answered with usable samples."""
    failures: dict[str, NodeFailure]
    """Node name -> why its scrape failed this cycle."""
