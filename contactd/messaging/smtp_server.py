"""The SMTP receiving endpoint (aiosmtpd in the daemon's own loop) a local MTA relays to.

It only translates: RCPT TO is checked against the configured addresses and domains, SIZE is
announced and enforced by aiosmtpd, and DATA hands the raw bytes to the mail intake. The reply
follows what the intake did: 250 once the mail is durably stored (or was already), 554 for a
refusal (its raw copy is kept), 451 when storing failed so the MTA keeps the mail and retries.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Final

from aiosmtpd.smtp import SMTP, Envelope, Session

from contactd.background import TaskOwner
from contactd.config import EmailInboundSettings
from contactd.errors import StartupError
from contactd.messaging.mail_in import Intake

log = logging.getLogger(__name__)

GREETING_NAME: Final = "contactd"
Receive = Callable[[bytes, str], Coroutine[Any, Any, Intake]]


def accepts(recipients: tuple[str, ...], address: str) -> bool:
    """An address is accepted when listed itself, or its domain is listed as '@domain'."""
    wanted = address.strip().lower()
    domain = "@" + wanted.rpartition("@")[2]
    return wanted in recipients or domain in recipients


class _Handler:
    def __init__(self, recipients: tuple[str, ...], receive: Receive, owner: TaskOwner) -> None:
        self.recipients = recipients
        self.receive = receive
        self.owner = owner

    async def handle_RCPT(  # aiosmtpd names its hooks so
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if not accepts(self.recipients, address):
            log.info("smtp recipient refused", extra={"recipient": address[:320]})
            return "550 5.1.1 recipient not accepted here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        # Shielded and owned: a client that drops the connection mid-way must not cut a
        # store (or the routing after it) in half; the daemon's stop cancels it cleanly.
        job = self.owner.spawn(self.receive(raw, "smtp"), "receive")
        try:
            intake = await asyncio.shield(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("inbound mail not stored; the MTA will retry")
            return "451 4.3.0 temporarily unable to store the message"
        if intake.status == "refused":
            return f"554 5.6.0 message refused: {intake.code}"
        return "250 2.0.0 message stored"


class SmtpReceiver:
    """Listens on the configured address and port until the daemon stops."""

    def __init__(self, settings: EmailInboundSettings, receive: Receive) -> None:
        self.settings = settings
        self.owner = TaskOwner("smtp-receiver", log)
        self._handler = _Handler(settings.recipients, receive, self.owner)
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self.host = settings.smtp_host
        self.port = settings.smtp_port

    def _protocol(self) -> SMTP:
        protocol = SMTP(
            self._handler, data_size_limit=self.settings.max_bytes, enable_SMTPUTF8=True,
            hostname=GREETING_NAME, timeout=self.settings.timeout_s,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(protocol)
        return protocol

    async def __aenter__(self) -> SmtpReceiver:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol, self.settings.smtp_host, self.settings.smtp_port)
        except OSError as exc:
            raise StartupError(
                f"SMTP receiver cannot listen on {self.settings.smtp_host}:"
                f"{self.settings.smtp_port}: {exc.strerror}") from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("smtp receiver listening", extra={"host": self.host, "port": self.port})
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for protocol in list(self._sessions):
            transport: Any = protocol.transport
            if transport is not None:
                transport.close()
        await self.owner.close()
        if self._server is not None:
            await self._server.wait_closed()
