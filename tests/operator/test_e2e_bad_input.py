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
    await operator.thread.run(operator.runtime.policy_event("MODIFIED", bad))
    await operator.thread.run(operator.runtime.policies["p"].publisher.flush())
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
