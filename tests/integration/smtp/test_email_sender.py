"""EmailSender and the outbox against aiosmtpd on loopback."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from contactd.db.models import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, MessageState
from contactd.messaging.email import EmailSender
from contactd.messaging.errors import EmailUnavailableError, SendFailedError
from contactd.messaging.outbox import OutboundMessage, Outbox
from contactd.messaging.types import ClaimedMessage
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smtp

SUBJECT = "Ihre Bestätigung — 予約 ✓"
BODY = "Grüße aus Köln,\nZoë & Ørjan — ¥€ 🎉\n"
HTML = "<p>Grüße aus <b>Köln</b> 🎉</p>"


def mail(i: int = 1, to: str = "zoë@example.test") -> ClaimedMessage:
    return ClaimedMessage(i, Channel.EMAIL, to, BODY, SUBJECT, HTML)


async def test_utf8_subject_and_body_arrive_intact_as_multipart(smtp: SmtpPeer) -> None:
    async with EmailSender(smtp.settings()) as sender:
        result = await sender.send(mail())
    (received,) = await smtp.wait_for(1)
    parsed = received.parsed()
    assert parsed["Subject"] == SUBJECT
    assert parsed["Message-ID"].strip("<>") == result.provider_ids[0]
    assert not result.awaits_receipt
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == BODY  # SMTP carries CRLF
    assert html.get_content().strip() == HTML
    assert received.rcpt_tos == ["zoë@example.test"]


async def test_550_is_permanent_and_451_temporary(smtp: SmtpPeer) -> None:
    async with EmailSender(smtp.settings()) as sender:
        smtp.refuse(550, "5.1.1 No such user here")
        with pytest.raises(SendFailedError) as permanent:
            await sender.send(mail())
        smtp.refuse(451, "4.3.0 Try again later")
        with pytest.raises(EmailUnavailableError) as temporary:
            await sender.send(mail())
        await sender.send(mail())
    assert "550" in permanent.value.message and "No such user" in permanent.value.message
    assert temporary.value.temporary and "451" in temporary.value.message
    assert len(smtp.messages) == 1


async def test_a_burst_reuses_pooled_connections(smtp: SmtpPeer) -> None:
    async with EmailSender(smtp.settings(pool_size=3)) as sender:
        await asyncio.gather(*(sender.send(mail(i)) for i in range(60)))
        assert sender.connects <= 3
    assert len(await smtp.wait_for(60)) == 60


async def test_unreachable_server_is_a_temporary_failure(smtp: SmtpPeer) -> None:
    settings = smtp.settings(port=1)
    async with EmailSender(settings) as sender:
        with pytest.raises(EmailUnavailableError):
            await sender.send(mail())


async def _states(db: Database) -> dict[str, tuple[MessageState, str, int]]:
    async with db.session() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    return {r.idempotency_key: (r.state, r.error, r.attempts) for r in rows}


async def test_outbox_marks_550_failed_with_the_reason_and_retries_451(
    smtp: SmtpPeer, db: Database
) -> None:
    smtp.refuse(550, "5.1.1 Mailbox unavailable")
    async with EmailSender(smtp.settings(pool_size=1)) as sender, Outbox(
        db, {Channel.EMAIL: sender}, concurrency={Channel.EMAIL: 1}, retry_base_s=0.2
    ) as outbox:
        await outbox.enqueue(OutboundMessage("bad", Channel.EMAIL, "gone@example.test", BODY))
        await outbox.wait_for(lambda s: s.failed == 1, 10)
        smtp.refuse(451, "4.7.1 Greylisted", count=2)
        await outbox.enqueue(
            OutboundMessage("grey", Channel.EMAIL, "new@example.test", BODY, SUBJECT)
        )
        await outbox.wait_for(lambda s: s.sent == 1, 15)
        # The same key again sends nothing new.
        await outbox.enqueue(
            OutboundMessage("grey", Channel.EMAIL, "new@example.test", BODY, SUBJECT)
        )
    states = await _states(db)
    assert states["bad"][0] is MessageState.FAILED
    assert "550" in states["bad"][1] and "Mailbox unavailable" in states["bad"][1]
    assert states["grey"][0] is MessageState.SENT and states["grey"][2] == 3
    assert outbox.stats.retried == 2
    (received,) = smtp.messages
    assert received.rcpt_tos == ["new@example.test"]
    assert received.parsed()["Subject"] == SUBJECT
