"""The demo's mail server: aiosmtpd's SMTP protocol on loopback, in the daemon's own loop.
It accepts every message and keeps the last ones in memory (nothing leaves the machine)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from aiosmtpd.smtp import SMTP

log = logging.getLogger(__name__)

KEEP: Final = 500


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    data: bytes


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._sink.received.append(
            Mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(envelope.content))
        )
        self._sink.count += 1
        return "250 Message accepted for delivery"


class MailSink:
    """Async context manager: an SMTP server on host:port (0: any free port, see `.port`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.received: deque[Mail] = deque(maxlen=KEEP)
        self.count = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> MailSink:
        # aiosmtpd logs every SMTP line at INFO: the demo's log would be nothing else.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="contactd-demo", loop=loop), self.host, self.port
        )
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
            await self._server.wait_closed()
