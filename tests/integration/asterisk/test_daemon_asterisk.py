"""The daemon as deployed: `run_daemon` with AMI pointed at the real Asterisk sandbox reports
the link in /healthz, follows an Asterisk restart, and stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from contactd.config import Settings, load_settings
from contactd.daemon import Components, run_daemon
from tests.peers.asterisk import AsteriskSandbox
from tests.peers.ports import free_port

pytestmark = pytest.mark.asterisk


def _settings(tmp_path: Path, asterisk: AsteriskSandbox) -> Settings:
    return load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_WEB__PORT": str(free_port()),
        "CONTACTD_AUDIOSOCKET__PORT": str(free_port()),
        "CONTACTD_AMI__PORT": str(asterisk.ami_port),
        "CONTACTD_AMI__USERNAME": asterisk.ami_username,
        "CONTACTD_AMI__SECRET": asterisk.ami_secret,
        "CONTACTD_AMI__RECONNECT_MIN_S": "0.2",
        "CONTACTD_AMI__RECONNECT_MAX_S": "1",
    })


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Components]:
    stop = asyncio.Event()
    ready: asyncio.Future[Components] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(settings, stop=stop, on_ready=ready.set_result))
    try:
        yield await asyncio.wait_for(asyncio.shield(ready), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _health(url: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=5) as resp:
                return {**json.load(resp), "http": resp.status}
        except urllib.error.HTTPError as exc:  # 503 still carries the body
            return {**json.load(exc), "http": exc.code}

    return await asyncio.to_thread(fetch)


async def _until(url: str, check: Callable[[dict[str, Any]], bool], within_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        body = await _health(url)
        if check(body):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"health never matched: {body}")
        await asyncio.sleep(0.2)


def _ami(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body["components"].get("ami", {}).get("status") == status


async def test_daemon_reports_ami_and_survives_an_asterisk_restart(
    tmp_path: Path, asterisk: AsteriskSandbox
) -> None:
    async with running(_settings(tmp_path, asterisk)) as components:
        assert components.web_url is not None and components.calls is not None
        await _until(components.web_url, _ami("ok"))
        assert (await _health(components.web_url))["http"] == 200
        await asterisk.astop()
        # a link that dropped means what one that never came up means: down, 503
        await _until(components.web_url, lambda b: _ami("ok")(b) is False)
        body = await _health(components.web_url)
        assert (body["http"], body["status"], body["components"]["ami"]["status"]) == (
            503,
            "down",
            "down",
        )
        await asterisk.astart()
        await _until(components.web_url, _ami("ok"))
        body = await _health(components.web_url)
        assert (body["http"], body["status"]) == (200, "ok")
