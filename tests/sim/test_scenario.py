"""Workloads look as the real controllers make them, and the scenario operations change them as they would."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.cluster import Cluster

APPS = ("apps/v1", "replicasets")


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster(nodes=3, pods_per_node=10, seed=7) as running:
        yield running


def _pods(cluster: Cluster, namespace: str | None = None) -> list[dict]:
    return cluster.store.list("v1", "pods", namespace)


def _by_uid(cluster: Cluster) -> dict[str, dict]:
    objects = {}
    for api_version, plural in (("apps/v1", "deployments"), APPS, ("apps/v1", "statefulsets"),
                                ("apps/v1", "daemonsets"), ("batch/v1", "jobs"), ("batch/v1", "cronjobs"),
                                ("v1", "nodes")):
        for obj in cluster.store.list(api_version, plural):
            objects[obj["metadata"]["uid"]] = obj
    return objects


def _controller(obj: dict) -> dict | None:
    return next((ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")), None)


def _chain(cluster: Cluster, pod: dict) -> list[str]:
    """Walk controller references by uid, as the operator does: ["ReplicaSet", "Deployment"], ..."""
    objects, kinds, current = _by_uid(cluster), [], pod
    while (reference := _controller(current)) is not None:
        owner = objects[reference["uid"]]
        assert owner["metadata"]["name"] == reference["name"]
        kinds.append(reference["kind"])
        current = owner
    return kinds


async def test_mixed_cluster_has_every_workload_kind_with_real_owner_chains(cluster: Cluster) -> None:
    pods = _pods(cluster)
    chains = Counter(tuple(_chain(cluster, pod)) for pod in pods)
    assert set(chains) == {("ReplicaSet", "Deployment"), ("StatefulSet",), ("DaemonSet",), ("Job", "CronJob"),
                           ("Node",), ()}
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    assert len(running) == pytest.approx(3 * 10, abs=3)
    containers = sum(len(p["spec"]["containers"]) for p in running)
    assert 2.0 <= containers / len(running) <= 3.5
    for pod in pods:
        for reference in pod["metadata"].get("ownerReferences") or []:
            assert reference["controller"] is True
            assert reference.get("blockOwnerDeletion", False) is (reference["kind"] != "Node")


async def test_deployment_pods_are_named_and_labelled_like_the_controllers_do(cluster: Cluster) -> None:
    for rs in cluster.store.list(*APPS):
        template_hash = rs["metadata"]["labels"]["pod-template-hash"]
        deployment = _controller(rs)["name"]
        assert rs["metadata"]["name"] == f"{deployment}-{template_hash}"
        assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{6,10}", template_hash)
        pods = [p for p in _pods(cluster, rs["metadata"]["namespace"]) if _controller(p)
                and _controller(p)["uid"] == rs["metadata"]["uid"]]
        assert len(pods) == rs["spec"]["replicas"] == rs["status"]["replicas"]
        for pod in pods:
            assert re.fullmatch(rf"{rs['metadata']['name']}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"])
            assert pod["metadata"]["labels"]["pod-template-hash"] == template_hash


async def test_pods_are_scheduled_running_and_carry_kubelet_status(cluster: Cluster) -> None:
    for pod in _pods(cluster):
        status = pod["status"]
        assert pod["spec"]["nodeName"] in cluster.kubelets
        assert status["podIP"] and status["startTime"] and status["hostIP"]
        for container_status in status["containerStatuses"]:
            assert container_status["restartCount"] == 0
            if status["phase"] == "Running":
                assert container_status["started"] is True and "startedAt" in container_status["state"]["running"]
    assert any("initContainers" in p["spec"] for p in _pods(cluster))
    control_plane = cluster.store.get("v1", "nodes", "sim-control-plane")
    assert "node-role.kubernetes.io/control-plane" in control_plane["metadata"]["labels"]
    workload_nodes = {p["spec"]["nodeName"] for p in _pods(cluster) if _chain(cluster, p)[:1] == ["ReplicaSet"]}
    assert "sim-control-plane" not in workload_nodes  # tainted NoSchedule


async def test_static_pods_are_mirror_pods_owned_by_their_node(cluster: Cluster) -> None:
    static = [p for p in _pods(cluster, "kube-system") if (_controller(p) or {}).get("kind") == "Node"]
    assert {p["metadata"]["name"] for p in static} == {
        f"{c}-sim-control-plane" for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    for pod in static:
        annotations = pod["metadata"]["annotations"]
        assert annotations["kubernetes.io/config.source"] == "file"
        assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]


async def test_daemonset_runs_one_pod_per_node_including_new_nodes(cluster: Cluster) -> None:
    def daemon_nodes() -> Counter:
        return Counter(p["spec"]["nodeName"] for p in _pods(cluster, "kube-system")
                       if p["metadata"]["name"].startswith("kube-proxy-"))

    assert daemon_nodes() == Counter({node: 1 for node in cluster.kubelets})
    added = await cluster.scenario.add_node()
    assert added in cluster.kubelets and daemon_nodes()[added] == 1
    node = cluster.store.get("v1", "nodes", added)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == added
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"].startswith("sim-zone-")
    await cluster.scenario.remove_node(added)
    assert added not in cluster.kubelets and added not in daemon_nodes()
    with pytest.raises(ApiError):
        cluster.store.get("v1", "nodes", added)


async def test_removing_a_node_moves_replicaset_pods_elsewhere(cluster: Cluster) -> None:
    before = Counter((_chain(cluster, p) or ["Pod"])[-1] for p in _pods(cluster) if p["status"]["phase"] == "Running")
    await cluster.scenario.remove_node("sim-worker-2")
    pods = _pods(cluster)
    assert all(p["spec"]["nodeName"] != "sim-worker-2" for p in pods)
    after = Counter((_chain(cluster, p) or ["Pod"])[-1] for p in pods if p["status"]["phase"] == "Running")
    daemonsets = len(cluster.store.list("apps/v1", "daemonsets"))
    assert after["Deployment"] == before["Deployment"] and after["DaemonSet"] == before["DaemonSet"] - daemonsets


async def test_cronjob_runs_and_completed_jobs_leave_succeeded_pods(cluster: Cluster) -> None:
    jobs_before = cluster.store.list("batch/v1", "jobs", "batch")
    assert sorted(bool(j["status"].get("completionTime")) for j in jobs_before) == [False, True]
    job = await cluster.scenario.run_cronjob("batch", "nightly-report")
    assert re.fullmatch(r"nightly-report-\d{8}", job["metadata"]["name"])
    pods = [p for p in _pods(cluster, "batch") if p["metadata"]["labels"].get("job-name") == job["metadata"]["name"]]
    assert len(pods) == 1
    labels = pods[0]["metadata"]["labels"]
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
    kubelet = cluster.kubelets[pods[0]["spec"]["nodeName"]]
    assert pods[0]["metadata"]["uid"] in kubelet.pods
    await cluster.scenario.complete_job("batch", job["metadata"]["name"])
    pod = cluster.store.get("v1", "pods", pods[0]["metadata"]["name"], "batch")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["uid"] not in kubelet.pods


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_job_and_cronjob_times_and_selectors_are_as_the_real_controllers_make_them(cluster: Cluster) -> None:
    """The mixed scenario's batch Jobs ran for 30 and 2 minutes, yet objects created now: a Job starts after its
    creation and completes after its start (DURATION <= AGE), a CronJob schedules after its own creation, and a Job
    selects its pods by the controller-uid label the API server generates."""
    await cluster.scenario.complete_job("batch", (await cluster.scenario.run_cronjob(
        "batch", "nightly-report", started_ago=3600))["metadata"]["name"])
    jobs = cluster.store.list("batch/v1", "jobs")
    assert len(jobs) >= 3 and any(j["status"].get("completionTime") for j in jobs)
    for job in jobs:
        meta, spec, status = job["metadata"], job["spec"], job["status"]
        assert _time(meta["creationTimestamp"]) <= _time(status["startTime"]), meta["name"]
        if status.get("completionTime"):
            assert _time(status["startTime"]) <= _time(status["completionTime"]), meta["name"]
        assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}, meta["name"]
        labels = spec["template"]["metadata"]["labels"]
        assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == meta["uid"]
        assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == meta["name"]
    for cronjob in cluster.store.list("batch/v1", "cronjobs"):
        scheduled = _time(cronjob["status"]["lastScheduleTime"])
        assert _time(cronjob["metadata"]["creationTimestamp"]) <= scheduled, cronjob["metadata"]["name"]
        last = next(j for j in jobs if j["metadata"]["uid"] == cronjob["status"]["active"][0]["uid"])
        assert scheduled <= _time(last["metadata"]["creationTimestamp"])

    done = await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "get", "jobs",
                                                    "-A", "-o", "wide", "--no-headers"],
                                   capture_output=True, text=True, timeout=60, check=True)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows and all(row[-1].startswith("batch.kubernetes.io/controller-uid=") for row in rows), done.stdout


async def test_scale_and_rolling_update(cluster: Cluster) -> None:
    deployment = cluster.store.list("apps/v1", "deployments", "shop")[0]
    name = deployment["metadata"]["name"]
    await cluster.scenario.scale("Deployment", "shop", name, 5)
    rs = cluster.store.list(*APPS, "shop", label_selector=f"app={deployment['spec']['selector']['matchLabels']['app']}")
    assert [r["spec"]["replicas"] for r in rs] == [5]
    assert cluster.store.get("apps/v1", "deployments", name, "shop")["status"]["readyReplicas"] == 5
    new_rs = await cluster.scenario.rolling_update("shop", name)
    sets = {r["metadata"]["name"]: r for r in cluster.store.list(*APPS, "shop") if _controller(r)["name"] == name}
    assert len(sets) == 2 and sets[new_rs["metadata"]["name"]]["spec"]["replicas"] == 5
    old = next(r for n, r in sets.items() if n != new_rs["metadata"]["name"])
    assert old["spec"]["replicas"] == 0 and old["status"]["replicas"] == 0
    owned = [p for p in _pods(cluster, "shop") if _controller(p)["uid"] in {r["metadata"]["uid"] for r in sets.values()}]
    assert {_controller(p)["name"] for p in owned} == {new_rs["metadata"]["name"]} and len(owned) == 5
    await cluster.scenario.scale("StatefulSet", "data", "postgres", 1)
    assert [p["metadata"]["name"] for p in _pods(cluster, "data")] == ["postgres-0"]


async def test_restart_pod_bumps_restart_count_and_resets_counters(cluster: Cluster) -> None:
    pod = next(p for p in _pods(cluster, "data"))
    kubelet = cluster.kubelets[pod["spec"]["nodeName"]]
    now = kubelet.clock()
    before = {c.name: c.cpu_seconds for p in kubelet.read(now).pods if p.name == pod["metadata"]["name"]
              for c in p.containers}
    await cluster.scenario.restart_pod("data", pod["metadata"]["name"])
    restarted = cluster.store.get("v1", "pods", pod["metadata"]["name"], "data")
    assert {s["restartCount"] for s in restarted["status"]["containerStatuses"]} == {1}
    after = {c.name: c.cpu_seconds for p in kubelet.read(now + 60).pods if p.name == pod["metadata"]["name"]
             for c in p.containers}
    assert after.keys() == before.keys() and all(after[n] < before[n] for n in after)


async def test_delete_pod_is_replaced_by_its_controller_and_bare_pods_are_not(cluster: Cluster) -> None:
    statefulset_pod = cluster.store.get("v1", "pods", "postgres-1", "data")
    await cluster.scenario.delete_pod("data", "postgres-1")
    replacement = cluster.store.get("v1", "pods", "postgres-1", "data")
    assert replacement["metadata"]["uid"] != statefulset_pod["metadata"]["uid"]
    await cluster.scenario.delete_pod("default", "toolbox")
    with pytest.raises(ApiError):
        cluster.store.get("v1", "pods", "toolbox", "default")


async def test_delete_workload_garbage_collects_dependents(cluster: Cluster) -> None:
    deployment = cluster.store.list("apps/v1", "deployments", "web")[0]
    uid = deployment["metadata"]["uid"]
    rs_uids = {r["metadata"]["uid"] for r in cluster.store.list(*APPS, "web") if _controller(r)["uid"] == uid}
    pod_names = [p["metadata"]["name"] for p in _pods(cluster, "web") if _controller(p)["uid"] in rs_uids]
    assert pod_names
    await cluster.scenario.delete_workload("Deployment", "web", deployment["metadata"]["name"])
    assert not [r for r in cluster.store.list(*APPS, "web") if r["metadata"]["uid"] in rs_uids]
    remaining = {p["metadata"]["name"] for p in _pods(cluster, "web")}
    assert remaining.isdisjoint(pod_names)
    served = {p.name for k in cluster.kubelets.values() for p in k.pods.values()}
    assert served.isdisjoint(pod_names)
    await cluster.scenario.delete_workload("CronJob", "batch", "nightly-report")
    assert cluster.store.list("batch/v1", "jobs", "batch") == [] and _pods(cluster, "batch") == []


async def test_same_seed_same_cluster() -> None:
    def shape(cluster: Cluster) -> list[tuple]:
        return sorted((p["metadata"]["namespace"], p["metadata"]["name"], p["spec"]["nodeName"],
                       tuple(c["name"] for c in p["spec"]["containers"])) for p in _pods(cluster))

    async with Cluster(nodes=2, pods_per_node=6, seed=11) as first:
        first_shape = shape(first)
    async with Cluster(nodes=2, pods_per_node=6, seed=11) as second:
        assert shape(second) == first_shape


async def _settle() -> None:
    """Let the simulated controllers run the reconciles queued by API writes."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_controllers_act_on_workloads_created_through_the_api(cluster: Cluster) -> None:
    kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]

    async def run(*args: str, manifest: dict | None = None) -> str:
        done = await asyncio.to_thread(subprocess.run, [*kubectl, *args], capture_output=True, text=True, timeout=60,
                                       input=json.dumps(manifest) if manifest else None)
        assert done.returncode == 0, done.stderr
        await _settle()
        return done.stdout

    labels = {"app": "hello"}
    await run("create", "-f", "-", manifest={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
    pods = [p for p in _pods(cluster, "default") if p["metadata"]["name"].startswith("hello-")]
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Running"}
    assert {tuple(_chain(cluster, p)) for p in pods} == {("ReplicaSet", "Deployment")}
    served = {p.name for k in cluster.kubelets.values() for p in k.pods.values()}
    assert {p["metadata"]["name"] for p in pods} <= served
    await run("patch", "deployment", "hello", "--type=merge", "-p", '{"spec": {"replicas": 1}}')
    assert len([p for p in _pods(cluster, "default") if p["metadata"]["name"].startswith("hello-")]) == 1
    await run("patch", "deployment", "hello", "--type=merge", "-p",
              '{"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}')
    sets = sorted((r for r in cluster.store.list(*APPS, "default") if _controller(r)["name"] == "hello"),
                  key=lambda r: r["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
    assert [r["spec"]["replicas"] for r in sets] == [0, 1]
    survivor = next(p for p in _pods(cluster, "default") if p["metadata"]["name"].startswith("hello-"))
    assert _controller(survivor)["name"] == sets[1]["metadata"]["name"]
    await run("delete", "pod", survivor["metadata"]["name"])
    replaced = [p for p in _pods(cluster, "default") if p["metadata"]["name"].startswith("hello-")]
    assert len(replaced) == 1 and replaced[0]["metadata"]["name"] != survivor["metadata"]["name"]
    await run("create", "-f", "-", manifest={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lonely", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "sh", "image": "busybox"}]}})
    lonely = cluster.store.get("v1", "pods", "lonely", "default")
    assert lonely["status"]["phase"] == "Running" and lonely["spec"]["nodeName"] in cluster.kubelets


async def test_a_pod_created_already_bound_to_a_node_is_started_by_that_nodes_kubelet(cluster: Cluster) -> None:
    """As on a real cluster, where the kubelet of spec.nodeName runs it (static-pod style, or a bypassed
    scheduler); bound to a node that does not exist, it stays Pending."""
    node = sorted(cluster.kubelets)[0]
    spec = {"containers": [{"name": "app", "image": "busybox"}]}
    for name, node_name in (("bound", node), ("nowhere", "no-such-node")):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {**spec, "nodeName": node_name}}
        cluster.store.create("v1", "pods", pod, namespace="default")
    await asyncio.sleep(0.05)
    assert cluster.store.get("v1", "pods", "bound", "default")["status"]["phase"] == "Running"
    assert cluster.store.get("v1", "pods", "nowhere", "default").get("status", {}).get("phase", "Pending") == "Pending"
