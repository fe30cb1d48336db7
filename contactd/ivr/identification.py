"""The safe-harbor identification message, made at daemon start.

An answered outbound call that finds no agent in time is sent to `contactd-abandon`, which
plays `custom/contactd-identification` (CONTACTD_ABANDON_PROMPT). The law wants that message to
say who called and a number to call back, so rather than leave it for an operator to record,
the daemon speaks the configured text with the IVR's TTS engine into Asterisk's sounds folder
on every start (the text or number may have changed). A configured recording wins over speech.
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from pathlib import Path
from typing import Final

from contactd.config import IdentificationSettings, Settings
from contactd.errors import StartupError
from contactd.ivr.tts import SLIN_RATE, PromptError, Tts, read_wav

log = logging.getLogger(__name__)

# Asterisk runs as its own user: the message must be readable by it (it holds no customer data).
FILE_MODE: Final = 0o644
_SPOKEN: Final = {"+": "plus", "0": "0", "*": "star", "#": "hash"}


def spoken_number(number: str) -> str:
    """Digits one by one, so the engine does not read +4930123 as one large number."""
    return ", ".join(" ".join(_SPOKEN.get(c, c) for c in group)
                     for group in number.replace("-", " ").split() if group)


def wanted(settings: IdentificationSettings) -> bool:
    return settings.recorded_file is not None or bool(settings.company_name)


async def make_identification(settings: Settings) -> Path | None:
    """Write <sounds_dir>/<name>.wav; None when nothing is configured. StartupError names the
    setting when it cannot be made (a bad recording, espeak-ng failing, a folder not writable)."""
    config = settings.identification
    if not wanted(config):
        return None
    target = config.sounds_dir / f"{config.name}.wav"
    try:
        if config.recorded_file is not None:
            pcm = await asyncio.to_thread(read_wav, config.recorded_file)
            source = "recording"
        else:
            text = config.text.format(company=config.company_name,
                                      number=spoken_number(config.callback_number))
            cache = settings.speech.prompt_cache_dir or settings.general.data_dir / "prompts"
            async with Tts(cache, default_voice=config.voice, language=config.language) as tts:
                pcm = await tts.speak(text, voice=config.voice, language=config.language)
            source = "speech"
        await asyncio.to_thread(_write_wav, target, pcm)
    except PromptError as exc:
        raise StartupError(f"identification: {exc.message}") from None
    except OSError as exc:
        raise StartupError(
            f"identification.sounds_dir: cannot write {target}: {exc.strerror}") from None
    log.info("identification message made", extra={"path": str(target), "source": source})
    return target


def _write_wav(target: Path, pcm: bytes) -> None:
    # Write then rename: Asterisk never plays a half-written file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    with partial.open("wb") as raw, wave.open(raw, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SLIN_RATE)
        out.writeframes(pcm)
    partial.chmod(FILE_MODE)
    partial.replace(target)
