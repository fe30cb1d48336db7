"""Prompts: band-limited resampling, recorded WAVs, pyttsx3/espeak-ng synthesis and its cache."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest

from contactd.errors import ConfigError
from contactd.ivr.tts import SLIN_RATE, PromptError, Tts, read_wav, resample


def tone(freq: float, rate: int, seconds: float) -> bytes:
    n = int(rate * seconds)
    return array(
        "h", (int(10000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    ).tobytes()


def rms(pcm: bytes) -> float:
    samples = array("h")
    samples.frombytes(pcm)
    body = samples[100:-100]  # skip the filter's edges
    return math.sqrt(sum(x * x for x in body) / len(body))


def write_wav(path: Path, pcm: bytes, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


@pytest.mark.parametrize("rate", [22050, 16000, 44100])
def test_resampling_keeps_speech_band_and_length(rate: int) -> None:
    out = resample(tone(1000, rate, 1.0), rate)
    assert len(out) // 2 == SLIN_RATE
    assert rms(out) == pytest.approx(10000 / math.sqrt(2), rel=0.02)


def test_resampling_removes_what_8khz_cannot_carry() -> None:
    # 6 kHz would alias to 2 kHz at 8 kHz if not filtered out first.
    assert rms(resample(tone(6000, 22050, 1.0), 22050)) < 100


def test_a_recorded_wav_replaces_a_prompt(tmp_path: Path) -> None:
    pcm = read_wav(write_wav(tmp_path / "hello.wav", tone(500, 16000, 0.5), 16000))
    assert len(pcm) == 2 * SLIN_RATE // 2


def test_a_stereo_recording_is_refused_by_name(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "stereo.wav", tone(500, 8000, 0.1) * 2, 8000, channels=2)
    with pytest.raises(PromptError, match=r"stereo\.wav.*16-bit mono"):
        read_wav(path)


def test_a_missing_recording_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"nope\.wav"):
        read_wav(tmp_path / "nope.wav")


async def test_korean_prompt_is_spoken_once_then_cached(tmp_path: Path) -> None:
    async with Tts(tmp_path / "cache", language="ko") as tts:
        first = await tts.speak("안녕하세요")
        again = await tts.speak("안녕하세요")
        assert tts.synthesized == 1
    assert first == again
    assert len(first) > SLIN_RATE  # more than half a second of speech
    assert rms(first) > 300  # not silence
    async with Tts(tmp_path / "cache", language="ko") as tts:
        assert await tts.speak("안녕하세요") == first
        assert tts.synthesized == 0  # the disk cache survived the restart
        other = await tts.speak("안녕하세요", voice="sw", language="ny")
        assert tts.synthesized == 1  # a different voice is a different prompt
    assert other != first


async def test_an_unknown_voice_is_a_config_error(tmp_path: Path) -> None:
    async with Tts(tmp_path) as tts:
        with pytest.raises(ConfigError, match="'ny'"):
            await tts.speak("Moni", language="ny")  # espeak-ng has no Chichewa: name a stand-in
