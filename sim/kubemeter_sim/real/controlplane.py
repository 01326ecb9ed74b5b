"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

The binaries are built from the Go module proxy by ``make controlplane`` (hack/build-control-plane.sh) into
``.cache/controlplane/bin``; ``KUBEMETER_CONTROL_PLANE_BIN`` points elsewhere. Started as a kubeadm cluster
is configured: authorization ``Node,RBAC``, the default admission plugins, a ServiceAccount issuer and signing
key, the front-proxy (requestheader) flags for the aggregation layer, every controller, leader election off.

Every process listens on 127.0.0.1 only. kube-apiserver refuses a loopback ``--advertise-address``; it gets
192.0.2.1 (TEST-NET-1, RFC 5737: reserved for documentation, routed nowhere) with
``--endpoint-reconciler-type=none``, so that address is only ever written into no object at all, and the
``kubernetes`` Service has no endpoints that anything could dial.

Processes die with their parent (``PR_SET_PDEATHSIG``), so a crash or ``kill -9`` of the test run leaves no
strays; a normal stop terminates them and waits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubemeter_sim import tls
from kubemeter_sim.ports import free_port

log = logging.getLogger(__name__)

ADVERTISE_ADDRESS = "192.0.2.1"
"""Never connected to: see the module docstring. Tests check that no connection goes anywhere but loopback."""
SERVICE_CIDR = "10.96.0.0/16"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
_PR_SET_PDEATHSIG = 1
CLIENT_QPS, CLIENT_BURST = 200, 400
"""The controllers' and the scheduler's API client rate (defaults 20/30 and 50/100), raised as large test
clusters do: at 20 QPS the ReplicaSet controller alone would need 7 minutes for the 8,400 pods a 300-node
benchmark's Deployments ask for (with them raised, the whole 9,000-pod scenario settles in about 5)."""


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (binaries missing, a component exited, not ready in time)."""


def binaries_dir() -> Path:
    """Where the control plane's binaries are: $KUBEMETER_CONTROL_PLANE_BIN, or ./.cache/controlplane/bin of the
    checkout (this file's, or the current directory's)."""
    if env := os.environ.get("KUBEMETER_CONTROL_PLANE_BIN"):
        return Path(env)
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        candidate = root / ".cache" / "controlplane" / "bin"
        if (candidate / "kube-apiserver").is_file():
            return candidate
    return Path.cwd() / ".cache" / "controlplane" / "bin"


def missing_binaries(directory: Path | None = None) -> list[str]:
    directory = directory or binaries_dir()
    return [name for name in COMPONENTS if not os.access(directory / name, os.X_OK)]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _split_chain(chain: bytes) -> tuple[bytes, bytes]:
    """(certificates, private key) of a PEM chain as :mod:`kubemeter_sim.tls` issues them."""
    marker = b"-----BEGIN PRIVATE KEY-----"
    index = chain.index(marker)
    return chain[:index], chain[index:]


@dataclass
class Pki:
    """Every certificate and key of the control plane, as files under ``directory``."""

    directory: Path
    ca: tls.CertificateAuthority = field(init=False)
    front_proxy_ca: tls.CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca = tls.CertificateAuthority.create("kubernetes")
        self.front_proxy_ca = tls.CertificateAuthority.create("front-proxy-ca")
        _write(self.path("ca.crt"), self.ca.pem)
        _write(self.path("ca.key"), self.ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        _write(self.path("front-proxy-ca.crt"), self.front_proxy_ca.pem)
        self.write_pair("apiserver", self.ca.issue_server_pem(
            "kube-apiserver", ips=["127.0.0.1", "10.96.0.1"],
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"]))
        self.write_pair("front-proxy-client", self.front_proxy_ca.issue_client_pem("front-proxy-client"))
        # kube-apiserver -> kubelet (logs, exec, proxy), as kubeadm's apiserver-kubelet-client.
        self.write_pair("apiserver-kubelet-client", self.ca.issue_client_pem(
            "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",)))
        self.write_pair("admin", self.ca.issue_client_pem("kubernetes-admin", ("system:masters",)))
        self.write_pair("controller-manager", self.ca.issue_client_pem("system:kube-controller-manager"))
        self.write_pair("scheduler", self.ca.issue_client_pem("system:kube-scheduler"))
        self.write_pair("kube-controller-manager-serving", self.ca.issue_server_pem(
            "kube-controller-manager", ips=["127.0.0.1"], dns_names=["localhost"]))
        self.write_pair("kube-scheduler-serving", self.ca.issue_server_pem(
            "kube-scheduler", ips=["127.0.0.1"], dns_names=["localhost"]))
        signing_key = ec.generate_private_key(ec.SECP256R1())
        _write(self.path("sa.key"), signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        _write(self.path("sa.pub"), signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def path(self, name: str) -> Path:
        return self.directory / name

    def write_pair(self, name: str, chain: bytes) -> None:
        """``<name>.crt`` (the certificate and its CA) and ``<name>.key`` from one chain."""
        certificates, key = _split_chain(chain)
        _write(self.path(f"{name}.crt"), certificates)
        _write(self.path(f"{name}.key"), key)


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, *, user: str, cert: Path | None = None,
                     key: Path | None = None, token: str | None = None) -> Path:
    """A kubeconfig with the credentials embedded (client certificate and key, or a bearer token)."""
    credentials: dict[str, str] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
                       "client-key-data": base64.b64encode(key.read_bytes()).decode()}
    if token is not None:
        credentials["token"] = token
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kubemeter-real", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "kubemeter-real", "context": {"cluster": "kubemeter-real", "user": user}}],
        "current-context": "kubemeter-real",
    }
    return _write(path, yaml.safe_dump(config, sort_keys=False).encode())


@dataclass
class _Process:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path


class ControlPlane:
    """The four components, started in order and each waited for; see the module docstring.

        async with ControlPlane(workdir) as plane:
            plane.admin_kubeconfig   # system:masters client certificate
    """

    def __init__(self, workdir: Path | None = None, *, binaries: Path | None = None,
                 start_timeout: float = 120.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="kubemeter-real-"))
        self.binaries = binaries or binaries_dir()
        self.start_timeout = start_timeout
        self._processes: list[_Process] = []
        self.etcd_port = self.apiserver_port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def pids(self) -> list[int]:
        return [p.process.pid for p in self._processes]

    def pid(self, name: str) -> int:
        """The process id of the component ``name`` (as spawned: ``kube-apiserver``, ``metrics-server``, ...)."""
        return next(p.process.pid for p in self._processes if p.name == name)

    async def __aenter__(self) -> "ControlPlane":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        missing = missing_binaries(self.binaries)
        if missing:
            raise ControlPlaneError(
                f"no {', '.join(missing)} in {self.binaries}: build them with `make controlplane` "
                "(or point KUBEMETER_CONTROL_PLANE_BIN at a directory that has them)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = Pki(self.workdir / "pki")
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"
        self.etcd_port, peer_port = free_port(), free_port()
        await self.spawn("etcd", [
            "--name=kubemeter", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=kubemeter=http://127.0.0.1:{peer_port}",
            "--log-level=warn", "--quota-backend-bytes=4294967296",
            "--unsafe-no-fsync",  # a throwaway test store: durability costs seconds per test on a slow disk
        ])
        await self._wait_http(f"http://127.0.0.1:{self.etcd_port}/health", "etcd")
        self.apiserver_port = free_port()
        await self._start_apiserver()
        write_kubeconfig(self.admin_kubeconfig, self.url, self.pki.ca.pem, user="kubernetes-admin",
                         cert=self.pki.path("admin.crt"), key=self.pki.path("admin.key"))
        controller_manager = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig", self.url, self.pki.ca.pem,
            user="system:kube-controller-manager", cert=self.pki.path("controller-manager.crt"),
            key=self.pki.path("controller-manager.key"))
        scheduler = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig", self.url, self.pki.ca.pem, user="system:kube-scheduler",
            cert=self.pki.path("scheduler.crt"), key=self.pki.path("scheduler.key"))
        manager_port, scheduler_port = free_port(), free_port()
        await self.spawn("kube-controller-manager", [
            f"--kubeconfig={controller_manager}", f"--authentication-kubeconfig={controller_manager}",
            f"--authorization-kubeconfig={controller_manager}",
            "--bind-address=127.0.0.1", f"--secure-port={manager_port}",
            f"--tls-cert-file={self.pki.path('kube-controller-manager-serving.crt')}",
            f"--tls-private-key-file={self.pki.path('kube-controller-manager-serving.key')}",
            "--controllers=*", "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki.path('sa.key')}",
            f"--root-ca-file={self.pki.path('ca.crt')}",
            f"--cluster-signing-cert-file={self.pki.path('ca.crt')}",
            f"--cluster-signing-key-file={self.pki.path('ca.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
            "--concurrent-gc-syncs=20", f"--kube-api-qps={CLIENT_QPS}", f"--kube-api-burst={CLIENT_BURST}", "--v=1",
        ])
        await self.spawn("kube-scheduler", [
            f"--kubeconfig={scheduler}", f"--authentication-kubeconfig={scheduler}",
            f"--authorization-kubeconfig={scheduler}",
            "--bind-address=127.0.0.1", f"--secure-port={scheduler_port}",
            f"--tls-cert-file={self.pki.path('kube-scheduler-serving.crt')}",
            f"--tls-private-key-file={self.pki.path('kube-scheduler-serving.key')}",
            "--leader-elect=false", f"--kube-api-qps={CLIENT_QPS}", f"--kube-api-burst={CLIENT_BURST}", "--v=1",
        ])
        await self._wait_http(f"https://127.0.0.1:{manager_port}/healthz", "kube-controller-manager")
        await self._wait_http(f"https://127.0.0.1:{scheduler_port}/healthz", "kube-scheduler")

    def _apiserver_flags(self) -> list[str]:
        pki = self.pki.path
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={self.apiserver_port}",
            f"--advertise-address={ADVERTISE_ADDRESS}", "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki('apiserver.crt')}", f"--tls-private-key-file={pki('apiserver.key')}",
            f"--client-ca-file={pki('ca.crt')}",
            f"--kubelet-client-certificate={pki('apiserver-kubelet-client.crt')}",
            f"--kubelet-client-key={pki('apiserver-kubelet-client.key')}",
            f"--kubelet-certificate-authority={pki('ca.crt')}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki('sa.pub')}",
            f"--service-account-signing-key-file={pki('sa.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--requestheader-client-ca-file={pki('front-proxy-ca.crt')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki('front-proxy-client.crt')}",
            f"--proxy-client-key-file={pki('front-proxy-client.key')}",
            f"--audit-policy-file={self._write_audit_policy()}", f"--audit-log-path={self.audit_log}",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ]

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _write_audit_policy(self) -> Path:
        """Audit every request for kubemeter's own resources, and what workloads' service accounts do (an
        operator under test runs as one), not the controllers' or the fake nodes' traffic: a test can then
        count the operator's writes and show that each of its requests was allowed."""
        policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": [
            {"level": "Metadata", "resources": [{"group": "kubemeter.io"}]},
            {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
            {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
            {"level": "None"}]}
        return _write(self.workdir / "audit-policy.yaml", yaml.safe_dump(policy).encode())

    def audit_events(self, username: str | None = None) -> list[dict]:
        """The audit log's completed requests, oldest first (of ``username`` only, if given)."""
        if not self.audit_log.exists():
            return []
        events = (json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip())
        return [event for event in events if event.get("stage") == "ResponseComplete"
                and (username is None or event.get("user", {}).get("username") == username)]

    async def _start_apiserver(self) -> None:
        await self.spawn("kube-apiserver", self._apiserver_flags())
        await self._wait_http(f"{self.url}/readyz", "kube-apiserver", cert=self.pki.path("admin"))

    async def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port: every watch is dropped, and its watch cache
        starts afresh at the current resourceVersion, so a watch resumed from an older one is told 410 Gone."""
        entry = next(p for p in self._processes if p.name == "kube-apiserver")
        await self._stop_process(entry)
        self._processes.remove(entry)
        await self._start_apiserver()

    async def spawn(self, name: str, args: list[str]) -> None:
        """Start the binary ``name`` from the binaries directory: output to ``<workdir>/<name>.log``, stopped
        with the control plane (last started, first stopped)."""
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                str(self.binaries / name), *args, stdin=asyncio.subprocess.DEVNULL, stdout=log_file,
                stderr=log_file, preexec_fn=_die_with_parent, cwd=self.workdir)
        self._processes.append(_Process(name, process, log_path))

    @staticmethod
    async def _stop_process(entry: _Process) -> None:
        if entry.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                entry.process.terminate()
        try:
            await asyncio.wait_for(entry.process.wait(), 10)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                entry.process.kill()
            await entry.process.wait()

    def check_alive(self) -> None:
        """Raise :class:`ControlPlaneError`, quoting its log, if any process started here has exited."""
        for entry in self._processes:
            if entry.process.returncode is not None:
                tail = entry.log_path.read_text(errors="replace").strip().splitlines()[-15:]
                raise ControlPlaneError(f"{entry.name} exited with status {entry.process.returncode}; "
                                        f"the end of {entry.log_path}:\n" + "\n".join(tail))

    async def _wait_http(self, url: str, what: str, cert: Path | None = None) -> None:
        context: ssl.SSLContext | bool = False
        if url.startswith("https"):
            context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
            if cert is not None:
                context.load_cert_chain(f"{cert}.crt", f"{cert}.key")
            else:  # the components' own serving certificates; their /healthz needs no credentials
                context.check_hostname = False
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    async with session.get(url, ssl=context) as response:
                        if response.status == 200:
                            return
                        last = f"HTTP {response.status}: {(await response.text())[-300:]}"
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    last = str(exc) or type(exc).__name__
                await asyncio.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready within {self.start_timeout:.0f}s at {url}: {last}")

    async def stop(self) -> None:
        # One at a time, last started first: a kube-apiserver whose etcd went at the same moment waits out its
        # shutdown timeout (10 s per test) instead of the second it takes with etcd still there.
        for entry in reversed(self._processes):
            await self._stop_process(entry)
        self._processes.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
