"""Mobile-originated SMS: stored on the sender's timeline through the CRM's router; a
STOP-style reply opts them out.

Opting out means: SMS and call consent revoked (new Consent rows, history kept), the number on
the global do-not-call list (both `crm.dnc.record_opt_out`), and SMS still queued for that
number cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

import phonenumbers
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.crm.dnc import record_opt_out
from contactd.crm.routing import InboundContact, Router
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, MessageState
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
    """Stores each mobile-originated SMS through the CRM's router (one caller lookup; an
    unknown sender becomes a new lead), marked as waiting for the router's follow-up rules."""

    def __init__(
        self,
        db: Database,
        router: Router,
        bus: EventBus | None = None,
        *,
        default_region: str | None = None,
        opt_out_words: frozenset[str] = ALL_KEYWORDS,
    ) -> None:
        self._db = db
        self._router = router
        self._bus = bus
        self._region = default_region
        self._opt_out_words = opt_out_words

    async def handle(self, message: DeliverSm) -> int:
        """Store the message (after any opt-out it carries); returns the interaction id.

        The opt-out is committed first: if the process dies before the message is stored, the
        SMSC (not yet answered) delivers it again, and opting out twice changes nothing.
        """
        number = to_e164(message.source_addr, message.source_ton, self._region)
        opted_out = is_opt_out(message.text, self._opt_out_words)
        item = InboundContact(
            kind=InteractionKind.SMS,
            direction=Direction.INBOUND,
            channel=Channel.SMS,
            remote_address=number,
            body=message.text,
            outcome="opted_out" if opted_out else "received",
            # The CRM's recorder finishes it from here (follow-up task).
            data={"to": message.destination_addr, "route": ROUTE_PENDING},
        )
        contact_id, _ = await self._router.resolve(item)
        if opted_out:
            async with self._db.transaction() as session:
                await record_opt_out(session, contact_id, number, source=OPT_OUT_SOURCE,
                                     reason="replied STOP by SMS")
                await self._cancel_queued(session, number)
            log.info("sms opt-out", extra={"from_number": number, "contact_id": contact_id})
        routed = await self._router.start(replace(item, contact_id=contact_id))
        if self._bus is not None:
            await self._bus.publish(
                InboundSmsReceived(
                    interaction_id=routed.interaction_id,
                    contact_id=contact_id,
                    from_number=number,
                    text=message.text,
                    opted_out=opted_out,
                )
            )
        return routed.interaction_id

    @staticmethod
    async def _cancel_queued(session: AsyncSession, number: str) -> None:
        """SMS still waiting for that number are not sent."""
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
