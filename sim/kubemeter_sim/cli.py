"""``kubemeter sim``: run a simulated cluster until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

from kubemeter_sim.cluster import Cluster
from kubemeter_sim.faults import FAULT_KINDS, Fault


def _node_fault(text: str) -> tuple[str, Fault]:
    name, separator, fault = text.partition(":")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NODE:FAULT, got {text!r}")
    try:
        return name, Fault.parse(fault)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--pods-per-node", type=int, default=10, help="pods per node (default 10)")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--seed", type=int, default=0, help="seed for names and usage profiles")
    parser.add_argument("--scenario", choices=("mixed", "empty"), default="mixed")
    parser.add_argument("--kubelet-version", default="1.30.0", help="kubelet version to imitate")
    parser.add_argument("--fail-node", type=_node_fault, action="append", default=[], metavar="NODE:FAULT",
                        help=f"make a kubelet misbehave; FAULT is one of {', '.join(FAULT_KINDS)}, "
                             "optionally with =VALUE (latency=3s, clock_skew=-5m)")


async def run(args: argparse.Namespace) -> int:
    """Start the cluster, print how to reach it, and serve until SIGINT or SIGTERM."""
    workdir = args.kubeconfig.resolve().parent
    workdir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await _serve(args, workdir, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _serve(args: argparse.Namespace, workdir: Path, stop: asyncio.Event) -> int:
    started = time.monotonic()
    async with Cluster(args.nodes, args.pods_per_node, scenario=args.scenario, seed=args.seed, workdir=workdir,
                       kubelet_version=args.kubelet_version) as cluster:
        if cluster.kubeconfig.resolve() != args.kubeconfig.resolve():
            cluster.kubeconfig.replace(args.kubeconfig)
        for name, fault in args.fail_node:
            if name not in cluster.kubelets:
                print(f"error: --fail-node: no node {name!r} (nodes: {', '.join(cluster.kubelets)})")
                return 2
            await cluster.node_fault(name, fault)
        pods = len(cluster.store.list("v1", "pods"))
        print(f"simulated cluster up in {time.monotonic() - started:.1f}s: {args.nodes} nodes, {pods} pods, "
              f"API server {cluster.apiserver.url}, kubelets on port {cluster.kubelet_port}")
        print(f"kubelet CA: {cluster.ca_path}")
        print(f"  export KUBECONFIG={args.kubeconfig.resolve()}; kubectl get nodes")
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0
