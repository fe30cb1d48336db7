"""The identification message's settings and the recording that replaces speech."""

from __future__ import annotations

import array
import asyncio
import math
import wave
from pathlib import Path

import pytest

from contactd.config import load_settings
from contactd.errors import ConfigError, StartupError
from contactd.ivr.identification import make_identification, spoken_number
from contactd.ivr.tts import read_wav


def test_the_call_back_number_is_read_digit_by_digit() -> None:
    assert spoken_number("+49 30 1234-567") == "plus 4 9, 3 0, 1 2 3 4, 5 6 7"


@pytest.mark.parametrize(("env", "wrong"), [
    ({"CONTACTD_IDENTIFICATION__COMPANY_NAME": "Acme"}, "callback_number together"),
    ({"CONTACTD_IDENTIFICATION__TEXT": "Call {phone}"}, "identification.text"),
    ({"CONTACTD_IDENTIFICATION__NAME": "../x"}, "identification.name"),
])
def test_bad_settings_name_the_key(env: dict[str, str], wrong: str) -> None:
    with pytest.raises(ConfigError, match=wrong):
        load_settings(None, env)


async def test_nothing_configured_makes_nothing(tmp_path: Path) -> None:
    settings = load_settings(None, {"CONTACTD_IDENTIFICATION__SOUNDS_DIR": str(tmp_path)})
    assert await make_identification(settings) is None
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_a_recorded_file_wins_over_speech(tmp_path: Path) -> None:
    recording = tmp_path / "ours.wav"
    tone = array.array("h", (int(8000 * math.sin(i / 5)) for i in range(16000)))
    with wave.open(str(recording), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone.tobytes())
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_IDENTIFICATION__COMPANY_NAME": "Acme",
        "CONTACTD_IDENTIFICATION__CALLBACK_NUMBER": "+49301234567",
        "CONTACTD_IDENTIFICATION__RECORDED_FILE": str(recording),
        "CONTACTD_IDENTIFICATION__SOUNDS_DIR": str(sounds),
    })
    made = await make_identification(settings)
    assert made == sounds / "contactd-identification.wav"
    assert read_wav(made) == read_wav(recording)  # the recording, at 8 kHz: no speech made
    assert not (tmp_path / "prompts").exists()


async def test_an_unwritable_sounds_folder_stops_start_naming_the_setting(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "ours.wav"
    with wave.open(str(recording), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    settings = load_settings(None, {
        "CONTACTD_IDENTIFICATION__RECORDED_FILE": str(recording),
        "CONTACTD_IDENTIFICATION__SOUNDS_DIR": str(tmp_path / "missing"),
    })
    with pytest.raises(StartupError, match=r"identification\.sounds_dir"):
        await make_identification(settings)
