"""An asyncio TCP proxy to inject network faults between a client and a real peer.

The real peer cannot drop a TCP connection on demand; this proxy can. ``drop()`` closes every
live connection (both sides, like a cable pulled), ``pause()`` stops listening so new
connections are refused (ECONNREFUSED), ``resume()`` listens again on the same port.
``sent[i]`` holds every byte the client wrote on the i-th connection accepted (what reached
the peer, or was about to): a test reads the wire instead of waiting for what did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

_CHUNK = 65536


class TcpProxy:
    """Forward 127.0.0.1:<port> to target; an async context manager owning its tasks."""

    def __init__(self, target_host: str, target_port: int, *, connect_timeout_s: float = 5.0):
        self.target_host = target_host
        self.target_port = target_port
        self.connect_timeout_s = connect_timeout_s
        self.port = 0
        self.accepted = 0
        self.sent: list[bytearray] = []  # per accepted connection: the client's bytes
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        await self.resume()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.pause()
        await self.drop()

    @property
    def live_connections(self) -> int:
        return len(self._links)

    async def resume(self) -> None:
        """Listen (again) on the same port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def pause(self) -> None:
        """Stop listening: new connections are refused; live ones keep flowing."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # wait_closed() also waits for handlers on 3.12+; the links are ours to end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    async def drop(self) -> None:
        """Close every live connection on both sides, then wait for the links to end."""
        for writer in list(self._writers):
            _abort(writer)
        # Aborted transports end every pipe by themselves; cancelling the handlers instead
        # would make asyncio's stream callback log each CancelledError as an error.
        links = list(self._links)
        if links:
            _, stuck = await asyncio.wait(links, timeout=5.0)
            for task in stuck:
                task.cancel()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.accepted += 1
        sent = bytearray()
        self.sent.append(sent)
        self._links.add(task)
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            upstream_r, upstream = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port),
                self.connect_timeout_s,
            )
            upstream_w = upstream
            self._writers.add(upstream)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pipe(client_r, upstream, sent), name="tcpproxy-up")
                tg.create_task(_pipe(upstream_r, client_w), name="tcpproxy-down")
        except (OSError, TimeoutError, ExceptionGroup, asyncio.CancelledError):
            pass  # a dropped or refused link simply ends; the client sees the close
        finally:
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._writers.discard(writer)
                    _abort(writer)
            self._links.discard(task)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None = None
) -> None:
    try:
        while data := await reader.read(_CHUNK):
            if record is not None:
                record.extend(data)
            writer.write(data)
            await writer.drain()
    finally:
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
