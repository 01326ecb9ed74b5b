"""Fetch one kubelet endpoint, directly over HTTPS or through the API server's nodes/proxy.

Every failure becomes a ScrapeError with a short machine-readable reason (the label of
``kubemeter_scrape_errors_total``) and a message for humans; nothing else escapes, so one bad node never
stops a cycle.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from urllib.parse import quote

import aiohttp

from kubemeter.kube import Credentials, SSLContexts, TLSFileError, user_agent
from kubemeter.types import NodeInfo

ENDPOINT_PATHS = {"resource": "/metrics/resource", "summary": "/stats/summary"}
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class ScrapeError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class KubeletClient:
    """One pooled HTTP client for all kubelets; connections are kept alive across cycles."""

    def __init__(
        self,
        credentials: Callable[[], Credentials],
        *,
        kubelet_ca_path: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._credentials = credentials
        self._kubelet_ca_path = kubelet_ca_path
        self._max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None
        self._contexts = SSLContexts()

    def _ssl(self, creds: Credentials, ca_path: str | None, verify: bool) -> ssl.SSLContext:
        try:
            return self._contexts.get(ca_path, creds.cert_path, creds.key_path, verify)
        except TLSFileError as exc:
            raise ScrapeError("tls", str(exc)) from None

    def check_kubelet_ca(self) -> None:
        """Raise ScrapeError now if the configured kubelet CA bundle cannot be loaded (a start-up check)."""
        if self._kubelet_ca_path is not None:
            self._ssl(self._credentials(), self._kubelet_ca_path, True)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=0: the policy loop bounds concurrency itself; idle connections outlive a cycle so
            # the TLS handshake is paid once per kubelet, not once per scrape.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  headers={"User-Agent": user_agent(f"aiohttp/{aiohttp.__version__}")})
        return self._session

    def request_for(self, node: NodeInfo, endpoint: str, via: str, insecure: bool) -> tuple[str, dict, ssl.SSLContext]:
        creds = self._credentials()
        path = ENDPOINT_PATHS[endpoint]
        headers = {"Accept": "application/json" if endpoint == "summary" else "text/plain"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        if via == "proxy":
            url = f"{creds.server}/api/v1/nodes/{quote(node.name, safe='')}/proxy{path}"
            return url, headers, self._ssl(creds, creds.ca_path, not creds.insecure)
        if not node.address or not node.kubelet_port:
            raise ScrapeError("no_address", f"node {node.name} has no InternalIP or kubelet port in its status")
        host = f"[{node.address}]" if ":" in node.address else node.address
        url = f"https://{host}:{node.kubelet_port}{path}"
        return url, headers, self._ssl(creds, self._kubelet_ca_path or creds.ca_path, not insecure)

    async def fetch(self, node: NodeInfo, endpoint: str, via: str, timeout: float, insecure: bool = False) -> bytes:
        """The response body; raises ScrapeError on anything but a complete 200 within the timeout."""
        url, headers, context = self.request_for(node, endpoint, via, insecure)
        try:
            async with asyncio.timeout(timeout):
                return await self._get(url, headers, context)
        except ScrapeError:
            raise
        except TimeoutError:
            raise ScrapeError("timeout", f"no complete answer from {url} within {timeout:g}s") from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise ScrapeError("tls", f"TLS error talking to {url}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            raise ScrapeError("connection", f"cannot connect to {url}: {exc.os_error or exc}") from None
        except aiohttp.ClientPayloadError as exc:
            raise ScrapeError("truncated", f"incomplete body from {url}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ScrapeError("connection", f"request to {url} failed: {exc!r}") from None

    async def _get(self, url: str, headers: dict, context: ssl.SSLContext) -> bytes:
        try:
            return await self._get_once(url, headers, context)
        except aiohttp.ServerDisconnectedError:
            # A kept-alive connection the kubelet had already closed: one fresh attempt is safe for a GET.
            return await self._get_once(url, headers, context)

    async def _get_once(self, url: str, headers: dict, context: ssl.SSLContext) -> bytes:
        # Never follow a redirect: the node would choose where the bearer token and the request go, and what
        # another host answered would be used (or quoted in status) as the kubelet's.
        async with self._session_now().get(url, headers=headers, ssl=context, allow_redirects=False) as response:
            if 300 <= response.status < 400:
                raise ScrapeError("redirect", f"HTTP {response.status} from {url}: kubelet redirects are not followed")
            if response.status != 200:
                raise _http_error(url, response.status, await response.content.read(512))
            if (response.content_length or 0) > self._max_body_bytes:
                raise self._too_large(url)
            body = bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                body += chunk
                if len(body) > self._max_body_bytes:
                    raise self._too_large(url)
            return bytes(body)

    def _too_large(self, url: str) -> ScrapeError:
        return ScrapeError("too_large", f"body from {url} exceeds the {self._max_body_bytes} byte cap")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _http_error(url: str, status: int, head: bytes) -> ScrapeError:
    reason = {401: "unauthorized", 403: "forbidden"}.get(status) or ("server_error" if status >= 500 else "http_error")
    text = head.decode("utf-8", "replace").strip().splitlines()
    return ScrapeError(reason, f"HTTP {status} from {url}" + (f": {text[0][:200]}" if text else ""))
