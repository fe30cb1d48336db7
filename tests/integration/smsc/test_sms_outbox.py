"""The outbox sending SMS through the real SMSC peer: receipts, outages, restarts, STOP replies."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contactd.config import Settings
from contactd.db.models import (
    ChannelDecision,
    Consent,
    Contact,
    ContactPhone,
    DoNotCall,
    Interaction,
    OutboxMessage,
)
from contactd.db.session import Database
from contactd.enums import (
    CallOutcome,
    Channel,
    ConsentStatus,
    Direction,
    InteractionKind,
    MessageState,
    PhoneType,
)
from contactd.errors import ContactdError
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived, MessageDelivered
from contactd.messaging.outbox import OutboundMessage
from contactd.messaging.service import MessagingService
from contactd.messaging.types import DeliveryReceipt, ReceiptOutcome
from tests.peers.smsc import SmscPeer
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smsc


def messaging(
    settings: Settings,
    smsc: SmscPeer,
    db: Database,
    bus: EventBus | None = None,
    *,
    retries: dict[str, Any] | None = None,
    **smpp: Any,
) -> MessagingService:
    """Messaging on the SMSC peer with short waits; `retries` overrides the outbox's."""
    configured = settings.model_copy(update={"smpp": smsc.settings(**smpp)})
    return MessagingService(
        configured,
        db,
        bus,
        is_window_open=lambda *_: True,
        smpp_options={"reconnect_s": (0.1, 1.0), "wait_connected_s": 2.0},
        outbox_options=retries or {"retry_base_s": 0.5, "retry_max_s": 2.0, "max_attempts": 100},
    )


def sms(i: int, **extra: Any) -> OutboundMessage:
    return OutboundMessage(f"sms-{i}", Channel.SMS, f"+4915200{i:05d}", f"message {i}", **extra)


def assert_at_least_once(submits: list[dict[str, Any]], texts: set[str], maybe_sent: int) -> None:
    """The outbox's promise: every message reaches the SMSC; one is sent again only after an
    attempt whose answer was lost (counted as maybe_sent), never otherwise."""
    per_text = Counter(s["text"] for s in submits)
    assert set(per_text) == texts
    assert sum(n - 1 for n in per_text.values()) <= maybe_sent


