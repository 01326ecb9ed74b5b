"""An operator process for bench_ingest.py: bare kopf (the baseline) or kubemeter's, instrumented alike.

    KUBECONFIG=PATH ingest_probe.py bare|kubemeter --kubeconfig PATH --expect PODS

(bare kopf logs in from $KUBECONFIG, kubemeter from --kubeconfig.)

Both count the pods that kopf's initial listing delivered to their ``@kopf.on.event`` handler, and time
the ADDED/MODIFIED pod events carrying the benchmark's ``sent`` annotation (handled time - sent time).
They report on stdout, one JSON object per line: {"event": "listed", "at": t} once ``expect`` listed pods
were handled (kubemeter also waits for its own paged LIST: {"event": "synced"}), and at SIGINT
{"event": "latencies", "values": [[handled_at, seconds], ...]}. Times are wall-clock (time.time()).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Mapping

import kopf

SENT_ANNOTATION = "bench.kubemeter.io/sent"


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Probe:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.listed = 0
        self.latencies: list[tuple[float, float]] = []

    def saw(self, event: Mapping) -> None:
        now = time.time()
        if event.get("type") is None:
            self.listed += 1
            if self.listed == self.expect:
                emit("listed", at=now)
            return
        if event.get("type") == "DELETED":
            return  # a deleted object carries its last state: its annotation says nothing about this event
        sent = ((event["object"].get("metadata") or {}).get("annotations") or {}).get(SENT_ANNOTATION)
        if sent:
            self.latencies.append((now, now - float(sent)))


def bare_registry(probe: Probe) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)  # what kopf's default registry does with the kubernetes client installed
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def on_pod(event: kopf.RawEvent, **_: object) -> None:
        probe.saw(event)

    return registry


async def run_bare(probe: Probe, stop: asyncio.Event) -> None:
    try:
        await kopf.operator(registry=bare_registry(probe), clusterwide=True, standalone=True, stop_flag=stop)
    except asyncio.CancelledError:  # kopf ends a requested stop by cancelling its root task
        if not stop.is_set():
            raise


async def run_kubemeter(probe: Probe, kubeconfig: str, stop: asyncio.Event) -> None:
    from kubemeter.app import RunSettings, Runtime
    from kubemeter.handlers import run_operator
    from kubemeter.watch.model import PODS

    runtime = Runtime(RunSettings(kubeconfig=kubeconfig, metrics_host="127.0.0.1", metrics_port=0))
    handle = runtime.watch_event

    def watch_event(resource: str, event: Mapping) -> None:
        handle(resource, event)  # the operator's own handling first: the probe times it
        if resource == PODS:
            probe.saw(event)

    runtime.watch_event = watch_event  # type: ignore[method-assign]

    async def report_synced() -> None:
        await runtime.relister.synced.wait()
        emit("synced", at=time.time())

    reporter = asyncio.create_task(report_synced())
    try:
        await run_operator(runtime, stop_flag=stop)
    finally:
        reporter.cancel()


async def main_async(args: argparse.Namespace) -> None:
    probe = Probe(args.expect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if args.mode == "bare":
        await run_bare(probe, stop)
    else:
        await run_kubemeter(probe, args.kubeconfig, stop)
    emit("latencies", values=probe.latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("bare", "kubemeter"))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--expect", type=int, required=True, help="pods in the initial listing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kopf").setLevel(logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
