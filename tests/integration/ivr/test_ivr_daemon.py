"""The daemon answers AudioSocket calls by itself, from configuration alone."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select

from contactd.config import load_settings
from contactd.daemon import Components, run_daemon
from contactd.db.models import Interaction
from contactd.ivr.audiosocket import Kind, encode
from tests.peers.ports import free_port


async def test_the_daemon_runs_the_intake_flow_on_its_audiosocket_port(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        None,
        {
            "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
            "CONTACTD_AMI__ENABLED": "false",
            "CONTACTD_WEB__ENABLED": "false",
            "CONTACTD_AUDIOSOCKET__PORT": str(port),
        },
    )
    stop = asyncio.Event()
    outcomes: list[str] = []

    async def call(components: Components) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode(Kind.UUID, uuid.uuid4().bytes) + encode(Kind.DTMF, b"1"))
        await writer.drain()
        prompt = await asyncio.wait_for(reader.read(), 60)
        writer.close()
        assert prompt.startswith(bytes([Kind.AUDIO, 0x01, 0x40]))
        assert components.ivr is not None and components.ivr.prompts_ready is not None
        await asyncio.wait_for(components.ivr.prompts_ready, 60)  # every prompt got made
        async with components.db.session() as session:
            outcomes.extend((await session.scalars(select(Interaction.outcome))).all())
        stop.set()

    daemon = asyncio.create_task(run_daemon(settings, stop=stop, on_ready=lambda c: call(c)))
    await asyncio.wait_for(daemon, 120)
    assert outcomes == ["transferred"]
