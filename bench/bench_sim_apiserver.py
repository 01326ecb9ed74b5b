"""Benchmark of the simulated API server at cluster scale (default 1,000 nodes x 30 pods).

Measures: in-process create rate, HTTP create rate, LIST of every pod (JSON bytes/s, whole and paged by 500),
and watch fan-out (events/s delivered to N concurrent watchers). Prints a table and writes
bench/results/sim_apiserver.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

import aiohttp

from kubemeter_sim.apiserver.server import ApiServer

RESULTS = Path(__file__).parent / "results" / "sim_apiserver.json"


def pod(index: int, nodes: int) -> dict:
    name = f"web-{index // 30:04d}-{index % 30:02d}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": f"ns-{index % 50}", "labels": {"app": f"app-{index % 300}"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                              "uid": f"uid-{index % 300}", "controller": True}]},
            "spec": {"nodeName": f"node-{index % nodes:04d}", "containers": [
                {"name": "app", "image": "registry.example/app:1.2.3",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"cpu": "500m", "memory": "256Mi"}},
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                 "env": [{"name": "MODE", "value": "production"}]}]}}


async def timed(coroutine) -> tuple[float, object]:
    started = time.perf_counter()
    result = await coroutine
    return time.perf_counter() - started, result


async def list_all(session: aiohttp.ClientSession, url: str, limit: int) -> list[bytes]:
    """The response bodies of a full LIST, following continue tokens (only those are parsed while timing)."""
    bodies = []
    token = ""
    while True:
        query = f"?limit={limit}" + (f"&continue={token}" if token else "") if limit else ""
        async with session.get(f"{url}/api/v1/pods{query}") as response:
            bodies.append(await response.read())
        if not limit:
            return bodies
        token = _continue_of(bodies[-1])
        if not token:
            return bodies


def _continue_of(body: bytes) -> str:
    """The continue token from the list metadata at the head of the body, without parsing the items."""
    head = body[:body.index(b'"items":')]
    return json.loads(head[:-1] + b"}")["metadata"].get("continue", "")


async def watch_until(session: aiohttp.ClientSession, url: str, rv: str, expected: int) -> int:
    received = 0
    async with session.get(f"{url}/api/v1/pods?watch=true&resourceVersion={rv}") as response:
        async for _ in response.content:
            received += 1
            if received == expected:
                return received
    return received


async def run(nodes: int, pods_per_node: int, watchers: list[int], changes: int, http_creates: int) -> dict:
    results: dict = {"nodes": nodes, "pods": nodes * pods_per_node, "python": platform.python_version()}
    async with ApiServer(watch_history=max(10_000, changes * 2)) as server:
        store = server.store
        for namespace in range(50):
            store.create("v1", "namespaces", {"metadata": {"name": f"ns-{namespace}"}})
        started = time.perf_counter()
        for index in range(nodes):
            store.create("v1", "nodes", {"metadata": {"name": f"node-{index:04d}"}})
        for index in range(nodes * pods_per_node):
            store.create("v1", "pods", pod(index, nodes))
        elapsed = time.perf_counter() - started
        results["create_in_process_per_s"] = (nodes + nodes * pods_per_node) / elapsed

        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def post(index: int) -> None:
                body = pod(10_000_000 + index, nodes)
                body["metadata"]["name"] = f"extra-{index}"
                async with session.post(f"{server.url}/api/v1/namespaces/{body['metadata']['namespace']}/pods",
                                        json=body) as response:
                    assert response.status == 201, await response.text()
            seconds, _ = await timed(asyncio.gather(*(post(i) for i in range(http_creates))))
            results["create_http_per_s"] = http_creates / seconds

            # The first LIST encodes every pod; later ones join the cached bytes.
            for label, limit in (("list_all_cold", 0), ("list_all", 0), ("list_paged_500", 500)):
                seconds, bodies = await timed(list_all(session, server.url, limit))
                size = sum(len(b) for b in bodies)
                items = sum(len(json.loads(b)["items"]) for b in bodies)
                results[label] = {"seconds": seconds, "items": items, "bytes": size,
                                  "mb_per_s": size / seconds / 1e6}

            fanout = []
            pod_names = [(f"ns-{i % 50}", pod(i, nodes)["metadata"]["name"]) for i in range(changes)]
            for round_index, count in enumerate(watchers):
                phase = ("Running", "Pending")[round_index % 2]       # every patch must be a real change
                rv = store.resource_version
                tasks = [asyncio.create_task(watch_until(session, server.url, rv, changes)) for _ in range(count)]
                await asyncio.sleep(0.2)              # let the watches open before the changes start
                started = time.perf_counter()
                for index, (namespace, name) in enumerate(pod_names):
                    store.patch("v1", "pods", name, {"status": {"phase": phase}}, namespace=namespace,
                                subresource="status")
                    if index % 200 == 0:
                        await asyncio.sleep(0)          # let the watch streams drain as a real server would
                received = await asyncio.gather(*tasks)
                seconds = time.perf_counter() - started
                fanout.append({"watchers": count, "changes": changes, "seconds": seconds,
                               "events_delivered_per_s": sum(received) / seconds})
            results["watch_fanout"] = fanout
    return results


def print_table(results: dict) -> None:
    rows = [("pods stored", f"{results['pods']:,}"),
            ("create in-process", f"{results['create_in_process_per_s']:,.0f} objects/s"),
            ("create over HTTP", f"{results['create_http_per_s']:,.0f} pods/s")]
    for label in ("list_all_cold", "list_all", "list_paged_500"):
        entry = results[label]
        rows.append((label.replace("_", " "), f"{entry['seconds']:.2f} s, {entry['bytes'] / 1e6:.1f} MB, "
                                              f"{entry['mb_per_s']:.0f} MB/s"))
    for entry in results["watch_fanout"]:
        rows.append((f"watch fan-out x{entry['watchers']}",
                     f"{entry['changes']:,} changes in {entry['seconds']:.2f} s, "
                     f"{entry['events_delivered_per_s']:,.0f} events/s delivered"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--http-creates", type=int, default=2000)
    args = parser.parse_args()
    results = asyncio.run(run(args.nodes, args.pods_per_node, args.watchers, args.changes, args.http_creates))
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
