"""``kubemeter demo``: a simulated cluster, the CRDs and an example policy, the operator, and a live table.

Everything runs in this one process on loopback; the kubeconfig it writes lets ``kubectl`` look at the
same cluster from another terminal while the demo runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import time
from pathlib import Path

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from kubemeter import GROUP, VERSION
from kubemeter.app import RunSettings, Runtime
from kubemeter.compute.quantity import format_cpu
from kubemeter.handlers import run_operator
from kubemeter.kube import load_configuration
from kubemeter_sim.cli import add_control_plane_argument, cluster_class
from kubemeter_sim.faults import Fault

# Copies of the repository's crds/ and demo policy, shipped in this distribution (hack/sync-crds.sh).
CRDS = Path(__file__).resolve().parent / "crds"
EXAMPLE_POLICY = Path(__file__).resolve().parent / "examples" / "metricspolicy-demo.yaml"


DEMO_MARKER = ".kubemeter-demo"
"""Marks a directory as the demo's own, the only kind it may empty."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="simulated nodes (default 4)")
    parser.add_argument("--pods-per-node", type=int, default=8, help="pods per node (default 8)")
    parser.add_argument("--workdir", default="demo-state",
                        help="where the kubeconfig and CA go (default demo-state/); a new or empty directory, or a "
                             "previous demo's, which is replaced")
    parser.add_argument("--metrics-port", type=int, default=8080, help="the operator's /metrics port (default 8080)")
    parser.add_argument("--failing-node-fault", default="timeout",
                        help="fault injected on the last node, e.g. timeout, http500, garbage (default timeout)")
    add_control_plane_argument(parser)
    parser.add_argument("--refresh", type=float, default=5.0, help="seconds between table refreshes (default 5)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (default: run until Ctrl-C)")


def _documents(path: Path) -> list[dict]:
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def install_crds(client: kubernetes.client.ApiClient, crds: Path = CRDS) -> None:
    """Create the CRDs (existing ones are kept) and wait until the API server serves them."""
    extensions = kubernetes.client.ApiextensionsV1Api(client)
    for crd in _documents(crds):
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    for crd in _documents(crds):
        deadline = time.monotonic() + 30
        while True:
            status = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status
            if any(c.type == "Established" and c.status == "True" for c in status.conditions or ()):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"CRD {crd['metadata']['name']} did not become Established")
            time.sleep(0.2)


