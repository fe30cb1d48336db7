"""One turn of a conversation: play a prompt, take the caller's answer by key or by voice.

Caller speech or a key stops the prompt (barge-in). End of speech is contactd's own silence
timer counted in audio time (DESIGN §5: Vosk's endpointing is slow and sometimes never fires),
then the recognizer's final result. Keys work in every turn, speech only where a recognizer
is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
from array import array
from collections import deque
from dataclasses import dataclass

from contactd.ivr.asr import GrammarRecognizer, Heard
from contactd.ivr.audiosocket import (
    FRAME_BYTES,
    FRAME_S,
    AudioEvent,
    AudioSocketCall,
    DtmfEvent,
    HangupEvent,
)

PRE_ROLL_FRAMES = 10  # 200 ms kept before speech starts, so the first sound is not clipped
FEED_FRAMES = 5  # 100 ms per hop into the recognizer's thread


class Outcome(enum.Enum):
    DIGITS = "digits"
    SPEECH = "speech"
    RECORDED = "recorded"
    NO_INPUT = "no_input"
    HANGUP = "hangup"


@dataclass(frozen=True, slots=True)
class TurnSettings:
    silence_s: float = 0.4
    no_input_s: float = 5.0
    speech_rms: float = 500.0
    max_digits: int = 1
    terminator: str = "#"
    max_record_s: float = 30.0


@dataclass
class Answer:
    outcome: Outcome
    digits: str = ""
    heard: Heard | None = None
    audio: bytes = b""
    # Monotonic time the caller stopped speaking or pressed the last key (latency figures).
    ended_at: float = 0.0
    barged_in: bool = False


def frame_rms(pcm: bytes) -> float:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


async def ask(
    call: AudioSocketCall,
    prompt: bytes,
    settings: TurnSettings,
    *,
    recognizer: GrammarRecognizer | None = None,
    record: bool = False,
) -> Answer:
    """Play `prompt` and return the answer: keys, recognized speech, a recording, or none."""
    stop = asyncio.Event()
    played = asyncio.Event()

    async def play() -> None:
        try:
            await call.play(prompt, stop)
        finally:
            played.set()

    player = asyncio.create_task(play(), name=f"ivr:prompt {call.session_id}")
    try:
        if recognizer is not None:
            await recognizer.prepare()  # the prompt is playing meanwhile
        prompt_s = len(prompt) / (FRAME_BYTES / FRAME_S)
        return await _listen(call, settings, stop, played, prompt_s, recognizer, record)
    finally:
        if recognizer is not None:
            recognizer.release()  # warm for the next turn with the same phrases
        stop.set()
        player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await player


async def _listen(
    call: AudioSocketCall,
    settings: TurnSettings,
    stop: asyncio.Event,
    played: asyncio.Event,
    prompt_s: float,
    recognizer: GrammarRecognizer | None,
    record: bool,
) -> Answer:
    loop = asyncio.get_running_loop()
    listening_for_speech = recognizer is not None or record
    silence_frames_needed = max(1, round(settings.silence_s / FRAME_S))
    no_input_frames = max(1, round(settings.no_input_s / FRAME_S))
    max_record_frames = round(settings.max_record_s / FRAME_S)
    pre_roll: deque[bytes] = deque(maxlen=PRE_ROLL_FRAMES)
    pending: list[bytes] = []
    speech: list[bytes] = []
    digits = ""
    quiet_after_prompt = 0
    quiet_in_speech = 0
    speaking = False
    last_voice_at = 0.0
    while True:
        # Streams without audio (keys only, tests) still end: wall-clock no-input as a backstop.
        timeout = settings.no_input_s + (0.0 if played.is_set() else prompt_s)
        event = await call.next_event(timeout)
        if event is None:
            if digits:
                return Answer(Outcome.DIGITS, digits=digits, ended_at=loop.time(), barged_in=True)
            if speaking:
                break
            return Answer(Outcome.NO_INPUT)
        if isinstance(event, HangupEvent):
            return Answer(Outcome.HANGUP, digits=digits, audio=b"".join(speech))
        if isinstance(event, DtmfEvent):
            stop.set()
            if event.digit == settings.terminator and digits:
                return Answer(Outcome.DIGITS, digits=digits, ended_at=loop.time(), barged_in=True)
            digits += event.digit
            if len(digits) >= settings.max_digits:
                return Answer(Outcome.DIGITS, digits=digits, ended_at=loop.time(), barged_in=True)
            continue
        assert isinstance(event, AudioEvent)
        if not listening_for_speech:
            if played.is_set() and not digits:
                quiet_after_prompt += 1
                if quiet_after_prompt >= no_input_frames:
                    return Answer(Outcome.NO_INPUT)
            continue
        voiced = frame_rms(event.pcm) >= settings.speech_rms
        if not speaking:
            pre_roll.append(event.pcm)
            if not voiced:
                if played.is_set():
                    quiet_after_prompt += 1
                    if quiet_after_prompt >= no_input_frames and not digits:
                        return Answer(Outcome.NO_INPUT)
                continue
            speaking = True
            stop.set()  # barge-in
            pending.extend(pre_roll)
            speech.extend(pre_roll)
            pre_roll.clear()
        else:
            pending.append(event.pcm)
            speech.append(event.pcm)
        if voiced:
            quiet_in_speech = 0
            last_voice_at = loop.time()
        else:
            quiet_in_speech += 1
        if recognizer is not None and len(pending) >= FEED_FRAMES:
            await recognizer.accept(b"".join(pending))
            pending.clear()
        if quiet_in_speech >= silence_frames_needed or len(speech) >= max_record_frames:
            break
    ended_at = last_voice_at
    audio = b"".join(speech)
    if recognizer is None:
        return Answer(Outcome.RECORDED, audio=audio, ended_at=ended_at, barged_in=True)
    if pending:
        await recognizer.accept(b"".join(pending))
    heard = await recognizer.final()
    return Answer(Outcome.SPEECH, heard=heard, audio=audio, ended_at=ended_at, barged_in=True)
