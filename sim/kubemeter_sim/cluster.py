"""``Cluster``: the simulated API server, one kubelet per node and a scenario, started together.

    async with Cluster(nodes=3, pods_per_node=10) as cluster:
        # cluster.kubeconfig works for kopf, the official client and kubectl
        await cluster.node_fault("sim-worker-1", Fault("timeout"))

One certificate authority (``workdir/kubeconfig.kubelet-ca.crt``, named after the kubeconfig by
:func:`kubelet_ca_path`; also the kubeconfig's CA) signs the API server's and every kubelet's serving
certificate, as in a kubeadm cluster with kubelet serving certificates.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import resource
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from aiohttp import web

from kubemeter_sim import tls
from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.server import ApiServer
from kubemeter_sim.apiserver.store import Store
from kubemeter_sim.faults import Fault
from kubemeter_sim.kubelet import ClientCredentials, Kubelet, KubeletFleet
from kubemeter_sim.ports import free_port
from kubemeter_sim.scenario import Scenario, populate_mixed

log = logging.getLogger(__name__)

RESTART_CHECK_SECONDS = 5.0
"""How often kubelets look for OOM kills nobody scraped (so ``kubectl get pods`` shows RESTARTS)."""


def node_ip(index: int, network: int = 1) -> str:
    """The InternalIP of the ``index``-th node: 127.1.0.1, 127.1.0.2, ... (all loopback on Linux). The real
    control plane's fake nodes take network 2, so both backends can run side by side in one process."""
    return f"127.{network}.{index // 250}.{index % 250 + 1}"


def raise_fd_limit(needed: int) -> None:
    """Each kubelet holds a listening socket, plus one per open scrape connection on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard))


class ClusterSettings:
    """What both backends (this simulated cluster and :class:`kubemeter_sim.real.cluster.RealCluster`) are
    built from, checked the same way."""

    backend = "sim"

    def __init__(self, nodes: int, pods_per_node: int, scenario: str, seed: int, workdir: str | Path | None,
                 kubelet_version: str, housekeeping_interval: float) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if scenario not in ("mixed", "empty"):
            raise ValueError(f"unknown scenario {scenario!r}: mixed or empty")
        self.node_count = nodes
        self.pods_per_node = pods_per_node
        self.scenario_name = scenario
        self.seed = seed
        self.kubelet_version = kubelet_version
        self.housekeeping_interval = housekeeping_interval
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(
            prefix=f"kubemeter-{self.backend}-"))


def kubelet_ca_path(kubeconfig: Path) -> Path:
    """Where the CA that signed the kubelets goes beside a kubeconfig: named after it (``sim.kubeconfig`` ->
    ``sim.kubelet-ca.crt``), so that two clusters' kubeconfigs in one folder never share a CA file."""
    return kubeconfig.with_name(f"{kubeconfig.stem}.kubelet-ca.crt")


