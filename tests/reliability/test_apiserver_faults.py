"""The API server misbehaving: dropped watches, expired resourceVersions, a restart, throttled and failing
status writes, name conflicts. The operator's view and its published objects stay right through all of it.

Simulator only: the faults are injected inside the API server, which only the simulator allows (the watch
gap, which a relay can make for a real server too, is in test_watch_gaps.py on both backends).
"""

from __future__ import annotations

import asyncio

import kubernetes

from kubemeter import GROUP, VERSION
from kubemeter.policy import parse_policy
from kubemeter.timefmt import rfc3339
from kubemeter.types import PodInfo
from kubemeter.watch.model import NAMESPACES, NODES, PODS, REPLICASETS
from kubemeter.watch.relister import RESOURCES
from kubemeter_sim.scenario import container, template

from tests.operator.conftest import eventually, stepped
from tests.reliability.conftest import StartOperator
from tests.reliability.support import samples

LIVE = stepped(output={"minStatusChange": "0"})
EVERYTHING = parse_policy(LIVE)


def keys(objects: list[dict]) -> set[tuple[str, str, str]]:
    return {(o["metadata"]["namespace"], o["spec"]["workload"]["kind"], o["spec"]["workload"]["name"]) for o in objects}


async def model_pods(op) -> dict[tuple[str, str], PodInfo]:
    """The operator's view of the pods (read on its own thread: the model is not shared across threads)."""

    async def select() -> dict[tuple[str, str], PodInfo]:
        return {(p.namespace, p.name): p for p in op.runtime.model.select(EVERYTHING).pods()}

    return await op.thread.run(select())


def new_app(cluster, namespace: str, name: str, replicas: int = 1) -> None:
    cluster.scenario.create_deployment(namespace, name, replicas, template({"app": name}, [container(name, cpu="10m")]))


async def test_dropped_watches_and_a_restarted_api_server_lose_no_change(operator):
    cluster = operator.cluster
    await operator.create_policy("p", LIVE)
    await operator.cycle("p")

    await cluster.apiserver.drop_watches()
    new_app(cluster, "web", "after-drop")
    await cluster.apiserver.restart()
    new_app(cluster, "shop", "after-restart")
    await eventually(lambda: _has_workloads(operator, {("web", "after-drop"), ("shop", "after-restart")}))
    await operator.cycle("p")
    published = keys(await operator.workload_metrics())
    assert {("web", "Deployment", "after-drop"), ("shop", "Deployment", "after-restart")} <= published


async def test_throttled_failing_and_conflicting_status_writes_are_retried_and_none_is_lost(operator):
    cluster = operator.cluster
    await operator.create_policy("p", LIVE)
    await operator.cycle("p")
    objects = await operator.workload_metrics()
    requests_before = operator.runtime.api.requests
    throttled = cluster.apiserver.inject_fault(status=429, retry_after=0, method="PATCH", path=r"/status$", count=6)
    failing = cluster.apiserver.inject_fault(status=503, method="PATCH", path=r"/status$", count=4)
    # 409 on a patch without preconditions: the API server's own conflict retries ran out under contention.
    conflicting = cluster.apiserver.inject_fault(status=409, method="PATCH", path=r"/status$", count=3)
    report = await operator.cycle("p")

    assert throttled.hits == 6 and failing.hits == 4 and conflicting.hits == 3
    # Every attempt, retries included, took a token from the operator's one rate limiter.
    assert operator.runtime.api.requests - requests_before >= throttled.hits + failing.hits + conflicting.hits
    after = await operator.workload_metrics()
    assert keys(after) == keys(objects)
    # minStatusChange 0: every workload's published usage is this cycle's (written now, or unchanged).
    results = {(r.namespace, r.kind, r.name): w for r, w in report.snapshot.workloads.items()}
    for obj in after:
        key = (obj["metadata"]["namespace"], obj["spec"]["workload"]["kind"], obj["spec"]["workload"]["name"])
        cpu, memory = results[key].cpu.usage, results[key].memory.usage
        assert obj["status"].get("cpu", {}).get("usageCores") == (None if cpu is None else round(cpu, 6)), key
        assert obj["status"].get("memory", {}).get("workingSetBytes") == (None if memory is None else round(memory))
    assert (await operator.policy("p"))["status"]["lastScrapeTime"] == rfc3339(report.started)
    text = await operator.scrape_metrics()
    writes = {dict(k)["result"]: v for k, v in samples(text, "kubemeter_status_writes_total").items()}
    assert writes["success"] > 0 and "error" not in writes, "retried inside the API client, never given up"


