"""Builds the IVR from settings for the composition root: prompts, speech, service, server.

Kept here so `daemon.py` wires the whole IVR in a few lines; every part is entered into the
daemon's exit stack, so teardown runs in reverse (server first, then service, model, TTS).
"""

from __future__ import annotations

import functools
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from contactd.ami.client import AmiClient
from contactd.config import Settings
from contactd.crm.routing import Router
from contactd.db.base import utcnow
from contactd.health import HealthRegistry
from contactd.ivr.asr import ModelLoadError, SpeechModel
from contactd.ivr.audiosocket import AudioSocketServer
from contactd.ivr.campaigns import CampaignFlows
from contactd.ivr.confirm import Outbox
from contactd.ivr.flows import Flow, load_flow, shipped_flow
from contactd.ivr.health import SpeechHealth, audiosocket_probe
from contactd.ivr.service import IvrService
from contactd.ivr.tts import Tts
from contactd.ivr.turn import TurnSettings

log = logging.getLogger(__name__)


@functools.cache
def configured_flow(name: str) -> Flow:
    """A flow by shipped name or path, read once per process (campaign calls ask per call)."""
    if name.endswith(".toml") or "/" in name:
        return load_flow(Path(name))
    return shipped_flow(name)


async def start_ivr(
    stack: AsyncExitStack,
    settings: Settings,
    router: Router,
    ami: AmiClient | None,
    *,
    health: HealthRegistry | None = None,
    outbox: Outbox | None = None,
) -> tuple[IvrService, AudioSocketServer]:
    speech_cfg, sock = settings.speech, settings.audiosocket
    flow = configured_flow(speech_cfg.flow)
    cache = speech_cfg.prompt_cache_dir or settings.general.data_dir / "prompts"
    tts = await stack.enter_async_context(
        Tts(cache, default_voice=speech_cfg.tts_voice, language=speech_cfg.tts_language)
    )
    speech = None
    failure = ""
    if speech_cfg.vosk_model_path is not None:
        try:
            speech = await stack.enter_async_context(
                SpeechModel(
                    speech_cfg.vosk_model_path,
                    workers=speech_cfg.asr_workers,
                    transcribe_workers=speech_cfg.transcribe_workers,
                )
            )
        except ModelLoadError as exc:  # a wrong path still stops the start (ConfigError)
            failure = str(exc)
            log.error("speech model failed to load: keys only", extra={"error": failure})
    service = IvrService(
        flow,
        router,
        tts,
        speech=speech,
        channels=ami,
        turn=TurnSettings(
            silence_s=speech_cfg.silence_ms / 1000,
            no_input_s=speech_cfg.no_input_s,
            speech_rms=speech_cfg.speech_rms,
        ),
        min_confidence=speech_cfg.min_confidence,
        inbound=settings.inbound,
        # Automated campaign calls: their survey flow, or their message in the default voice.
        outbox=outbox,  # flows' SMS / e-mail confirmations
        timezone=settings.general.timezone,
        campaigns=CampaignFlows(
            router.db,
            configured_flow,
            language=speech_cfg.tts_language,
            voice=speech_cfg.tts_voice,
        ),
    )
    if ami is not None:
        ami.events.on("UserEvent", service.on_user_event)
    await stack.enter_async_context(service)
    server = await stack.enter_async_context(
        AudioSocketServer(
            sock.host,
            sock.port,
            service.handle,
            max_frame_bytes=sock.max_frame_bytes,
            read_timeout_s=sock.read_timeout_s,
            write_timeout_s=sock.write_timeout_s,
            queue_frames=sock.queue_frames,
        )
    )
    if health is not None:
        since = utcnow()
        health.register("audiosocket", lambda: audiosocket_probe(server, since))
        health.register("asr", SpeechHealth(speech, failure=failure, since=since).probe)
    return service, server
