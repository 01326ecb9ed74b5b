"""Status planning: names, change thresholds, conditions, the rate limiter (no API server needed)."""

import asyncio
import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubemeter.compute.aggregate import Aggregator
from kubemeter.compute.quantity import format_cpu, format_percent
from kubemeter.compute.snapshot import ResourceFigures
from kubemeter.kubeapi import RateLimiter
from kubemeter.policy import parse_policy
from kubemeter.publish.documents import (
    key_values,
    merge_conditions,
    moved,
    policy_label_value,
    resource_status,
    workload_status,
    workloadmetrics_name,
)
from kubemeter.publish.status import StatusPublisher, _Published
from kubemeter.timefmt import rfc3339
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef

WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
# What the API server requires of an object name (apimachinery IsDNS1123Subdomain).
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_names_are_readable_and_hashed_only_when_needed():
    assert workloadmetrics_name("default", WEB) == "deployment-web"
    hashed = workloadmetrics_name("default", WEB, hashed=True)
    assert hashed.startswith("deployment-web-") and hashed != workloadmetrics_name("other", WEB, hashed=True)
    long = WorkloadRef("shop", "StatefulSet", "x" * 250, "apps/v1")
    name = workloadmetrics_name("default", long)
    assert len(name) <= 253 and name != workloadmetrics_name("other", long)


def test_long_policy_names_become_valid_label_values():
    assert policy_label_value("default") == "default"
    value = policy_label_value("p" * 100)
    assert len(value) <= 63 and value != policy_label_value("q" * 100)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"cpu": 1.0, "pods": 3}, {"cpu": 1.04, "pods": 3}, False),  # 4% < 5%
        ({"cpu": 1.0, "pods": 3}, {"cpu": 1.06, "pods": 3}, True),
        ({"cpu": 1.0, "pods": 3}, {"cpu": 1.0, "pods": 4}, True),  # a count always counts
        ({"cpu": 0.0001}, {"cpu": 0.00012}, False),  # relative to at least one millicore: noise
        ({"memory": 100.0}, {"memory": 200.0}, False),  # relative to at least 1 MiB: noise
        ({"memory": 100 * 2**20}, {"memory": 110 * 2**20}, True),
        ({"cpu": None}, {"cpu": 0.5}, True),  # CPU appears after the second sample
        ({"stale": False}, {"stale": True}, True),
    ],
)
def test_only_meaningful_changes_are_written(old, new, expected):
    assert moved(old, new, 0.05) is expected


def test_a_policy_edit_that_changes_what_a_status_holds_is_written_at_once():
    """Steady usage, but the percentiles, the window or the endpoint changed: the old spec's figures must not stay."""
    before = {"pods": 2, "window": "5m", "cpu": {"usageCores": 0.5, "percentileCores": {"p90": 0.6}}}
    same = key_values({**before, "lastUpdated": "later"})
    assert not moved(key_values(before), same, 0.05), "only the time moved"
    for edited in ({**before, "window": "3m"},
                   {**before, "cpu": {"usageCores": 0.5, "percentileCores": {"p50": 0.5}}},
                   {**before, "network": {"receiveBytesPerSecond": 1.0}}):
        assert moved(key_values(before), key_values(edited), 0.05), edited


def test_a_container_that_comes_goes_or_is_renamed_is_written_at_once_and_a_stored_copy_is_not():
    """The shape holds list items by their names; the object as the API server returns it (JSON) is the same."""
    def status(*names: str) -> dict:
        return {"pods": 1, "cpu": {"usageCores": 0.5},
                "containers": [{"name": n, "cpu": {"usageCores": 0.25, "percentileCores": {"p90": 0.3}}} for n in names]}

    before = key_values(status("app", "proxy"))
    assert not moved(before, key_values(json.loads(json.dumps(status("app", "proxy")))), 0.05)
    for changed in (status("app"), status("app", "proxy", "init"), status("app", "sidecar"), status()):
        assert moved(before, key_values(changed), 0.05), changed


def test_resource_status_has_numbers_for_machines_and_quantities_for_humans():
    figures = ResourceFigures(
        usage=0.25, avg=0.2, max=0.5, percentiles={50.0: 0.2, 99.9: 0.49}, requests=0.5, limits=None,
        request_utilization=0.5,
    )
    status = resource_status(figures, "cpu")
    assert status == {
        "usage": "250m", "usageCores": 0.25, "avgCores": 0.2, "maxCores": 0.5,
        "percentileCores": {"p50": 0.2, "p99.9": 0.49}, "requestsCores": 0.5, "requestUtilization": 0.5,
        "requestPercent": "50%",
    }
    memory = resource_status(
        ResourceFigures(134217728.4, None, None, {}, None, None, None), "memory"
    )
    assert memory == {"usage": "128Mi", "workingSetBytes": 134217728}


