"""Mobile-originated SMS: stored on the sender's timeline; a STOP-style reply opts them out.

Opting out means: SMS and call consent revoked (new Consent rows, history kept), the number on
the global do-not-call list, and SMS still queued for that number cancelled.
"""

from __future__ import annotations

import logging
from typing import Final

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.db.models.crm import Consent, Contact, ContactPhone, DoNotCall, Interaction
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus, Direction, InteractionKind, MessageState
from contactd.errors import ValidationError
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived
from contactd.messaging.opt_out import ALL_KEYWORDS, is_opt_out
from contactd.messaging.smpp import DeliverSm
from contactd.phones import parse_phone

log = logging.getLogger(__name__)

OPT_OUT_SOURCE: Final = "sms STOP"
ROUTE_PENDING: Final = "pending"
TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NATIONAL: Final = 2
_SEPARATORS: Final = str.maketrans("", "", " -./()\t")


def to_e164(
    address: str, ton: int = TON_INTERNATIONAL, default_region: str | None = None
) -> str:
    """The sender as the CRM stores numbers (E.164, via the project's one phone parser).

    The PDU's type of number says how to read the digits: international ones come without
    '+', national ones (`015112345678`) need the default region. Unknown ones are read as
    national when they start with the region's trunk prefix ('0' in DE), as international
    when they start with its country code (49…), else national first. An alphanumeric
    sender, or digits no reading makes valid, are kept as they came ('+' before bare digits),
    never dropped.
    """
    raw = address.strip()
    digits = raw.translate(_SEPARATORS)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    bare = digits.lstrip("+")
    if not bare.isdigit():
        return raw
    international = "+" + bare
    national = (bare, default_region)
    readings: list[tuple[str, str | None]]
    if digits.startswith("+") or ton == TON_INTERNATIONAL or default_region is None:
        readings = [(international, None)]
    elif ton == TON_NATIONAL:
        readings = [national]
    else:
        trunk = _trunk_prefix(default_region)
        if trunk and bare.startswith(trunk):
            readings = [national, (international, None)]
        elif bare.startswith(str(phonenumbers.country_code_for_region(default_region))):
            readings = [(international, None), national]
        else:
            readings = [national, (international, None)]
    for text, region in readings:
        try:
            return parse_phone(text, region).e164
        except ValidationError:
            continue
    return international


def _trunk_prefix(region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return (metadata.national_prefix or "") if metadata is not None else ""


class InboundSms:
    def __init__(
        self,
        db: Database,
        bus: EventBus | None = None,
        *,
        default_region: str | None = None,
        opt_out_words: frozenset[str] = ALL_KEYWORDS,
    ) -> None:
        self._db = db
        self._bus = bus
        self._region = default_region
        self._opt_out_words = opt_out_words

    async def handle(self, message: DeliverSm) -> int:
        """Store the message (and the opt-out) in one transaction; returns the interaction id."""
        number = to_e164(message.source_addr, message.source_ton, self._region)
        opted_out = is_opt_out(message.text, self._opt_out_words)
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
                # The CRM's router picks it up from here (sender, follow-up task).
                data={"to": message.destination_addr, "route": ROUTE_PENDING},
            )
            session.add(row)
            if opted_out:
                await self._opt_out(session, contact_id, number)
            await session.flush()
            interaction_id = row.id
        if opted_out:
            log.info("sms opt-out", extra={"from_number": number, "contact_id": contact_id})
        if self._bus is not None:
            await self._bus.publish(
                InboundSmsReceived(
                    interaction_id=interaction_id,
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
