"""metrics-server beside the real control plane: a process outside the cluster, serving ``metrics.k8s.io``
through the aggregation layer, so ``kubectl top`` works on the test bed and its figures can be compared with
kubemeter's.

    server = MetricsServer(plane, resolution=15.0)
    await server.start(rest)      # returns once `kubectl top nodes` and `kubectl top pods -A` answer

It runs as ``system:metrics-server`` (a client certificate of the cluster CA) with the RBAC of upstream's
manifests (manifests/base/rbac.yaml) bound to that user; the same credentials authenticate it to the kubelets,
which authorize ``nodes/metrics`` by SubjectAccessReview. It dials each node's InternalIP at the port of its
status (``--kubelet-use-node-status-port``), the fake nodes' 127.2.x.y, and verifies the kubelets' serving
certificates against the cluster CA, which signed them. It serves on 127.0.0.1 only, with a certificate of its
own CA for ``metrics-server.kube-system.svc`` (the name the aggregator checks); the APIService carries that CA.

How the aggregator reaches a process outside the cluster: the APIService's Service is of type ExternalName
with ``externalName: 127.0.0.1``, and the aggregator (without ``--enable-aggregator-routing``) dials an
ExternalName Service at that name and the APIService's port. The other way, a Service without selector and an
Endpoints or EndpointSlice at 127.0.0.1, is refused by the API server ("may not be in the loopback range").

The process is started through :meth:`ControlPlane.spawn`, so it stops with the control plane (first, being
the last started) and dies with its parent; its output is ``<control plane workdir>/metrics-server.log``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from kubemeter_sim import tls
from kubemeter_sim.ports import free_port
from kubemeter_sim.real.controlplane import ControlPlane, ControlPlaneError, write_kubeconfig
from kubemeter_sim.real.rest import Rest, RestError, collection, wait_for

USER = "system:metrics-server"
NAMESPACE, SERVICE = "kube-system", "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
METRICS_API = "/apis/metrics.k8s.io/v1beta1"
MINIMUM_RESOLUTION = 10.0
"""metrics-server refuses a ``--metric-resolution`` below 10 s."""
MAXIMUM_KUBELET_TIMEOUT = 10.0
"""metrics-server's default ``--kubelet-request-timeout``; it must stay within 90% of the resolution."""


