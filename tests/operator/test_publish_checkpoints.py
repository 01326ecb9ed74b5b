"""Checkpoint planning (no API server needed): written only when the history changed, at most once per interval,
bounded in size, owned by the policy, named apart from another policy's; the foreign checkpoints a restore finds are
left alone, an earlier version's (owned by a WorkloadMetrics) adopted."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from kubernetes.client.exceptions import ApiException

from kubemeter.compute.rightsizing import Recommender
from kubemeter.publish.checkpoints import (
    MAX_CHECKPOINT_CONTAINERS,
    CheckpointPublisher,
    checkpoint_name,
    checkpoint_object,
)
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef

WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
INTERVAL = 600.0
POLICY_UID = "uid-p"
POLICY_OWNER = {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "name": "p", "uid": POLICY_UID,
                "controller": True}


class FakeApi:
    """KubeApi's call() and the CustomObjectsApi methods the publisher uses, recording each request; ``existing``:
    the checkpoints there already, by name (a create of one of those names is a conflict)."""

    def __init__(self, listed: list[dict] | None = None, existing: dict[str, dict] | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[object] = []
        self.listed = listed or []
        self.existing = dict(existing or {})
        self.custom = self

    async def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
        self.requests.append(("create", body["metadata"]["name"]))
        self.bodies.append(body)
        if body["metadata"]["name"] in self.existing:
            raise ApiException(status=409, reason="AlreadyExists")
        self.existing[body["metadata"]["name"]] = body
        return body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self.requests.append(("get", name))
        return self.existing[name]

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        self.requests.append(("patch", name))
        self.bodies.append(body)
        return {}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self.requests.append(("delete", name))
        return {}

    def list_cluster_custom_object(self, group, version, plural, **kwargs):
        self.requests.append(("list", plural))
        return {"items": self.listed}


def pod(containers: int = 1) -> PodInfo:
    specs = tuple(ContainerSpec(f"c{i:02d}", 0.5, None, 2**28, None) for i in range(containers))
    return PodInfo("uid-1", WEB.namespace, "web-1", "node-1", "Running", {}, None, specs, WEB)


def observe(recommender: Recommender, t: float, containers: int = 1) -> None:
    usage = {f"c{i:02d}": Usage(0.1 + i / 100, 1e8 + i * 1e6, t) for i in range(containers)}
    recommender.observe(t, [pod(containers)], {"uid-1": usage}, 30.0)


def publisher(api: FakeApi, recommender: Recommender, now: list[float], on_result=lambda result: None,
              ) -> CheckpointPublisher:
    active = asyncio.Event()
    active.set()
    return CheckpointPublisher(api, "p", POLICY_UID, lambda: recommender, active, interval=INTERVAL,
                               clock=lambda: now[0], on_result=on_result)


async def publish(checkpoints: CheckpointPublisher, forgotten: tuple[WorkloadRef, ...] = ()) -> None:
    report = SimpleNamespace(histories_forgotten=list(forgotten))
    await checkpoints.publish(report, SimpleNamespace(checkpoint_interval=INTERVAL), 1)
    await checkpoints.flush()


async def test_a_history_is_written_when_it_changed_at_most_once_per_interval_and_deleted_when_forgotten():
    api, recommender, now = FakeApi(), Recommender(), [1_000_000.0]
    checkpoints = publisher(api, recommender, now)
    await checkpoints.start_term()
    cycles = 4 * int(INTERVAL / 30)  # four intervals of cycles 30 s apart, a sample each
    for _ in range(cycles):
        now[0] += 30.0
        observe(recommender, now[0])
        await publish(checkpoints)
    writes = [r for r in api.requests if r[0] != "list"]
    assert writes[0] == ("create", "deployment-web") and set(writes[1:]) == {("patch", "deployment-web")}
    assert 3 <= len(writes) <= cycles * 30 / INTERVAL + 1

    before = len(api.requests)
    for _ in range(3 * int(INTERVAL / 30)):  # no sample for three intervals: nothing new to keep
        now[0] += 30.0
        await publish(checkpoints)
    assert len(api.requests) == before, "an unchanged history is not written again"

    await publish(checkpoints, forgotten=(WEB,))
    assert api.requests[-1] == ("delete", "deployment-web")


async def test_a_checkpoint_is_bounded_whatever_the_number_of_containers():
    api, recommender, now = FakeApi(), Recommender(), [1_000_000.0]
    for _ in range(3):
        now[0] += 30.0
        observe(recommender, now[0], containers=MAX_CHECKPOINT_CONTAINERS + 10)
    checkpoints = publisher(api, recommender, now)
    await checkpoints.start_term()
    await checkpoints.write_all()
    assert api.requests[-1] == ("create", "deployment-web")
    containers = recommender.export(WEB)
    kept = {name: containers[name] for name in sorted(containers)[:MAX_CHECKPOINT_CONTAINERS]}
    body = checkpoint_object("p", POLICY_UID, WEB, "deployment-web", kept, now[0])
    assert len(json.dumps(body)) < 300 * 1024


def as_served(value):
    """A JSON value as a Go API server may serve it back: whole floats as integers (7200.0 -> 7200)."""
    if isinstance(value, dict):
        return {key: as_served(item) for key, item in value.items()}
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def test_a_restore_leaves_foreign_checkpoints_alone_and_does_not_rewrite_what_it_restored():
    source, now = Recommender(), [1_000_000.0]
    observe(source, now[0])
    mine = as_served(checkpoint_object("p", POLICY_UID, WEB, "deployment-web", source.export(WEB), now[0]))
    other = WorkloadRef("shop", "Deployment", "api", "apps/v1")
    foreign = checkpoint_object("q", "uid-q", other, "deployment-api", source.export(WEB), now[0])
    api, recommender = FakeApi([mine, foreign]), Recommender()
    results: list[str] = []
    checkpoints = publisher(api, recommender, now, results.append)
    await checkpoints.start_term()
    assert recommender.workloads() == [WEB]
    assert sorted(results) == ["malformed", "restored"]
    now[0] += 3 * INTERVAL
    await publish(checkpoints)
    assert [r[0] for r in api.requests] == ["list"], "nothing deleted, and the unchanged history not rewritten"


async def test_a_checkpoint_is_owned_by_its_policy_and_a_history_without_workloadmetrics_is_written_too():
    api, recommender, now = FakeApi(), Recommender(), [1_000_000.0]
    observe(recommender, now[0])
    checkpoints = publisher(api, recommender, now)
    await checkpoints.start_term()
    await checkpoints.write_all()
    [body] = api.bodies
    assert body["metadata"]["ownerReferences"] == [POLICY_OWNER]
    assert body["metadata"]["name"] == "deployment-web"


async def test_a_name_another_policys_checkpoint_has_is_not_taken_and_a_previous_runs_is_overwritten():
    source, now = Recommender(), [1_000_000.0]
    observe(source, now[0])
    theirs = checkpoint_object("q", "uid-q", WEB, "deployment-web", source.export(WEB), now[0])
    api, recommender = FakeApi(existing={"deployment-web": theirs}), Recommender()
    observe(recommender, now[0])
    checkpoints = publisher(api, recommender, now)
    await checkpoints.start_term()
    await checkpoints.write_all()
    hashed = checkpoint_name("p", WEB, hashed=True)
    assert hashed != "deployment-web" and hashed != checkpoint_name("q", WEB, hashed=True)
    assert api.requests[1:] == [("create", "deployment-web"), ("get", "deployment-web"), ("create", hashed)]
    assert api.existing["deployment-web"] is theirs, "the other policy's left alone"
    await publish(checkpoints)  # its next turn scheduled
    now[0] += 2 * INTERVAL
    observe(recommender, now[0])
    await publish(checkpoints)
    assert api.requests[-1] == ("patch", hashed), "its name kept"

    # A previous run's of this policy, not restored (written by the leader after this replica listed them).
    mine = checkpoint_object("p", POLICY_UID, WEB, "deployment-web", source.export(WEB), now[0])
    api, recommender = FakeApi(existing={"deployment-web": mine}), Recommender()
    observe(recommender, now[0])
    checkpoints = publisher(api, recommender, now)
    await checkpoints.start_term()
    await checkpoints.write_all()
    assert api.requests[1:] == [("create", "deployment-web"), ("get", "deployment-web"), ("patch", "deployment-web")]


async def test_a_restore_adopts_the_checkpoints_an_earlier_version_had_its_workloadmetrics_own():
    source, now = Recommender(), [1_000_000.0]
    observe(source, now[0])
    earlier = as_served(checkpoint_object("p", POLICY_UID, WEB, "deployment-web", source.export(WEB), now[0]))
    wm_owner = {"apiVersion": "kubemeter.io/v1alpha1", "kind": "WorkloadMetrics", "name": "deployment-web",
                "uid": "uid-wm", "controller": True}
    earlier["metadata"]["ownerReferences"] = [wm_owner]
    api_owner = WorkloadRef("shop", "Deployment", "api", "apps/v1")
    current = as_served(checkpoint_object("p", POLICY_UID, api_owner, "deployment-api", source.export(WEB), now[0]))
    api, recommender = FakeApi([earlier, current]), Recommender()
    results: list[str] = []
    checkpoints = publisher(api, recommender, now, results.append)
    await checkpoints.start_term()
    await checkpoints.flush()
    assert set(recommender.workloads()) == {WEB, api_owner}
    assert api.requests == [("list", "metricscheckpoints"), ("patch", "deployment-web")], "only the earlier one"
    assert api.bodies == [[{"op": "add", "path": "/metadata/ownerReferences", "value": [POLICY_OWNER]}]]
    assert sorted(results) == ["adopted", "restored", "restored"]
    now[0] += 3 * INTERVAL
    await publish(checkpoints)
    assert len(api.requests) == 2, "adopted and unchanged: not written again"
