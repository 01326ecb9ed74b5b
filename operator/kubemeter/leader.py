"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

With several replicas, only the holder of the Lease runs policy loops and writes status; the others keep
their watches (a warm model) and take over within ``lease_duration + retry_period`` of the leader dying.
A leader that cannot renew within ``renew_deadline`` steps down before its lease can expire, so two
replicas never publish at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import kubernetes
from kubernetes.client.exceptions import ApiException

from kubemeter.kubeapi import KubeApi, describe
from kubemeter.timefmt import parse_rfc3339, rfc3339_micro

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.time,
        on_stopped_leading: Callable[[], None] = lambda: None,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        self.api = api
        self.coordination = kubernetes.client.CoordinationV1Api(api.client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.clock = clock
        self.on_stopped_leading = on_stopped_leading
        self.leading = asyncio.Event()
        self.transitions = 0
        # What this replica last saw of the lease, and when (its own clock: other replicas' clocks may differ).
        self._observed: tuple[str | None, str | None, float] = (None, None, 0.0)

    def _body(self, now: float, acquired: float, transitions: int, resource_version: str | None) -> dict:
        metadata = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(round(self.lease_duration)),
                "acquireTime": rfc3339_micro(acquired),
                "renewTime": rfc3339_micro(now),
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = await self.api.call(
                self.coordination.read_namespaced_lease, self.name, self.namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self.api.call(
                self.coordination.create_namespaced_lease, self.namespace, self._body(now, now, 0, None)
            )
            return True
        current = json.loads(lease.data)
        spec = current.get("spec") or {}
        holder, renew = spec.get("holderIdentity"), spec.get("renewTime")
        if (holder, renew) != self._observed[:2]:
            self._observed = (holder, renew, now)
        expired = now - self._observed[2] > float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and not expired:
            return False
        mine = holder == self.identity
        acquired = parse_rfc3339(spec.get("acquireTime")) if mine else now
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        body = self._body(now, acquired or now, transitions, current["metadata"].get("resourceVersion"))
        try:
            await self.api.call(self.coordination.replace_namespaced_lease, self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # another replica wrote first
                return False
            raise
        self._observed = (self.identity, body["spec"]["renewTime"], now)
        return True

    async def run(self) -> None:
        """Campaign forever; ``leading`` is set while this replica holds the lease.

        Cancelled while leading (a clean shutdown: the caller has stopped publishing first), it gives the
        lease up, as client-go's ReleaseOnCancel does, so a standby takes over at once rather than after
        the lease expires.
        """
        try:
            await self._campaign()
        except asyncio.CancelledError:
            if self.leading.is_set():
                self.leading.clear()
                await self._release()
            raise

    async def _release(self) -> None:
        """Write the lease with no holder and a one-second duration (client-go's release)."""
        try:
            async with asyncio.timeout(self.renew_deadline):
                lease = await self.api.call(
                    self.coordination.read_namespaced_lease, self.name, self.namespace, _preload_content=False
                )
                current = json.loads(lease.data)
                spec = current.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now, transitions = self.clock(), int(spec.get("leaseTransitions") or 0)
                body = self._body(now, now, transitions, current["metadata"].get("resourceVersion"))
                body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
                await self.api.call(self.coordination.replace_namespaced_lease, self.name, self.namespace, body)
            log.info("leader election: %s released lease %s/%s", self.identity, self.namespace, self.name)
        except (ApiException, TimeoutError, OSError) as exc:  # it expires on its own
            log.warning("leader election: lease %s/%s not released: %s", self.namespace, self.name, describe(exc))

    async def _campaign(self) -> None:
        last_renewal = 0.0
        while True:
            try:
                ok = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.renew_deadline)
            except (ApiException, TimeoutError, OSError) as exc:
                log.warning("leader election: lease %s/%s not updated: %s", self.namespace, self.name, describe(exc))
                ok = False
            now = time.monotonic()
            if ok:
                last_renewal = now
                if not self.leading.is_set():
                    self.transitions += 1
                    log.info("leader election: %s now leads (lease %s/%s)", self.identity, self.namespace, self.name)
                    self.leading.set()
            elif self.leading.is_set() and now - last_renewal > self.renew_deadline:
                log.warning("leader election: %s lost the lease; stepping down", self.identity)
                self.leading.clear()
                self.on_stopped_leading()
            await asyncio.sleep(self.retry_period)