class Cluster(ClusterSettings):
    """A whole simulated cluster; see the module docstring."""

    def __init__(self, nodes: int = 3, pods_per_node: int = 10, *, scenario: Literal["mixed", "empty"] = "mixed",
                 seed: int = 0, workdir: str | Path | None = None, watch_history: int = 10_000,
                 bookmark_interval: float = 60.0, kubelet_version: str = "1.30.0",
                 housekeeping_interval: float = 10.0) -> None:
        super().__init__(nodes, pods_per_node, scenario, seed, workdir, kubelet_version, housekeeping_interval)
        self.store = Store(watch_history=watch_history)
        self._watch_history = watch_history
        self._bookmark_interval = bookmark_interval
        self.kubelets: dict[str, Kubelet] = {}
        self.token = secrets.token_urlsafe(32)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ca_path = kubelet_ca_path(self.kubeconfig)
        self._pki = self.workdir / "pki"
        self._kubelet_key = tls.new_key()
        self._nodes_started = 0
        self._restart_checker: asyncio.Task[None] | None = None
        self.kubelet_port = 0

    @property
    def url(self) -> str:
        return self.apiserver.url

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def __aenter__(self) -> "Cluster":
        # Building tens of thousands of objects triggers full garbage collections over an ever larger heap
        # (quadratic); pause the collector while building. (No gc.freeze(): it would keep every
        # cluster's reference cycles alive after the cluster is gone.)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        finally:
            if was_enabled:
                gc.enable()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        raise_fd_limit(3 * self.node_count + 1024)
        self._pki.mkdir(parents=True, exist_ok=True)
        self.ca = tls.CertificateAuthority.create("kubernetes")
        self.ca_path.write_bytes(self.ca.pem)
        rogue = tls.CertificateAuthority.create("not-the-cluster-ca")
        rogue_context = tls.server_context(tls.write_server_chain(
            rogue, self._pki / "rogue.pem", "rogue", ips=["127.0.0.1"], key=self._kubelet_key))
        apiserver_context = tls.server_context(tls.write_server_chain(
            self.ca, self._pki / "apiserver.pem", "kube-apiserver", ips=["127.0.0.1"],
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]))
        self.apiserver = ApiServer(self.store, host="127.0.0.1", port=0, ssl_context=apiserver_context,
                                   watch_history=self._watch_history, bookmark_interval=self._bookmark_interval)
        self.apiserver.add_token(self.token)
        self.apiserver.node_proxy = self._proxy
        await self.apiserver.start()
        self.fleet = KubeletFleet(rogue_context)
        await self.fleet.start()
        self.kubelet_port = free_port(node_ip(0))
        self.store.add_listener(self._route_pod_event)
        self.scenario = Scenario(self.store, start_kubelet=self._start_kubelet, stop_kubelet=self._stop_kubelet,
                                 seed=self.seed, kubelet_version=self.kubelet_version)
        await self.scenario.add_node(control_plane=True, taint=self.node_count > 1)
        for _ in range(self.node_count - 1):
            await self.scenario.add_node()
        if self.scenario_name == "mixed":
            await populate_mixed(self.scenario, self.pods_per_node)
        self._write_kubeconfig()
        self._restart_checker = asyncio.create_task(self._check_restarts())

    async def _stop(self) -> None:
        if self._restart_checker is not None:
            self._restart_checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart_checker
        if hasattr(self, "fleet"):
            await self.fleet.close()
        if hasattr(self, "apiserver"):
            await self.apiserver.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubemeter-sim", "cluster": {
                "server": self.apiserver.url,
                "certificate-authority-data": base64.b64encode(self.ca.pem).decode()}}],
            "users": [{"name": "kubemeter-sim-admin", "user": {"token": self.token}}],
            "contexts": [{"name": "kubemeter-sim", "context": {"cluster": "kubemeter-sim",
                                                              "user": "kubemeter-sim-admin"}}],
            "current-context": "kubemeter-sim",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    # -- tokens and faults --------------------------------------------------------------------------------
    def token_for(self, rules: list[dict[str, Any]] | None,
                  user: str = "system:serviceaccount:kubemeter:kubemeter") -> str:
        """A new bearer token for ``user`` bound to RBAC PolicyRules (``None``: cluster-admin)."""
        token = secrets.token_urlsafe(32)
        self.apiserver.add_token(token, rules, user)
        return token

    async def node_fault(self, name: str, fault: Fault | str | None) -> None:
        """Make the node's kubelet misbehave (``None`` heals it); see :mod:`kubemeter_sim.faults`."""
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        await self.fleet.set_fault(self.kubelets[name], fault)

    # -- kubelets -----------------------------------------------------------------------------------------
    async def _start_kubelet(self, name: str) -> tuple[str, int]:
        ip = node_ip(self._nodes_started)
        self._nodes_started += 1
        chain = tls.write_server_chain(self.ca, self._pki / f"kubelet-{name}.pem", name, ips=[ip], dns_names=[name],
                                       key=self._kubelet_key)
        kubelet = Kubelet(node_name=name, ip=ip, port=self.kubelet_port, version=self.kubelet_version,
                          authorize=self._authorize_kubelet_request, seed=self.seed,
                          housekeeping_interval=self.housekeeping_interval, on_restart=self._report_restart)
        await self.fleet.add(kubelet, tls.server_context(chain))
        self.kubelets[name] = kubelet
        return ip, self.kubelet_port

    def _authorize_kubelet_request(self, credentials: ClientCredentials, *attributes: str) -> tuple[bool, str]:
        # The simulated API server knows tokens only; the simulated kubelets ask for no client certificate.
        return self.apiserver.authorize(credentials.token, *attributes) if credentials.token else (False, "")

    async def _stop_kubelet(self, name: str) -> None:
        kubelet = self.kubelets.pop(name)
        await self.fleet.remove(kubelet)

    def _route_pod_event(self, event_type: str, rtype: Any, obj: dict[str, Any]) -> None:
        if rtype.kind != "Pod":
            return
        kubelet = self.kubelets.get((obj.get("spec") or {}).get("nodeName") or "")
        if kubelet is None:
            return
        if event_type == "DELETED":
            kubelet.forget_pod(obj["metadata"]["uid"])
        else:
            kubelet.sync_pod(obj)

    def _report_restart(self, namespace: str, pod: str, container: str, restart_count: int, started_at: float) -> None:
        # Deferred: the kubelet notices while rendering, and the status write notifies that same kubelet.
        asyncio.get_running_loop().call_soon(self._write_restart, namespace, pod, container, restart_count, started_at)

    def _write_restart(self, namespace: str, pod: str, container: str, restart_count: int, started_at: float) -> None:
        try:
            self.scenario.report_restart(namespace, pod, container, restart_count, started_at)
        except ApiError as error:  # the pod went away in the meantime
            log.debug("restart of %s/%s not reported: %s", namespace, pod, error.message)

    async def _check_restarts(self) -> None:
        while True:
            await asyncio.sleep(RESTART_CHECK_SECONDS)
            for kubelet in list(self.kubelets.values()):
                kubelet.check_restarts()

    async def _proxy(self, node_name: str, path: str, request: web.Request) -> web.StreamResponse:
        kubelet = self.kubelets.get(node_name)
        if kubelet is None:
            raise ApiError(503, "ServiceUnavailable", f'no kubelet for node "{node_name}"')
        return await self.fleet.proxy(kubelet, path, request)
