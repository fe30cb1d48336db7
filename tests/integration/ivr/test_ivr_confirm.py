"""A flow's actions: confirmations through the real outbox, and a keyed callback time.

The caller presses 1 for a callback; the callback step queues an SMS to the caller's number
and an e-mail to the contact, with the name and the answers filled in, once each. A caller
who keys a date and time gets the callback task due then.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from contactd.config import Settings
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction, Task
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel
from contactd.ivr.audiosocket import AudioSocketServer, Kind, encode
from contactd.ivr.flows import load_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from contactd.messaging.service import MessagingService

FLOW = """
[flow]
name = "confirming"
languages = ["en"]
start = "ask"
[steps.ask]
say = "Press 1 for a call back tomorrow."
choices = { "1" = { next = "done" } }
[steps.done]
say = "We will call you back."
action = "callback"
team = "support"
confirm_sms = "Hello {name}, we will call you back."
confirm_email = "Dear {name}. We will call you back."
"""


async def test_a_callback_action_queues_an_sms_and_an_email_confirmation(
    db: Database, tmp_path: Path
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    mina = await contacts.create_contact(
        ContactInput(first_name="Mina", phones=["+4930123456"], emails=["mina@example.org"])
    )
    path = tmp_path / "confirming.toml"
    path.write_text(FLOW, encoding="utf-8")
    settings = Settings.model_validate({"general": {"data_dir": str(tmp_path)}})
    session_id = uuid.uuid4()
    async with (
        MessagingService(settings, db) as messaging,
        Tts(tmp_path / "prompts") as tts,
    ):
        service = IvrService(
            load_flow(path),
            Router(db, contacts, TaskService(db)),
            tts,
            turn=TurnSettings(no_input_s=1.0),
            outbox=messaging,
        )
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            service.on_user_event(
                {"UserEvent": "ContactdIvr", "Session": str(session_id), "CallerNum": "+4930123456"}
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(encode(Kind.UUID, session_id.bytes) + encode(Kind.DTMF, b"1"))
            await asyncio.wait_for(reader.read(), 30)  # until the flow hangs up
            writer.close()
    async with db.session() as session:
        sent = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        (row,) = (await session.scalars(select(Interaction))).all()
    assert [(m.channel, m.to_address, m.body) for m in sent] == [
        (Channel.SMS, "+4930123456", "Hello Mina, we will call you back."),
        (Channel.EMAIL, "mina@example.org", "Dear Mina. We will call you back."),
    ]
    assert {m.contact_id for m in sent} == {mina} and {m.interaction_id for m in sent} == {row.id}
    assert row.data["answers"]["confirmations"] == [m.id for m in sent]
    assert row.outcome == "callback_requested"


async def test_a_keyed_callback_time_becomes_the_callback_tasks_due_time(
    db: Database, tmp_path: Path
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    path = tmp_path / "when.toml"
    path.write_text(
        '[flow]\nname = "when"\nlanguages = ["en"]\nstart = "when"\n'
        '[steps.when]\nsay = "Key the time, then hash."\ncollect = "time"\nfield = "at"\n'
        'next = "done"\n[steps.done]\nsay = "Thank you."\naction = "callback"\n',
        encoding="utf-8",
    )
    contacts = ContactService(db, default_region="DE")
    session_id = uuid.uuid4()
    async with Tts(tmp_path / "prompts") as tts:
        service = IvrService(
            load_flow(path),
            Router(db, contacts, TaskService(db)),
            tts,
            turn=TurnSettings(no_input_s=1.0),
            timezone="Asia/Seoul",
        )
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            service.on_user_event(
                {"UserEvent": "ContactdIvr", "Session": str(session_id), "CallerNum": "+4930555"}
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            keys = b"".join(encode(Kind.DTMF, bytes([k])) for k in b"12241000#")
            writer.write(encode(Kind.UUID, session_id.bytes) + keys)
            await asyncio.wait_for(reader.read(), 30)
            writer.close()
    async with db.session() as session:
        (row,) = (await session.scalars(select(Interaction))).all()
        (task,) = (await session.scalars(select(Task))).all()
    asked = datetime.fromisoformat(row.data["answers"]["at"])
    # 24 December 10:00 in Seoul is 01:00 UTC.
    assert (asked.month, asked.day, asked.astimezone(UTC).hour) == (12, 24, 1)
    assert task.due_at is not None
    due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=UTC)
    assert due == asked
