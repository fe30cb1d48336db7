"""Email over SMTP (aiosmtplib): TLS or STARTTLS and auth from config, multipart text + HTML,
a small pool of open connections reused across a burst, 5xx permanent and 4xx temporary.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Sequence
from email.header import Header
from email.utils import formatdate, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosmtplib

from contactd.config import EmailSettings
from contactd.messaging.errors import EmailUnavailableError, SendFailedError, SmtpDeferredError
from contactd.messaging.types import ClaimedMessage, SendResult

log = logging.getLogger(__name__)


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")  # 76-character lines


def _part(subtype: str, content: str) -> bytes:
    return (
        f"Content-Type: text/{subtype}; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + _base64_lines(content.encode("utf-8"))


def _attached(parts: bytes, attachments: Sequence[tuple[str, str, bytes]]) -> bytes:
    """The body (`parts`: its own Content-Type and content) and files in multipart/mixed."""
    boundary = f"=_contactd_{uuid.uuid4().hex}"
    out = [f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode(),
           f"--{boundary}\r\n".encode(), parts]
    for filename, content_type, data in attachments:
        name = filename.replace('"', "").replace("\r", "").replace("\n", "")
        out += [f"--{boundary}\r\n".encode(), (
            f'Content-Type: {content_type}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode(), _base64_lines(data)]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def build_email(
    *, sender: str, to: str, subject: str, text: str, html: str | None, message_id: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """The RFC 5322 bytes: text/plain, plus a text/html alternative when there is one; UTF-8
    bodies in base64, a non-ASCII subject as RFC 2047 encoded words.

    Written out directly: the email package's generator folds and re-parses every header
    (EmailMessage ~7 ms a message here, compat32 ~1 ms), which capped bursts.
    """
    encoded_subject = subject if subject.isascii() else Header(subject, "utf-8").encode()
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {encoded_subject}\r\n"
        f"Date: {formatdate(localtime=False, usegmt=True)}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()  # non-ASCII addresses travel as SMTPUTF8
    if not html:
        body = _part("plain", text)
    else:
        boundary = f"=_contactd_{uuid.uuid4().hex}"
        body = b"".join(
            (
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
                f"--{boundary}\r\n".encode(),
                _part("plain", text),
                f"--{boundary}\r\n".encode(),
                _part("html", html),
                f"--{boundary}--\r\n".encode(),
            )
        )
    return head + (_attached(body, attachments) if attachments else body)


def _read_attachments(meta: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    out = []
    for item in meta.get("attachments") or ():
        path = Path(str(item["path"]))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SendFailedError(f"attachment {path} cannot be read: {exc.strerror}") from None
        out.append((str(item.get("filename") or path.name),
                    str(item.get("content_type") or "application/octet-stream"), data))
    return out


def _classify(code: int, text: str, what: str) -> SendFailedError | SmtpDeferredError:
    reason = f"SMTP {code} {text}".strip()
    if 500 <= code < 600:
        return SendFailedError(f"{what} refused: {reason}", smtp_code=code)
    return SmtpDeferredError(f"{what} deferred: {reason}", smtp_code=code)


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

    async def send(self, message: ClaimedMessage) -> SendResult:
        message_id = make_msgid(domain=self._domain)
        sender = str(message.meta.get("from") or self.settings.from_address)
        # Files named in meta["attachments"] ({path, filename, content_type}), read now.
        attachments = (await asyncio.to_thread(_read_attachments, message.meta)
                       if message.meta.get("attachments") else [])
        mail = build_email(
            sender=sender,
            to=message.to,
            subject=message.subject,
            text=message.body,
            html=message.html_body,
            message_id=message_id,
            attachments=attachments,
        )
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                try:
                    await self._send_on(conn, mail, sender, message.to)
                except SmtpDeferredError:
                    raise  # the server answered 4xx: the outbox retries later
                except EmailUnavailableError:
                    conn = None  # an idle connection the server has since closed: one fresh try
            if conn is None:
                await self._send_on(await self._connect(), mail, sender, message.to)
        return SendResult([message_id.strip("<>")], awaits_receipt=False)

    async def _send_on(self, conn: aiosmtplib.SMTP, mail: bytes, sender: str, to: str) -> None:
        reusable = False
        try:
            utf8 = not (sender.isascii() and to.isascii())
            # sendmail with the envelope we know: send_message would re-parse the headers.
            await conn.sendmail(sender, [to], mail, mail_options=["SMTPUTF8"] if utf8 else [])
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