def _apply(client: kubernetes.client.ApiClient) -> None:
    """The CRDs, then the example policy."""
    install_crds(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    for policy in _documents(EXAMPLE_POLICY):
        try:
            custom.create_cluster_custom_object(GROUP, VERSION, "metricspolicies", policy)
        except ApiException as exc:
            if exc.status != 409:
                raise


def _cell(value: object) -> str:
    return "-" if value in (None, "") else str(value)


def render_table(policies: list[dict], workloads: list[dict]) -> str:
    """The policies and their workloads, in the forms ``kubectl get mp`` / ``kubectl get wm`` show: the same
    status fields (usage quantities, ``requestPercent``, ``reporting``), so the two never disagree."""
    lines = []
    for p in policies:
        status = p.get("status") or {}
        nodes, cluster = status.get("nodes") or {}, status.get("cluster") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        ready, degraded = conditions.get("Ready", {}), conditions.get("Degraded", {})
        lines.append(
            f"policy {p['metadata']['name']}: nodes {nodes.get('scraped', 0)}/{nodes.get('selected', 0)} scraped, "
            f"{nodes.get('failed', 0)} failing; {status.get('workloads', 0)} workloads; cluster CPU "
            f"{_cell(cluster.get('cpu'))}, memory {_cell(cluster.get('memory'))}; Ready={ready.get('status', '?')} "
            f"Degraded={degraded.get('status', '?')} ({degraded.get('reason', '?')})"
        )
        for failed in status.get("failedNodes", []):
            lines.append(f"  failing: {failed['name']} ({failed['reason']}): {failed.get('message', '')[:90]}")
    header = ("NAMESPACE", "KIND", "WORKLOAD", "PODS", "CPU", "CPU/REQ", "P95 CPU", "MEMORY", "MEM/REQ", "SIZING",
              "STALE")
    rows = [header]
    for wm in sorted(workloads, key=lambda w: (w["metadata"]["namespace"], w["spec"]["workload"]["kind"],
                                               w["spec"]["workload"]["name"])):
        status, workload = wm.get("status") or {}, wm["spec"]["workload"]
        cpu, memory = status.get("cpu") or {}, status.get("memory") or {}
        p95 = (cpu.get("percentileCores") or {}).get("p95")
        rows.append(
            (
                wm["metadata"]["namespace"], workload["kind"], workload["name"], _cell(status.get("reporting")),
                _cell(cpu.get("usage")), _cell(cpu.get("requestPercent")),
                "-" if p95 is None else format_cpu(p95),
                _cell(memory.get("usage")), _cell(memory.get("requestPercent")),
                _cell((status.get("recommendation") or {}).get("summary")),
                _cell(None if status.get("stale") is None else str(status["stale"]).lower()),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines.append("")
    lines.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return "\n".join(lines)


def _read(client: kubernetes.client.ApiClient) -> tuple[list[dict], list[dict]]:
    custom = kubernetes.client.CustomObjectsApi(client)
    policies = custom.list_cluster_custom_object(GROUP, VERSION, "metricspolicies")["items"]
    workloads = custom.list_cluster_custom_object(GROUP, VERSION, "workloadmetrics")["items"]
    return policies, workloads


def _explore_hint(kubeconfig: str, metrics_port: int) -> str:
    return (
        f"Explore from another terminal:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  kubectl get metricspolicies\n"
        f"  kubectl get workloadmetrics -A\n"
        f"  kubectl get wm -n shop -o yaml | less\n"
        f"  curl -s localhost:{metrics_port}/metrics | grep ^kubemeter_workload_cpu\n"
        f"Ctrl-C stops everything."
    )


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    if not CRDS.is_dir() or not EXAMPLE_POLICY.is_file():
        print(f"kubemeter demo: its CRDs or {EXAMPLE_POLICY.name} are missing from {CRDS.parent} (a broken install)",
              file=sys.stderr)
        return 2
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        if any(workdir.iterdir()) and not (workdir / DEMO_MARKER).exists():
            print(f"kubemeter demo: {workdir} is not empty and not a previous demo's state: give --workdir a new or "
                  "empty directory (the demo replaces what is in it)", file=sys.stderr)
            return 2
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / DEMO_MARKER).write_text("kubemeter demo state: replaced by the next `kubemeter demo`\n")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kind = "a real control plane with fake" if args.control_plane == "real" else "a simulated cluster:"
    print(f"starting {kind} {args.nodes} nodes x {args.pods_per_node} pods ...", flush=True)
    backend = cluster_class(args.control_plane)
    async with backend(nodes=args.nodes, pods_per_node=args.pods_per_node, scenario="mixed", workdir=workdir) as cluster:
        failing = sorted(cluster.kubelets)[-1]
        await cluster.node_fault(failing, Fault.parse(args.failing_node_fault))
        config = load_configuration(str(cluster.kubeconfig))
        client = kubernetes.client.ApiClient(config)
        await asyncio.to_thread(_apply, client)
        print(f"CRDs and {EXAMPLE_POLICY.name} applied; node {failing} answers with: {args.failing_node_fault}")
        runtime = Runtime(RunSettings(kubeconfig=str(cluster.kubeconfig), metrics_port=args.metrics_port,
                                      metrics_host="127.0.0.1"))
        operator = asyncio.create_task(run_operator(runtime, stop_flag=stop))
        while runtime.metrics_port is None and not operator.done():  # its preflight: serving, or a StartupError
            await asyncio.sleep(0.05)
        if operator.done():
            client.close()
            operator.result()
        hint = _explore_hint(str(cluster.kubeconfig), args.metrics_port)
        deadline = time.monotonic() + args.duration if args.duration else None
        clear = "\033[2J\033[H" if sys.stdout.isatty() else ""
        while not stop.is_set() and not operator.done():
            policies, workloads = await asyncio.to_thread(_read, client)
            stamp = time.strftime("%H:%M:%S")
            print(f"{clear}kubemeter demo, {stamp}\n{render_table(policies, workloads)}\n\n{hint}\n", flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.refresh)
            except TimeoutError:
                pass
        stop.set()
        await operator
        client.close()
    return 0
