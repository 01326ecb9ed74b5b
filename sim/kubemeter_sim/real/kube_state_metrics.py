"""kube-state-metrics beside the real control plane, for the watch side of the cost comparison (issue 12, part 4):
a process outside the cluster holding the same pods and nodes kubemeter's model holds, and serving them as series.

    ksm = KubeStateMetrics(plane)
    await ksm.start(rest)     # returns once its /metrics lists every node
    text = await ksm.scrape()

It runs as ``system:kube-state-metrics`` (a client certificate of the cluster CA) allowed to list and watch pods
and nodes only, and it watches only those (``--resources=pods,nodes``): the objects kubemeter's own store keeps
(kubemeter also watches ReplicaSets and Jobs, which are few beside the pods). Both its ports are on 127.0.0.1.
It is not built by ``make controlplane`` (nothing in ``make test`` runs it): ``make peers`` builds it, pinned.
"""

from __future__ import annotations

import os
import re

import aiohttp

from kubemeter_sim.ports import free_port
from kubemeter_sim.real.controlplane import ControlPlane, ControlPlaneError, write_kubeconfig
from kubemeter_sim.real.rest import Rest, collection, wait_for

VERSION = "v2.16.0"
"""The newest k8s.io/kube-state-metrics/v2 the Go module proxy serves here (v2.17.0 is refused)."""
USER = "system:kube-state-metrics"
_NODE_INFO = re.compile(r"^kube_node_info\{", re.MULTILINE)


class KubeStateMetrics:
    def __init__(self, plane: ControlPlane, *, start_timeout: float = 120.0) -> None:
        self.plane = plane
        self.start_timeout = start_timeout
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def check_installed(self) -> None:
        if not os.access(self.plane.binaries / "kube-state-metrics", os.X_OK):
            raise ControlPlaneError(f"no kube-state-metrics in {self.plane.binaries}: build it with `make peers`")

    async def start(self, rest: Rest) -> None:
        self.check_installed()
        pki = self.plane.pki
        pki.write_pair("kube-state-metrics-client", pki.ca.issue_client_pem(USER))
        kubeconfig = write_kubeconfig(
            self.plane.workdir / "kube-state-metrics.kubeconfig", self.plane.url, pki.ca.pem, user=USER,
            cert=pki.path("kube-state-metrics-client.crt"), key=pki.path("kube-state-metrics-client.key"))
        rbac = "rbac.authorization.k8s.io/v1"
        await rest.apply(collection(rbac, "clusterroles"), {
            "apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": USER},
            "rules": [{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["list", "watch"]}]})
        await rest.apply(collection(rbac, "clusterrolebindings"), {
            "apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": USER}]})
        self.port = free_port()
        await self.plane.spawn("kube-state-metrics", [
            f"--kubeconfig={kubeconfig}", "--resources=pods,nodes",
            "--host=127.0.0.1", f"--port={self.port}",
            "--telemetry-host=127.0.0.1", f"--telemetry-port={free_port()}",
        ])
        nodes = len((await rest.get("/api/v1/nodes"))["items"])
        seen = 0

        async def every_node_listed() -> bool:
            nonlocal seen
            self.plane.check_alive()
            try:
                seen = len(_NODE_INFO.findall(await self.scrape()))
            except (aiohttp.ClientError, TimeoutError):
                return False
            return seen >= nodes

        try:
            await wait_for(every_node_listed, self.start_timeout, "kube-state-metrics listing every node", interval=0.5)
        except TimeoutError as error:
            log = self.plane.workdir / "kube-state-metrics.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise ControlPlaneError(f"kube-state-metrics: {error} ({seen} of {nodes} nodes); the end of {log}:\n"
                                    + "\n".join(tail)) from None

    async def scrape(self, timeout: float = 30.0) -> str:
        """Its /metrics, as Prometheus would fetch it."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(self.url) as response:
                response.raise_for_status()
                return await response.text()
