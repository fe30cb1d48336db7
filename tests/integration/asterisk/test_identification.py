"""The safe-harbor identification message: the daemon speaks it at start from the configured
company name and call-back number into Asterisk's sounds, and contactd-abandon plays it."""

from __future__ import annotations

import asyncio
import uuid
import wave
from pathlib import Path

import pytest
from panoramisk import Manager

from contactd.config import Settings, load_settings
from contactd.daemon import Components, run_daemon
from tests.peers.asterisk import ABANDON_CONTEXT, AmiEvents, AsteriskSandbox, world_channel
from tests.peers.ports import free_port

pytestmark = pytest.mark.asterisk


def _settings(tmp_path: Path, sounds: Path, name: str) -> Settings:
    return load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_WEB__ENABLED": "false",
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_WEB__PORT": str(free_port()),
        "CONTACTD_IDENTIFICATION__COMPANY_NAME": "Acme Insurance",
        "CONTACTD_IDENTIFICATION__CALLBACK_NUMBER": "+49 30 1234567",
        "CONTACTD_IDENTIFICATION__SOUNDS_DIR": str(sounds),
        "CONTACTD_IDENTIFICATION__NAME": name,
    })


async def _abandon(ami: Manager, name: str) -> str:
    """A call sent to contactd-abandon with this prompt; the PLAYBACKSTATUS it reports."""
    events = AmiEvents(ami, "UserEvent")
    attempt = str(uuid.uuid4())
    await ami.send_action({
        "Action": "Originate", "Channel": world_channel("20030"),
        "Context": ABANDON_CONTEXT, "Exten": "s", "Priority": "1", "Timeout": "10000",
        "Async": "true",
        "Variable": [f"CONTACTD_ATTEMPT={attempt}", f"CONTACTD_ABANDON_PROMPT=custom/{name}"],
    })
    event = await events.user_event("ContactdAbandon", timeout_s=30, Attempt=attempt)
    return str(event["Status"])


async def test_the_daemon_makes_the_message_at_start_and_asterisk_plays_it(
    asterisk: AsteriskSandbox, ami: Manager, tmp_path: Path
) -> None:
    name = f"contactd-identification-{uuid.uuid4().hex[:12]}"
    target = asterisk.sounds_dir / f"{name}.wav"
    assert await _abandon(ami, name) == "FAILED"  # nothing to play yet
    stop = asyncio.Event()
    made: list[bool] = []

    def ready(components: Components) -> None:
        made.append(target.exists())
        stop.set()

    try:
        await asyncio.wait_for(
            run_daemon(_settings(tmp_path, asterisk.sounds_dir, name), stop=stop,
                       on_ready=ready), 120)
        assert made == [True]
        with wave.open(str(target), "rb") as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
            assert wav.getnframes() > 8000 * 3  # several seconds of speech
        assert target.stat().st_mode & 0o777 == 0o644  # Asterisk's user can read it
        assert await _abandon(ami, name) == "SUCCESS"
    finally:
        target.unlink(missing_ok=True)
