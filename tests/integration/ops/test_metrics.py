"""GET /metrics on a running daemon: the token is required when set, and the figures follow
what happened (calls dialled and ended on the bus, the database's queries, the loop's lag,
each component's link)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from contactd.calls.events import CallDialing, CallEnded
from contactd.config import load_settings
from contactd.daemon import Components, run_daemon
from contactd.enums import CallOutcome
from tests.peers.ports import free_port


def sample(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name}{labels} not in:\n{text}"
    return float(found.group(1))


async def test_metrics_follow_the_daemon_and_need_the_token(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_WEB__PORT": str(port),
        "CONTACTD_METRICS__ENABLED": "true",
        "CONTACTD_METRICS__TOKEN": "scrape-me",
    })
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{port}/metrics"
    scraped: dict[str, str] = {}

    async def ready(components: Components) -> None:
        try:
            bus = components.bus
            for n in range(3):
                await bus.publish(CallDialing(attempt_id=f"a{n}", phone_e164="+4930123456"))
            await bus.publish(CallEnded(attempt_id="a0", outcome=CallOutcome.HUMAN, cause=16))
            await bus.publish(CallEnded(attempt_id="a1", outcome=CallOutcome.BUSY, cause=17))
            await asyncio.sleep(0.6)  # two loop-lag ticks
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as refused:
                    scraped["refused"] = str(refused.status)
                async with http.get(url, headers={"Authorization": "Bearer wrong"}) as wrong:
                    scraped["wrong"] = str(wrong.status)
                async with http.get(url, headers={"Authorization": "Bearer scrape-me"}) as ok:
                    scraped["status"] = str(ok.status)
                    scraped["type"] = ok.headers["Content-Type"]
                    scraped["body"] = await ok.text()
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 60)
    assert scraped["refused"] == "401" and scraped["wrong"] == "401"
    assert scraped["status"] == "200" and scraped["type"].startswith("text/plain")
    body = scraped["body"]
    assert sample(body, "contactd_calls_dialed_total") == 3
    assert sample(body, "contactd_calls_in_progress") == 1
    assert sample(body, "contactd_call_attempts_total", '{outcome="human"}') == 1
    assert sample(body, "contactd_call_attempts_total", '{outcome="busy"}') == 1
    assert sample(body, "contactd_component_up", '{component="database"}') == 1
    assert sample(body, "contactd_outbox_depth", '{channel="sms"}') == 0
    assert sample(body, "contactd_db_query_seconds_count") > 0
    assert sample(body, "contactd_event_loop_lag_seconds_count") >= 2


async def test_metrics_are_not_served_unless_enabled(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path), "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false", "CONTACTD_WEB__PORT": str(port)})
    stop = asyncio.Event()
    seen: list[int] = []

    async def ready(components: Components) -> None:
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{port}/metrics", allow_redirects=False) as resp:
                seen.append(resp.status)
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 60)
    assert seen[0] in (302, 401, 404)  # an unknown page: the panel's sign-in or not found