async def test_a_name_taken_by_another_object_and_an_object_deleted_behind_its_back(operator):
    cluster, custom = operator.cluster, operator.custom
    # Someone else's WorkloadMetrics already holds the short name of this policy's bare pod.
    squatter = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadMetrics",
        "metadata": {"name": "pod-debug-shell", "namespace": "default"},
        "spec": {"policy": "other", "workload": {"apiVersion": "v1", "kind": "Pod", "name": "debug-shell"}},
    }
    await operator.call(custom.create_namespaced_custom_object, GROUP, VERSION, "default", "workloadmetrics", squatter)
    await operator.create_policy("p", LIVE)
    await operator.cycle("p")
    objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in await operator.workload_metrics()}
    mine = [o for o in objects.values() if (o["spec"]["policy"], o["spec"]["workload"]["name"]) == ("p", "debug-shell")]
    assert len(mine) == 1 and mine[0]["metadata"]["name"].startswith("pod-debug-shell-")
    assert "status" not in objects[("default", "pod-debug-shell")], "the other object is left alone"

    # Deleted by someone else: re-created at its next write (here every cycle: maxStatusAge 1s).
    victim = next(o for o in objects.values() if o["spec"]["workload"]["name"] == "toolbox")
    await operator.patch_policy("p", {"output": {"maxStatusAge": "1s"}})
    await operator.call(custom.delete_namespaced_custom_object, GROUP, VERSION, "default", "workloadmetrics",
                        victim["metadata"]["name"])
    await operator.cycle("p", pause=1.1)
    again = await operator.call(custom.get_namespaced_custom_object, GROUP, VERSION, "default", "workloadmetrics",
                                victim["metadata"]["name"])
    assert again["metadata"]["uid"] != victim["metadata"]["uid"] and again["status"]["pods"] == 1
    assert cluster.store.get("v1", "pods", "toolbox", "default")


async def _has_workloads(op, wanted: set[tuple[str, str]]) -> bool:
    return wanted <= {(p.namespace, p.workload.name) for p in (await model_pods(op)).values() if p.workload}


async def test_start_up_lists_each_resource_once_besides_kopf(operator):
    """kopf's first listing matches the seed: no confirming re-list (30,000 pods parsed again) at start-up."""
    relister = operator.runtime.relister
    await eventually(lambda: relister.audits[PODS] and relister.audits[NODES] and relister.audits[REPLICASETS])
    assert relister.relists == len(RESOURCES), "only the seed's LISTs"
    assert relister.dropped == 0


async def readiness(op) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{op.runtime.metrics_port}/readyz") as response:
            return response.status


async def test_a_failing_initial_listing_keeps_the_operator_unready_until_it_succeeds(sim_cluster, start: StartOperator):
    """Jobs cannot be listed at start-up (an API server still starting, say): the operator is alive but not
    ready, checks kopf's listings of what it can read meanwhile, and is ready with a full model once the
    listing works."""
    jobs_unavailable = sim_cluster.apiserver.inject_fault(status=503, method="GET", path=r"^/apis/batch/v1/jobs$")
    op = await start(wait_synced=False)
    relister = op.runtime.relister
    await eventually(lambda: relister.audits[PODS] and relister.audits[NODES] and jobs_unavailable.hits > 2)
    assert not relister.synced.is_set() and op.thread.alive
    assert await readiness(op) == 503
    await op.create_policy("p", LIVE)
    loop = await eventually(lambda: (p := op.runtime.lifecycle.policies.get("p")) and p.loop)
    await asyncio.sleep(1)
    assert loop.cycles_published == 0 and await op.workload_metrics() == [], "no cycle on a partial model"

    jobs_unavailable.remove()
    await eventually(relister.synced.is_set, timeout=30)
    assert await readiness(op) == 200
    await op.cycle("p")
    published = keys(await op.workload_metrics())
    assert ("batch", "CronJob", "nightly-report") in published, "pods resolve through the Jobs listed late"


async def test_a_watch_request_the_server_never_answers_is_given_up_and_opened_again(sim_cluster, start: StartOperator):
    """Issue 13, item 3: a watch (re-)opened on a server that accepts it and never answers would leave the
    model blind to that resource for good. The client ends a watch the server did not end in time (here
    2 s plus 2 s; 300 s plus 30 s by default) and opens it again."""
    op = await start(watch_timeout=2)
    # After kopf's own LIST of namespaces (the fault must catch a watch, not that list, which has kopf's 60 s).
    await eventually(lambda: op.runtime.relister.audits[NAMESPACES] >= 1)
    hung = sim_cluster.apiserver.inject_fault(hang=True, method="GET", path=r"^/api/v1/namespaces$", count=1)
    await eventually(lambda: hung.hits == 1, timeout=10)  # the next re-watch of namespaces hangs
    await asyncio.to_thread(
        kubernetes.client.CoreV1Api(op.client).create_namespace, {"metadata": {"name": "after-hang"}}
    )

    async def seen() -> bool:
        return await op.thread.run(_knows_namespace(op, "after-hang"))

    await eventually(seen, timeout=15)


async def _knows_namespace(op, name: str) -> bool:
    return name in op.runtime.model.namespaces
