"""The rendered PrometheusRule's alert expressions in a real Prometheus, on faults of the real operator: each
returns the policy at fault, where its promtool tests only see made-up series."""

from __future__ import annotations

from pathlib import Path

from tests.operator.conftest import Operator, eventually, stepped, unrunnable_policy
from tests.operator.prometheus_support import RELEASE_NAMESPACE, alert_rules, prometheus, render_chart, scrape_config


async def test_a_failed_cycle_and_a_policy_that_never_ran_show_in_their_alerts(operator: Operator, tmp_path: Path) -> None:
    manifests = render_chart(tmp_path)
    rules = alert_rules(manifests)
    await operator.create_policy("p", stepped())
    await operator.cycle("p")
    loop = await operator.loop("p")
    async with prometheus(tmp_path / "prometheus", scrape_config(manifests, operator.runtime.metrics_port)) as server:

        async def firing(alert: str) -> list[dict[str, str]]:
            return [series["labels"] for series in await server.query(rules[alert]["expr"])]

        assert await firing("KubemeterCycleFailures") == []
        assert await server.query('kubemeter_cycle_failures_total{policy="p"} == 0'), "scraped before the failure"

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("simulated bug")

        loop.aggregator.cycle = broken
        await operator.patch_policy("p", {"interval": "30m"})  # a new interval starts a cycle at once
        # The first failure of the policy: an increase from the 0 exported since its first cycle.
        assert await eventually(lambda: firing("KubemeterCycleFailures")) == [
            {"namespace": RELEASE_NAMESPACE, "policy": "p"}]

        # A policy whose spec the operator never could run, so it never completed a cycle.
        assert await firing("KubemeterPolicyStale") == []
        await operator.thread.run(operator.runtime.lifecycle.policy_event("ADDED", unrunnable_policy("never")))
        assert await eventually(lambda: firing("KubemeterPolicyStale")) == [
            {"namespace": RELEASE_NAMESPACE, "policy": "never"}]
