"""The status documents are pure: given a cycle's report, a MetricsPolicy status as a plain dictionary."""

import dataclasses

from kubemeter.compute.report import CycleReport
from kubemeter.compute.snapshot import Snapshot, Totals
from kubemeter.policy import parse_policy
from kubemeter.publish.documents import (
    MAX_CONDITION_MESSAGE,
    InvalidGeneration,
    failed_nodes,
    key_values,
    moved,
    policy_status,
    stale_workload_status,
    stored_workload,
    workloadmetrics_name,
)
from kubemeter.timefmt import rfc3339
from kubemeter.types import NodeFailure, NodeInfo, PodInfo, Selection, WorkloadRef

NODES = [NodeInfo("a", "uid-a", {}, "127.0.0.1", 10250), NodeInfo("b", "uid-b", {}, "127.0.0.2", 10250)]
NOTHING_MEASURED = Totals(0, 0, None, None, 0, 0, 0.0, 0.0, 0.0, 0.0)


def report(failures: dict[str, NodeFailure], now: float = 1_800_000_010.0, cluster: Totals = NOTHING_MEASURED,
           without_workload: tuple[PodInfo, ...] = (), unresolved: tuple[PodInfo, ...] = ()) -> CycleReport:
    snapshot = Snapshot(now, {}, {}, {}, cluster)
    selection = Selection(nodes=NODES, pods_without_workload=list(without_workload))
    return CycleReport(now - 1, 0.25, selection, snapshot, len(NODES) - len(failures), failures, list(unresolved))


def pod_owned_by(name: str, owner: dict) -> PodInfo:
    return PodInfo(f"uid-{name}", "tenant", name, "a", "Running", {}, owner, ())


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


def test_condition_messages_fit_the_crd_however_long_what_they_quote():
    """An invalid spec's message quotes what the user wrote (a 100,000-character label key, say): beyond
    metav1.Condition's 32768 characters the whole status write would be refused and no condition shown."""
    invalid = InvalidGeneration(4, "spec.selector: bad key " + "k" * 100_000)
    failure = "the last 3 WorkloadMetrics status writes failed: " + "x" * 40_000
    status = policy_status(report({}), parse_policy({}), 3, before=[], invalid=invalid, write_failure=failure)
    by_type = {c["type"]: c for c in status["conditions"]}
    for found in by_type.values():
        assert len(found["message"]) <= MAX_CONDITION_MESSAGE
    assert by_type["Invalid"]["message"].startswith("spec.selector: bad key kkk") and by_type["Invalid"]["message"].endswith("...")
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "StatusWriteFailed")
    assert status["observedGeneration"] == 4


def test_a_recovered_node_leaves_the_failed_list_and_keeps_readys_transition_time():
    failing = {"b": NodeFailure("timeout", "no answer", since=1_800_000_000.0)}
    spec = parse_policy({})
    before = policy_status(report(failing), spec, 1, before=[])
    recovered = policy_status(report({}, now=1_800_000_020.0), spec, 1, before=before["conditions"])
    assert [f["name"] for f in before["failedNodes"]] == ["b"] and not recovered.get("failedNodes")
    ready = next(c for c in recovered["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == rfc3339(1_800_000_010.0)  # Ready stayed True: its transition time stays


def test_a_partial_sum_becoming_complete_is_written_even_when_the_usage_barely_moves():
    """The cycle after a scale-up: the new pods now have a CPU rate, and use almost nothing yet. The statuses must
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
    assert (partial_policy["cluster"]["cpuPodsMeasured"], complete_policy["cluster"]["cpuPodsMeasured"]) == (2, 5)


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
        "pods": 2, "podsReporting": 0, "reporting": "0/2", "window": "5m", "stale": True,
        "lastUpdated": rfc3339(1_800_000_600.0), "lastSampleTime": rfc3339(1_800_000_000.0),
        "cpu": {"podsMeasured": 0, "requestsCores": 0.5}, "memory": {"podsMeasured": 0, "limitsBytes": 4194304},
        "containers": [{"name": "app", "cpu": {"requestsCores": 0.5}}],
    }


def test_pods_whose_owner_cannot_be_found_are_named_within_the_crds_bounds_and_counted():
    removed_api = {"apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "name": "web-5d4f8c7b9", "controller": True}
    hostile = {"apiVersion": "g" * 400 + "/v1", "kind": "ReplicaSet", "name": "n" * 300, "controller": True}
    pods = [pod_owned_by(f"web-{i:02}", removed_api) for i in range(25)] + [pod_owned_by("hostile", hostile)]
    waiting = pod_owned_by("new", removed_api)
    cluster = NOTHING_MEASURED._replace(pods=27, pods_reporting=26, cpu_requests_cores=27.0)
    status = policy_status(report({}, cluster=cluster, without_workload=(*pods, waiting), unresolved=pods),
                           parse_policy({}), 1, before=[])

    assert status["cluster"]["pods"] == 27 and status["cluster"]["podsReporting"] == 26
    assert status["cluster"]["podsUnresolved"] == 26, "every one counted, beyond the list's bound"
    listed = status["unresolvedPods"]
    assert [p["name"] for p in listed] == sorted(p.name for p in pods)[:20]
    assert listed[1] == {"namespace": "tenant", "name": "web-00", "node": "a", "owner": {
        "apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "name": "web-5d4f8c7b9"}}
    owner = listed[0]["owner"]
    assert listed[0]["name"] == "hostile" and (len(owner["apiVersion"]), len(owner["name"])) == (316, 253)
    assert owner["name"].startswith("n" * 200), "still recognisable"
    assert any("26 pods have controller owners that cannot be found" in w for w in status["warnings"])
    assert any("1 pod waits for its owner" in w for w in status["warnings"])


def test_a_fall_in_coverage_or_a_newly_unresolved_pod_shows_in_the_policy_status():
    spec = parse_policy({})
    full = NOTHING_MEASURED._replace(pods=13, pods_reporting=13, cpu_cores=6.8)
    before = policy_status(report({}, cluster=full), spec, 1, before=[])
    fewer = policy_status(report({}, cluster=full._replace(pods_reporting=2)), spec, 1, before=before["conditions"])
    assert (before["cluster"]["podsReporting"], fewer["cluster"]["podsReporting"]) == (13, 2)
    orphan = pod_owned_by("web-1", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "controller": True})
    unresolved = policy_status(report({}, cluster=full, without_workload=(orphan,), unresolved=(orphan,)), spec, 1,
                               before=before["conditions"])
    assert not before.get("unresolvedPods")
    assert [p["name"] for p in unresolved["unresolvedPods"]] == ["web-1"]