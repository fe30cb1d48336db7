"""Mobile-originated SMS: stored on the sender's timeline; a STOP-style reply opts them out.

Opting out means: SMS and call consent revoked (new Consent rows, history kept), the number on
the global do-not-call list, and SMS still queued for that number cancelled.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models.crm import Consent, Contact, ContactPhone, DoNotCall, Interaction
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus, Direction, InteractionKind, MessageState
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived
from contactd.messaging.smpp import DeliverSm

log = logging.getLogger(__name__)

OPT_OUT_WORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPP", "ARRET", "ARRÊT", "BAJA"}
)
OPT_OUT_SOURCE: Final = "sms STOP"
_FIRST_WORD = re.compile(r"\w+", re.UNICODE)


def is_opt_out(text: str) -> bool:
    """True when the reply's first word is an opt-out keyword, whatever the case or punctuation."""
    match = _FIRST_WORD.search(text.strip())
    return bool(match) and match is not None and match.group(0).upper() in OPT_OUT_WORDS


def to_e164(address: str) -> str:
    """SMPP carries international numbers without '+'; alphanumeric senders stay as they are."""
    digits = address.strip().lstrip("+")
    return f"+{digits}" if digits.isdigit() else address.strip()


class InboundSms:
    def __init__(self, db: Database, bus: EventBus | None = None) -> None:
        self._db = db
        self._bus = bus

    async def handle(self, message: DeliverSm) -> int:
        """Store the message (and the opt-out) in one transaction; returns the interaction id."""
        number = to_e164(message.source_addr)
        opted_out = is_opt_out(message.text)
        async with self._db.transaction() as session:
            contact_id = await self._contact_for(session, number)
            row = Interaction(
                contact_id=contact_id,
                kind=InteractionKind.SMS,
                direction=Direction.INBOUND,
                channel=Channel.SMS,
                body=message.text,
                remote_address=number,
                outcome="opted_out" if opted_out else "received",
                data={"to": message.destination_addr},
            )
            session.add(row)
            if opted_out:
                await self._opt_out(session, contact_id, number)
            await session.flush()
            interaction_id = row.id
        if opted_out:
            log.info("sms opt-out from %s (contact %s)", number, contact_id)
        if self._bus is not None:
            await self._bus.publish(
                InboundSmsReceived(
                    interaction_id=str(interaction_id),
                    contact_id=contact_id,
                    from_number=number,
                    text=message.text,
                    opted_out=opted_out,
                )
            )
        return interaction_id

    @staticmethod
    async def _contact_for(session: AsyncSession, number: str) -> int | None:
        found: int | None = await session.scalar(
            select(ContactPhone.contact_id)
            .join(Contact, Contact.id == ContactPhone.contact_id)
            .where(ContactPhone.e164 == number, Contact.merged_into_id.is_(None))
            .order_by(ContactPhone.is_primary.desc(), ContactPhone.id)
            .limit(1)
        )
        return found

    @staticmethod
    async def _opt_out(session: AsyncSession, contact_id: int | None, number: str) -> None:
        if contact_id is not None:
            for channel in (Channel.SMS, Channel.CALL):
                session.add(
                    Consent(
                        contact_id=contact_id,
                        channel=channel,
                        status=ConsentStatus.REVOKED,
                        source=OPT_OUT_SOURCE,
                    )
                )
        # NULL campaign_id never collides in a unique index, so look before adding.
        listed = await session.scalar(
            select(DoNotCall.id).where(DoNotCall.e164 == number, DoNotCall.campaign_id.is_(None))
        )
        if listed is None:
            session.add(
                DoNotCall(e164=number, reason="replied STOP by SMS", source=OPT_OUT_SOURCE)
            )
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == Channel.SMS,
                OutboxMessage.to_address == number,
                OutboxMessage.state == MessageState.QUEUED,
            )
            .values(state=MessageState.FAILED, error="recipient opted out (STOP)")
            .execution_options(synchronize_session=False)
        )