def _rbac() -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object): upstream's roles, bound to the user this process authenticates as."""
    rbac = "rbac.authorization.k8s.io/v1"
    user = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": USER}]

    def cluster_binding(name: str, role: str) -> tuple[str, dict[str, Any]]:
        return collection(rbac, "clusterrolebindings"), {
            "apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": user}

    return [
        (collection(rbac, "clusterroles"), {
            "apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "system:metrics-server"},
            "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}),
        (collection(rbac, "clusterroles"), {
            "apiVersion": rbac, "kind": "ClusterRole", "metadata": {
                "name": "system:aggregated-metrics-reader", "labels": {
                    f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in ("view", "edit", "admin")}},
            "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                       "verbs": ["get", "list", "watch"]}]}),
        cluster_binding("system:metrics-server", "system:metrics-server"),
        cluster_binding("metrics-server:system:auth-delegator", "system:auth-delegator"),
        (collection(rbac, "rolebindings", NAMESPACE), {
            "apiVersion": rbac, "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "extension-apiserver-authentication-reader"},
            "subjects": user}),
    ]


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class MetricsServer:
    """One metrics-server process for ``plane``; ``resolution`` is its ``--metric-resolution`` in seconds
    (give it the interval of the policy it is compared with)."""

    def __init__(self, plane: ControlPlane, *, resolution: float = 30.0, start_timeout: float = 120.0) -> None:
        if resolution < MINIMUM_RESOLUTION:
            raise ValueError(f"metrics-server resolution {resolution:g}s: metrics-server needs at least "
                             f"{MINIMUM_RESOLUTION:g}s")
        self.plane = plane
        self.resolution = resolution
        self.start_timeout = start_timeout
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.plane.workdir / "metrics-server.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def check_installed(self) -> None:
        """Raise :class:`ControlPlaneError` saying how to build metrics-server when its binary is missing."""
        if not os.access(self.plane.binaries / "metrics-server", os.X_OK):
            raise ControlPlaneError(f"no metrics-server in {self.plane.binaries}: build it with `make controlplane`")

    async def start(self, rest: Rest) -> None:
        """Start it on the running control plane, ``rest`` an admin client of it."""
        self.check_installed()
        self.rest = rest
        pki = self.plane.pki
        pki.write_pair("metrics-server-client", pki.ca.issue_client_pem(USER))
        serving_ca = tls.CertificateAuthority.create("metrics-server-ca")
        pki.write_pair("metrics-server-serving", serving_ca.issue_server_pem(
            SERVICE, ips=["127.0.0.1"], dns_names=[f"{SERVICE}.{NAMESPACE}.svc", "localhost"]))
        kubeconfig = write_kubeconfig(
            self.plane.workdir / "metrics-server.kubeconfig", self.plane.url, pki.ca.pem, user=USER,
            cert=pki.path("metrics-server-client.crt"), key=pki.path("metrics-server-client.key"))
        for path, body in _rbac():
            await self.rest.apply(path, body)
        self.port = free_port()
        await self.plane.spawn("metrics-server", [
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={pki.path('metrics-server-serving.crt')}",
            f"--tls-private-key-file={pki.path('metrics-server-serving.key')}",
            "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
            f"--kubelet-certificate-authority={pki.path('ca.crt')}",
            f"--metric-resolution={_duration(self.resolution)}",
            f"--kubelet-request-timeout={_duration(min(MAXIMUM_KUBELET_TIMEOUT, 0.9 * self.resolution))}",
            "--profiling=false",
        ])
        await self._register(serving_ca.pem)
        await self._wait_available()
        await self._wait_metrics()

    async def _register(self, ca_pem: bytes) -> None:
        await self.rest.apply(collection("v1", "services", NAMESPACE), {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                     "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}]}})
        await self.rest.apply(collection("apiregistration.k8s.io/v1", "apiservices"), {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": API_SERVICE},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100, "caBundle": base64.b64encode(ca_pem).decode(),
                     "service": {"name": SERVICE, "namespace": NAMESPACE, "port": self.port}}})

    async def _wait_available(self) -> None:
        last = "no status yet"

        async def available() -> bool:
            nonlocal last
            self.plane.check_alive()
            service = await self.rest.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
            condition = next((c for c in (service.get("status") or {}).get("conditions") or []
                              if c.get("type") == "Available"), None)
            if condition is not None:
                last = f"{condition.get('status')} {condition.get('reason')}: {condition.get('message')}"
            return condition is not None and condition.get("status") == "True"

        await self._wait(available, f"APIService {API_SERVICE} Available", lambda: last)

    async def _wait_metrics(self) -> None:
        """Until every node has its NodeMetrics and PodMetrics are served (``kubectl top nodes`` and ``kubectl
        top pods -A`` answer): a rate needs two samples, so two scrapes. Not until every pod has them: a pod is
        left out until each of its containers has two samples, so after each restart of one (the leaking
        profile's OOM kills: on a large cluster, at any moment some pod has just restarted)."""
        missing: list[str] = []

        async def answered() -> bool:
            nonlocal missing
            self.plane.check_alive()
            nodes = {n["metadata"]["name"] for n in (await self.rest.get("/api/v1/nodes"))["items"]}
            try:
                served = {n["metadata"]["name"] for n in (await self.rest.get(f"{METRICS_API}/nodes"))["items"]}
                pods = (await self.rest.get(f"{METRICS_API}/pods", limit="1"))["items"]
            except RestError as error:
                missing = [str(error)]
                return False
            missing = sorted(nodes - served) + ([] if pods else ["the PodMetrics of any pod"])
            return not missing

        await self._wait(answered, "metrics of every node and of pods", lambda: f"missing {', '.join(missing[:10])}")

    async def _wait(self, check, what: str, last) -> None:
        # Two resolutions for the first rate, on top of the start-up itself.
        try:
            await wait_for(check, self.start_timeout + 2 * self.resolution, what, interval=0.5)
        except TimeoutError as error:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise ControlPlaneError(f"metrics-server: {error} ({last()}); the end of {self.log_path}:\n"
                                    + "\n".join(tail)) from None
