"""Email over SMTP (aiosmtplib): TLS or STARTTLS and auth from config, multipart text + HTML,
a small pool of open connections reused across a burst, 5xx permanent and 4xx temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from types import TracebackType

import aiosmtplib

from contactd.config import EmailSettings
from contactd.messaging.errors import EmailUnavailableError, SendFailedError
from contactd.messaging.types import OutgoingMessage, SendResult

log = logging.getLogger(__name__)


def build_email(
    *, sender: str, to: str, subject: str, text: str, html: str | None, message_id: str
) -> Message:
    """A text/plain body, plus a text/html alternative when there is one (UTF-8 throughout).

    Built with the compat32 MIME classes: the modern EmailMessage parses every header it is
    given through the header registry, which cost ~7 ms a message and capped bursts.
    """
    body = MIMEText(text, "plain", "utf-8")
    mail: Message = body
    if html:
        mail = MIMEMultipart("alternative")
        mail.attach(body)
        mail.attach(MIMEText(html, "html", "utf-8"))
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = message_id
    return mail


def _classify(code: int, text: str, what: str) -> SendFailedError | EmailUnavailableError:
    reason = f"SMTP {code} {text}".strip()
    if 500 <= code < 600:
        return SendFailedError(f"{what} refused: {reason}", smtp_code=code)
    return EmailUnavailableError(f"{what} deferred: {reason}", smtp_code=code)


class EmailSender:
    """Owns up to `pool_size` SMTP connections; each sends one message at a time."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._domain = settings.from_address.rpartition("@")[2] or "localhost"
        self.connects = 0

    async def __aenter__(self) -> EmailSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(conn.quit(), self.settings.timeout_s)
            conn.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        conn = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username or None,
            password=s.password.get_secret_value() or None,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            validate_certs=s.validate_certs,
            timeout=s.timeout_s,
        )
        try:
            await conn.connect()  # also STARTTLS and AUTH as configured
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SendFailedError(f"SMTP login refused: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise EmailUnavailableError(f"SMTP {s.host}:{s.port} unreachable: {exc}") from None
        self.connects += 1
        return conn

    async def send(self, message: OutgoingMessage) -> SendResult:
        message_id = make_msgid(domain=self._domain)
        mail = build_email(
            sender=str(message.meta.get("from") or self.settings.from_address),
            to=message.to,
            subject=message.subject,
            text=message.body,
            html=message.html_body,
            message_id=message_id,
        )
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                try:
                    await self._send_on(conn, mail, message.to)
                except EmailUnavailableError as exc:
                    if "smtp_code" in exc.details:
                        raise  # the server answered 4xx: the outbox retries later
                    conn = None  # an idle connection the server has since closed: one fresh try
            if conn is None:
                await self._send_on(await self._connect(), mail, message.to)
        return SendResult([message_id.strip("<>")], awaits_receipt=False)

    async def _send_on(self, conn: aiosmtplib.SMTP, mail: Message, to: str) -> None:
        reusable = False
        try:
            await conn.send_message(mail)
            reusable = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            reusable = True
            raise _classify(first.code, first.message, f"recipient {to}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message, "message") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise EmailUnavailableError(f"SMTP connection failed: {exc}") from None
        finally:
            if reusable and conn.is_connected:
                self._idle.append(conn)
            else:
                conn.close()
