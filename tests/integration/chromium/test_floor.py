"""Issue 19's walk in one real browser against the daemon on the Asterisk sandbox: a
supervisor creates a campaign from a saved segment, starts it, watches the floor move (an
agent, a call ringing, talking, then gone) without a reload, pauses the campaign from the
floor, opens the reports and sees the call just made in the table and the chart, exports
XLSX (read back with openpyxl), then switches to Chichewa and the dark theme and the floor
and the reports follow. Screenshots of every page on the way, at desktop and phone sizes
(and in Chichewa and dark), are saved for people to look at."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from babel.dates import format_date
from openpyxl import load_workbook
from playwright.async_api import Browser, Page, expect
from sqlalchemy import func, select

from contactd.auth.service import UserService
from contactd.config import Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models import Interaction
from contactd.db.models.dialer import Campaign
from contactd.enums import CampaignStatus, Role
from contactd.web.themes import parse
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.peers.asterisk import AsteriskSandbox, agent, human, world_channel, world_e164
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asterisk, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts" / "panel"
# People who answer at once and hang up 8 s later (long enough to see them talk).
PEOPLE = [world_e164(human(8), i) for i in range(3)]
DARK = parse("dark", (ROOT / "web/themes/dark.css").read_text())


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _settings(tmp_path: Path, asterisk: AsteriskSandbox) -> Settings:
    return load_settings(
        None,
        {
            "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
            "CONTACTD_GENERAL__DEFAULT_REGION": "GB",
            "CONTACTD_WEB__PORT": str(free_port()),
            "CONTACTD_AUDIOSOCKET__ENABLED": "false",
            "CONTACTD_AMI__PORT": str(asterisk.ami_port),
            "CONTACTD_AMI__USERNAME": asterisk.ami_username,
            "CONTACTD_AMI__SECRET": asterisk.ami_secret,
            "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE": world_channel("{number}"),
            "CONTACTD_DIALER__WINDOW_START": "00:00:00",
            "CONTACTD_DIALER__WINDOW_END": "23:59:59",
            "CONTACTD_DIALER__PACING_TICK_S": "0.2",
            "CONTACTD_DIALER__AGENT_WRAP_S": "120",
        },
    )


@pytest_asyncio.fixture(loop_scope="session")
async def daemon(tmp_path: Path, asterisk: AsteriskSandbox) -> AsyncIterator[Components]:
    async with running(_settings(tmp_path, asterisk)) as components:
        await UserService(components.db).add(
            "sam", PASSWORD, Role.SUPERVISOR, display_name="Sam Supervisor"
        )
        assert components.contacts is not None
        for i, phone in enumerate(PEOPLE):
            await components.contacts.create_contact(
                ContactInput(
                    first_name=f"Person{i}", last_name="Spring", phones=[phone], tags=["spring"]
                )
            )
        await components.contacts.save_segment("spring people", {"tags": ["spring"]})
        yield components


async def _shots(page: Page, name: str) -> None:
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.screenshot(path=ARTIFACTS / f"{name}-desktop.png", full_page=True)
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.screenshot(path=ARTIFACTS / f"{name}-phone.png", full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    await page.set_viewport_size({"width": 1280, "height": 800})
    assert width <= 360, f"{name}: nothing wider than the phone's screen"


async def _recorded(daemon: Components, campaign_id: int, count: int) -> None:
    """Waits until `count` calls of the campaign are on the timeline (the call recorder
    writes each when it ends, just after the floor hears of it)."""
    async with asyncio.timeout(30):
        while True:
            async with daemon.db.session() as session:
                stored = await session.scalar(
                    select(func.count(Interaction.id)).where(Interaction.campaign_id == campaign_id)
                )
            if stored == count:
                return
            await asyncio.sleep(0.2)  # polls the database until the condition holds


async def test_a_supervisor_runs_a_campaign_from_segment_to_report_in_chichewa_and_dark(
    browser: Browser, daemon: Components, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = daemon.web_url
    assert url is not None and daemon.dialer is not None
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", accept_downloads=True
    )
    try:
        page = await context.new_page()
        await page.goto(f"{url}campaigns/new")
        await page.get_by_label("User name").fill("sam")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{url}campaigns/new")
        await page.get_by_label("Name", exact=True).fill("spring")
        await page.get_by_label("Mode").select_option("progressive")
        await page.get_by_label("A saved segment").check()
        await page.locator("select[name=segment]").select_option("spring people")
        for day in await page.locator("fieldset.weekdays input[type=checkbox]").all():
            await day.check()  # every day: today is one of them
        await page.get_by_label("Busy").fill("15")
        await _shots(page, "campaign-new")
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.get_by_role("heading", name="Import report")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("3 leads stored; 0 entries skipped.")
        await expect(page.locator("table.leads")).to_contain_text("campaign is not running")
        await _shots(page, "campaign-created")

        async with daemon.db.session() as session:
            campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == "spring"))
        assert campaign_id is not None
        await page.get_by_role("button", name="Start").click()
        await expect(page.get_by_role("status").first).to_contain_text("Campaign started.")

        # The floor, kept open from here on: everything below arrives without a reload.
        await page.goto(f"{url}floor")
        await page.evaluate("window.contactdMark = 'no reload'")
        campaigns = page.locator("#floor-campaigns")
        await expect(campaigns).to_contain_text("spring")
        await expect(campaigns).to_contain_text("running")
        # An agent signs in to the campaign (a simulated phone that answers): the progressive
        # dialer calls a lead for them, and the floor shows it ring, talk, then end.
        daemon.dialer.agents.login("alex", world_channel(agent(0)), campaign_id, time.time())
        daemon.dialer.wake()
        agents = page.locator("#floor-agents")
        await expect(agents).to_contain_text("alex")
        calls = page.locator("#floor-calls")
        await expect(calls).to_contain_text("+49305", timeout=30_000)
        await expect(agents).to_contain_text("On a call", timeout=30_000)
        await expect(calls).to_contain_text("On a call")
        await _shots(page, "floor")
        # Paused from the floor (a form that comes back to it), while the call goes on.
        await campaigns.get_by_role("button", name="Pause spring").click()
        await expect(page.get_by_role("status").first).to_contain_text("Campaign spring paused.")
        await expect(campaigns).to_contain_text("Paused")
        await page.evaluate("window.contactdMark = 'no reload'")
        # The callee hangs up: the call leaves the floor and the agent goes to wrap-up.
        await expect(calls).not_to_contain_text("+49305", timeout=30_000)
        await expect(agents).to_contain_text("Wrap-up")
        assert await page.evaluate("window.contactdMark") == "no reload"
        await page.goto(f"{url}campaigns")
        await expect(page.locator("table.campaigns")).to_contain_text("paused")
        await _shots(page, "campaigns")

        # The reports: the call just made, by day and outcome, in the table and the chart.
        await _recorded(daemon, campaign_id, 1)
        today = datetime.now(UTC).date()
        await page.goto(f"{url}reports")
        await page.locator("select[name=report]").select_option("calls_by_day")
        await page.locator("select[name=campaign]").select_option(label="spring")
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_role("heading", level=2)).to_have_text("Calls by day and outcome")
        shown_day = format_date(today, format="medium", locale="en")  # "Dec 5, 2026"
        row = page.locator("table.report tbody tr", has_text=shown_day)
        await expect(row.locator("td[data-label=total]")).to_have_text("1")
        chart = page.locator("figure.report-chart img")
        await expect(chart).to_have_js_property("complete", True)
        assert await chart.evaluate("img => img.naturalWidth") > 0
        drawn = await page.request.get(f"{url}{(await chart.get_attribute('src') or '')[1:]}")
        svg = await drawn.text()
        # Bars on axes (an empty period is a sentence with no axes): the call is drawn.
        assert drawn.ok and 'id="xtick_1"' in svg and 'id="patch_' in svg
        await _shots(page, "reports")
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="Export XLSX").click()
        download = await downloading.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        sheet = load_workbook(saved).active
        assert sheet is not None
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert rows[0][0] == "day" and rows[0][-1] == "total"
        midnight = datetime.combine(today, datetime.min.time())  # a date cell, not text
        assert [r[-1] for r in rows if r[0] == midnight] == [1], rows

        # Chichewa and the dark theme, chosen on the account page: the pages follow.
        await page.goto(f"{url}account")
        await page.locator("select[name=language]").select_option("ny")
        await page.locator("input[name=theme][value=dark]").check()
        await page.locator("form[action='/account/preferences'] button").click()
        await expect(page.locator("html")).to_have_attribute("lang", "ny")
        await expect(page.locator("body")).to_have_css("background-color", rgb(DARK.colours["bg"]))
        await page.goto(f"{url}reports?report=calls_by_day&campaign={campaign_id}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Malipoti")
        await expect(page.get_by_role("heading", level=2)).to_have_text(
            "Mafoni pa tsiku ndi zotsatira"
        )
        await expect(page.locator("table.report thead")).to_contain_text("tsiku")  # day
        await expect(page.get_by_role("link", name="Tulutsani XLSX")).to_be_visible()
        await expect(page.locator("body")).to_have_css("background-color", rgb(DARK.colours["bg"]))
        # The chart is drawn in the theme's colours (not a white box on a dark page).
        dark_chart = page.locator("figure.report-chart img")
        await expect(dark_chart).to_have_js_property("complete", True)
        drawn = await page.request.get(f"{url}{(await dark_chart.get_attribute('src') or '')[1:]}")
        assert DARK.colours["surface"] in await drawn.text()
        await _shots(page, "reports-ny-dark")
        await page.goto(f"{url}floor")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Zochitika pompano")
        await expect(page.locator("#floor-campaigns")).to_contain_text("Wayima kaye")
        await _shots(page, "floor-ny-dark")
        await page.goto(f"{url}campaigns/{campaign_id}")
        await _shots(page, "campaign-ny-dark")
    finally:
        await context.close()

    async with daemon.db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None and campaign.status is CampaignStatus.PAUSED
