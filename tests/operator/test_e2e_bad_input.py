"""End to end: a failing kubelet is counted and reported while the others keep reporting; a spec the
operator cannot run is reported in status, not crashed on."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.conftest import eventually, stepped, unrunnable_policy
from tests.reliability.support import samples

BROKEN = "sim-worker-1"


FAULTS = [("timeout", "timeout"), ("http500", "server_error"), ("garbage", "decode"), ("truncated", "truncated")]


# Every fault on the simulator; one on the real control plane: the faults are the kubelets' (the same fake
# kubelets serve both backends), and what the API server sees of a failure (status, metrics) is the same for each.
@pytest.mark.parametrize(("any_cluster", "fault", "reason"),
                         [("sim", *case) for case in FAULTS] + [("real", *FAULTS[1])], indirect=["any_cluster"])
async def test_a_failing_kubelet_is_reported_and_the_others_keep_reporting(any_operator, fault, reason):
    await any_operator.create_policy("p", stepped(source={"timeout": "1s"}))
    await any_operator.cycle("p")
    await any_operator.cluster.node_fault(BROKEN, fault)
    report = await any_operator.cycle("p")
    assert set(report.failures) == {BROKEN} and report.failures[BROKEN].reason == reason
    status = (await any_operator.policy("p"))["status"]
    assert status["nodes"] == {"selected": 3, "scraped": 2, "failed": 1}
    assert [(f["name"], f["reason"]) for f in status["failedNodes"]] == [(BROKEN, reason)]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Degraded"]["reason"] == "NodesFailing"

    errors = {
        (s.labels["node"], s.labels["reason"]): s.value
        for f in text_string_to_metric_families(await any_operator.scrape_metrics())
        if f.name == "kubemeter_scrape_errors"
        for s in f.samples
        if s.name == "kubemeter_scrape_errors_total"
    }
    assert errors == {(BROKEN, reason): 1.0}

    # Workloads on healthy nodes still have current values.
    healthy = [o for o in await any_operator.workload_metrics() if o["status"].get("podsReporting")]
    assert healthy and all("usageCores" in o["status"]["cpu"] for o in healthy)

    await any_operator.cluster.node_fault(BROKEN, None)
    report = await any_operator.cycle("p")
    assert report.failures == {}
    assert (await any_operator.policy("p"))["status"]["nodes"]["failed"] == 0


async def test_a_spec_the_operator_cannot_run_is_reported_in_status(any_operator):
    created = await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    # What a server without the CRD's validation (an older CRD version) could deliver.
    bad = dict(created, spec={"interval": "1h", "source": {"endpoint": "cadvisor"}})
    bad["metadata"] = dict(created["metadata"], generation=99)
    await any_operator.thread.run(any_operator.runtime.lifecycle.policy_event("MODIFIED", bad))
    await any_operator.thread.run(any_operator.runtime.lifecycle.policies["p"].publisher.flush())
    status = (await any_operator.policy("p"))["status"]
    invalid = next(c for c in status["conditions"] if c["type"] == "Invalid")
    assert invalid["status"] == "True" and invalid["observedGeneration"] == 99
    assert "spec.source.endpoint" in invalid["message"] and "last valid spec keeps running" in invalid["message"]
    report = await any_operator.cycle("p")  # the last valid spec still runs
    assert report.scraped == 3


async def test_a_policy_that_never_had_a_valid_spec_exports_its_status_writer_and_no_cycle(operator):
    """What KubemeterPolicyStale tells a policy that never completed a cycle by: a writer and no last cycle."""
    await operator.thread.run(operator.runtime.lifecycle.policy_event("ADDED", unrunnable_policy("never")))
    assert operator.runtime.lifecycle.policies["never"].loop is None
    metrics = await operator.scrape_metrics()
    assert samples(metrics, "kubemeter_status_writes_pending", policy="never")
    assert not samples(metrics, "kubemeter_policy_last_cycle_timestamp_seconds", policy="never")


async def test_an_invalid_generation_stays_reported_while_the_last_valid_spec_runs(any_operator):
    """The cycles of the last valid spec must not write Invalid=False over the newer, invalid generation."""
    await any_operator.create_policy("p", stepped())
    await any_operator.cycle("p")
    await any_operator.patch_policy("p", {"selector": {"podSelector": {"matchLabels": {"bad key": "x"}}}})

    async def status() -> dict:
        return (await any_operator.policy("p")).get("status") or {}

    def conditions(found: dict) -> dict[str, dict]:
        return {c["type"]: c for c in found.get("conditions", [])}

    await eventually(lambda: _invalid_at(status(), 2))
    for _ in range(3):
        report = await any_operator.cycle("p")
        assert report.scraped == 3, "the last valid spec keeps running"
        found = await status()
        invalid = conditions(found)["Invalid"]
        assert (invalid["status"], invalid["reason"], invalid["observedGeneration"]) == ("True", "InvalidSpec", 2)
        assert "'bad key' is not a valid label key" in invalid["message"]
        assert found["observedGeneration"] == 2
        assert conditions(found)["Ready"]["status"] == "True", "the running spec is healthy"

    await any_operator.patch_policy("p", {"selector": {"podSelector": {"matchLabels": None}}})
    await eventually(lambda: any_operator.runtime.lifecycle.policies["p"].generation == 3)
    await any_operator.cycle("p")  # a valid generation applies from the next cycle, which clears Invalid
    assert await _invalid_at(status(), 3, "False")


async def _invalid_at(status, generation: int, expected: str = "True") -> bool:
    invalid = next((c for c in (await status).get("conditions", []) if c["type"] == "Invalid"), {})
    return invalid.get("status") == expected and invalid.get("observedGeneration") == generation


async def test_scrape_failures_and_recoveries_become_node_events(any_operator):
    await any_operator.create_policy("p", stepped(source={"timeout": "1s"}))
    await any_operator.cycle("p")
    await any_operator.cluster.node_fault(BROKEN, "http500")
    await any_operator.cycle("p")
    await any_operator.cluster.node_fault(BROKEN, None)
    await any_operator.cycle("p")

    def node_events() -> list[tuple[str, str]]:
        events = any_operator.cluster.store.list("v1", "events", namespace="default")
        # The operator's own: a real node-lifecycle controller posts RegisteredNode about the node too.
        return [(e["type"], e["reason"]) for e in events
                if e["involvedObject"].get("name") == BROKEN and e.get("reportingComponent") == "kubemeter"]

    assert await eventually(lambda: len(node_events()) >= 2 and node_events())
    assert node_events() == [("Warning", "ScrapeFailed"), ("Normal", "ScrapeRecovered")]


async def test_a_cycle_that_fails_says_so_in_status_and_the_loop_goes_on(any_operator):
    """A bug in one cycle (here: the aggregation raising) must not leave the policy saying Ready over old figures."""
    await any_operator.create_policy("p", stepped())
    loop = await any_operator.loop("p")
    healthy_cycle = loop.aggregator.cycle

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    loop.aggregator.cycle = broken
    await any_operator.patch_policy("p", {"interval": "30m"})  # a new interval starts a cycle at once

    async def ready() -> dict:
        status = (await any_operator.policy("p")).get("status") or {}
        return next(c for c in status.get("conditions", []) if c["type"] == "Ready")

    failed = await eventually(lambda: _with_reason(ready(), "CycleFailed"))
    assert failed["status"] == "False" and "RuntimeError: simulated bug" in failed["message"]
    families = {f.name: f for f in text_string_to_metric_families(await any_operator.scrape_metrics())}
    assert [s.value for s in families["kubemeter_cycle_failures"].samples if s.name.endswith("_total")] == [1.0]
    assert "kubemeter_workload_cpu_usage_cores" not in families, "old figures withdrawn, not shown as current"
    status = (await any_operator.policy("p"))["status"]
    assert "cpu" not in status["cluster"] and "topWorkloads" not in status, "no old CPU beside Ready False"
    assert all(not o["status"].get("stale") for o in await any_operator.workload_metrics())

    for minutes in (31, 32):  # cycles keep failing: the WorkloadMetrics say they are stale
        await any_operator.patch_policy("p", {"interval": f"{minutes}m"})
        await asyncio.sleep(0.3)

    async def all_stale() -> bool:
        objects = await any_operator.workload_metrics()
        return bool(objects) and all(o["status"].get("stale") and "usageCores" not in o["status"].get("cpu", {})
                                     for o in objects)

    await eventually(all_stale)

    loop.aggregator.cycle = healthy_cycle
    await any_operator.cycle("p")
    assert (await ready())["status"] == "True", "the next good cycle clears it"
    assert "kubemeter_workload_cpu_usage_cores" in await any_operator.scrape_metrics()
    assert any(not o["status"].get("stale") for o in await any_operator.workload_metrics())


async def _with_reason(condition, reason: str) -> dict | None:
    found = await condition
    return found if found["reason"] == reason else None
