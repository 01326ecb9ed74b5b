"""CycleReport: what one policy cycle produced, the input of every publisher (status and Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass

from kubemeter.compute.snapshot import Snapshot
from kubemeter.types import NodeFailure, PodInfo, Selection


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
    unresolved: list[PodInfo]
    """The pods of ``selection.pods_without_workload`` that were without one at the policy's previous cycle
    too: their owner is not coming (the others wait for it; see docs/architecture.md, "Workload resolution")."""

    @property
    def waiting(self) -> int:
        """Pods without a workload whose owner may just not be known yet."""
        return len(self.selection.pods_without_workload) - len(self.unresolved)
