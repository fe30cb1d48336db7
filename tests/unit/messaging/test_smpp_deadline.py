"""A submit_sm the SMSC never answers fails on its deadline, as maybe sent (one sweep checks
every request's deadline; there is no timer per request).

The SMSC peer cannot take a submit and stay silent while the link lives, so this test binds
to a stand-in that answers the bind and nothing else: the fault a fake is allowed to inject.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from contactd.config import SmppSettings
from contactd.messaging.errors import SmppUnavailableError
from contactd.messaging.smpp import SmppClient

BIND_TRANSCEIVER = 0x00000009
RESP = 0x80000000


async def _silent_smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer bind_transceiver, then read and ignore everything (submit_sm included)."""
    try:
        while True:
            head = await reader.readexactly(16)
            length, command, _, sequence = struct.unpack(">IIII", head)
            await reader.readexactly(length - 16)
            if command == BIND_TRANSCEIVER:
                body = b"silent\x00"
                writer.write(struct.pack(">IIII", 16 + len(body), command | RESP, 0, sequence))
                writer.write(body)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_silent_smsc, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def test_an_unanswered_submit_fails_on_its_deadline_as_maybe_sent(silent_port: int) -> None:
    settings = SmppSettings(
        enabled=True,
        host="127.0.0.1",
        port=silent_port,
        system_id="contactd",
        password="secret",
        source_addr="CONTACTD",
    )
    async with SmppClient(settings, response_timeout_s=0.3) as client:
        assert client.connected
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SmppUnavailableError, match="no submit_sm_resp") as failure:
            async with asyncio.timeout(5):  # the test's own guard, far above the deadline
                await client.submit("+491520000001", b"hello", data_coding=0)
        waited = loop.time() - started
    assert failure.value.maybe_sent
    assert waited >= 0.3  # never before its deadline
