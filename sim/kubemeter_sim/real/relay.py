"""A loopback TCP relay between a client and the real kube-apiserver that a test can cut: every open
connection (watches included) is dropped and new ones are closed at once until it is restored. That makes
the gap the simulator's ``drop_watches`` makes, for a real server, which cannot be told to drop a client.

    async with Relay(cluster.url) as relay:       # relay.url: https://127.0.0.1:<port>, same certificate
        relay.cut(); ...; relay.restore()

The relay only copies bytes (TLS passes through), so the client still verifies the API server's certificate.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

_CHUNK = 64 * 1024


class Relay:
    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self._upstream = (upstream.hostname, upstream.port)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.cut_off = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "Relay":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._drop()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every connection and refuse new ones (they are closed as soon as they are accepted)."""
        self.cut_off = True
        self._drop()

    def restore(self) -> None:
        self.cut_off = False

    def _drop(self) -> None:
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._connections.update((client_writer, upstream_writer))
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        self._connections.difference_update((client_writer, upstream_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()  # one side gone: the other goes too
