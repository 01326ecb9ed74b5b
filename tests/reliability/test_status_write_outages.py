"""Status writes through API-server outages: a request never answered, writes that keep failing, a policy
status refused until the server recovers, and a writer wedged where no timeout reaches. Each time what users
read is either current or says that it is not, and publishing recovers by itself when the server does.

Simulator only: the faults are injected inside the API server, which only the simulator allows.
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp

from kubemeter.timefmt import rfc3339

from tests.operator.conftest import eventually, stepped
from tests.reliability.support import samples

LIVE = stepped(output={"minStatusChange": "0"})
WORKLOAD_STATUS = r"/workloadmetrics/[^/]+/status$"


def conditions(policy: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (policy.get("status") or {}).get("conditions", [])}


async def health(op) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{op.runtime.metrics_port}/healthz") as response:
            return response.status, await response.text()


def writes(text: str) -> dict[str, float]:
    return {dict(k)["result"]: v for k, v in samples(text, "kubemeter_status_writes_total").items()}


async def flushed(op, name: str) -> None:
    await op.thread.run(op.runtime.lifecycle.policies[name].publisher.flush())


async def assert_current(op, report) -> None:
    """minStatusChange 0: every object holds the cycle's usage (written now, or unchanged since)."""
    results = {(r.namespace, r.name): w for r, w in report.snapshot.workloads.items()}
    for obj in await op.workload_metrics():
        key = (obj["metadata"]["namespace"], obj["spec"]["workload"]["name"])
        cpu = results[key].cpu.usage
        assert obj["status"].get("cpu", {}).get("usageCores") == (None if cpu is None else round(cpu, 6)), key


async def cycle_unflushed(op, name: str) -> None:
    """One more cycle, without waiting for its writes (failing ones are sent again and again)."""
    loop = op.runtime.lifecycle.policies[name].loop
    await asyncio.sleep(0.5)
    await op.thread.run(loop.run_cycle())


async def test_requests_the_server_never_answers_time_out_and_publishing_goes_on(start, caplog):
    """Issue 13, item 3: eight WorkloadMetrics status PATCHes hang. Without a request timeout the writers
    waited for them for good (lastScrapeTime frozen, no write succeeding, /healthz ok); now each attempt
    ends after --api-timeout, is logged, and is retried, and every object gets this cycle's figures."""
    op = await start(api_timeout=1.0)
    await op.create_policy("p", LIVE)
    await op.cycle("p")
    hung = op.cluster.apiserver.inject_fault(hang=True, method="PATCH", path=WORKLOAD_STATUS, count=8)
    report = await asyncio.wait_for(op.cycle("p"), 60)  # flushes: returns once every write was sent

    assert hung.hits == 8
    assert "had no answer within 1s" in caplog.text
    await assert_current(op, report)
    assert (await op.policy("p"))["status"]["lastScrapeTime"] == rfc3339(report.started)
    assert writes(await op.scrape_metrics()).get("error", 0) == 0, "retried inside the API client, not given up"
    assert (await health(op))[0] == 200


async def test_workloadmetrics_writes_that_keep_failing_turn_ready_false_until_they_land(start):
    """Issue 13, item 4: WorkloadMetrics writes failing after every retry left the policy Ready=True over
    figures its objects no longer showed. Now Ready says StatusWriteFailed, the writer is seen failing (not
    stuck: /healthz stays ok, a restart would not help), and once the server accepts writes again the objects
    are written without waiting for their figures to move and Ready is True again."""
    op = await start(api_timeout=1.0)
    await op.create_policy("p", LIVE)
    await op.cycle("p")
    failing = op.cluster.apiserver.inject_fault(status=503, method="PATCH", path=WORKLOAD_STATUS)
    await cycle_unflushed(op, "p")

    async def ready_reason(reason: str):
        await cycle_unflushed(op, "p")  # plans the policy status with what the writes told
        ready = conditions(await op.policy("p"))["Ready"]
        return ready if ready["reason"] == reason else None

    ready = await eventually(lambda: ready_reason("StatusWriteFailed"), timeout=40)
    assert ready["status"] == "False"
    assert "WorkloadMetrics status writes failed" in ready["message"] and "503" in ready["message"]
    assert writes(await op.scrape_metrics())["error"] >= 3
    assert (await health(op))[0] == 200

    failing.remove()
    ready = await eventually(lambda: ready_reason("Scraping"), timeout=40)
    assert ready["status"] == "True"
    await assert_current(op, await op.cycle("p", pause=0.1))


async def test_an_invalid_condition_planned_during_an_outage_is_written_once_the_server_answers(start):
    """Issue 13, item 2: the policy-status PATCH answers 503 to its first 8 attempts (more than one write's
    retries) and the policy's spec is invalid from the start, so no cycle plans another status. The write
    used to be dropped once its retries ran out, leaving .status empty; now it is sent again later."""
    op = await start()
    refused = op.cluster.apiserver.inject_fault(status=503, method="PATCH", path=r"/metricspolicies/p/status$",
                                                count=8)
    await op.create_policy("p", stepped(selector={"podSelector": {"matchLabels": {"bad key": "x"}}}))

    async def reported():
        found = conditions(await op.policy("p"))
        return found if "Invalid" in found else None

    found = await eventually(reported, timeout=40)
    assert refused.hits == 8
    assert (found["Invalid"]["status"], found["Invalid"]["reason"]) == ("True", "InvalidSpec")
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "InvalidSpec")


async def test_a_writer_wedged_where_no_timeout_reaches_fails_healthz_and_recovers(start):
    """Issue 13, item 3: a status write that never returns (stuck below the HTTP client, where the request
    timeout does not reach) left /healthz ok for good. The stall is exported as it grows, /healthz fails once
    it passes the bound (the kubelet then restarts the pod), and both recover with the writer."""
    op = await start(wedged_after=1.5)
    await op.create_policy("p", LIVE)
    await op.cycle("p")
    custom = op.runtime.api.custom
    original = custom.patch_namespaced_custom_object_status
    released = threading.Event()

    async def wedged(*args, **kwargs):  # status patches are sent on the event loop (KubeApi)
        await asyncio.to_thread(released.wait, 60)
        return await original(*args, **kwargs)

    custom.patch_namespaced_custom_object_status = wedged
    try:
        loop = op.runtime.lifecycle.policies["p"].loop
        await asyncio.sleep(0.7)
        await op.thread.run(loop.run_cycle())  # plans the writes; they wedge

        async def unhealthy():
            status, text = await health(op)
            return text if status == 500 and "status writes of p" in text else None

        text = await eventually(unhealthy, timeout=10)
        assert "status writes of p made no progress for over 1.5s" in text
        assert "an API request has waited for over 1.5s" in text
        stalled = samples(await op.scrape_metrics(), "kubemeter_status_writer_stalled_seconds", policy="p")
        assert list(stalled.values())[0] > 1.5
    finally:
        custom.patch_namespaced_custom_object_status = original
        released.set()
    await flushed(op, "p")
    assert (await health(op)) == (200, "ok\n")
    metrics = await op.scrape_metrics()
    assert samples(metrics, "kubemeter_status_writer_stalled_seconds", policy="p") == {(("policy", "p"),): 0.0}
    assert samples(metrics, "kubemeter_status_writes_pending", policy="p") == {(("policy", "p"),): 0.0}
