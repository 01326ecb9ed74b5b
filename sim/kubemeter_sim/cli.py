"""``kubemeter sim``: run a simulated cluster until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

from kubemeter_sim.cluster import Cluster, kubelet_ca_path
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.controlplane import ControlPlaneError
from kubemeter_sim.real.metrics_server import MINIMUM_RESOLUTION
from kubemeter_sim.faults import FAULT_KINDS, Fault


def _node_fault(text: str) -> tuple[str, Fault]:
    name, separator, fault = text.partition(":")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NODE:FAULT, got {text!r}")
    try:
        return name, Fault.parse(fault)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _resolution(text: str) -> float:
    try:
        seconds = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (15 or 15s), got {text!r}") from None
    if not seconds >= MINIMUM_RESOLUTION:
        raise argparse.ArgumentTypeError(f"{text!r}: metrics-server needs at least {MINIMUM_RESOLUTION:g}s")
    return seconds


def add_control_plane_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--control-plane", choices=("sim", "real"), default="sim",
                        help="sim: the simulated API server (default); real: etcd, kube-apiserver, "
                             "kube-controller-manager and kube-scheduler built by `make controlplane`, with the "
                             "simulated kubelets as its nodes")


def cluster_class(control_plane: str) -> type[Cluster] | type[RealCluster]:
    return RealCluster if control_plane == "real" else Cluster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--pods-per-node", type=int, default=10, help="pods per node (default 10)")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--seed", type=int, default=0, help="seed for names and usage profiles")
    parser.add_argument("--scenario", choices=("mixed", "empty"), default="mixed")
    parser.add_argument("--kubelet-version", default=None,
                        help="kubelet version to imitate (default: 1.30.0 on the simulator, the control plane's own "
                             "1.37.2 on a real one)")
    add_control_plane_argument(parser)
    parser.add_argument("--metrics-server", action="store_true",
                        help="with --control-plane real: also run metrics-server (built by `make controlplane`) and "
                             "register its APIService, so `kubectl top nodes` and `kubectl top pods -A` work; the "
                             "kubeconfig is written once they answer")
    parser.add_argument("--metric-resolution", type=_resolution, default=30.0, metavar="SECONDS",
                        help="metrics-server's --metric-resolution in seconds, at least 10 (default 30: the default "
                             "MetricsPolicy interval; give it the interval of the policy you compare with); also "
                             "the VPA recommender's --recommender-interval")
    parser.add_argument("--vpa-recommender", action="store_true",
                        help="with --control-plane real: also run the VPA recommender (built by `make "
                             "controlplane`; implies --metrics-server, whose metrics.k8s.io it reads) with its CRDs "
                             "and RBAC, so a VerticalPodAutoscaler with updateMode Off gets recommendations to "
                             "compare with kubemeter's")
    parser.add_argument("--fail-node", type=_node_fault, action="append", default=[], metavar="NODE:FAULT",
                        help=f"make a kubelet misbehave; FAULT is one of {', '.join(FAULT_KINDS)}, "
                             "optionally with =VALUE (latency=3s, clock_skew=-5m)")


async def run(args: argparse.Namespace) -> int:
    """Start the cluster, print how to reach it, and serve until SIGINT or SIGTERM."""
    args.kubeconfig.resolve().parent.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await _serve(args, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    started = time.monotonic()
    options = {"kubelet_version": args.kubelet_version} if args.kubelet_version else {}
    if args.vpa_recommender and args.control_plane != "real":
        print("kubemeter sim: --vpa-recommender needs --control-plane real (it reads metrics-server's metrics.k8s.io, "
              "which the simulated API server cannot serve: it has no aggregation layer)")
        return 2
    if args.metrics_server or args.vpa_recommender:
        if args.control_plane != "real":
            print("kubemeter sim: --metrics-server needs --control-plane real (the simulated API server has no "
                  "aggregation layer)")
            return 2
        options.update(metrics_server=True, metric_resolution=args.metric_resolution,
                       vpa_recommender=args.vpa_recommender)
    try:
        cluster = cluster_class(args.control_plane)(args.nodes, args.pods_per_node, scenario=args.scenario,
                                                    seed=args.seed, **options)
        await cluster.__aenter__()
    except ControlPlaneError as error:
        print(f"kubemeter sim: {error}")
        return 1
    try:
        return await _report_and_wait(args, cluster, started, stop)
    finally:
        await cluster.__aexit__(None, None, None)
        if stop.is_set():
            print(f"kubemeter sim: stopped; its state ({cluster.workdir}) and the kubelet CA are removed, "
                  f"{args.kubeconfig.resolve()} is left for the next run", flush=True)


def _write_private(source: Path, destination: Path) -> None:
    """Copy ``source`` to ``destination`` readable by its owner only (0600, also when it was there with another
    mode): a kubeconfig holds the admin's client key."""
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # before the credentials go in
        out.write(source.read_bytes())


async def _report_and_wait(args: argparse.Namespace, cluster: Cluster | RealCluster, started: float,
                           stop: asyncio.Event) -> int:
    # The cluster's state (certificates, etcd's data) is in a directory of its own that goes with it; only the
    # kubeconfig is written where asked, so a second run never meets the first one's leftovers. Beside it, while
    # the cluster runs, the CA that signed its kubelets (for curl or --kubelet-ca), named after the kubeconfig.
    _write_private(cluster.kubeconfig, args.kubeconfig)
    kubelet_ca = kubelet_ca_path(args.kubeconfig.resolve())
    shutil.copyfile(cluster.ca_path, kubelet_ca)
    try:
        for name, fault in args.fail_node:
            if name not in cluster.kubelets:
                print(f"error: --fail-node: no node {name!r} (nodes: {', '.join(cluster.kubelets)})")
                return 2
            await cluster.node_fault(name, fault)
        pods = len(cluster.store.list("v1", "pods"))
        print(f"cluster ready in {time.monotonic() - started:.1f}s: {args.nodes} nodes, {pods} pods, "
              f"{'real' if cluster.backend == 'real' else 'simulated'} API server {cluster.url}, "
              f"kubelets on port {cluster.kubelet_port}")
        print(f"kubelet CA: {kubelet_ca}")
        metrics_server = getattr(cluster, "metrics_server", None)
        if metrics_server is not None:
            print(f"metrics-server {metrics_server.url} (resolution {metrics_server.resolution:g}s, log "
                  f"{metrics_server.log_path}): kubectl top nodes; kubectl top pods -A")
        vpa = getattr(cluster, "vpa_recommender", None)
        if vpa is not None:
            print(f"VPA recommender on 127.0.0.1:{vpa.port} (every {vpa.interval:g}s, log {vpa.log_path}): create a "
                  "VerticalPodAutoscaler with updateMode Off, then kubectl get vpa -A")
        print(f"  export KUBECONFIG={args.kubeconfig.resolve()}; kubectl get nodes")
        # Loopback: run's default (every interface) is for a pod, and /metrics answers anyone who reaches it.
        print(f"  kubectl apply -f crds/; kubemeter run --kubeconfig {args.kubeconfig.resolve()} --metrics-host "
              "127.0.0.1  # the kubelets' certificates are from the cluster CA, which the kubeconfig carries")
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
        return 0
    finally:
        kubelet_ca.unlink(missing_ok=True)  # it signs nothing once the cluster is gone
