"""Confirmations a flow sends when it acts: an SMS to the caller, an e-mail to the contact.

Queued through the outbox (MessagingService.send), durable and sent once: the idempotency
key is the session and the step, so a retried action never sends twice. The text is the
flow's, in the caller's language (else the default), with {name} and every answer filled in.
"""

from __future__ import annotations

import logging
import uuid
from string import Formatter
from typing import Any, Protocol

from sqlalchemy import select

from contactd.db.models.crm import ContactEmail
from contactd.db.session import Database
from contactd.enums import Channel
from contactd.messaging.outbox_store import OutboundMessage

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """What the IVR needs from messaging (MessagingService satisfies it)."""

    async def send(self, message: OutboundMessage) -> int: ...


def fill(text: str, values: dict[str, Any]) -> str:
    """`text` with {field} replaced by the value; unknown fields are left out."""
    out: list[str] = []
    for literal, name, _, _ in Formatter().parse(text):
        out.append(literal)
        if name is not None:
            out.append(str(values.get(name, "")))
    return "".join(out)


async def primary_email(db: Database, contact_id: int) -> str | None:
    async with db.session() as session:
        return await session.scalar(
            select(ContactEmail.address)
            .where(ContactEmail.contact_id == contact_id)
            .order_by(ContactEmail.is_primary.desc(), ContactEmail.id)
            .limit(1)
        )


async def send_confirmation(
    outbox: Outbox,
    db: Database,
    *,
    channel: Channel,
    text: str,
    session_id: uuid.UUID,
    step: str,
    caller_num: str,
    contact_id: int | None,
    interaction_id: int,
    language: str,
) -> int | None:
    """Queue the confirmation; None (logged) when the caller has no address for `channel`."""
    to: str | None = caller_num if channel is Channel.SMS else None
    if channel is Channel.EMAIL and contact_id is not None:
        to = await primary_email(db, contact_id)
    if not to:
        log.warning(
            "ivr confirmation not sent: no address",
            extra={"interaction_id": interaction_id, "contact_id": contact_id, "channel": channel},
        )
        return None
    return await outbox.send(
        OutboundMessage(
            idempotency_key=f"ivr:{session_id}:{step}:{channel.value}",
            channel=channel,
            to=to,
            body=text,
            subject=text.split(".")[0][:120] if channel is Channel.EMAIL else "",
            contact_id=contact_id,
            interaction_id=interaction_id,
            language=language,
        )
    )
