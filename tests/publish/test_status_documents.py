"""The status documents are pure: given a cycle's report, a MetricsPolicy status as a plain dictionary."""

import dataclasses

from kubemeter.compute.report import CycleReport
from kubemeter.compute.snapshot import Snapshot, Totals
from kubemeter.policy import parse_policy
from kubemeter.publish.documents import (
    failed_nodes,
    key_values,
    moved,
    policy_status,
    policy_status_moved,
    stale_workload_status,
    stored_workload,
    workloadmetrics_name,
)
from kubemeter.timefmt import rfc3339
from kubemeter.types import NodeFailure, NodeInfo, Selection, WorkloadRef

NODES = [NodeInfo("a", "uid-a", {}, "127.0.0.1", 10250), NodeInfo("b", "uid-b", {}, "127.0.0.2", 10250)]
NOTHING_MEASURED = Totals(0, None, None, 0, 0, 0.0, 0.0, 0.0, 0.0)


def report(failures: dict[str, NodeFailure], now: float = 1_800_000_010.0) -> CycleReport:
    snapshot = Snapshot(now, {}, {}, {}, NOTHING_MEASURED)
    return CycleReport(now - 1, 0.25, Selection(nodes=NODES), snapshot, len(NODES) - len(failures), failures)


def test_a_policy_status_says_which_nodes_fail_since_when_and_a_restart_continues_them():
    failing = {"b": NodeFailure("timeout", "no answer within 10s", since=1_800_000_000.0)}
    status = policy_status(report(failing), parse_policy({}), 3, before=[])
    assert status["observedGeneration"] == 3
    assert status["nodes"] == {"selected": 2, "scraped": 1, "failed": 1}
    assert status["failedNodes"] == [
        {"name": "b", "reason": "timeout", "message": "no answer within 10s", "since": rfc3339(1_800_000_000.0)}
    ]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "Scraping"),
        "Degraded": ("True", "NodesFailing"),
        "Invalid": ("False", "ValidSpec"),
    }
    assert "cpuCores" not in status.get("cluster", {})  # nothing measured: absent, never 0
    # What a restarted operator reads back from that status: the same failure, its start kept.
    assert failed_nodes(status) == failing


def test_a_recovered_node_moves_the_policy_status_and_an_unchanged_cycle_does_not():
    failing = {"b": NodeFailure("timeout", "no answer", since=1_800_000_000.0)}
    spec = parse_policy({})
    before = policy_status(report(failing), spec, 1, before=[])
    again = policy_status(report(failing, now=1_800_000_020.0), spec, 1, before=before["conditions"])
    assert not policy_status_moved(before, again, spec.min_status_change)
    recovered = policy_status(report({}, now=1_800_000_020.0), spec, 1, before=before["conditions"])
    assert policy_status_moved(before, recovered, spec.min_status_change)
    ready = next(c for c in recovered["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == rfc3339(1_800_000_010.0)  # Ready stayed True: its transition time stays


def test_a_partial_sum_becoming_complete_is_written_even_when_the_usage_barely_moves():
    """The cycle after a scale-up: the new pods now have a CPU rate, and use almost nothing yet. The status must
    not keep saying that the CPU covers fewer pods than it does."""
    partial = {"pods": 5, "podsReporting": 5, "cpu": {"podsMeasured": 2, "usageCores": 1.0}}
    complete = {**partial, "cpu": {"podsMeasured": 5, "usageCores": 1.01}}
    assert moved(key_values(partial), key_values(complete), 0.05)
    spec = parse_policy({})
    cluster = NOTHING_MEASURED._replace(pods=5, cpu_cores=1.0, memory_bytes=1e9, memory_measured_pods=5)

    def status_with(cluster) -> dict:
        snapshot = Snapshot(1_800_000_010.0, {}, {}, {}, cluster)
        return policy_status(dataclasses.replace(report({}), snapshot=snapshot), spec, 1, before=[])

    partial_policy = status_with(cluster._replace(cpu_measured_pods=2))
    complete_policy = status_with(cluster._replace(cpu_cores=1.01, cpu_measured_pods=5))
    assert partial_policy["cluster"]["cpuPodsMeasured"] == 2
    assert policy_status_moved(partial_policy, complete_policy, spec.min_status_change)


def test_a_workload_is_named_within_the_crds_bounds_and_distinct_workloads_stay_distinct():
    usual = WorkloadRef("shop", "Deployment", "web", "apps/v1")
    assert stored_workload(usual) == usual
    long_kind = "K" * 64
    first, second = (stored_workload(WorkloadRef("t", long_kind + tail, "n" * 300, "g" * 400 + "/v1"))
                     for tail in ("a", "b"))
    assert (len(first.kind), len(first.name), len(first.api_version)) == (63, 253, 316)
    assert first.kind.startswith("K" * 50) and first.kind != second.kind
    assert stored_workload(first) == first, "a stored workload read back is the same key"
    assert len(workloadmetrics_name("p", first)) <= 253


def test_a_stale_status_keeps_what_the_pods_declare_and_drops_every_measured_figure():
    status = {
        "pods": 2, "podsReporting": 2, "window": "5m", "samples": 9, "stale": False,
        "lastUpdated": rfc3339(1_800_000_000.0), "lastSampleTime": rfc3339(1_800_000_000.0),
        "cpu": {"usage": "250m", "usageCores": 0.25, "avgCores": 0.2, "requestsCores": 0.5, "requestUtilization": 0.5},
        "memory": {"usage": "1Mi", "workingSetBytes": 1048576, "limitsBytes": 4194304},
        "network": {"receiveBytesPerSecond": 10.0},
        "containers": [{"name": "app", "cpu": {"usageCores": 0.25, "requestsCores": 0.5}, "memory": {"maxBytes": 9}}],
    }
    assert stale_workload_status(status, 1_800_000_600.0) == {
        "pods": 2, "podsReporting": 0, "window": "5m", "stale": True,
        "lastUpdated": rfc3339(1_800_000_600.0), "lastSampleTime": rfc3339(1_800_000_000.0),
        "cpu": {"podsMeasured": 0, "requestsCores": 0.5}, "memory": {"podsMeasured": 0, "limitsBytes": 4194304},
        "containers": [{"name": "app", "cpu": {"requestsCores": 0.5}}],
    }
