"""The workload catalogue: what the scenario's clusters are made of, whichever backend builds them.

Container specs and pod templates as manifests write them (``container``, ``template``), the apps of the
"mixed" cluster with their usage profiles, and ``populate_mixed``, which builds that cluster through any
:class:`Workloads` backend: the simulated one (:class:`kubemeter_sim.scenario.Scenario`) or the real control
plane's (:class:`kubemeter_sim.real.workloads.RealScenario`). Its choices come from its own generator seeded
with the backend's seed, so the same seed gives the same catalogue on both.
"""

from __future__ import annotations

import inspect
import random
from typing import Any, Protocol

from kubemeter_sim.kubelet import PROFILE_ANNOTATION

WORKLOAD_API = {"Deployment": ("apps/v1", "deployments"), "ReplicaSet": ("apps/v1", "replicasets"),
                "StatefulSet": ("apps/v1", "statefulsets"), "DaemonSet": ("apps/v1", "daemonsets"),
                "Job": ("batch/v1", "jobs"), "CronJob": ("batch/v1", "cronjobs"), "Pod": ("v1", "pods")}
"""Each workload kind of the catalogue: its apiVersion and resource (plural), on both backends."""


class Workloads(Protocol):
    """What ``populate_mixed`` asks of a backend. The simulated builders return at once, the real control
    plane's are coroutines; ``run_cronjob`` and ``complete_job`` are coroutines on both."""

    seed: int
    control_planes: list[str]

    @property
    def nodes(self) -> list[str]: ...
    def ensure_namespace(self, name: str) -> Any: ...
    def create_static_pod(self, node: str, component: str, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> Any: ...
    def create_daemonset(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                         started_ago: float = 0.0) -> Any: ...
    def create_statefulset(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                           started_ago: float = 0.0) -> Any: ...
    def create_deployment(self, namespace: str, name: str, replicas: int, pod_template: dict[str, Any], *,
                          started_ago: float = 0.0) -> Any: ...
    def create_cronjob(self, namespace: str, name: str, schedule: str, pod_template: dict[str, Any]) -> Any: ...
    async def run_cronjob(self, namespace: str, name: str, *, started_ago: float = 0.0) -> dict[str, Any]: ...
    async def complete_job(self, namespace: str, job_name: str) -> None: ...
    def create_bare_pod(self, namespace: str, name: str, pod_template: dict[str, Any], *,
                        started_ago: float = 0.0) -> Any: ...
    def running_pod_count(self) -> Any: ...


def container(name: str, *, cpu: str | None = None, memory: str | None = None, cpu_limit: str | None = None,
              memory_limit: str | None = None, image: str = "registry.example/app:1.0") -> dict[str, Any]:
    """A container spec; ``None`` leaves the request or limit out, as many real manifests do."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    limits = {k: v for k, v in (("cpu", cpu_limit), ("memory", memory_limit)) if v is not None}
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": resources,
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def template(labels: dict[str, str], containers: list[dict[str, Any]], *, profiles: str | None = None,
             init_containers: list[dict[str, Any]] | None = None, host_network: bool = False) -> dict[str, Any]:
    """A pod template; ``profiles`` is the usage profile annotation (see kubelet.PROFILE_ANNOTATION)."""
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                            "securityContext": {}}
    if init_containers:
        spec["initContainers"] = init_containers
    if host_network:
        spec["hostNetwork"] = True
    metadata: dict[str, Any] = {"labels": dict(labels)}
    if profiles:
        metadata["annotations"] = {PROFILE_ANNOTATION: profiles}
    return {"metadata": metadata, "spec": spec}



# -- the "mixed" cluster -------------------------------------------------------------------------------------

_APP_NAMES = ("frontend", "api", "cart", "checkout", "search", "worker", "cache", "auth", "billing", "catalog",
              "ingest", "notifier", "reports", "gateway", "ledger", "media")
_APP_PROFILES = ("steady", "diurnal", "bursty", "steady", "diurnal", "leak")
_STATIC_COMPONENTS = (("etcd", "100m", "100Mi"), ("kube-apiserver", "250m", None),
                      ("kube-controller-manager", "200m", None), ("kube-scheduler", "100m", None))


def _app_template(rng: random.Random, app: str) -> dict[str, Any]:
    """1 to 4 containers (about 2.8 on average); some without limits, a few without any requests."""
    best_effort = rng.random() < 0.08
    memory = rng.choice((64, 128, 256, 512))
    main = container(app, cpu=None if best_effort else rng.choice(("50m", "100m", "250m", "500m")),
                     memory=None if best_effort else f"{memory}Mi",
                     memory_limit=None if best_effort or rng.random() < 0.3 else f"{memory * 2}Mi")
    sidecars = [container("istio-proxy", cpu="10m", memory="40Mi", cpu_limit="2", memory_limit="1Gi"),
                container("log-shipper", cpu="5m", memory="32Mi"),
                container("metrics-exporter", cpu="5m", memory="16Mi", memory_limit="64Mi")]
    chosen = sidecars[: rng.choice((0, 1, 2, 2, 3, 3))]
    kind = rng.choice(_APP_PROFILES)
    profiles = ",".join([f"{app}={kind}"] + [f"{c['name']}={rng.choice(('idle', 'steady'))}" for c in chosen])
    return template({"app": app}, [main, *chosen], profiles=profiles)


async def _settle(result: Any) -> Any:
    """The simulated builders' results as they are, the real control plane's awaited."""
    return await result if inspect.isawaitable(result) else result


async def populate_mixed(scenario: Workloads, pods_per_node: int) -> None:
    """A deterministic mix filling about ``pods_per_node`` pods per node: static control-plane pods, two
    DaemonSets, a StatefulSet, a CronJob with a completed and a running Job, bare pods, and Deployments
    for the rest. Initial pods started a while ago, as on a cluster that has been up for some time."""
    # Its own generator, not the scenario's (which also names pods): the same seed then gives the same
    # catalogue on both backends.
    rng = random.Random(scenario.seed)
    target = len(scenario.nodes) * pods_per_node
    for namespace in ("monitoring", "data", "batch"):
        await _settle(scenario.ensure_namespace(namespace))
    for node in scenario.control_planes:
        for component, cpu, memory in _STATIC_COMPONENTS:
            await _settle(scenario.create_static_pod(node, component, template(
                {"component": component, "tier": "control-plane"}, [container(component, cpu=cpu, memory=memory)],
                profiles="steady"), started_ago=rng.uniform(3000, 7200)))
    await _settle(scenario.create_daemonset("kube-system", "kube-proxy", template(
        {"k8s-app": "kube-proxy"}, [container("kube-proxy")], profiles="steady", host_network=True),
        started_ago=3600))
    await _settle(scenario.create_daemonset("monitoring", "node-exporter", template(
        {"app.kubernetes.io/name": "node-exporter"},
        [container("node-exporter", cpu="100m", memory="30Mi", memory_limit="50Mi"),
         container("kube-rbac-proxy", cpu="10m", memory="20Mi", memory_limit="40Mi")],
        profiles="node-exporter=bursty,kube-rbac-proxy=idle"), started_ago=3000))
    postgres = template({"app": "postgres"}, [container("postgres", cpu="500m", memory="1Gi", memory_limit="2Gi"),
                                              container("exporter", cpu="10m", memory="32Mi")],
                        profiles="postgres=diurnal,exporter=idle",
                        init_containers=[container("init-permissions", cpu="10m", memory="16Mi")])
    await _settle(scenario.create_statefulset("data", "postgres", 3, postgres, started_ago=2400))
    await _settle(scenario.create_cronjob("batch", "nightly-report", "*/15 * * * *", template(
        {"app": "nightly-report"}, [container("report", cpu="200m", memory="128Mi", memory_limit="256Mi")],
        profiles="bursty")))
    finished = await scenario.run_cronjob("batch", "nightly-report", started_ago=1800)
    await scenario.complete_job("batch", finished["metadata"]["name"])
    await scenario.run_cronjob("batch", "nightly-report", started_ago=120)
    await _settle(scenario.create_bare_pod("default", "debug-shell", template(
        {"run": "debug-shell"}, [container("shell")], profiles="idle"), started_ago=900))
    await _settle(scenario.create_bare_pod("default", "toolbox", template(
        {"run": "toolbox"}, [container("toolbox", cpu="50m", memory="64Mi"), container("proxy", cpu="5m")],
        profiles="toolbox=bursty,proxy=idle"), started_ago=600))
    remaining = target - await _settle(scenario.running_pod_count())
    namespaces = ("shop", "web", "analytics")
    number = 0
    while remaining > 0:
        # Big clusters get one namespace per ~20 Deployments, as teams would have.
        namespace = namespaces[number % 3] if target < 600 else f"team-{number // 16:03d}"
        await _settle(scenario.ensure_namespace(namespace))
        app = _APP_NAMES[number % len(_APP_NAMES)]
        name = app if number < 3 * len(_APP_NAMES) or target >= 600 else f"{app}-{number // (3 * len(_APP_NAMES))}"
        replicas = min(remaining, rng.choice((1, 2, 2, 3, 3, 4, 6)))
        await _settle(scenario.create_deployment(namespace, name, replicas, _app_template(rng, app),
                                                 started_ago=rng.uniform(600, 5400)))
        remaining -= replicas
        number += 1
