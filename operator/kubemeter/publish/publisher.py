"""The publish stage's seam: where a cycle's results go. Three implementations, one policy each: status on custom
resources (publish.status.StatusPublisher), Prometheus gauges (publish.prometheus.PrometheusPublisher) and the
right-sizing checkpoints (publish.checkpoints.CheckpointPublisher)."""

from __future__ import annotations

from typing import Protocol

from kubemeter.compute.report import CycleReport
from kubemeter.policy import PolicySpec


class Publisher(Protocol):
    async def start_term(self) -> None:
        """This replica leads now (or the policy's loop starts), before the term's first cycle: read back what
        must be (never raises)."""
        ...

    async def publish(self, report: CycleReport, spec: PolicySpec, generation: int) -> None:
        """A cycle's results (never raises on an API error: a failed write is retried or reported)."""
        ...

    def cycle_failed(self, message: str, generation: int) -> None:
        """A cycle ended in an error before publishing: what was published is no longer current."""
        ...

    def step_down(self) -> None:
        """Another replica leads now: withdraw what this one publishes, drop what it has not sent."""
        ...

    async def close(self) -> None:
        """The policy is gone (or the operator stops)."""
        ...
