"""Campaigns and the live floor in a real browser against the daemon on the Asterisk sandbox:
a supervisor creates a campaign from a saved segment, starts it, watches the floor move (an
agent, a call ringing then talking) without a reload, and pauses the campaign from the floor.
Screenshots of the campaign pages and the floor at desktop and phone sizes are saved."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models.dialer import Campaign
from contactd.enums import CampaignStatus, Role
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.peers.asterisk import AsteriskSandbox, agent, human, world_channel, world_e164
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asterisk, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "panel"
# People who answer at once and hang up 20 s later.
PEOPLE = [world_e164(human(20), i) for i in range(3)]


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


async def test_a_supervisor_creates_starts_watches_and_pauses_a_campaign(
    browser: Browser, daemon: Components
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = daemon.web_url
    assert url is not None and daemon.dialer is not None
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
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

        await page.goto(f"{url}floor")
        await page.evaluate("window.contactdMark = 'no reload'")
        campaigns = page.locator("#floor-campaigns")
        await expect(campaigns).to_contain_text("spring")
        await expect(campaigns).to_contain_text("running")
        # An agent signs in to the campaign (a simulated phone that answers): the progressive
        # dialer calls a lead for them, and the floor shows it ring, then talk.
        daemon.dialer.agents.login("alex", world_channel(agent(0)), campaign_id, time.time())
        daemon.dialer.wake()
        agents = page.locator("#floor-agents")
        await expect(agents).to_contain_text("alex")
        calls = page.locator("#floor-calls")
        await expect(calls).to_contain_text("+4930500", timeout=30_000)
        await expect(agents).to_contain_text("On a call", timeout=30_000)
        await expect(calls).to_contain_text("On a call")
        assert await page.evaluate("window.contactdMark") == "no reload"
        await _shots(page, "floor")

        await campaigns.get_by_role("button", name="Pause spring").click()
        await expect(page.get_by_role("status").first).to_contain_text("Campaign spring paused.")
        await expect(campaigns).to_contain_text("Paused")
        await page.goto(f"{url}campaigns")
        await expect(page.locator("table.campaigns")).to_contain_text("paused")
        await _shots(page, "campaigns")
    finally:
        await context.close()

    async with daemon.db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None and campaign.status is CampaignStatus.PAUSED