def test_the_printed_percent_and_quantity_agree_with_the_published_numbers_at_a_rounding_boundary():
    # 0.88501 publishes as 0.885; formatted from the unrounded value the column would say 89% beside it.
    # 0.0125004 cores publishes as 0.0125 and so prints as 0.0125 does, whatever side of the half it falls.
    status = resource_status(ResourceFigures(0.0125004, None, None, {}, 0.2, None, 0.88501), "cpu")
    assert status["requestUtilization"] == 0.885
    assert status["requestPercent"] == format_percent(0.885)
    assert status["usageCores"] == 0.0125 and status["usage"] == format_cpu(0.0125)


def test_condition_transition_time_moves_only_when_status_changes():
    first = merge_conditions([], [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}], 0)
    same = merge_conditions(first, [{"type": "Ready", "status": "True", "lastTransitionTime": "t2"}], 0)
    flipped = merge_conditions(same, [{"type": "Ready", "status": "False", "lastTransitionTime": "t3"}], 0)
    assert same[0]["lastTransitionTime"] == "t1" and flipped[0]["lastTransitionTime"] == "t3"


async def test_rate_limiter_allows_the_burst_then_paces_at_qps():
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(qps=10, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await limiter.acquire()
    assert slept == []
    await limiter.acquire()
    await limiter.acquire()
    assert slept == pytest.approx([0.1, 0.1])
    now[0] += 10  # idle time refills at most `burst` tokens
    slept.clear()
    for _ in range(4):
        await limiter.acquire()
    assert slept == pytest.approx([0.1])


def _snapshot(ref: WorkloadRef, cpu: float | None, now: float):
    """One pod of ``ref`` using ``cpu`` cores; ``None``: its node was not scraped (the pod reported nothing)."""
    pod = PodInfo("uid-1", ref.namespace, "api-0", "node-1", "Running", {}, None,
                  (ContainerSpec("app", 0.5, None, 256e6, None),), workload=ref)
    usage = {} if cpu is None else {"uid-1": {"app": Usage(cpu, 100e6, now)}}
    return Aggregator(3600, (50,)).cycle(now, [pod], usage)


def test_a_queued_write_is_dropped_when_the_value_returns_to_what_the_object_holds():
    """Under a saturated writer a write can wait a cycle; if the value has come back meanwhile, sending it
    would be a write that moves nothing compared with what the object holds."""
    ref, spec, now = WorkloadRef("web", "Deployment", "api", "apps/v1"), parse_policy({}), 1_700_000_000.0
    publisher = StatusPublisher(None, "p", "uid", clock=lambda: now)  # type: ignore[arg-type]
    held = workload_status(_snapshot(ref, 0.10, now).workloads[ref], spec, now, now)
    publisher._published[ref] = _Published("deployment-api", key_values(held), now, now)

    publisher._plan_workloads(_snapshot(ref, 0.20, now + 15), spec, now + 15)  # moved: queued
    assert publisher._writes.queued[ref].status["cpu"]["usageCores"] == pytest.approx(0.20)
    publisher._plan_workloads(_snapshot(ref, 0.30, now + 30), spec, now + 30)  # moved again: replaced in place
    assert publisher._writes.queued[ref].status["cpu"]["usageCores"] == pytest.approx(0.30)
    publisher._plan_workloads(_snapshot(ref, 0.101, now + 45), spec, now + 45)  # back to what is held
    assert ref not in publisher._writes.queued


def test_a_stale_workload_reports_its_last_measurement_even_if_that_cycle_wrote_nothing():
    """A cycle whose values did not move writes nothing, so the object keeps an older lastSampleTime; once the
    workload goes stale, the time written is the last cycle that measured it, not the older one it showed."""
    ref, spec, now = WorkloadRef("web", "Deployment", "api", "apps/v1"), parse_policy({}), 1_700_000_000.0
    publisher = StatusPublisher(None, "p", "uid", clock=lambda: now)  # type: ignore[arg-type]
    held = workload_status(_snapshot(ref, 0.10, now).workloads[ref], spec, now, now)
    publisher._published[ref] = _Published("deployment-api", key_values(held), now, now)

    publisher._plan_workloads(_snapshot(ref, 0.10, now + 15), spec, now + 15)  # measured, nothing moved
    assert ref not in publisher._writes.queued
    publisher._plan_workloads(_snapshot(ref, None, now + 30), spec, now + 30)  # no pod reported: stale
    status = publisher._writes.queued[ref].status
    assert status["stale"] and status["podsReporting"] == 0 and "usageCores" not in status["cpu"]
    assert status["lastSampleTime"] == rfc3339(now + 15)


async def test_a_replica_that_steps_down_drops_its_queued_and_retried_writes():
    """Writes still queued or being retried when the lease is lost would land after the new leader's newer ones;
    and what the objects hold is re-read when this replica leads again."""
    ref, spec, now = WorkloadRef("web", "Deployment", "api", "apps/v1"), parse_policy({}), 1_700_000_000.0

    class OutageApi:
        """Every write hangs, as one being retried through an API server outage does."""

        custom = SimpleNamespace(patch_namespaced_custom_object_status="patch")

        def __init__(self) -> None:
            self.started, self.finished = 0, 0

        async def call(self, fn, *args, **kwargs):
            self.started += 1
            await asyncio.Event().wait()
            self.finished += 1

    api = OutageApi()
    publisher = StatusPublisher(api, "p", "uid", clock=lambda: now)  # type: ignore[arg-type]
    held = workload_status(_snapshot(ref, 0.10, now).workloads[ref], spec, now, now)
    publisher._published[ref] = _Published("deployment-api", key_values(held), now, now)
    publisher._plan_workloads(_snapshot(ref, 0.20, now + 15), spec, now + 15)
    publisher._writes.start()
    while api.started == 0:
        await asyncio.sleep(0)

    publisher.step_down()
    await asyncio.wait_for(publisher.flush(), timeout=10)  # nothing is pending or in flight any more
    assert api.finished == 0 and publisher._writes.drain is not None and publisher._writes.drain.cancelled()
    assert not publisher._published and not publisher._loaded  # adopted again from the server next term


@pytest.mark.parametrize(
    ("percentiles", "keys"),
    [
        ((50, 95), ["p50", "p95"]),
        ((99.9, 99.99999, 100), ["p99.9", "p99.99999", "p100"]),  # ":g" made 99.99999 "p100", overwriting p100
        ((50, 50.00000001), ["p50", "p50.00000001"]),
        ((1e-9, 0.5), ["p0.000000001", "p0.5"]),  # plain decimals, never "p1e-09"
    ],
)
def test_every_percentile_gets_its_own_readable_key(percentiles, keys):
    values = {float(p): (i + 1) / 10 for i, p in enumerate(percentiles)}
    shown = resource_status(ResourceFigures(0.2, 0.2, 0.2, values, None, None, None), "cpu")["percentileCores"]
    assert shown == dict(zip(keys, values.values(), strict=True))


@given(kind=st.text(min_size=1, max_size=40), name=st.text(min_size=1, max_size=300))
def test_any_owner_kind_and_name_give_a_valid_object_name(kind, name):
    """An ownerReference's kind and name are not validated by the API server: a name built from them must
    still be one it accepts (a DNS subdomain), and differ from the names of other workloads."""
    ref = WorkloadRef("ns", kind, name, "example.com/v1")
    for hashed in (False, True):
        built = workloadmetrics_name("p", ref, hashed)
        assert len(built) <= 253 and DNS_SUBDOMAIN.fullmatch(built), built
    if workloadmetrics_name("p", ref) != f"{kind.lower()}-{name}":
        assert workloadmetrics_name("p", ref) != workloadmetrics_name("p", WorkloadRef("ns", kind, name + "x", "v1"))


async def test_a_workload_stale_from_its_second_cycle_keeps_the_sample_time_of_its_first():
    """Its object was created by the first cycle's write; the stale status must name that measurement."""
    ref, spec, now = WorkloadRef("web", "Deployment", "api", "apps/v1"), parse_policy({}), 1_700_000_000.0

    class RecordingApi:
        custom = SimpleNamespace(create_namespaced_custom_object="create", patch_namespaced_custom_object_status="patch")

        def __init__(self) -> None:
            self.statuses: list[dict] = []

        async def call(self, fn, *args, **kwargs):
            if fn == "patch":
                self.statuses.append(args[-1][0]["value"])

    api = RecordingApi()
    publisher = StatusPublisher(api, "p", "uid", clock=lambda: now)  # type: ignore[arg-type]
    publisher._loaded = True  # nothing to adopt
    publisher._plan_workloads(_snapshot(ref, 0.10, now), spec, now)  # measured: created and written
    publisher._writes.start()
    await asyncio.wait_for(publisher.flush(), timeout=10)
    publisher._plan_workloads(_snapshot(ref, None, now + 15), spec, now + 15)  # its node fails: stale
    publisher._writes.start()
    await asyncio.wait_for(publisher.flush(), timeout=10)
    first, stale = api.statuses
    assert stale["stale"] and stale["lastSampleTime"] == first["lastSampleTime"] == rfc3339(now)
