"""Fake nodes on a real API server: the simulated kubelets as real clients of it, as kwok's controllers are.

Each node is registered with its status in the create (addresses, kubelet port, capacity, nodeInfo,
Ready=True) and the not-ready taint a kubelet registers with, which the node-lifecycle controller removes;
its Lease in ``kube-node-lease`` is renewed every 10 s. One pod watch for the whole fleet drives the pods the
real scheduler binds to these nodes like a kubelet: Running with conditions and container statuses, Job
pods Succeeded when told (:meth:`RealScenario.complete_job`), pods with a deletionTimestamp deleted for good (their containers exit at once on
SIGTERM, so the kubelet need not wait out the grace period), mirror pods for static pods. Each kubelet serves
``/metrics/resource`` and ``/stats/summary`` for exactly the pods bound to it, with the simulator's usage
profiles, formats and faults (:mod:`kubemeter_sim.kubelet`).

Requests to a kubelet are authenticated and authorized as a real kubelet with ``--authorization-mode=Webhook``
does: bearer tokens through a TokenReview, client certificates against the cluster CA, then a
SubjectAccessReview for ``get nodes/<subresource>``; decisions are cached (2 minutes, the kubelet's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kubemeter_sim import tls
from kubemeter_sim.cluster import node_ip
from kubemeter_sim.ports import free_port
from kubemeter_sim.faults import Fault
from kubemeter_sim.kubelet import ClientCredentials, Kubelet, KubeletFleet
from kubemeter_sim.kubelet_status import (
    CONTROL_PLANE_TAINT, NOT_READY_TAINT, node_labels, node_status, rfc3339, running_pod_status,
)
from kubemeter_sim.real.rest import MERGE_PATCH, Rest, RestError

log = logging.getLogger(__name__)

LEASE_SECONDS = 40
RENEW_SECONDS = 10.0
RENEWALS_IN_FLIGHT = 32
POD_SYNCS_IN_FLIGHT = 32
POD_SYNC_ATTEMPTS = 5
AUTH_CACHE_SECONDS = 120.0
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


NODE_NETWORK = 2
"""Fake nodes' InternalIPs are 127.2.0.1, 127.2.0.2, ...: apart from the simulated cluster's 127.1.x.y."""


def micro_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e6):06d}Z"


@dataclass
class _Node:
    name: str
    number: int
    ip: str
    kubelet: Kubelet
    next_pod_ip: int = 1
    pod_ips: dict[str, str] = field(default_factory=dict)


class FakeNodes:
    """The fleet; ``await add(...)`` registers nodes, ``await close()`` stops every loop and listener."""

    def __init__(self, rest: Rest, ca: tls.CertificateAuthority, pki_dir: Path, *, kubelet_version: str,
                 seed: int = 0, housekeeping_interval: float = 10.0) -> None:
        self.rest = rest
        self.ca = ca
        self._pki = pki_dir
        self._pki.mkdir(parents=True, exist_ok=True)
        self.kubelet_version = kubelet_version
        self.seed = seed
        self.housekeeping_interval = housekeeping_interval
        self.nodes: dict[str, _Node] = {}
        self._key = tls.new_key()
        self._tasks: list[asyncio.Task[None]] = []
        self._pod_syncs: dict[str, asyncio.Task[None]] = {}
        """Pod uid -> its latest sync, which awaits the one before (a pod's events are handled in order)."""
        self._pod_sync_slots = asyncio.Semaphore(POD_SYNCS_IN_FLIGHT)
        self._reposting: dict[str, asyncio.Task[None]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[float, tuple[bool, str]]] = {}
        self.port = 0

    @property
    def kubelets(self) -> dict[str, Kubelet]:
        return {name: node.kubelet for name, node in self.nodes.items()}

    async def start(self) -> None:
        rogue = tls.CertificateAuthority.create("not-the-cluster-ca")
        rogue_context = tls.server_context(tls.write_server_chain(
            rogue, self._pki / "rogue.pem", "rogue", ips=["127.0.0.1"], key=self._key))
        self.fleet = KubeletFleet(rogue_context)
        await self.fleet.start()
        # Every kubelet listens on this port of its own address, as a real kubelet on 10250.
        self.port = free_port(node_ip(0, NODE_NETWORK))
        self._tasks.append(asyncio.create_task(self._follow("/api/v1/pods", self._dispatch), name="fake-kubelets-pods"))
        self._tasks.append(asyncio.create_task(self._follow("/api/v1/nodes", self._node_changed),
                                               name="fake-kubelets-ready"))
        self._tasks.append(asyncio.create_task(self._renew_leases(), name="fake-kubelets-leases"))

    async def close(self) -> None:
        tasks = self._tasks + list(self._pod_syncs.values()) + list(self._reposting.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if hasattr(self, "fleet"):
            await self.fleet.close()

    async def set_fault(self, name: str, fault: Fault | None) -> None:
        await self.fleet.set_fault(self.nodes[name].kubelet, fault)

    # -- nodes ---------------------------------------------------------------------------------------------
    async def add(self, name: str, *, control_plane: bool = False, taint_control_plane: bool = True) -> None:
        number = len(self.nodes)
        ip = node_ip(number, NODE_NETWORK)
        chain = tls.write_server_chain(self.ca, self._pki / f"kubelet-{name}.pem", name, ips=[ip], dns_names=[name],
                                       key=self._key)
        context = tls.server_context(chain)
        # Client certificates are verified against the cluster CA (metrics-server and kube-apiserver use them).
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.ca.pem.decode())
        kubelet = Kubelet(node_name=name, ip=ip, port=self.port, version=self.kubelet_version,
                          authorize=self._authorize, seed=self.seed,
                          housekeeping_interval=self.housekeeping_interval, on_restart=None)
        await self.fleet.add(kubelet, context)
        self.nodes[name] = _Node(name, number, ip, kubelet)
        labels = node_labels(name, number, control_plane=control_plane)
        taints = [dict(NOT_READY_TAINT)]
        if control_plane and taint_control_plane:
            taints.append(dict(CONTROL_PLANE_TAINT))
        cidr = f"10.{128 + number // 256}.{number % 256}.0/24"
        await self.rest.create("/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {
                "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "taints": taints},
            "status": node_status(name, ip, self.port, self.kubelet_version, time.time()),
        })
        await self._renew_lease(name)

    async def remove(self, name: str) -> None:
        node = self.nodes.pop(name)
        await self.fleet.remove(node.kubelet)
        with contextlib.suppress(RestError):
            await self.rest.delete(f"/api/v1/nodes/{name}")

    async def ready(self, name: str) -> bool:
        """No not-ready taint any more: the node-lifecycle controller has seen the node Ready."""
        node = await self.rest.get(f"/api/v1/nodes/{name}")
        taints = (node.get("spec") or {}).get("taints") or []
        return not any(t.get("key") == NOT_READY_TAINT["key"] for t in taints)

    async def _renew_lease(self, name: str) -> None:
        now = micro_time(time.time())
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        try:
            await self.rest.patch(path, {"spec": {"renewTime": now}})
        except RestError as error:
            if error.status != 404:
                raise
            node = await self.rest.get(f"/api/v1/nodes/{name}")
            await self.rest.apply_or_keep("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}})

    async def _renew_leases(self) -> None:
        """Every RENEW_SECONDS, every node's Lease, RENEWALS_IN_FLIGHT at a time: one after the other, a round
        over 1,000 nodes took ~90 s on a busy 2-core machine, past LEASE_SECONDS, and the node-lifecycle
        controller marked every node unreachable (its taints then evicted the pods and kept new ones pending)."""
        slots = asyncio.Semaphore(RENEWALS_IN_FLIGHT)

        async def renew(name: str) -> None:
            async with slots:
                try:
                    await self._renew_lease(name)
                except (RestError, OSError, asyncio.TimeoutError) as error:
                    log.warning("lease of node %s not renewed: %s", name, error)

        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await asyncio.gather(*(renew(name) for name in list(self.nodes)))

    # -- static pods -------------------------------------------------------------------------------------------
    async def create_mirror_pod(self, node_name: str, pod: dict[str, Any], config_hash: str) -> dict[str, Any]:
        """The mirror pod a kubelet creates for a static pod: owned by the Node, named ``<name>-<node>``."""
        node = await self.rest.get(f"/api/v1/nodes/{node_name}")
        meta = pod["metadata"]
        meta["name"] = f"{meta['name']}-{node_name}"
        meta.setdefault("annotations", {}).update({
            MIRROR_ANNOTATION: config_hash, "kubernetes.io/config.hash": config_hash,
            "kubernetes.io/config.source": "file", "kubernetes.io/config.seen": rfc3339(time.time())})
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                    "uid": node["metadata"]["uid"], "controller": True}]
        pod["spec"]["nodeName"] = node_name
        return await self.rest.create(f"/api/v1/namespaces/{meta['namespace']}/pods", pod)

    # -- pods --------------------------------------------------------------------------------------------------
    async def _follow(self, path: str, handle: Callable[[dict[str, Any], str], None]) -> None:
        """``handle(object, event type)`` for every object of the collection at ``path`` (listed, then watched),
        again from a new listing whenever the watch expires or fails."""
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    listing = await self.rest.get(path)
                    for obj in listing["items"]:
                        handle(obj, "ADDED")
                    resource_version = listing["metadata"]["resourceVersion"]
                async for event in self.rest.watch(path, resource_version):
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        resource_version = ""  # expired: list again
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        handle(obj, event["type"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a fake kubelet keeps going, as a real one does
                log.warning("fake kubelets: watch of %s failed (%s); listing again", path, error)
                resource_version = ""
                await asyncio.sleep(0.5)

    def _node_changed(self, node: dict[str, Any], event_type: str) -> None:
        """A node of ours whose Ready condition the node-lifecycle controller set Unknown (its Lease was late, this
        process stalled): posted Ready again, as a kubelet posts its status, or the node and its pods would stay
        tainted unreachable for good."""
        name = node["metadata"]["name"]
        ours = self.nodes.get(name)
        ready = [c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"]
        if ours is None or event_type == "DELETED" or not ready or ready[0].get("status") == "True":
            return
        if name not in self._reposting:
            self._reposting[name] = asyncio.create_task(self._post_ready(ours))

    async def _post_ready(self, node: _Node) -> None:
        try:
            await self.rest.patch(f"/api/v1/nodes/{node.name}/status", {
                "status": node_status(node.name, node.ip, self.port, self.kubelet_version, time.time())})
            log.info("fake kubelet %s: posted Ready again", node.name)
        except (RestError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as error:
            log.warning("fake kubelet %s: Ready not posted: %s", node.name, error)
        finally:
            self._reposting.pop(node.name, None)

    def _dispatch(self, pod: dict[str, Any], event_type: str) -> None:
        """Sync the pod in a task of its own, after its previous event's, POD_SYNCS_IN_FLIGHT at a time: one
        awaited status PATCH per event started 11-16 pods a second, and 30,000 pods on 1,000 nodes took most of an
        hour to run."""
        uid = pod["metadata"]["uid"]
        task = asyncio.create_task(self._sync_in_turn(self._pod_syncs.get(uid), pod, event_type))
        self._pod_syncs[uid] = task
        task.add_done_callback(lambda done: self._pod_syncs.get(uid) is done and self._pod_syncs.pop(uid))

    async def _sync_in_turn(self, previous: asyncio.Task[None] | None, pod: dict[str, Any], event_type: str) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        for attempt in range(1, POD_SYNC_ATTEMPTS + 1):
            try:
                async with self._pod_sync_slots:
                    await self._sync(pod, event_type)
                return
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as error:  # the API server busy: again
                meta = pod["metadata"]
                log.warning("fake kubelets: pod %s/%s not synced (attempt %d): %s",
                            meta.get("namespace"), meta["name"], attempt, error)
                await asyncio.sleep(attempt)

    async def _sync(self, pod: dict[str, Any], event_type: str) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        node = self.nodes.get(spec.get("nodeName") or "")
        if node is None:
            return
        if event_type == "DELETED":
            node.kubelet.forget_pod(meta["uid"])
            node.pod_ips.pop(meta["uid"], None)
            return
        try:
            if meta.get("deletionTimestamp"):
                node.kubelet.forget_pod(meta["uid"])
                await self.rest.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                       gracePeriodSeconds=0, preconditions={"uid": meta["uid"]})
                return
            phase = (pod.get("status") or {}).get("phase")
            if phase in (None, "Pending"):
                await self._patch_status(pod, running_pod_status(pod, node.ip, self._pod_ip(node, pod), time.time()))
                return
        except RestError as error:
            if error.status not in (404, 409):
                log.warning("fake kubelet %s: pod %s/%s: %s", node.name, meta.get("namespace"), meta["name"], error)
            return
        node.kubelet.sync_pod(pod)

    def _pod_ip(self, node: _Node, pod: dict[str, Any]) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return node.ip
        uid = pod["metadata"]["uid"]
        if uid not in node.pod_ips:
            index = node.next_pod_ip
            node.next_pod_ip += 1
            node.pod_ips[uid] = f"10.{128 + node.number // 256}.{node.number % 256}.{index % 254 + 1}"
        return node.pod_ips[uid]

    async def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        await self.rest.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                              {"metadata": {"uid": meta["uid"]}, "status": status}, MERGE_PATCH)

    # -- authorization -----------------------------------------------------------------------------------------
    async def _authorize(self, credentials: ClientCredentials, verb: str, group: str, resource: str,
                         subresource: str = "", name: str = "", namespace: str = "") -> tuple[bool, str]:
        key = (credentials, verb, group, resource, subresource, name)
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        decision = await self._review(credentials, verb, group, resource, subresource, name)
        if decision[1]:  # failures to authenticate are not cached: a token may just have been created
            self._decisions[key] = (time.monotonic() + AUTH_CACHE_SECONDS, decision)
        return decision

    async def _review(self, credentials: ClientCredentials, verb: str, group: str, resource: str,
                      subresource: str, name: str) -> tuple[bool, str]:
        if credentials.token:
            review = await self.rest.create("/apis/authentication.k8s.io/v1/tokenreviews", {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": credentials.token}})
            status = review.get("status") or {}
            if not status.get("authenticated"):
                return False, ""
            user = status["user"]
            username, groups, uid = user.get("username", ""), user.get("groups") or [], user.get("uid", "")
            extra = user.get("extra") or {}
        else:
            username, groups, uid, extra = credentials.cert_user, list(credentials.cert_groups), "", {}
        review = await self.rest.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": username, "groups": groups, "uid": uid, "extra": extra, "resourceAttributes": {
                "verb": verb, "group": group, "resource": resource, "subresource": subresource, "name": name}}})
        return bool((review.get("status") or {}).get("allowed")), username
