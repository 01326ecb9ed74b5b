"""Shared pieces of the operator benchmarks: result tables, the cluster, the operator process.

The simulator runs in the benchmark's own process (so a benchmark can inject faults, churn pods and count
API requests); so do the fake nodes of a real control plane (``--control-plane real``), whose etcd,
kube-apiserver, kube-controller-manager and kube-scheduler are processes of their own. The operator always
runs in a separate process, so its CPU and memory are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import aiohttp
import kubernetes

from kubemeter import GROUP, VERSION
from kubemeter_sim.demo import install_crds
from kubemeter.kube import load_configuration
from kubemeter_sim.apiserver.server import ApiServer
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.ports import free_port
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import collection

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PYTHON = sys.executable
BENCH_USER_AGENT = "kubemeter-bench"
"""The benchmark's own API calls carry this, so the request counter can leave them out."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- result tables -------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Row:
    what: str
    kubemeter: float | None
    baseline: float | None
    target: str
    passed: bool | None
    """None: reported for information, no target."""
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        if self.kubemeter is None or not self.baseline:
            return None
        return self.kubemeter / self.baseline


def _cell(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def report(name: str, profile: str, title: str, rows: list[Row], details: dict[str, Any],
           columns: tuple[str, str] = ("kubemeter", "baseline")) -> bool:
    """Print the table, write results/<name>.json (<name>.short.json for the short profile, so `make bench`
    keeps the figures of the last full run), and say whether every target passed. ``columns``: the headings of
    the two value columns (the ratio is the first over the second)."""
    header = ("what", *columns, "ratio", "target", "result")
    lines = [header] + [
        (r.what, _cell(r.kubemeter, r.unit), _cell(r.baseline, r.unit), _cell(r.ratio), r.target,
         "-" if r.passed is None else ("PASS" if r.passed else "FAIL"))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(title)
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    passed = all(r.passed is not False for r in rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "profile": profile, "title": title, "passed": passed, "python": platform.python_version(),
                "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "rows": [{**asdict(r), "ratio": r.ratio} for r in rows], "details": details}
    path = RESULTS / (f"{name}.json" if profile == "full" else f"{name}.{profile}.json")
    path.write_text(json.dumps(document, indent=2) + "\n")
    return passed


# ---- waiting, bounded ------------------------------------------------------------------------------------------
async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Await ``check()`` until it returns something truthy; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
        await asyncio.sleep(interval)


# ---- counting API requests -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    at: float
    verb: str
    resource: str
    """group/resource[/subresource], "" for the core group: "/pods", "kubemeter.io/workloadmetrics/status"."""


_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_RESOURCE_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?P<rest>/.*)?$")


def classify(method: str, path: str, query: str) -> tuple[str, str]:
    """(verb, resource) of a request as the API server's audit log would name them."""
    match = _RESOURCE_PATH.match(path.rstrip("/"))
    if match is None or not match.group("rest"):
        return method.lower(), path
    parts = match.group("rest").strip("/").split("/")
    if parts[0] == "namespaces" and len(parts) >= 3:
        parts = parts[2:]  # /namespaces/{ns}/{resource}/...
    resource = "/".join([parts[0]] + parts[2:3])  # resource[/subresource]
    named = len(parts) >= 2
    params = parse_qs(query)
    if method == "GET":
        verb = "watch" if params.get("watch", [""])[0] in ("true", "1") else ("get" if named else "list")
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, method.lower())
    return verb, f"{match.group('group') or ''}/{resource}"


class RequestLog:
    """Every request the simulated API server receives, except the benchmark's own (by User-Agent)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def record(self, method: str, path: str, query: str, user_agent: str) -> None:
        if user_agent.startswith(BENCH_USER_AGENT):
            return
        verb, resource = classify(method, path, query)
        self.requests.append(Request(time.monotonic(), verb, resource))

    def between(self, start: float, end: float) -> list[Request]:
        return [r for r in self.requests if start <= r.at < end]

    @staticmethod
    def by_verb(requests: list[Request]) -> Counter[str]:
        return Counter(f"{r.verb} {r.resource}" for r in requests)


@contextmanager
def counting_requests() -> Iterator[RequestLog]:
    """Record the requests of every ApiServer started inside the block (wraps its handler from outside)."""
    log = RequestLog()
    original = ApiServer._handle

    async def counted(server: ApiServer, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        log.record(request.method, request.path, request.query_string, request.headers.get("User-Agent", ""))
        return await original(server, request)

    ApiServer._handle = counted  # type: ignore[method-assign]
    try:
        yield log
    finally:
        ApiServer._handle = original  # type: ignore[method-assign]


# ---- the cluster ----------------------------------------------------------------------------------------------
BACKENDS = ("sim", "real")
REAL_SETTLE_PODS_PER_SECOND = 10.0
"""The real control plane must settle the scenario at least this fast (a 900 s limit for 9,000 pods, which took
316 s on 2 cores), else the benchmark gives up with the test bed's error."""


def admin_client(cluster: Cluster | RealCluster) -> kubernetes.client.ApiClient:
    client = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
    client.user_agent = BENCH_USER_AGENT
    return client


class BenchCluster(NamedTuple):
    cluster: Cluster | RealCluster
    client: kubernetes.client.ApiClient
    """The benchmark's own admin client (its User-Agent keeps its calls out of the request counts)."""
    up_seconds: float
    """From starting the cluster until every pod of the scenario ran and the CRDs were installed."""


@asynccontextmanager
async def bench_cluster(nodes: int, pods_per_node: int, workdir: Path, backend: str = "sim", *,
                        metric_resolution: float | None = None,
                        kube_state_metrics: bool = False) -> AsyncIterator[BenchCluster]:
    """A mixed-scenario cluster with the kubemeter CRDs installed: the simulator, or a real control plane whose
    fake nodes drive the pods its scheduler binds (settled: every pod running); with ``metric_resolution``,
    metrics-server beside the real control plane at that resolution; with ``kube_state_metrics``, that too."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if backend == "real":
        settle_timeout = max(120.0, nodes * pods_per_node / REAL_SETTLE_PODS_PER_SECOND)
        metrics_server = ({"metrics_server": True, "metric_resolution": metric_resolution}
                          if metric_resolution is not None else {})
        backend_cluster: Cluster | RealCluster = RealCluster(nodes, pods_per_node, scenario="mixed", workdir=workdir,
                                                             settle_timeout=settle_timeout,
                                                             kube_state_metrics=kube_state_metrics, **metrics_server)
    else:
        backend_cluster = Cluster(nodes, pods_per_node, scenario="mixed", workdir=workdir, watch_history=100_000)
    async with backend_cluster as cluster:
        client = admin_client(cluster)
        try:
            await asyncio.to_thread(install_crds, client)
            up = time.monotonic() - started
            pods = len(await listed(cluster, "v1", "pods"))
            print(f"  cluster ({backend}): {nodes} nodes, {pods} pods, up in {up:.0f}s", flush=True)
            yield BenchCluster(cluster, client, up)
        finally:
            client.close()


async def object_count(cluster: Cluster | RealCluster, api_version: str, plural: str) -> int:
    """How many objects of a resource exist (on a real server: one page of one, and its remainingItemCount)."""
    if cluster.backend == "real":
        page = await cluster.rest.get(collection(api_version, plural), limit="1")
        return len(page["items"]) + (page["metadata"].get("remainingItemCount") or 0)
    return len(cluster.store.select(cluster.store.resource(api_version, plural))[0])


async def listed(cluster: Cluster | RealCluster, api_version: str, plural: str) -> list[dict]:
    """Every object of a resource: from the simulator's store, or from the real API server (a blocking read,
    so on a thread: this event loop also runs the fake kubelets)."""
    if cluster.backend == "real":
        return await asyncio.to_thread(cluster.store.list, api_version, plural)
    return cluster.store.list(api_version, plural)


async def create_policy(client: kubernetes.client.ApiClient, name: str, spec: dict) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricsPolicy", "metadata": {"name": name}, "spec": spec}
    custom = kubernetes.client.CustomObjectsApi(client)
    await asyncio.to_thread(custom.create_cluster_custom_object, GROUP, VERSION, "metricspolicies", body)


async def container_count(cluster: Cluster | RealCluster) -> tuple[int, int]:
    """(pods, containers) of the cluster."""
    pods = await listed(cluster, "v1", "pods")
    return len(pods), sum(len(p["spec"]["containers"]) for p in pods)


# ---- the operator process ------------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$", re.M)


def metric_values(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return [float(m.group("value")) for m in _SAMPLE.finditer(text)
            if m.group("name") == name and all(w in (m.group("labels") or "") for w in wanted)]


def metric_sum(text: str, name: str, **labels: str) -> float:
    return sum(metric_values(text, name, **labels))


@dataclass(slots=True)
class ProcessUsage:
    cpu_seconds: float
    rss_bytes: int


def process_usage(pid: int) -> ProcessUsage:
    """utime + stime of every thread of ``pid``, and its resident set, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return ProcessUsage(cpu, rss_kb * 1024)


