"""Who may read ``/metrics``: bearer tokens the API server authenticates and authorizes, as kube-rbac-proxy,
metrics-server and the kubelet delegate it.

A token is authenticated with a TokenReview (authentication.k8s.io/v1); the user it names is authorized with a
SubjectAccessReview (authorization.k8s.io/v1) for ``get`` on the non-resource URL ``/metrics``, which a
ClusterRole grants with ``nonResourceURLs: ["/metrics"]``. Both calls go through the operator's one ``KubeApi``
(its rate limiter, retries, threads). Decisions are cached by a hash of the token (never the token itself), so a
scraper every 15 s costs two API calls every ``ALLOWED_TTL``; the cache is bounded, and so are the reviews in
flight, so requests with ever new tokens cannot queue work on the rate limiter the status writes share.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import urllib3
from kubernetes.client.exceptions import ApiException

from kubemeter.kubeapi import KubeApi, describe

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
ALLOWED_TTL = 120.0
"""Seconds an allowed token is trusted without asking again (the kubelet's webhook authentication cache TTL)."""
REFUSED_TTL = 30.0
"""Seconds a refused token stays refused (the kubelet's unauthorized TTL): a new RoleBinding counts this soon."""
CACHE_SIZE = 1024
REVIEWS_IN_FLIGHT = 4
REVIEW_TIMEOUT = 10.0
"""Seconds for each review request, and for the two reviews of one scrape together (retries included)."""


@dataclass(frozen=True, slots=True)
class AccessDecision:
    status: int
    """The HTTP status to answer: 200 allowed, 401 not authenticated, 403 not authorized, 429 too many reviews at
    once, 503 the API server could not review the request."""
    reason: str


UNAUTHENTICATED = AccessDecision(401, "Unauthorized: a valid bearer token is required")
BUSY = AccessDecision(429, "Too many token reviews in progress, retry later")


class DelegatedAuth:
    def __init__(self, api: KubeApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self._clock = clock
        self._decisions: OrderedDict[bytes, tuple[float, AccessDecision]] = OrderedDict()
        self._reviews = asyncio.Semaphore(REVIEWS_IN_FLIGHT)

    async def check(self, authorization: str | None) -> AccessDecision:
        """The decision for a request's ``Authorization`` header."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return UNAUTHENTICATED
        key = hashlib.sha256(token.encode()).digest()
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        if self._reviews.locked():
            return BUSY
        async with self._reviews:
            try:
                async with asyncio.timeout(REVIEW_TIMEOUT):
                    decision = await self._review(token)
            except (ApiException, urllib3.exceptions.HTTPError, OSError, TimeoutError) as exc:
                log.warning("cannot review a /metrics request's token: %s", describe(exc))
                return AccessDecision(503, "The API server could not review the token, retry later")
        self._remember(key, decision)
        return decision

    async def _review(self, token: str) -> AccessDecision:
        review = await self.api.call(
            self.api.authentication.create_token_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
            _request_timeout=REVIEW_TIMEOUT,
        )
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return UNAUTHENTICATED
        user = status.user
        access = await self.api.call(
            self.api.authorization.create_subject_access_review,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.username,
                    "groups": user.groups or [],
                    "uid": user.uid,
                    "extra": user.extra or {},
                    "nonResourceAttributes": {"path": METRICS_PATH, "verb": "get"},
                },
            },
            _request_timeout=REVIEW_TIMEOUT,
        )
        if access.status is not None and access.status.allowed:
            return AccessDecision(200, "allowed")
        return AccessDecision(403, f'Forbidden: user "{user.username}" may not get {METRICS_PATH}')

    def _remember(self, key: bytes, decision: AccessDecision) -> None:
        ttl = ALLOWED_TTL if decision.status == 200 else REFUSED_TTL
        self._decisions[key] = (self._clock() + ttl, decision)
        self._decisions.move_to_end(key)
        while len(self._decisions) > CACHE_SIZE:
            self._decisions.popitem(last=False)
