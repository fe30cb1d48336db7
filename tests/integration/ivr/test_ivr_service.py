"""The intake flow end to end over a loopback AudioSocket, into a real (SQLite) CRM database.

The client plays Asterisk (frames in, keys as DTMF frames); AMI Setvar is recorded by a small
stand-in because these tests run without the PBX.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from contactd.config import InboundQueueSettings, InboundSettings
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction, Task
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.ivr.audiosocket import FRAME_BYTES, AudioSocketServer, Kind, encode
from contactd.ivr.flows import load_flow, shipped_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings

Ivr = tuple[IvrService, AudioSocketServer, "Channels"]

LOUD = (b"\x00\x30" + b"\x00\xd0") * (FRAME_BYTES // 4)  # a square wave well above speech_rms
QUIET = b"\x00" * FRAME_BYTES


class Channels:
    def __init__(self) -> None:
        self.vars: dict[str, dict[str, str]] = {}

    async def setvar(self, channel: str | None, name: str, value: str) -> None:
        self.vars.setdefault(channel or "", {})[name] = value


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompts")  # shared: each prompt is made once per module


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def ivr(db: Database, prompt_dir: Path, bus: EventBus) -> AsyncIterator[Ivr]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    await contacts.create_contact(ContactInput(first_name="Mina", phones=["+4930123456"]))
    router = Router(db, contacts, TaskService(db), bus=bus)
    channels = Channels()
    async with Tts(prompt_dir) as tts:
        service = IvrService(
            shipped_flow("intake"),
            router,
            tts,
            channels=channels,
            turn=TurnSettings(no_input_s=1.0, silence_s=0.2),
        )
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            yield service, server, channels


async def caller(
    server: AudioSocketServer,
    service: IvrService,
    script: list[bytes],
    *,
    number: str = "+4930123456",
) -> tuple[uuid.UUID, bytes]:
    """Announce the caller like the dialplan's UserEvent, then send `script` as frames."""
    session = uuid.uuid4()
    service.on_user_event(
        {
            "UserEvent": "ContactdIvr",
            "Session": str(session),
            "Channel": "PJSIP/trunk-1",
            "CallerNum": number,
        }
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode(Kind.UUID, session.bytes))
    for frame in script:
        writer.write(frame)
    await writer.drain()
    heard = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return session, heard


async def rows(db: Database) -> tuple[list[Interaction], list[Task]]:
    async with db.session() as session:
        interactions = list((await session.scalars(select(Interaction))).all())
        tasks = list((await session.scalars(select(Task))).all())
    return interactions, tasks


async def test_a_transfer_to_a_contactd_inbound_queue_goes_to_contactd_inqueue(
    ivr: Ivr,
) -> None:
    service, server, channels = ivr
    service.inbound = InboundSettings(queues={"support": InboundQueueSettings()})
    await caller(server, service, [encode(Kind.DTMF, b"1")])
    assert channels.vars["PJSIP/trunk-1"] == {
        "CONTACTD_QUEUE": "support",
        "CONTACTD_ROUTE": "inqueue",  # contactd picks the agent (contactd/dialer/inbound.py)
    }


async def test_key_1_transfers_to_the_support_queue(ivr: Ivr, db: Database) -> None:
    service, server, channels = ivr
    _, heard = await caller(server, service, [encode(Kind.DTMF, b"1")])
    assert channels.vars["PJSIP/trunk-1"] == {
        "CONTACTD_QUEUE": "support",
        "CONTACTD_ROUTE": "queue",
    }
    assert heard.count(bytes([Kind.AUDIO, 0x01, 0x40])) > 50  # greeting and menu were played
    (row,), _ = await rows(db)
    assert row.outcome == "transferred"
    assert row.contact_id is not None and row.remote_address == "+4930123456"
    assert row.ended_at is not None


async def test_a_callback_request_records_answers_and_makes_a_task(ivr: Ivr, db: Database) -> None:
    service, server, channels = ivr
    speech = [encode(Kind.AUDIO, LOUD)] * 25 + [encode(Kind.AUDIO, QUIET)] * 15
    _, heard = await caller(
        server, service, [encode(Kind.DTMF, b"2"), *speech, encode(Kind.DTMF, b"1")]
    )
    assert heard.endswith(encode(Kind.HANGUP))
    assert channels.vars["PJSIP/trunk-1"] == {"CONTACTD_ROUTE": "hangup"}
    (row,), tasks = await rows(db)
    assert row.outcome == "callback_requested"
    assert row.data["answers"] == {"reason": "(recording)", "wants_callback": True}
    assert [t.interaction_id for t in tasks] == [row.id]


