"""A small asyncio client for the real API server, for the test bed's own controllers (fake kubelets, the
workload builder): JSON over aiohttp with a client certificate, a timeout on every call, and watches.

Not the operator's client: the test bed must not share code with what it tests.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def collection(api_version: str, plural: str, namespace: str | None = None) -> str:
    """The path of a resource's collection: in one namespace, or across all when ``namespace`` is None."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"


class RestError(Exception):
    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status} {self.reason}: {message}")


class Rest:
    def __init__(self, server: str, ca_file: Path, cert_file: Path, key_file: Path, *, timeout: float = 30.0,
                 connections: int = 64) -> None:
        self.server = server.rstrip("/")
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(str(cert_file), str(key_file))
        self._context = context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Rest":
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=self._context, limit=self._connections))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with Rest(...)`"
        return self._session

    async def request(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self.session.request(method, self.server + path, data=data, params=params, headers=headers,
                                        timeout=self._timeout) as response:
            text = await response.text()
            try:
                document: Any = json.loads(text) if text else {}
            except ValueError:
                document = text
            if response.status >= 400:
                raise RestError(response.status, document)
            return document

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body)

    async def apply_or_keep(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``body``; an object of that name that already exists is kept (None)."""
        try:
            return await self.create(path, body)
        except RestError as error:
            if error.status == 409:
                return None
            raise

    async def apply(self, path: str, body: dict[str, Any], field_manager: str = "kubemeter-test-bed") -> dict[str, Any]:
        """Server-side apply of ``body`` into the collection at ``path`` (created, or updated to it)."""
        return await self.request("PATCH", f"{path}/{body['metadata']['name']}", body,
                                  params={"fieldManager": field_manager, "force": "true"},
                                  content_type="application/apply-patch+yaml")

    async def patch(self, path: str, body: dict[str, Any], content_type: str = MERGE_PATCH) -> dict[str, Any]:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, **options: Any) -> dict[str, Any]:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
        return await self.request("DELETE", path, body)

    async def watch(self, path: str, resource_version: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """Events after ``resource_version``, bookmarks included, until the server ends the stream."""
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": "300", **params}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=330)
        async with self.session.get(self.server + path, params=query, timeout=timeout) as response:
            if response.status >= 400:
                raise RestError(response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


async def wait_for(check, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Await ``check()`` until it returns something truthy; a clear error naming ``what`` otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(interval)
