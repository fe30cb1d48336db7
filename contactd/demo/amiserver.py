"""The AMI wire protocol, server side, as Asterisk 22 speaks it: banner, `Key: value` frames
ended by a blank line, Login, event classes and whitelist filters per connection.

Only framing and per-connection state live here; what an action does is the PBX's business
(`ActionHandler`). Events are written to every logged-in connection whose classes and filters
let them through.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Final

log = logging.getLogger(__name__)

BANNER: Final = b"Asterisk Call Manager/11.0.0\r\n"
FRAME_END: Final = b"\r\n\r\n"
MAX_FRAME_BYTES: Final = 64 * 1024
READ_TIMEOUT_S: Final = 3600.0
# Actions a connection may send before logging in (Asterisk answers others with an error).
BEFORE_LOGIN: Final = frozenset({"login", "challenge", "ping", "logoff"})
# Event classes a `Login: Events:` value may name; "on"/"all" mean every class.
ALL_CLASSES: Final = frozenset({"system", "call", "log", "verbose", "command", "agent",
                                "user", "config", "dtmf", "reporting", "cdr", "dialplan",
                                "originate", "agi", "cc", "aoc", "test", "security", "message"})

Fields = Mapping[str, str | Sequence[str]]


def frame(fields: Fields) -> bytes:
    """One AMI frame; a list value becomes one header line per item (Variable, Output)."""
    lines: list[str] = []
    for key, value in fields.items():
        if isinstance(value, str):
            lines.append(f"{key}: {value}")
        else:
            lines.extend(f"{key}: {item}" for item in value)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse(raw: bytes) -> dict[str, str | list[str]]:
    """An action frame to headers; a repeated header (Variable) becomes a list."""
    out: dict[str, str | list[str]] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        previous = out.get(key)
        if previous is None:
            out[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            out[key] = [previous, value]
    return out


def posix_to_python(pattern: str) -> str:
    """Asterisk filters are POSIX extended regexes; Python's re lacks bracket classes."""
    return (pattern.replace("[[:space:]]", r"\s").replace("[:space:]", r"\s")
            .replace("[[:digit:]]", r"\d").replace("[:digit:]", r"\d"))


class AmiSession:
    """One manager connection: who logged in, which events it wants, its writer."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.username: str | None = None
        self.classes: frozenset[str] = ALL_CLASSES
        self.includes: list[re.Pattern[str]] = []
        self.excludes: list[re.Pattern[str]] = []
        self.closed = False

    @property
    def logged_in(self) -> bool:
        return self.username is not None

    def set_classes(self, value: str) -> None:
        words = {w.strip().lower() for w in value.split(",") if w.strip()}
        if words & {"on", "all", "yes"}:
            self.classes = ALL_CLASSES
        elif words & {"off", "no"} or not words:
            self.classes = frozenset()
        else:
            self.classes = frozenset(words)

    def add_filter(self, expression: str) -> None:
        """Asterisk's `Filter: Operation: Add`: a leading '!' excludes, else whitelists."""
        exclude = expression.startswith("!")
        compiled = re.compile(posix_to_python(expression[1:] if exclude else expression))
        (self.excludes if exclude else self.includes).append(compiled)

    def wants(self, privilege: str, text: str) -> bool:
        if not self.logged_in:
            return False
        if not any(c in self.classes for c in privilege.split(",") if c != "all"):
            return False
        if self.includes and not any(p.search(text) for p in self.includes):
            return False
        return not any(p.search(text) for p in self.excludes)

    def send(self, data: bytes) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(data)


ActionHandler = Callable[[AmiSession, dict[str, str | list[str]]], Awaitable[None]]


class AmiServer:
    """Async context manager: listens on host:port (0: any free port, see `.port`)."""

    def __init__(self, handler: ActionHandler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.sessions: set[AmiSession] = set()
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> AmiServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.closed = True
            session.writer.close()
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def broadcast(self, privilege: str, name: str, text: bytes) -> None:
        """Write one event frame to every connection that wants it."""
        header = f"Event: {name}\r\n"
        decoded: str | None = None
        for session in self.sessions:
            if not session.logged_in:
                continue
            if session.includes or session.excludes:
                decoded = decoded or text.decode("utf-8")
                if not session.wants(privilege, decoded):
                    continue
            elif not session.wants(privilege, header):
                continue
            session.send(text)

    def drop_all(self) -> None:
        """Close every connection at once (a test's 'PBX restarted' fault)."""
        for session in list(self.sessions):
            session.writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
        writer.write(BANNER)
        try:
            while True:
                raw = await asyncio.wait_for(
                    reader.readuntil(FRAME_END), READ_TIMEOUT_S
                )
                action = parse(raw)
                if not action:
                    continue
                await self._handler(session, action)
                if session.closed:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except asyncio.LimitOverrunError:
            log.warning("demo AMI: frame over the size limit; closing the connection")
        except asyncio.CancelledError:
            pass  # the server is closing; asyncio's stream callback chokes on a cancelled task
        finally:
            session.closed = True
            self.sessions.discard(session)
            if task is not None:
                self._serving.discard(task)
            writer.close()