async def test_a_hang_up_mid_prompt_leaves_a_complete_record(
    ivr: Ivr, db: Database, bus: EventBus
) -> None:
    _, server, _ = ivr
    recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    bus.subscribe(InteractionRecorded, recorded.put_nowait)
    session = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode(Kind.UUID, session.bytes))
    await reader.readexactly(3 + FRAME_BYTES)  # the greeting started
    writer.close()
    await asyncio.wait_for(recorded.get(), 10)  # the record is closed after the socket is
    (row,), tasks = await rows(db)
    assert row.outcome == "abandoned"
    assert row.ended_at is not None
    assert tasks  # a missed call is followed up


@pytest.fixture
async def multilingual(db: Database, prompt_dir: Path) -> AsyncIterator[Ivr]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    await contacts.create_contact(
        ContactInput(first_name="Mina", phones=["+4930123456"], language="ko")
    )
    channels = Channels()
    async with Tts(prompt_dir) as tts:
        service = IvrService(
            shipped_flow("intake_languages"),
            Router(db, contacts, TaskService(db)),
            tts,
            channels=channels,
            turn=TurnSettings(no_input_s=1.0, silence_s=0.2),
        )
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            yield service, server, channels


async def test_a_new_caller_chooses_a_language_and_hears_the_rest_in_it(
    multilingual: Ivr, db: Database
) -> None:
    service, server, channels = multilingual
    session_id, _ = await caller(
        server, service, [encode(Kind.DTMF, b"2"), encode(Kind.DTMF, b"1")], number="+4930999999"
    )
    said = service.finished[session_id].said
    # The menu speaks every language; after "2" everything is Korean.
    assert said[:2] == ["For English, press 1 or say English.", "한국어는 2번을 누르세요."]
    assert said[2:] == [
        "전화해 주셔서 감사합니다.",
        "상담원과 통화하시려면 1번을 누르거나 상담원이라고 말씀하세요. 전화 예약은 2번을 누르세요.",
        "상담원을 연결해 드리겠습니다.",
    ]
    (row,), _ = await rows(db)
    assert (row.data["language"], row.outcome) == ("ko", "transferred")
    assert channels.vars["PJSIP/trunk-1"]["CONTACTD_ROUTE"] == "queue"


async def test_a_known_callers_language_skips_the_menu(multilingual: Ivr, db: Database) -> None:
    service, server, _ = multilingual
    session_id, _ = await caller(server, service, [encode(Kind.DTMF, b"1")])
    said = service.finished[session_id].said
    assert said[0] == "Mina님, 안녕하세요."  # Korean at once: the contact's language
    (row,), _ = await rows(db)
    assert row.outcome == "transferred"


async def test_a_prompt_missing_in_the_chosen_language_falls_back_to_the_default(
    db: Database, prompt_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        '[flow]\nname = "two"\nlanguages = ["en", "ko"]\nstart = "lang"\n'
        '[steps.lang]\nsay = { en = "Press 1 or 2.", ko = "2번." }\n'
        'languages = { "1" = "en", "2" = "ko" }\nnext = "bye"\n'
        '[steps.bye]\nsay = { en = "Goodbye." }\naction = "hangup"\n',
        encoding="utf-8",
    )
    contacts = ContactService(db, default_region="DE")
    async with Tts(prompt_dir) as tts:
        service = IvrService(load_flow(path), Router(db, contacts, TaskService(db)), tts)
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            session_id, _ = await caller(
                server, service, [encode(Kind.DTMF, b"2")], number="+4930999999"
            )
    session = service.finished[session_id]
    assert (session.language, session.said[-1]) == ("ko", "Goodbye.")


async def test_fifty_calls_at_once_each_leave_their_record(ivr: Ivr, db: Database) -> None:
    service, server, _ = ivr
    results = await asyncio.gather(
        *(
            caller(server, service, [encode(Kind.DTMF, b"1")], number=f"+49301234{n:03d}")
            for n in range(50)
        )
    )
    interactions, _ = await rows(db)
    assert len(interactions) == 50
    assert {row.outcome for row in interactions} == {"transferred"}
    assert {row.data["session"] for row in interactions} == {str(s) for s, _ in results}
    assert len(service.finished) == 50