async def claimed(db: Database, timeout_s: float = 20.0) -> None:
    """Until the outbox's dispatcher has claimed rows (`sending` in the database)."""
    async with asyncio.timeout(timeout_s):
        while not any(r.state is MessageState.SENDING for r in await rows(db)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polling the database, which has no event to wait on


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_each_message_is_delivered_and_a_repeated_key_sends_nothing(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    bus = EventBus()
    delivered: list[int] = []
    bus.subscribe(MessageDelivered, lambda e: delivered.append(e.message_id))
    async with messaging(settings, smsc, db, bus) as m:
        ids = await m.outbox.enqueue_many([sms(i) for i in range(300)])
        await m.outbox.wait_for(lambda s: s.delivered == 300, 60)
        again = await m.outbox.enqueue_many([sms(i) for i in range(300)])
        assert again == ids
        maybe_sent = m.outbox.stats.maybe_sent
    stored = await rows(db)
    assert [r.state for r in stored] == [MessageState.DELIVERED] * 300
    assert all(r.provider_id and r.delivered_at for r in stored)
    submits = await smsc.submits()
    assert_at_least_once(submits, {f"message {i}" for i in range(300)}, maybe_sent)
    assert {r.provider_id for r in stored} <= {s["message_id"] for s in submits}
    await asyncio.sleep(0)  # let the last event handlers run
    assert sorted(delivered) == sorted(ids)


async def test_a_receipt_delivered_again_is_counted_and_published_once(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    bus = EventBus()
    delivered: list[int] = []
    bus.subscribe(MessageDelivered, lambda e: delivered.append(e.message_id))
    async with messaging(settings, smsc, db, bus) as m:
        message_id = await m.send(sms(1))
        await m.outbox.wait_for(lambda s: s.delivered == 1, 20)
        (row,) = await rows(db)
        assert row.provider_id is not None
        # An SMSC sends a receipt again when our answer to it was lost (a dropped link).
        await m.outbox.on_receipt(DeliveryReceipt(row.provider_id, ReceiptOutcome.DELIVERED))
        assert m.outbox.stats.delivered == 1
    assert delivered == [message_id]


async def test_a_long_message_is_delivered_when_every_part_is(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    text = "Ваш заказ готов к выдаче. " * 12
    async with messaging(settings, smsc, db) as m:
        await m.send(OutboundMessage("long", Channel.SMS, "+491520000001", text))
        await m.outbox.wait_for(lambda s: s.delivered == 1, 20)
    (row,) = await rows(db)
    submits = await smsc.submits()
    assert row.meta["parts"] == [s["message_id"] for s in submits]
    assert len(submits) > 1
    assert "".join(s["text"] for s in submits) == text


async def test_an_undeliverable_receipt_marks_the_message_failed(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    await smsc.configure(receipt_stat={"491520000002": "UNDELIV"})
    async with messaging(settings, smsc, db) as m:
        await m.send(OutboundMessage("dead", Channel.SMS, "+491520000002", "hello?"))
        await m.outbox.wait_for(lambda s: s.failed == 1, 20)
    (row,) = await rows(db)
    assert row.state is MessageState.FAILED
    assert "UNDELIV" in row.error


async def test_an_smsc_outage_longer_than_every_retry_holds_the_messages(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    """While the link is down no attempt is spent: an outage that would outlast every retry
    (2 attempts here, each waiting 2 s for a bind) fails nothing, and each message goes on
    its first try."""
    retries = {"retry_base_s": 0.2, "retry_max_s": 0.5, "max_attempts": 2}
    async with messaging(settings, smsc, db, retries=retries) as m:
        assert m.smpp is not None
        await asyncio.wait_for(m.smpp.until_bound(), 10)
        await smsc.stop()
        await m.outbox.enqueue_many([sms(i) for i in range(5)])
        await asyncio.sleep(6.0)  # the outage: longer than both attempts would have lasted
        assert m.outbox.stats.failed == 0 and m.outbox.stats.sent == 0
        await smsc.start()
        await m.outbox.wait_for(lambda s: s.delivered == 5, 20)
    final = await rows(db)
    assert [(r.state, r.attempts) for r in final] == [(MessageState.DELIVERED, 1)] * 5


OUTAGE_S = 60.0  # the drill's outage: a full minute, as an operator would see one


@pytest.mark.slow
async def test_smsc_down_a_minute_and_smtp_refusing_then_everything_is_delivered_once(
    settings: Settings, smsc: SmscPeer, smtp: SmtpPeer, db: Database
) -> None:
    """The SMSC goes away for a minute while the mail server answers 451 to everything: the
    outbox holds both backlogs, loses nothing, and delivers each message once when the peers
    are back (an SMS again only after an attempt whose answer was lost: `maybe_sent`)."""
    count, mails = 200, 20
    configured = settings.model_copy(update={"email": smtp.settings()})
    async with messaging(configured, smsc, db, max_per_second=40) as m:
        await m.outbox.enqueue_many([sms(i) for i in range(count)])
        await m.outbox.wait_for(lambda s: s.sent >= 40, 20)
        await smsc.stop()
        smtp.refuse(451, "4.3.0 Try again later", count=10_000)
        await m.outbox.enqueue_many(
            [
                OutboundMessage(
                    f"mail-{i}", Channel.EMAIL, f"c{i}@example.test", f"mail {i}", "Your booking"
                )
                for i in range(mails)
            ]
        )
        await asyncio.sleep(OUTAGE_S)  # the outage itself
        assert m.outbox.stats.delivered < count and not smtp.messages
        queued = {r.idempotency_key: r.state for r in await rows(db)}
        assert len(queued) == count + mails  # held, none dropped or failed
        assert MessageState.FAILED not in queued.values()
        await smsc.start()
        smtp.reset()  # the mail server accepts again
        await m.outbox.wait_for(lambda s: s.delivered == count, 90)
        await smtp.wait_for(mails, 30)
        await m.outbox.wait_for(lambda s: s.sent >= count + mails, 10)
        assert m.outbox.stats.retried > 0
        maybe_sent = m.outbox.stats.maybe_sent
    assert_at_least_once(await smsc.submits(), {f"message {i}" for i in range(count)}, maybe_sent)
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted(
        f"c{i}@example.test" for i in range(mails)
    )  # each mail once
    final = await rows(db)
    assert all(r.state is MessageState.DELIVERED for r in final if r.channel is Channel.SMS)
    assert all(r.state is MessageState.SENT for r in final if r.channel is Channel.EMAIL)


async def test_a_restart_resumes_the_outbox(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    await smsc.stop()
    async with messaging(settings, smsc, db) as m:
        assert m.smpp is not None and m.smpp.probe().status == "down"
        await m.outbox.enqueue_many([sms(i) for i in range(20)])
        await claimed(db)  # the dispatcher took rows; its workers hold them for the link
        maybe_sent = m.outbox.stats.maybe_sent
    # A crash mid-send leaves a row `sending`: the next start must pick it up again.
    async with db.transaction() as session:
        session.add(
            OutboxMessage(
                idempotency_key="crashed",
                channel=Channel.SMS,
                state=MessageState.SENDING,
                to_address="+491520000099",
                body="interrupted",
                attempts=1,
            )
        )
    await smsc.start()
    async with messaging(settings, smsc, db) as m:
        # The crashed row, and whatever the first run stopped while waiting for the SMSC.
        assert m.outbox.stats.resumed >= 1
        await m.outbox.wait_for(lambda s: s.delivered == 21, 30)
        maybe_sent += m.outbox.stats.maybe_sent
    assert_at_least_once(
        await smsc.submits(), {f"message {i}" for i in range(20)} | {"interrupted"}, maybe_sent
    )


async def test_a_stop_gives_back_claimed_messages_that_never_left(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    """The dispatcher claims ahead of its workers, and while the SMSC link is down the
    workers hold what it claimed; at a stop, the rows no worker sent go back to `queued`
    with their attempt uncounted."""
    await smsc.stop()
    async with messaging(settings, smsc, db) as m:
        concurrency = settings.smpp.window * 4  # the daemon's SMS sends in flight
        await m.outbox.enqueue_many([sms(i) for i in range(3 * concurrency)])
        await claimed(db)
    assert m.outbox.stats.retried == 0  # no attempt spent on a link that is not there
    stored = await rows(db)
    assert {r.state for r in stored} == {MessageState.QUEUED}
    assert sum(r.attempts for r in stored) == 0


async def test_a_receipt_after_a_restart_updates_the_timeline_and_names_the_contact(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    contact_id = await _contact(db, "+491520000012")
    await smsc.configure(receipt_delay_ms=1500)  # the receipt comes after the stop
    async with messaging(settings, smsc, db) as m:
        await m.send(sms(12, contact_id=contact_id))
        await m.outbox.wait_for(lambda s: s.sent == 1, 20)
    bus = EventBus()
    delivered: list[MessageDelivered] = []
    bus.subscribe(MessageDelivered, delivered.append)
    async with messaging(settings, smsc, db, bus) as m:
        await m.outbox.wait_for(lambda s: s.delivered == 1, 20)
    async with db.session() as session:
        (timeline,) = (await session.scalars(select(Interaction))).all()
    assert (timeline.contact_id, timeline.outcome) == (contact_id, "delivered")
    assert [(e.contact_id, e.channel) for e in delivered] == [(contact_id, Channel.SMS)]


async def _contact(db: Database, number: str, *, sms_consent: bool = True) -> int:
    async with db.transaction() as session:
        contact = Contact(first_name="Zoë", last_name="Quinn", language="de")
        session.add(contact)
        await session.flush()
        session.add(ContactPhone(contact_id=contact.id, e164=number, type=PhoneType.MOBILE))
        if sms_consent:
            session.add(
                Consent(contact_id=contact.id, channel=Channel.SMS, status=ConsentStatus.GRANTED)
            )
        return contact.id


async def test_a_stop_reply_opts_the_contact_out_of_sms_and_calls(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    # A valid number: the CRM's caller lookup, which the router uses, reads it as a phone.
    contact_id = await _contact(db, "+4915200000010")
    async with db.transaction() as session:
        session.add(
            OutboxMessage(
                idempotency_key="later",
                channel=Channel.SMS,
                to_address="+4915200000010",
                body="a reminder for tomorrow",
                next_attempt_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
    bus = EventBus()
    heard: list[InboundSmsReceived] = []
    arrived = asyncio.Event()

    def on_inbound(event: InboundSmsReceived) -> None:
        heard.append(event)
        arrived.set()

    bus.subscribe(InboundSmsReceived, on_inbound)
    async with messaging(settings, smsc, db, bus):
        await smsc.inject_mo("4915200000010", "Stop please")
        await asyncio.wait_for(arrived.wait(), 10)
    async with db.session() as session:
        (interaction,) = (await session.scalars(select(Interaction))).all()
        consents = (
            await session.execute(
                select(Consent.channel, Consent.status, Consent.source).order_by(Consent.id)
            )
        ).all()
        dnc = (await session.scalars(select(DoNotCall))).all()
        later = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "later")
        )
    assert interaction.contact_id == contact_id
    assert (interaction.kind, interaction.direction) == (InteractionKind.SMS, Direction.INBOUND)
    assert interaction.body == "Stop please" and interaction.outcome == "opted_out"
    revoked = {c for c, s, src in consents if s is ConsentStatus.REVOKED and src == "sms STOP"}
    assert revoked == {Channel.SMS, Channel.CALL}
    assert [(d.e164, d.campaign_id) for d in dnc] == [("+4915200000010", None)]
    assert later is not None and later.state is MessageState.FAILED
    assert heard[0].opted_out and heard[0].contact_id == contact_id
    assert (await smsc.mo())[0]["status"] == 0


async def test_fallback_after_a_machine_answer_texts_the_contact(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    contact_id = await _contact(db, "+491520000011")
    async with messaging(settings, smsc, db) as m:
        result = await m.fallback(
            contact_id, idempotency_key="fallback-1", last_outcome=CallOutcome.MACHINE
        )
        assert result.decision.channel is Channel.SMS
        assert result.message_id is not None
        await m.outbox.wait_for(lambda s: s.delivered == 1, 20)
    submits = await smsc.submits()
    assert {s["destination_addr"] for s in submits} == {"491520000011"}
    text = "".join(s["text"] for s in submits)
    assert text.startswith("Hallo Zoë, wir haben versucht, Sie anzurufen.")
    assert text.endswith("Antworten Sie STOP zum Abmelden.")
    async with db.session() as session:
        (decision,) = (await session.scalars(select(ChannelDecision))).all()
        timeline = (
            await session.scalars(select(Interaction).where(Interaction.contact_id == contact_id))
        ).all()
    assert (decision.contact_id, decision.channel, decision.reason) == (
        contact_id,
        Channel.SMS,
        "machine_answered",
    )
    assert [(i.kind, i.direction, i.outcome) for i in timeline] == [
        (InteractionKind.SMS, Direction.OUTBOUND, "delivered")
    ]


async def test_a_database_locked_by_another_process_holds_the_outbox_and_loses_nothing(
    settings: Settings, smsc: SmscPeer, db: Database, tmp_path: Path
) -> None:
    """Drill: another program keeps the SQLite file write-locked for longer than the busy
    timeout. Commits fail and are retried, health says why, a new message is refused with a
    clear error instead of being dropped; once the lock goes, every message is delivered and
    the file is intact."""
    count = 60
    path = tmp_path / "test.db"
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, timeout=1)
        try:
            other.execute("BEGIN EXCLUSIVE")
            holding.set()
            release.wait(30)
            other.rollback()
        finally:
            other.close()

    async with messaging(settings, smsc, db, max_per_second=20) as m:
        await m.outbox.enqueue_many([sms(i) for i in range(count)])
        await m.outbox.wait_for(lambda s: s.sent >= 5, 20)
        locker = asyncio.create_task(asyncio.to_thread(hold_the_lock))
        await asyncio.to_thread(holding.wait, 10)
        try:
            # Longer than the busy timeout (5 s): the writer's commit fails and is retried.
            async with asyncio.timeout(30):
                while m.outbox.probe().status == "ok":  # noqa: ASYNC110 - health is polled, as monitoring does
                    await asyncio.sleep(0.2)
            health = m.outbox.probe()
            assert health.status == "degraded" and "locked" in health.detail
            with pytest.raises(ContactdError) as refused:
                await m.outbox.enqueue(sms(count))
            assert "locked" in refused.value.message
        finally:
            release.set()
            await locker
        await m.outbox.enqueue(sms(count))  # accepted again once the lock is gone
        await m.outbox.wait_for(lambda s: s.delivered == count + 1, 60)
        assert m.outbox.probe().status == "ok"
        maybe_sent = m.outbox.stats.maybe_sent
    texts = {f"message {i}" for i in range(count + 1)}
    assert_at_least_once(await smsc.submits(), texts, maybe_sent)
    assert all(r.state is MessageState.DELIVERED for r in await rows(db))
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
