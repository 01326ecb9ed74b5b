"""Policies that are valid by the schema but cannot meter anything: reported in their status, never a crash,
and the other policies keep running. On both backends."""

from __future__ import annotations

from kubemeter.publish.documents import POLICY_LABEL
from tests.operator.conftest import eventually, stepped
from tests.reliability.support import events

BROKEN = "sim-worker-1"
HEALTHY_NODES = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [BROKEN]}]}
IMPOSSIBLE = {
    # policy -> (spec overrides, expected Ready, expected Degraded): (status, reason)
    "no-such-pods": ({"selector": {"podSelector": {"matchLabels": {"app": "none"}}, "nodeSelector": HEALTHY_NODES}},
                     ("True", "Scraping"), ("True", "NothingSelected")),
    "no-such-namespace": ({"selector": {"namespaces": ["does-not-exist"], "nodeSelector": HEALTHY_NODES}},
                          ("True", "Scraping"), ("True", "NothingSelected")),
    "no-such-namespace-and-a-failing-node": ({"selector": {"namespaces": ["does-not-exist"]}},
                                            ("True", "Scraping"), ("True", "NodesFailing")),
    "no-such-nodes": ({"selector": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "nowhere"}}}},
                      ("False", "NoNodesSelected"), ("False", "AllNodesScraped")),
    "unreachable-nodes": ({"selector": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": BROKEN}}}},
                          ("False", "AllNodesFailing"), ("True", "NodesFailing")),
}


async def test_policies_that_select_nothing_reachable_are_reported_not_crashed_on(any_operator):
    await any_operator.cluster.node_fault(BROKEN, "refused")
    for name, (overrides, _, _) in IMPOSSIBLE.items():
        await any_operator.create_policy(name, stepped(**overrides))
    await any_operator.create_policy("fine", stepped())
    for name in (*IMPOSSIBLE, "fine"):
        await any_operator.cycle(name)

    for name, (_, ready, degraded) in IMPOSSIBLE.items():
        status = (await any_operator.policy(name))["status"]
        conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert conditions == {"Ready": ready, "Degraded": degraded, "Invalid": ("False", "ValidSpec")}, name
        owned = (await any_operator.call(
            any_operator.custom.list_cluster_custom_object, "kubemeter.io", "v1alpha1", "workloadmetrics",
            label_selector=f"{POLICY_LABEL}={name}",
        ))["items"]
        if name == "unreachable-nodes":
            # The pods are known from the API server: their workloads are listed, with no usage and stale.
            assert [(f["name"], f["reason"]) for f in status["failedNodes"]] == [(BROKEN, "connection")]
            assert owned and len(owned) == status["workloads"], name
            assert all(o["status"]["stale"] and "workingSetBytes" not in o["status"].get("memory", {}) for o in owned)
        else:
            assert status.get("workloads", 0) == 0 and status.get("pods", 0) == 0 and owned == [], name

    both = (await any_operator.policy("no-such-namespace-and-a-failing-node"))["status"]["conditions"]
    assert "no running pod matches" in next(c["message"] for c in both if c["type"] == "Degraded"), "not hidden"
    fine = (await any_operator.policy("fine"))["status"]
    assert fine["workloads"] > 0 and fine["nodes"] == {"selected": 3, "scraped": 2, "failed": 1}
    assert all(not p.task.done() for p in any_operator.runtime.lifecycle.policies.values()), "every loop still runs"


async def test_a_label_key_the_schema_cannot_check_is_reported_invalid_in_status(any_operator):
    """matchLabels keys are map keys, which a CRD schema cannot constrain: the operator checks them."""
    await any_operator.create_policy("bad-key", stepped(selector={"podSelector": {"matchLabels": {"app name": "web"}}}))

    async def invalid() -> dict | None:
        status = (await any_operator.policy("bad-key")).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Invalid"), None)

    condition = await eventually(invalid)
    assert (condition["status"], condition["reason"], condition["observedGeneration"]) == ("True", "InvalidSpec", 1)
    assert "spec.selector.podSelector.matchLabels: 'app name' is not a valid label key" in condition["message"]
    assert any_operator.runtime.lifecycle.policies["bad-key"].loop is None, "nothing runs on a spec that cannot be understood"
    conditions = {c["type"]: c for c in (await any_operator.policy("bad-key"))["status"]["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "InvalidSpec")
    [event] = await eventually(lambda: events(any_operator.client, "InvalidPolicy"))  # posted in the background
    assert event["involvedObject"]["name"] == "bad-key" and "'app name'" in event["message"]


async def test_events_about_a_policy_with_the_longest_name_are_stored(any_operator):
    """A 253-character name (the longest the API server allows) left no room for client-go's ``.<hex time>``:
    the API server refused every Event about such a policy."""
    name = ("kubemeter-policy." * 15)[:252] + "x"
    await any_operator.create_policy(name, stepped(selector={"podSelector": {"matchLabels": {"app name": "web"}}}))
    [event] = await eventually(lambda: events(any_operator.client, "InvalidPolicy"))  # posted in the background
    assert event["involvedObject"]["name"] == name and event["involvedObject"]["kind"] == "MetricsPolicy"
    assert "'app name'" in event["message"] and len(event["metadata"]["name"]) <= 253
