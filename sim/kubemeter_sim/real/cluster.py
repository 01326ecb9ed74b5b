"""``RealCluster``: a real control plane, fake nodes as its clients and the scenario's workloads, together.

    async with RealCluster(nodes=3, pods_per_node=10) as cluster:
        # cluster.kubeconfig: a system:masters client certificate; cluster.ca_path: the cluster CA, which also
        # signed every kubelet's serving certificate (kubemeter's --kubelet-ca)
        await cluster.node_fault("sim-worker-1", Fault("timeout"))

    async with RealCluster(nodes=3, metrics_server=True, metric_resolution=15) as cluster:
        # `kubectl top nodes` answers: metrics-server beside it (kubemeter_sim.real.metrics_server)

    async with RealCluster(nodes=3, metrics_server=True, vpa_recommender=True) as cluster:
        # and the VPA recommender (kubemeter_sim.real.vpa), its loop every metric_resolution: a
        # VerticalPodAutoscaler created through the API (cluster.vpa_recommender.watch) gets recommendations

The same surface as :class:`kubemeter_sim.cluster.Cluster` where the two can offer it (``kubeconfig``,
``ca_path``, ``kubelets``, ``scenario``, ``node_fault``), so a test can run on either backend.
"""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.cluster import ClusterSettings, raise_fd_limit
from kubemeter_sim.faults import Fault
from kubemeter_sim.kubelet import Kubelet
from kubemeter_sim.real.controlplane import ControlPlane
from kubemeter_sim.real.kube_state_metrics import KubeStateMetrics
from kubemeter_sim.real.metrics_server import MetricsServer
from kubemeter_sim.real.nodes import FakeNodes
from kubemeter_sim.real.rest import Rest, collection, wait_for
from kubemeter_sim.real.vpa import VpaRecommender
from kubemeter_sim.real.workloads import SETTLE_SECONDS, RealScenario
from kubemeter_sim.catalogue import populate_mixed

log = logging.getLogger(__name__)


class ApiReader:
    """Blocking reads with the simulator store's ``get``/``list`` signatures and errors (an error answer is an
    :class:`ApiError` from its Status body), so a test's independent oracle (walking ownerReferences, summing
    requests) reads either backend. The API server is another process: blocking the caller's event loop for one
    request delays the fake kubelets, it cannot deadlock them."""

    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self._server = server
        self._context = ssl.create_default_context(cafile=str(ca))
        self._context.load_cert_chain(str(cert), str(key))

    def _read(self, path: str, params: dict[str, str]) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(self._server + path + query, context=self._context, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                body = error.read()
            try:
                status = json.loads(body)
            except ValueError:
                status = {}
            raise ApiError(error.code, status.get("reason", error.reason), status.get("message", body.decode(
                errors="replace")), status.get("details")) from None

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict:
        return self._read(collection(api_version, plural, namespace) + f"/{name}", {})

    def list(self, api_version: str, plural: str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> list[dict]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        return self._read(collection(api_version, plural, namespace), params)["items"]


class RealCluster(ClusterSettings):
    backend = "real"

    def __init__(self, nodes: int = 3, pods_per_node: int = 10, *, scenario: Literal["mixed", "empty"] = "mixed",
                 seed: int = 0, workdir: str | Path | None = None, kubelet_version: str = "1.37.2",
                 housekeeping_interval: float = 10.0, settle_timeout: float = SETTLE_SECONDS,
                 metrics_server: bool = False, metric_resolution: float = 30.0,
                 kube_state_metrics: bool = False, vpa_recommender: bool = False) -> None:
        if vpa_recommender and not metrics_server:
            raise ValueError("vpa_recommender needs metrics_server: the VPA recommender reads metrics.k8s.io")
        super().__init__(nodes, pods_per_node, scenario, seed, workdir, kubelet_version, housekeeping_interval)
        self.control_plane = ControlPlane(self.workdir / "control-plane")
        self.settle_timeout = settle_timeout
        """How long the scenario's pods may take to run, all together (thousands of pods need minutes)."""
        self.metrics_server = MetricsServer(self.control_plane, resolution=metric_resolution) if metrics_server else None
        """metrics-server serving ``metrics.k8s.io`` (``kubectl top``), when asked for; started once the scenario
        has settled, with ``metric_resolution`` (seconds: give it the interval of the policy it is compared with)."""
        self.kube_state_metrics = KubeStateMetrics(self.control_plane) if kube_state_metrics else None
        """kube-state-metrics watching the same pods and nodes, when asked for (benchmarks of the watch side)."""
        self.vpa_recommender = VpaRecommender(self.control_plane, interval=metric_resolution) \
            if vpa_recommender else None
        """The VPA recommender (its CRDs, RBAC and process), when asked for: started after metrics-server, whose
        PodMetrics it reads, its loop every ``metric_resolution`` seconds (one sample per metrics-server point)."""

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.admin_kubeconfig

    @property
    def ca_path(self) -> Path:
        return self.control_plane.pki.path("ca.crt")

    @property
    def kubelets(self) -> dict[str, Kubelet]:
        return self.fake_nodes.kubelets

    @property
    def kubelet_port(self) -> int:
        return self.fake_nodes.port

    @property
    def url(self) -> str:
        return self.control_plane.url

    async def __aenter__(self) -> "RealCluster":
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        raise_fd_limit(3 * self.node_count + 1024)
        for peer in (self.metrics_server, self.kube_state_metrics, self.vpa_recommender):
            if peer is not None:
                peer.check_installed()  # before minutes of start-up, not after
        await self.control_plane.start()
        pki = self.control_plane.pki
        self.rest = Rest(self.control_plane.url, pki.path("ca.crt"), pki.path("admin.crt"), pki.path("admin.key"))
        self.store = ApiReader(self.control_plane.url, pki.path("ca.crt"), pki.path("admin.crt"), pki.path("admin.key"))
        await self.rest.__aenter__()
        self.fake_nodes = FakeNodes(self.rest, pki.ca, self.workdir / "kubelets", kubelet_version=self.kubelet_version,
                                    seed=self.seed, housekeeping_interval=self.housekeeping_interval)
        await self.fake_nodes.start()
        self.scenario = RealScenario(self.rest, self.fake_nodes, seed=self.seed)
        names = ["sim-control-plane"] + [f"sim-worker-{number}" for number in range(1, self.node_count)]
        for number, name in enumerate(names):
            await self.fake_nodes.add(name, control_plane=number == 0, taint_control_plane=self.node_count > 1)
            self.scenario.nodes.append(name)
        self.scenario.control_planes.append(names[0])
        for name in names:
            await wait_for(lambda name=name: self.fake_nodes.ready(name), SETTLE_SECONDS,
                           f"node {name} Ready without the not-ready taint")
        if self.scenario_name == "mixed":
            await populate_mixed(self.scenario, self.pods_per_node)
            await self.scenario.wait_settled(self.settle_timeout)
        if self.metrics_server is not None:
            await self.metrics_server.start(self.rest)
        if self.vpa_recommender is not None:
            await self.vpa_recommender.start(self.rest)
        if self.kube_state_metrics is not None:
            await self.kube_state_metrics.start(self.rest)

    async def _stop(self) -> None:
        if hasattr(self, "fake_nodes"):
            await self.fake_nodes.close()
        if hasattr(self, "rest"):
            await self.rest.__aexit__(None, None, None)
        await self.control_plane.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def node_fault(self, name: str, fault: Fault | str | None) -> None:
        """Make the node's kubelet misbehave (``None`` heals it); see :mod:`kubemeter_sim.faults`."""
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        await self.fake_nodes.set_fault(name, fault)
