"""A SIP caller (SIPp) dials the shipped trunk, reaches the IVR over AudioSocket and keys 1
by RFC 2833: the production SIP path end to end. The choice (a transfer to the support
queue) lands on the caller's contact record and in the dialplan's ContactdRoute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from panoramisk import Manager
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.ivr.audiosocket import AudioSocketServer
from contactd.ivr.flows import shipped_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from tests.peers.asterisk import AmiEvents, AsteriskSandbox, set_audiosocket
from tests.peers.sipp import run_sipp

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]


@pytest.fixture
async def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def ivr(
    asterisk: AsteriskSandbox, ami: Manager, db: Database, tmp_path: Path, bus: EventBus
) -> AsyncIterator[int]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    mina = await contacts.create_contact(ContactInput(first_name="Mina", phones=["+4930123456"]))
    client = AmiClient(asterisk.ami_settings())
    async with Tts(tmp_path / "prompts") as tts:
        service = IvrService(
            shipped_flow("intake"),
            Router(db, contacts, TaskService(db), bus=bus),
            tts,
            channels=client,
            turn=TurnSettings(no_input_s=6.0),
        )
        client.events.on("UserEvent", service.on_user_event)
        async with client, service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            assert service.prompts_ready is not None
            await asyncio.wait_for(service.prompts_ready, 60)
            await set_audiosocket(ami, "127.0.0.1", server.port)
            yield mina


async def test_a_sip_caller_keys_1_by_rfc2833_and_is_routed_to_support(
    ivr: int,
    asterisk: AsteriskSandbox,
    ami: Manager,
    db: Database,
    bus: EventBus,
    tmp_path: Path,
) -> None:
    recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    bus.subscribe(InteractionRecorded, recorded.put_nowait)
    events = AmiEvents(ami, "UserEvent")
    result = await run_sipp(
        asterisk,
        dnis="5550100",
        caller="+4930123456",
        calls=1,
        work_dir=tmp_path,
        digit="1",
    )
    assert result.successful == 1
    started = events.user_events("ContactdIvr", Dnis="5550100")
    assert len(started) == 1 and started[0]["Channel"].startswith("PJSIP/trunk-")
    route = await events.user_event("ContactdRoute", Session=started[0]["Session"])
    assert route.get("Route") == "queue"
    await asyncio.wait_for(recorded.get(), 20)
    async with db.session() as session:
        (row,) = (await session.scalars(select(Interaction))).all()
    assert (row.contact_id, row.outcome) == (ivr, "transferred")  # on Mina's timeline
