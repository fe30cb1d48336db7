"""A STOP reply from a number written the national way reaches the contact's stored number."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from contactd.config import Settings
from contactd.db.models import Consent, DoNotCall, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived
from tests.integration.smsc.test_sms_outbox import _contact, messaging
from tests.peers.smsc import SmscPeer

pytestmark = pytest.mark.smsc

TON_NATIONAL = 2
NPI_E164 = 1


async def test_a_full_width_stop_from_a_national_number_opts_the_contact_out(
    settings: Settings, smsc: SmscPeer, db: Database
) -> None:
    contact_id = await _contact(db, "+4915112345678")
    german = settings.model_copy(
        update={"general": settings.general.model_copy(update={"default_region": "DE"})}
    )
    bus = EventBus()
    arrived = asyncio.Event()
    bus.subscribe(InboundSmsReceived, lambda _event: arrived.set())
    async with messaging(german, smsc, db, bus):
        sent = await smsc.inject_mo("015112345678", "ＳＴＯＰ", ton=TON_NATIONAL, npi=NPI_E164)
        assert sent == 1
        await asyncio.wait_for(arrived.wait(), 10)
    async with db.session() as session:
        (interaction,) = (await session.scalars(select(Interaction))).all()
        dnc = (await session.scalars(select(DoNotCall.e164))).all()
        revoked = (
            await session.scalars(
                select(Consent.channel).where(
                    Consent.contact_id == contact_id, Consent.status == ConsentStatus.REVOKED
                )
            )
        ).all()
    assert interaction.contact_id == contact_id and interaction.outcome == "opted_out"
    assert interaction.remote_address == "+4915112345678"
    assert dnc == ["+4915112345678"]
    assert set(revoked) == {Channel.SMS, Channel.CALL}
