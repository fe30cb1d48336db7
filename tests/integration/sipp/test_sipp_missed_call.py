"""A real SIP caller (SIPp over the trunk) who hangs up in the IVR, before any agent answers,
becomes a missed-call task on their contact, assigned by the task policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from panoramisk import Manager
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.models import Interaction, Task, User
from contactd.db.session import Database
from contactd.enums import Role, TaskPriority, TaskSource
from contactd.events import EventBus
from contactd.ivr.audiosocket import AudioSocketServer
from contactd.ivr.flows import shipped_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from tests.peers.asterisk import AsteriskSandbox, set_audiosocket
from tests.peers.sipp import run_sipp

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]
CALLER = "+4930123456"


async def _agent(db: Database, username: str) -> int:
    async with db.transaction() as session:
        user = User(username=username, password_hash="x", role=Role.AGENT, skills=[])
        session.add(user)
        await session.flush()
        return user.id


async def test_a_sipp_caller_hanging_up_in_the_ivr_becomes_a_missed_call_task(
    asterisk: AsteriskSandbox, ami: Manager, db: Database, tmp_path: Path
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    mina = await contacts.create_contact(ContactInput(first_name="Mina", last_name="Park",
                                                      phones=[CALLER]))
    busy = await _agent(db, "busy")
    free = await _agent(db, "free")
    bus = EventBus()
    tasks = TaskService(db, bus=bus)
    # The busy agent has work already: least-loaded assignment must pick the other one.
    await tasks.create(NewTask(title="earlier work", assignee_id=busy))
    recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    bus.subscribe(InteractionRecorded, recorded.put)
    client = AmiClient(asterisk.ami_settings())
    async with Tts(tmp_path / "prompts") as tts:
        service = IvrService(shipped_flow("intake"), Router(db, contacts, tasks, bus=bus), tts,
                             channels=client, turn=TurnSettings(no_input_s=5.0))
        client.events.on("UserEvent", service.on_user_event)
        async with (client, service,
                    AudioSocketServer("127.0.0.1", 0, service.handle) as server):
            await set_audiosocket(ami, "127.0.0.1", server.port)
            # Answered by the IVR, then the caller hangs up one second into the greeting.
            result = await run_sipp(asterisk, dnis="5550100", caller=CALLER, calls=1,
                                    hold_ms=1000, work_dir=tmp_path)
            assert result.successful == 1
            finished = await asyncio.wait_for(recorded.get(), 30)
    assert finished.outcome == "abandoned" and finished.contact_id == mina
    async with db.session() as session:
        row = await session.get(Interaction, finished.interaction_id)
        assert row is not None and row.remote_address == CALLER
        [task] = list(await session.scalars(select(Task).where(Task.interaction_id == row.id)))
    assert task.source is TaskSource.MISSED_CALL and task.priority is TaskPriority.HIGH
    assert task.title == "Missed call from Mina Park" and task.contact_id == mina
    assert task.assignee_id == free
