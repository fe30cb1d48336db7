"""Campaign pages (/campaigns): create from a segment, a filter or a file (its report shown),
every error naming its field, settings, start/pause/stop through the dialer, the lead list
with the dialer's reasons in words, and the message preview as audio/wav."""

from __future__ import annotations

import io
import re
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from contactd.ami.client import AmiClient
from contactd.auth.service import UserService
from contactd.calls.service import CallService
from contactd.config import Settings
from contactd.crm.fts import create_fts
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.service import DialerService
from contactd.enums import CampaignStatus, Channel, Role
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import CSRF_RE, PASSWORD, sign_in

Client = TestClient[web.Request, web.Application]


@dataclass
class Panel:
    client: Client
    csrf: str
    db: Database


@pytest_asyncio.fixture
async def panel(db: Database, panel_settings: Settings) -> AsyncIterator[Panel]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)  # the shared fixture builds the tables, not the index
    users = UserService(db)
    await users.add("sam", PASSWORD, Role.SUPERVISOR)
    contacts = ContactService(db, default_region="GB")
    for first, phone, tags in (
        ("Grace", "+44 20 7946 0101", ["vip"]),
        ("Alan", "+44 20 7946 0102", ["vip"]),
        ("Ada", "+44 20 7946 0103", []),
    ):
        await contacts.create_contact(
            ContactInput(first_name=first, last_name="X", phones=[phone], tags=tags)
        )
    await contacts.save_segment("vips", {"tags": ["vip"]})
    bus = EventBus()
    calls = CallService(db, bus, AmiClient(panel_settings.ami), panel_settings.asterisk)
    dialer = DialerService(db, bus, panel_settings, calls)
    app = create_app(
        panel_settings,
        db,
        HealthRegistry(),
        PanelServices(bus=bus, dialer=dialer, calls=calls, contacts=contacts),
    )
    server = TestServer(app)
    client: Client = TestClient(server)
    await client.start_server()
    try:
        response = await sign_in(client, "sam")
        assert response is not None and response.status == 303
        found = CSRF_RE.search(await (await client.get("/account")).text())
        assert found
        yield Panel(client, found.group(1), db)
    finally:
        await client.close()


async def _create(panel: Panel, **fields: str | tuple[str, bytes]) -> tuple[int, str]:
    form = FormData()
    form.add_field("csrf_token", panel.csrf)
    for name, value in fields.items():
        if isinstance(value, tuple):
            form.add_field(name, io.BytesIO(value[1]), filename=value[0], content_type="text/csv")
        else:
            form.add_field(name, value)
    response = await panel.client.post("/campaigns/new", data=form)
    return response.status, await response.text()


