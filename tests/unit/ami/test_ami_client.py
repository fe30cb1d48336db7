"""The supervised client without Asterisk: refused connections back off with jitter, health
says down, actions refuse at once, and the secret never reaches the log."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from contactd.ami.client import AmiClient, LinkState
from contactd.ami.errors import AmiUnavailable
from contactd.config import AmiSettings

SECRET = "s3cr3t-never-logged"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_link_backs_off_and_reports_down(caplog: pytest.LogCaptureFixture) -> None:
    settings = AmiSettings(
        port=closed_port(), secret=SECRET, reconnect_min_s=0.05, reconnect_max_s=0.2
    )
    client = AmiClient(settings, rng=random.Random(7))
    with caplog.at_level(logging.DEBUG):
        async with client:
            with pytest.raises(AmiUnavailable):
                await client.wait_connected(0.8)
            health = client.health
            assert health.state is LinkState.DOWN and health.connects == 0
            assert "connect failed" in health.detail
            assert client.probe().status == "down"
            with pytest.raises(AmiUnavailable):
                await client.ping()
            with pytest.raises(AmiUnavailable):
                await client.originate("a1", "Local/1@x", context="c")
    retries = [r for r in caplog.records if r.getMessage() == "AMI connect failed; retrying"]
    waits = [float(r.__dict__["retry_in_s"]) for r in retries]
    assert len(waits) >= 4
    # equal jitter: each wait within [d/2, d] of a delay doubling from 0.05 up to 0.2
    delay = 0.05
    for wait in waits:
        assert delay / 2 - 1e-9 <= wait <= delay + 1e-9
        delay = min(delay * 2, 0.2)
    assert SECRET not in caplog.text
    assert client.health.state is LinkState.DOWN


async def test_close_before_any_connection_is_quick() -> None:
    client = AmiClient(AmiSettings(port=closed_port()))
    async with asyncio.timeout(2):
        async with client:
            await asyncio.sleep(0.05)
    assert client.health.detail == "closed"
