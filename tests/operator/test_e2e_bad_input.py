"""End to end: a failing kubelet is counted and reported while the others keep reporting; a spec the
operator cannot run is reported in status, not crashed on."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.conftest import eventually, stepped

BROKEN = "sim-worker-1"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("timeout", "timeout"), ("http500", "server_error"), ("garbage", "decode"), ("truncated", "truncated")],
)
async def test_a_failing_kubelet_is_reported_and_the_others_keep_reporting(operator, fault, reason):
    await operator.create_policy("p", stepped(source={"timeout": "1s"}))
    await operator.cycle("p")
    await operator.cluster.node_fault(BROKEN, fault)
    report = await operator.cycle("p")
    assert set(report.failures) == {BROKEN} and report.failures[BROKEN].reason == reason
    status = (await operator.policy("p"))["status"]
    assert status["nodes"] == {"selected": 3, "scraped": 2, "failed": 1}
    assert [(f["name"], f["reason"]) for f in status["failedNodes"]] == [(BROKEN, reason)]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Degraded"]["reason"] == "NodesFailing"

    errors = {
        (s.labels["node"], s.labels["reason"]): s.value
        for f in text_string_to_metric_families(await operator.scrape_metrics())
        if f.name == "kubemeter_scrape_errors"
        for s in f.samples
        if s.name == "kubemeter_scrape_errors_total"
    }
    assert errors == {(BROKEN, reason): 1.0}

    # Workloads on healthy nodes still have current values.
    healthy = [o for o in await operator.workload_metrics() if o["status"].get("podsReporting")]
    assert healthy and all("usageCores" in o["status"]["cpu"] for o in healthy)

    await operator.cluster.node_fault(BROKEN, None)
    report = await operator.cycle("p")
    assert report.failures == {}
    assert (await operator.policy("p"))["status"]["nodes"]["failed"] == 0


async def test_a_spec_the_operator_cannot_run_is_reported_in_status(operator):
    created = await operator.create_policy("p", stepped())
    await operator.cycle("p")
    # What a server without the CRD's validation (an older CRD version) could deliver.
    bad = dict(created, spec={"interval": "1h", "source": {"endpoint": "cadvisor"}})
    bad["metadata"] = dict(created["metadata"], generation=99)
    await operator.thread.run(operator.runtime.lifecycle.policy_event("MODIFIED", bad))
    await operator.thread.run(operator.runtime.lifecycle.policies["p"].publisher.flush())
    status = (await operator.policy("p"))["status"]
    invalid = next(c for c in status["conditions"] if c["type"] == "Invalid")
    assert invalid["status"] == "True" and invalid["observedGeneration"] == 99
    assert "spec.source.endpoint" in invalid["message"] and "last valid spec keeps running" in invalid["message"]
    report = await operator.cycle("p")  # the last valid spec still runs
    assert report.scraped == 3


async def test_scrape_failures_and_recoveries_become_node_events(operator):
    await operator.create_policy("p", stepped(source={"timeout": "1s"}))
    await operator.cycle("p")
    await operator.cluster.node_fault(BROKEN, "http500")
    await operator.cycle("p")
    await operator.cluster.node_fault(BROKEN, None)
    await operator.cycle("p")

    def node_events() -> list[tuple[str, str]]:
        events = operator.cluster.store.list("v1", "events", namespace="default")
        return [(e["type"], e["reason"]) for e in events if e["involvedObject"].get("name") == BROKEN]

    assert await eventually(lambda: len(node_events()) >= 2 and node_events())
    assert node_events() == [("Warning", "ScrapeFailed"), ("Normal", "ScrapeRecovered")]


async def test_a_cycle_that_fails_says_so_in_status_and_the_loop_goes_on(operator):
    """A bug in one cycle (here: the aggregation raising) must not leave the policy saying Ready over old figures."""
    await operator.create_policy("p", stepped())
    loop = await operator.loop("p")
    healthy_cycle = loop.aggregator.cycle

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    loop.aggregator.cycle = broken
    await operator.patch_policy("p", {"interval": "30m"})  # a new interval starts a cycle at once

    async def ready() -> dict:
        status = (await operator.policy("p")).get("status") or {}
        return next(c for c in status.get("conditions", []) if c["type"] == "Ready")

    failed = await eventually(lambda: _with_reason(ready(), "CycleFailed"))
    assert failed["status"] == "False" and "RuntimeError: simulated bug" in failed["message"]
    families = {f.name: f for f in text_string_to_metric_families(await operator.scrape_metrics())}
    assert [s.value for s in families["kubemeter_cycle_failures"].samples if s.name.endswith("_total")] == [1.0]

    loop.aggregator.cycle = healthy_cycle
    await operator.cycle("p")
    assert (await ready())["status"] == "True", "the next good cycle clears it"


async def _with_reason(condition, reason: str) -> dict | None:
    found = await condition
    return found if found["reason"] == reason else None