async def test_a_campaign_is_made_from_a_segment_with_its_settings_and_runs(
    panel: Panel,
) -> None:
    status, page = await _create(
        panel,
        name="spring",
        mode="progressive",
        source="segment",
        segment="vips",
        caller_id="+442079460999",
        team="north",
        window_start="09:00",
        window_end="18:30",
        day_mon="on",
        day_tue="on",
        day_wed="on",
        day_thu="on",
        day_fri="on",
        retry_busy_min="15",
        machine_action="fallback",
        fallback_channel="sms",
        dispositions="sale, not_interested",
    )
    assert status == 200, page
    assert "2 leads stored; 0 entries skipped." in page
    async with panel.db.session() as session:
        campaign = await session.get(Campaign, 1)
        assert campaign is not None
        assert (campaign.name, campaign.status, campaign.caller_id) == (
            "spring",
            CampaignStatus.DRAFT,
            "+442079460999",
        )
        assert (f"{campaign.window_start:%H:%M}", f"{campaign.window_end:%H:%M}") == (
            "09:00",
            "18:30",
        )
        assert campaign.retry_rules == {"busy": 900, "machine_action": "fallback"}
        assert campaign.calling_days == "mon,tue,wed,thu,fri"
        assert campaign.team == "north"
        assert campaign.fallback_channel is Channel.SMS
        assert campaign.dispositions == ["sale", "not_interested"]
    listing = await (await panel.client.get("/campaigns")).text()
    assert re.search(r'href="/campaigns/1">spring</a>', listing)
    # A draft's leads are not dialled, and the page says why in words.
    leads = await (await panel.client.get("/campaigns/1")).text()
    assert leads.count("+442079460101") == 1 and "campaign is not running" in leads.lower()
    ticked = set(re.findall(r'name="day_(\w+)" checked', leads))
    assert ticked == {"mon", "tue", "wed", "thu", "fri"}

    page = await (
        await panel.client.post("/campaigns/1/start", data={"csrf_token": panel.csrf})
    ).text()
    assert "Campaign started." in page
    page = await (
        await panel.client.post("/campaigns/1/pause", data={"csrf_token": panel.csrf})
    ).text()
    assert "Campaign paused." in page
    page = await (
        await panel.client.post("/campaigns/1/pause", data={"csrf_token": panel.csrf})
    ).text()
    assert "cannot pause a campaign that is paused" in page
    page = await (
        await panel.client.post("/campaigns/1/stop", data={"csrf_token": panel.csrf})
    ).text()
    assert "Campaign stopped." in page
    async with panel.db.session() as session:
        campaign = await session.get(Campaign, 1)
        assert campaign is not None and campaign.status is CampaignStatus.STOPPED

    refused = await panel.client.post(
        "/campaigns/1/settings",
        data={
            "csrf_token": panel.csrf,
            "caller_id": "+44\r\nAction: Hangup",
            "window_start": "09:00",
            "window_end": "18:30",
        },
    )
    assert refused.status == 400 and "caller_id" in await refused.text()
    saved = await (
        await panel.client.post(
            "/campaigns/1/settings",
            data={
                "csrf_token": panel.csrf,
                "caller_id": "+442079460998",
                "retry_no_answer_min": "90",
                "machine_action": "retry",
            },
        )
    ).text()
    assert "Settings saved." in saved
    async with panel.db.session() as session:
        campaign = await session.get(Campaign, 1)
        assert campaign is not None and campaign.caller_id == "+442079460998"
        assert campaign.retry_rules == {"no_answer": 5400, "machine_action": "retry"}
        assert campaign.window_start is None
        assert campaign.calling_days is None  # none ticked: every day


async def test_from_a_filter_and_from_a_file_with_the_import_report(panel: Panel) -> None:
    status, page = await _create(
        panel, name="by-filter", mode="predictive", source="filter", filter_query="Ada"
    )
    assert status == 200 and "1 leads stored" in page
    status, page = await _create(
        panel,
        name="by-file",
        mode="preview",
        source="file",
        file=("numbers.csv", b"phone\n+44 20 7946 0104\nnot a number\n+44 20 7946 0104\n"),
    )
    assert status == 200, page
    assert "1 leads stored; 1 entries skipped." in page
    assert "numbers.csv line 3" in page


async def test_errors_name_the_field_and_store_nothing(panel: Panel) -> None:
    cases = {
        "mode": dict(name="x", mode="robocall", source="segment", segment="vips"),
        "message_text": dict(name="x", mode="message", source="segment", segment="vips"),
        "window_end": dict(
            name="x",
            mode="progressive",
            source="segment",
            segment="vips",
            window_start="18:00",
            window_end="09:00",
        ),
        "retry_busy_min": dict(
            name="x", mode="progressive", source="segment", segment="vips", retry_busy_min="soon"
        ),
        "segment": dict(name="x", mode="progressive", source="segment"),
        "caller_id": dict(
            name="x", mode="progressive", source="segment", segment="vips", caller_id="1\n2"
        ),
    }
    for field, form in cases.items():
        status, page = await _create(panel, **form)
        assert status == 400, field
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page), field
        assert 'value="x"' in page  # what was typed is kept
    async with panel.db.session() as session:
        assert await session.get(Campaign, 1) is None
        assert (await session.get(Lead, 1)) is None


async def test_the_message_is_previewed_as_speech(panel: Panel) -> None:
    status, page = await _create(
        panel,
        name="remind",
        mode="message",
        source="segment",
        segment="vips",
        message_text="Hello {first_name}, a reminder.",
    )
    assert status == 200 and "Listen" in page
    answer = await panel.client.get(
        "/campaigns/preview.wav", params={"message_text": "Hello {first_name}"}
    )
    assert answer.status == 200 and answer.content_type == "audio/wav"
    with wave.open(io.BytesIO(await answer.read())) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (8000, 1)
        assert wav.getnframes() > 8000 * 0.3  # some speech, not an empty file
    refused = await panel.client.get(
        "/campaigns/preview.wav", params={"message_text": "Hi {surname}"}
    )
    assert refused.status == 422
    assert (await refused.json())["field"] == "message_text"