@dataclass
class OperatorProcess:
    """``kubemeter run`` in its own process, with its /metrics on a loopback port."""

    kubeconfig: Path
    log_path: Path
    write_qps: float = 20.0
    metrics_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        command = [PYTHON, "-m", "kubemeter", "run", "--kubeconfig", str(self.kubeconfig), "--metrics-host",
                   "127.0.0.1", "--metrics-port", str(self.metrics_port), "--write-qps", str(self.write_qps),
                   "--log-level", "warning"]
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def usage(self) -> ProcessUsage:
        return process_usage(self.pid)

    async def metrics(self) -> str:
        """One scrape of the operator's /metrics ("" while it is not listening yet)."""
        assert self._session is not None
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode}; see {self.log_path}")
        try:
            async with self._session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
                return await response.text() if response.status == 200 else ""
        except (aiohttp.ClientConnectionError, TimeoutError):  # still starting, or too busy to answer yet
            return ""

    async def cycles(self, policy: str) -> tuple[int, float]:
        """(cycles completed, their total seconds) from kubemeter_cycle_duration_seconds."""
        text = await self.metrics()
        return (int(metric_sum(text, "kubemeter_cycle_duration_seconds_count", policy=policy)),
                metric_sum(text, "kubemeter_cycle_duration_seconds_sum", policy=policy))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        await stop_process(self.process)


async def stop_process(process: asyncio.subprocess.Process | None, timeout: float = 30.0) -> None:
    """SIGINT (a clean stop), then SIGKILL after ``timeout`` seconds."""
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()


@asynccontextmanager
async def operator_process(kubeconfig: Path, log_path: Path, write_qps: float = 20.0) -> Any:
    operator = OperatorProcess(kubeconfig, log_path, write_qps)
    await operator.start()
    try:
        yield operator
    finally:
        await operator.stop()


def bench_main(doc: str, run: Callable[..., Awaitable[bool]],
               add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """The command line of a target benchmark: ``--profile`` and any arguments ``add_arguments`` adds (passed to
    ``run`` by keyword); exit status 1 when a target was missed."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--profile", choices=("short", "full"), default="full",
                        help="short: small sizes for `make bench`; full: the sizes of the targets")
    if add_arguments is not None:
        add_arguments(parser)
    options = vars(parser.parse_args())
    profile = options.pop("profile")
    raise SystemExit(0 if asyncio.run(run(profile, **options)) else 1)
