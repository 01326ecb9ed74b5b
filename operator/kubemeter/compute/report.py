"""CycleReport: what one policy cycle produced, the input of every publisher (status and Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubemeter.compute.rightsizing import WorkloadRecommendation
from kubemeter.compute.snapshot import Snapshot
from kubemeter.types import NodeFailure, PodInfo, Selection, WorkloadRef


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
    recommendations: dict[WorkloadRef, WorkloadRecommendation] = field(default_factory=dict)
    """Right-sizing, per workload with a history (empty when the policy's recommendations are off)."""
    histories_forgotten: list[WorkloadRef] = field(default_factory=list)
    """Workloads whose right-sizing history was dropped this cycle (gone: their checkpoints go too)."""

    @property
    def waiting(self) -> int:
        """Pods without a workload whose owner may just not be known yet."""
        return len(self.selection.pods_without_workload) - len(self.unresolved)
