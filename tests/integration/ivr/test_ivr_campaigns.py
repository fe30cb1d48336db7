"""Automated campaign calls on the Asterisk 22 sandbox: the IVR speaks and listens, no staff.

Each test stores a campaign as `contactd campaign create` does, writes the attempt row as the
dialer does before its Originate, and originates the simulated callee into contactd-outbound
with the variables the dialer builds (dialer.dialplan.originate_request). AMD runs; the call
reaches the IVR over AudioSocket; the dialplan reports the flow's fate in ContactdMessage.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from panoramisk import Manager
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.config import Settings
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Contact
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.create import CampaignSpec, create_campaign
from contactd.dialer.dialplan import originate_request
from contactd.enums import CustomFieldType, Direction
from contactd.events import EventBus
from contactd.ivr.audiosocket import AudioSocketServer
from contactd.ivr.campaigns import CampaignFlows
from contactd.ivr.flows import shipped_flow
from contactd.ivr.service import IvrService, Session, SessionState
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from tests.peers.asterisk import AmiEvents, AsteriskSandbox, originate_outbound, set_audiosocket

pytestmark = pytest.mark.asterisk
MINA = "+4930123456"


class World:
    def __init__(self, service: IvrService, db: Database, bus: EventBus, contact_id: int) -> None:
        self.service = service
        self.db = db
        self.contact_id = contact_id
        self.recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
        bus.subscribe(InteractionRecorded, self.recorded.put_nowait)

    async def dial(self, ami: Manager, spec: CampaignSpec, number: str) -> str:
        """Create the campaign with Mina as its lead and call `number` as the dialer would."""
        created = await create_campaign(self.db, Settings(), spec, contacts=[self.contact_id])
        attempt_id = str(uuid.uuid4())
        async with self.db.transaction() as session:
            campaign = await session.get(Campaign, created.campaign_id)
            lead = (await session.scalars(select(Lead))).one()
            assert campaign is not None
            session.add(
                CallAttempt(
                    id=attempt_id,
                    campaign_id=campaign.id,
                    lead_id=lead.id,
                    contact_id=lead.contact_id,
                    phone_e164=lead.phone_e164,
                )
            )
            variables = originate_request(campaign, lead, 30).variables
        await ami.send_action(
            originate_outbound(
                number, attempt_id, mode=variables["CONTACTD_MODE"], variables=variables
            )
        )
        return attempt_id

    async def finished(self) -> tuple[Session, Interaction]:
        done = await asyncio.wait_for(self.recorded.get(), 60)
        (session,) = self.service.finished.values()
        async with self.db.session() as db_session:
            row = await db_session.get(Interaction, done.interaction_id)
        assert row is not None
        return session, row


@pytest.fixture
async def world(
    asterisk: AsteriskSandbox, ami: Manager, db: Database, tmp_path: Path
) -> AsyncIterator[World]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    bus = EventBus()
    contacts = ContactService(db, default_region="DE")
    await contacts.define_field("survey_score", "Recommend score", CustomFieldType.NUMBER)
    mina = await contacts.create_contact(ContactInput(first_name="Mina", phones=[MINA]))
    client = AmiClient(asterisk.ami_settings())
    async with Tts(tmp_path / "prompts") as tts:
        service = IvrService(
            shipped_flow("intake"),
            Router(db, contacts, TaskService(db), bus=bus),
            tts,
            channels=client,
            turn=TurnSettings(no_input_s=8.0),
            campaigns=CampaignFlows(db, shipped_flow, language="en", voice=""),
        )
        client.events.on("UserEvent", service.on_user_event)
        async with (
            client,
            service,
            AudioSocketServer("127.0.0.1", 0, service.handle) as server,
        ):
            await set_audiosocket(ami, "127.0.0.1", server.port)
            yield World(service, db, bus, mina)


@pytest.mark.parametrize(("number", "amd"), [("20015", "HUMAN"), ("40000", "MACHINE")])
async def test_an_automated_message_is_spoken_to_the_callee_or_their_machine(
    world: World, ami: Manager, number: str, amd: str
) -> None:
    events = AmiEvents(ami, "UserEvent")
    spec = CampaignSpec(
        "spoken",
        "message",
        message_text="Hello {first_name}, your order is ready; collect it by Friday.",
    )
    attempt_id = await world.dial(ami, spec, number)
    message = await events.user_event("ContactdMessage", Attempt=attempt_id, timeout_s=40)
    assert message.get("Status") == "SUCCESS", dict(message)
    session, row = await world.finished()
    assert session.said == ["Hello Mina, your order is ready; collect it by Friday."]
    assert session.state is SessionState.COMPLETED  # played to the end, then hung up
    assert (row.direction, row.contact_id, row.outcome) == (
        Direction.OUTBOUND,
        world.contact_id,
        "completed",
    )
    assert (row.data["attempt"], row.data["amd"]) == (attempt_id, amd)
    assert row.campaign_id is not None


async def test_an_automated_survey_stores_the_keyed_answers_on_the_contact(
    world: World, ami: Manager
) -> None:
    events = AmiEvents(ami, "UserEvent")
    # 20317: answers, keys 1 (satisfied: yes), then 7 (the score).
    attempt_id = await world.dial(ami, CampaignSpec("poll", "survey", ivr_flow="survey"), "20317")
    message = await events.user_event("ContactdMessage", Attempt=attempt_id, timeout_s=60)
    session, row = await world.finished()
    assert message.get("Status") == "SUCCESS", (dict(message), session, row.data)
    assert session.said[0] == "Hello Mina, this is a short survey."
    assert row.data["answers"] == {"satisfied": True, "score": "7"}
    assert (row.outcome, row.contact_id) == ("completed", world.contact_id)
    async with world.db.session() as db_session:
        contact = await db_session.get(Contact, world.contact_id)
    assert contact is not None
    # survey_score is a defined field: on the contact. survey_satisfied is not defined here,
    # so it stays on the interaction only (logged), and nothing else is lost.
    assert contact.custom == {"survey_score": 7}
