"""The VPA recommender beside the real control plane: k8s.io/autoscaler/vertical-pod-autoscaler's
``pkg/recommender`` (pinned in hack/build-control-plane.sh), a process outside the cluster, reading usage from
metrics-server's ``metrics.k8s.io`` and writing ``status.recommendation`` of VerticalPodAutoscaler objects, so its
targets can be compared with kubemeter's on the same usage profiles.

    server = MetricsServer(plane, resolution=10.0); await server.start(rest)
    vpa = VpaRecommender(plane, interval=10.0)
    await vpa.start(rest)                            # the CRDs, upstream's RBAC, the process
    await vpa.watch("shop", "Deployment", "api")     # a VPA with updateMode Off: recommend, never evict

It authenticates as ``system:vpa-recommender`` (a client certificate of the cluster CA) with the ClusterRoles
that upstream's deploy/vpa-rbac.yaml binds to the recommender's ServiceAccount, bound to that user instead. The
CRDs and the RBAC come from the module's own deploy/ directory, copied next to the binary by the build.

Its flags, chosen so that its figures are comparable with a kubemeter policy at its defaults (the ``vpa``
strategy) and an interval of ``interval`` seconds:

- ``--recommender-interval`` = the policy's interval (default 1m): it takes one sample per container per loop
  from the PodMetrics, so a loop as often as metrics-server's resolution and kubemeter's cycle gives both the
  same sampling rate (a PodMetrics it has already seen, same timestamp, is ignored, as a duplicate).
- ``--pod-recommendation-min-cpu-millicores=0``, ``--pod-recommendation-min-memory-mb=0`` (default 25m and
  250 MB per pod, split over its containers): kubemeter has no floor unless a policy sets
  ``recommendations.cpu.min``/``memory.min``; with VPA's, every container here below 250 MB would be raised to it.
- ``--target-*-percentile``, ``--recommendation-{lower,upper}-bound-*-percentile``,
  ``--recommendation-margin-fraction``, the two half-lives, ``--memory-aggregation-interval``,
  ``--confidence-interval-*`` (:func:`method_flags`): taken from kubemeter's settings (at their defaults p90,
  p50/p95, 15%, 24h, 24h, 24h, which are VPA's defaults too); given explicitly so that a change of either's
  defaults cannot silently change what is compared.
- ``--round-cpu-millicores=1``, ``--round-memory-bytes=1`` (the defaults): no rounding beyond VPA's own
  resolution (whole millicores, whole bytes).
- ``--storage=checkpoint`` (the default): there are none to load on a new test bed, and the
  VerticalPodAutoscalerCheckpoint objects it writes every loop carry its histograms, so a test can apply
  kubemeter's method to VPA's own samples. ``--checkpoints-timeout`` stays 1m.
- ``--leader-elect=false``: one replica; ``--address=127.0.0.1:<free port>``: its /metrics and /health-check
  on loopback only (default ``:8942``, every interface).

Started through :meth:`ControlPlane.spawn`: it stops with the control plane and dies with its parent; its
output is ``<control plane workdir>/vpa-recommender.log``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from kubemeter.compute.rightsizing import STRATEGIES, HistoryConfig, RecommendationConfig
from kubemeter_sim.ports import free_port
from kubemeter_sim.real.controlplane import ControlPlane, ControlPlaneError, write_kubeconfig
from kubemeter_sim.real.rest import Rest, RestError, collection, wait_for

BINARY = "vpa-recommender"
CRDS_FILE, RBAC_FILE = "vpa-v1-crd-gen.yaml", "vpa-rbac.yaml"
"""Copied from the module's deploy/ directory into the binaries' directory by hack/build-control-plane.sh."""
USER = "system:vpa-recommender"
UPSTREAM_ACCOUNT = {"kind": "ServiceAccount", "name": "vpa-recommender", "namespace": "kube-system"}
GROUP, VERSION = "autoscaling.k8s.io", "v1"
RBAC = "rbac.authorization.k8s.io/v1"


def vpa_path(namespace: str, name: str = "") -> str:
    return collection(f"{GROUP}/{VERSION}", "verticalpodautoscalers", namespace) + (f"/{name}" if name else "")


def checkpoint_path(namespace: str) -> str:
    return collection(f"{GROUP}/{VERSION}", "verticalpodautoscalercheckpoints", namespace)


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def method_flags(recommendation: RecommendationConfig = STRATEGIES["vpa"],
                 history: HistoryConfig = HistoryConfig()) -> list[str]:
    """VPA's flags for kubemeter's method with these settings (a policy's ``spec.recommendations``): percentiles,
    margin, half-lives, memory aggregation interval, confidence interval. ValueError for what VPA cannot express:
    two margins (it has one) or bounds a user set (its floors are per pod, split over the containers)."""
    if recommendation.cpu_margin != recommendation.memory_margin:
        raise ValueError("the VPA recommender has one margin for CPU and memory, not "
                         f"{recommendation.cpu_margin:g} and {recommendation.memory_margin:g}")
    if any(getattr(recommendation, f"{r}_{e}") is not None for r in ("cpu", "memory") for e in ("min", "max")):
        raise ValueError("the VPA recommender's floors are per pod (split over its containers): compare without "
                         "cpu/memory min and max")
    lower, upper = recommendation.lower_bound_percentile / 100, recommendation.upper_bound_percentile / 100
    return [
        f"--target-cpu-percentile={recommendation.cpu_percentile / 100:g}",
        f"--target-memory-percentile={recommendation.memory_percentile / 100:g}",
        f"--recommendation-lower-bound-cpu-percentile={lower:g}",
        f"--recommendation-lower-bound-memory-percentile={lower:g}",
        f"--recommendation-upper-bound-cpu-percentile={upper:g}",
        f"--recommendation-upper-bound-memory-percentile={upper:g}",
        f"--recommendation-margin-fraction={recommendation.cpu_margin:g}",
        f"--cpu-histogram-decay-half-life={_duration(history.half_life)}",
        f"--memory-histogram-decay-half-life={_duration(history.half_life)}",
        f"--memory-aggregation-interval={_duration(history.memory_peak_interval)}",
        f"--confidence-interval-cpu={_duration(recommendation.confidence_interval)}",
        f"--confidence-interval-memory={_duration(recommendation.confidence_interval)}",
    ]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def recommender_rbac(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object): the ClusterRoles upstream binds to the recommender's ServiceAccount, and those
    bindings with the ServiceAccount replaced by :data:`USER` (the namespaced leader-election Role is left out:
    leader election is off)."""
    roles = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "ClusterRole"}
    found = []
    for doc in documents:
        if doc["kind"] != "ClusterRoleBinding" or UPSTREAM_ACCOUNT not in doc.get("subjects", []):
            continue
        role = roles[doc["roleRef"]["name"]]
        found.append((collection(RBAC, "clusterroles"), {k: role[k] for k in ("apiVersion", "kind", "metadata", "rules")}))
        found.append((collection(RBAC, "clusterrolebindings"), {
            "apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": doc["metadata"]["name"]},
            "roleRef": doc["roleRef"], "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                                                      "name": USER}]}))
    return found


class VpaRecommender:
    """One VPA recommender process for ``plane``; ``interval`` (seconds) is its ``--recommender-interval``: give
    it the interval of the kubemeter policy it is compared with (and metrics-server's resolution);
    ``recommendation`` and ``history`` the policy's method (kubemeter's defaults unless given)."""

    def __init__(self, plane: ControlPlane, *, interval: float = 60.0,
                 recommendation: RecommendationConfig = STRATEGIES["vpa"], history: HistoryConfig = HistoryConfig(),
                 start_timeout: float = 120.0) -> None:
        if interval <= 0:
            raise ValueError(f"VPA recommender interval {interval!r}: must be positive")
        method_flags(recommendation, history)  # what VPA cannot express is said now, not after the start
        self.plane = plane
        self.interval = interval
        self.method = (recommendation, history)
        self.start_timeout = start_timeout
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.plane.workdir / f"{BINARY}.log"

    def check_installed(self) -> None:
        """Raise :class:`ControlPlaneError` saying how to build it when the binary or its manifests are missing."""
        binaries = self.plane.binaries
        if not os.access(binaries / BINARY, os.X_OK) or not all(
                (binaries / name).is_file() for name in (CRDS_FILE, RBAC_FILE)):
            raise ControlPlaneError(f"no {BINARY} (or its {CRDS_FILE}, {RBAC_FILE}) in {binaries}: build it with "
                                    "`make controlplane`")

    def flags(self, kubeconfig: Path) -> list[str]:
        """The command line (see the module's docstring for why each)."""
        return [
            f"--kubeconfig={kubeconfig}", "--leader-elect=false", f"--address=127.0.0.1:{self.port}",
            f"--recommender-interval={_duration(self.interval)}",
            "--pod-recommendation-min-cpu-millicores=0", "--pod-recommendation-min-memory-mb=0",
            *method_flags(*self.method),
            "--round-cpu-millicores=1", "--round-memory-bytes=1", "--storage=checkpoint", "--v=2",
        ]

    async def start(self, rest: Rest) -> None:
        """Install the CRDs and RBAC and start it on the running control plane (``rest``: an admin client);
        returns once its /health-check answers."""
        self.check_installed()
        self.rest = rest
        binaries = self.plane.binaries
        for crd in _documents(binaries / CRDS_FILE):
            await rest.apply("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        for path, body in recommender_rbac(_documents(binaries / RBAC_FILE)):
            await rest.apply(path, body)
        await self._wait_established([crd["metadata"]["name"] for crd in _documents(binaries / CRDS_FILE)])
        pki = self.plane.pki
        pki.write_pair("vpa-recommender-client", pki.ca.issue_client_pem(USER))
        kubeconfig = write_kubeconfig(
            self.plane.workdir / "vpa-recommender.kubeconfig", self.plane.url, pki.ca.pem, user=USER,
            cert=pki.path("vpa-recommender-client.crt"), key=pki.path("vpa-recommender-client.key"))
        self.port = free_port()
        await self.plane.spawn(BINARY, self.flags(kubeconfig))
        await self._wait_healthy()

    async def watch(self, namespace: str, kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
        """A VerticalPodAutoscaler named after the workload, ``updateMode: Off``: recommendations only."""
        return await self.rest.apply(vpa_path(namespace), {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": name},
                     "updatePolicy": {"updateMode": "Off"}}})

    async def recommendation(self, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        """Container name -> its ``containerRecommendations`` entry ({} until the first one)."""
        vpa = await self.rest.get(vpa_path(namespace, name))
        entries = ((vpa.get("status") or {}).get("recommendation") or {}).get("containerRecommendations") or []
        return {entry["containerName"]: entry for entry in entries}

    async def checkpoints(self, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
        """(VPA name, container name) -> the VerticalPodAutoscalerCheckpoint's status (its histograms)."""
        items = (await self.rest.get(checkpoint_path(namespace)))["items"]
        return {(c["spec"]["vpaObjectName"], c["spec"]["containerName"]): c.get("status") or {} for c in items}

    async def _wait_established(self, names: list[str]) -> None:
        async def established() -> bool:
            for name in names:
                crd = await self.rest.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                if not any(c.get("type") == "Established" and c.get("status") == "True"
                           for c in (crd.get("status") or {}).get("conditions") or []):
                    return False
            try:
                await self.rest.get(vpa_path("default"))
            except RestError:
                return False  # served from discovery a moment after Established
            return True

        await wait_for(established, self.start_timeout, "the VPA CRDs established", interval=0.5)

    async def _wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.port}/health-check"
        timeout = aiohttp.ClientTimeout(total=5)

        async def healthy() -> bool:
            self.plane.check_alive()
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                    return response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False

        try:
            await wait_for(healthy, self.start_timeout, f"{BINARY} answering {url}", interval=0.5)
        except (TimeoutError, ControlPlaneError) as error:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:] if self.log_path.exists() else []
            raise ControlPlaneError(f"{BINARY}: {error}; the end of {self.log_path}:\n" + "\n".join(tail)) from None
