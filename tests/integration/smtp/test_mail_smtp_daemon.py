"""The daemon's SMTP endpoint, from configuration alone: mail sent with aiosmtplib lands on
the sender's contact with its attachment and a task; other recipients, oversized and hostile
mail are refused. (A `kill -9` between storing and routing: test_mail_kill9.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import func, select

from contactd.config import EmailInboundSettings, Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components, run_daemon
from contactd.db.models import Document, Interaction, Task
from contactd.enums import Channel, Direction, DocumentKind
from contactd.messaging.events import MessageSent
from contactd.messaging.mail_in import Intake
from contactd.messaging.outbox import OutboundMessage
from contactd.messaging.smtp_server import SmtpReceiver, accepts
from tests.peers.ports import free_port
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smtp

SERVICE = "service@contactd.test"


def _settings(tmp_path: Path, port: int, **extra: str) -> Settings:
    env = {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_WEB__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_EMAIL_INBOUND__SMTP_ENABLED": "true",
        "CONTACTD_EMAIL_INBOUND__SMTP_PORT": str(port),
        "CONTACTD_EMAIL_INBOUND__RECIPIENTS": f'["{SERVICE}", "@sales.contactd.test"]',
    }
    env.update({f"CONTACTD_EMAIL_INBOUND__{k.upper()}": v for k, v in extra.items()})
    return load_settings(None, env)


async def _with_daemon(settings: Settings, body: Callable[[Components], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def ready(components: Components) -> None:
        try:
            await body(components)
        except BaseException as exc:  # re-raised below, after the daemon stopped
            failure.append(exc)
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 60)
    if failure:
        raise failure[0]


def _mail(to: str = SERVICE, *, attach: bool = True, sender: str = "Grace <grace@example.mw>"
          ) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Quote for 20 chairs"
    message["Message-ID"] = "<quote-1@example.mw>"
    message.set_content("Please send a quote, attached is our list.")
    if attach:
        message.add_attachment(b"chairs,20\n", maintype="text", subtype="csv",
                               filename="list.csv")
    return message


async def _counts(components: Components) -> tuple[int, int]:
    async with components.db.session() as session:
        interactions = await session.scalar(select(func.count()).select_from(Interaction))
        tasks = await session.scalar(select(func.count()).select_from(Task))
    return int(interactions or 0), int(tasks or 0)


async def test_mail_sent_to_the_daemon_becomes_a_lead_with_a_document_and_a_task(
    tmp_path: Path,
) -> None:
    port = free_port()

    async def check(components: Components) -> None:
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=port, timeout=10)
        async with components.db.session() as session:
            [row] = list(await session.scalars(select(Interaction)))
            [doc] = list(await session.scalars(select(Document)))
            [task] = list(await session.scalars(select(Task)))
        assert row.remote_address == "grace@example.mw" and row.contact_id is not None
        assert row.data["route"] == "done" and row.data["message_id"] == "quote-1@example.mw"
        assert doc.kind is DocumentKind.ATTACHMENT and doc.contact_id == row.contact_id
        assert (tmp_path / doc.storage_path).read_bytes() == b"chairs,20\n"
        assert task.interaction_id == row.id

    await _with_daemon(_settings(tmp_path, port), check)


async def test_other_recipients_oversized_and_senderless_mail_are_refused(
    tmp_path: Path,
) -> None:
    port = free_port()

    async def check(components: Components) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as smtp:
            assert smtp.esmtp_extensions["size"] == "4096"  # the limit, announced
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await smtp.send_message(_mail("someone@elsewhere.test", attach=False))
            assert refused.value.recipients[0].code == 550
            big = _mail("desk@sales.contactd.test", attach=False)
            big.set_content("x" * 6000)
            with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
                await smtp.send_message(big)
            assert too_big.value.code == 552
        senderless = b"To: service@contactd.test\r\nSubject: who?\r\n\r\nbody\r\n"
        with pytest.raises(aiosmtplib.SMTPResponseException) as no_sender:
            await aiosmtplib.send(senderless, sender="x@example.test", recipients=[SERVICE],
                                  hostname="127.0.0.1", port=port, timeout=10)
        assert no_sender.value.code == 554 and "mail_no_sender" in no_sender.value.message
        [kept] = list((tmp_path / "mail" / "refused").iterdir())
        assert kept.read_bytes().endswith(b"body\r\n")
        assert await _counts(components) == (0, 0)

    await _with_daemon(_settings(tmp_path, port, max_bytes="4096"), check)


async def test_a_store_that_fails_answers_451_so_the_mta_keeps_the_mail() -> None:
    conf = EmailInboundSettings(smtp_enabled=True, smtp_port=free_port(), recipients=(SERVICE,))

    async def broken_store(raw: bytes, source: str) -> Intake:
        raise OSError("disk full")  # the fault a real database is hard to make on demand

    async with SmtpReceiver(conf, broken_store) as receiver:
        with pytest.raises(aiosmtplib.SMTPResponseException) as deferred:
            await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=receiver.port, timeout=10)
    assert deferred.value.code == 451


def test_the_smtp_endpoint_needs_recipients_and_accepts_addresses_and_domains() -> None:
    with pytest.raises(ValueError, match="smtp_enabled needs recipients"):
        EmailInboundSettings(smtp_enabled=True)
    with pytest.raises(ValueError, match="neither an address nor"):
        EmailInboundSettings(recipients=("service",))
    recipients = EmailInboundSettings(recipients=("Service@Contactd.test", "@sales.test")
                                      ).recipients
    assert accepts(recipients, "service@contactd.TEST") and accepts(recipients, "a@sales.test")
    assert not accepts(recipients, "a@other.test") and not accepts(recipients, "a@x.sales.test")


async def test_a_reply_to_a_mail_contactd_sent_lands_on_that_contact_and_thread(
    tmp_path: Path, smtp: SmtpPeer
) -> None:
    port = free_port()
    settings = _settings(tmp_path, port).model_copy(update={"email": smtp.settings()})

    async def check(components: Components) -> None:
        assert components.contacts is not None and components.messaging is not None
        contact = await components.contacts.create_contact(ContactInput(
            first_name="Esi", last_name="Owusu", emails=["esi@example.gh"]))
        sent = asyncio.Event()
        components.bus.subscribe(MessageSent, lambda _: sent.set())
        await components.messaging.send(OutboundMessage(
            "offer-esi", Channel.EMAIL, "esi@example.gh", "Our offer is attached",
            subject="Your offer", contact_id=contact))
        [out] = await smtp.wait_for(1)
        await asyncio.wait_for(sent.wait(), 10)  # the outbox stored the Message-ID it set
        reply = EmailMessage()
        reply["From"] = "assistant@example.gh"  # someone else answers for her
        reply["To"] = SERVICE
        reply["Subject"] = "Re: Your offer"
        reply["Message-ID"] = "<esi-reply@example.gh>"
        reply["In-Reply-To"] = out.parsed()["Message-ID"]
        reply.set_content("Esi accepts.")
        await aiosmtplib.send(reply, hostname="127.0.0.1", port=port, timeout=10)
        async with components.db.session() as session:
            [row] = list(await session.scalars(select(Interaction).where(
                Interaction.direction == Direction.INBOUND)))
        assert row.contact_id == contact
        assert row.data["thread_id"] == str(out.parsed()["Message-ID"]).strip("<>")

    await _with_daemon(settings, check)
