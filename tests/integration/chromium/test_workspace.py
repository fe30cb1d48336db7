"""The agent workspace in a real browser against the daemon on the Asterisk sandbox: an agent
joins a progressive campaign and says Ready, the dialer calls the lead (a simulated person
who answers and hangs up 8 s later), the contact's card pops without a reload, the agent
says "Busy" and the lead follows the campaign's busy retry rule. Screenshots at desktop and
phone sizes are saved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.calls.events import CallEnded
from contactd.config import Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.models.users import User
from contactd.enums import CampaignMode, CampaignStatus, LeadStatus, PartyKind, Role
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.peers.asterisk import AsteriskSandbox, agent, world_channel
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asterisk,
              pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "panel"
# A London number whose last five digits are the sandbox world's 20008: a person who
# answers at once and hangs up 8 s later (asterisk-config/test/extensions_local.conf).
PERSON = "+442079420008"
# Preview leads: people who answer and hang up 10 s later (20010), and one never dialled.
SKIPPED, PREVIEWED = "+442079420011", "+442079420010"
BUSY_RETRY_S = 900
SCRIPT = "Hello {{ first_name }}, this is Alex about your order at {{ company }}."


def _settings(tmp_path: Path, asterisk: AsteriskSandbox) -> Settings:
    return load_settings(None, {
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
    })


@pytest_asyncio.fixture(loop_scope="session")
async def daemon(tmp_path: Path, asterisk: AsteriskSandbox) -> AsyncIterator[Components]:
    async with running(_settings(tmp_path, asterisk)) as components:
        await UserService(components.db).add(
            "alex", PASSWORD, Role.AGENT, display_name="Alex Agent",
            extension=world_channel(agent(0)))
        assert components.contacts is not None
        org = await components.contacts.create_organisation("Analytical Engines Ltd",
                                                         PartyKind.BUYER)
        contact_id = await components.contacts.create_contact(ContactInput(
            first_name="Grace", last_name="Hopper", phones=[PERSON], organisation_id=org))
        people = {phone: await components.contacts.create_contact(ContactInput(
            first_name=first, last_name=last, phones=[phone]))
            for first, last, phone in (("Ada", "Lovelace", SKIPPED), ("Alan", "Turing", PREVIEWED))}
        async with components.db.transaction() as session:
            campaign = Campaign(name="spring", mode=CampaignMode.PROGRESSIVE,
                                status=CampaignStatus.RUNNING, script=SCRIPT,
                                retry_rules={"busy": BUSY_RETRY_S}, max_attempts=3)
            session.add(campaign)
            await session.flush()
            session.add(Lead(campaign_id=campaign.id, contact_id=contact_id,
                             phone_e164=PERSON))
            preview = Campaign(name="callbacks", mode=CampaignMode.PREVIEW,
                               status=CampaignStatus.RUNNING, dispositions=["sale", "busy"])
            session.add(preview)
            await session.flush()
            for phone, person in people.items():
                session.add(Lead(campaign_id=preview.id, contact_id=person, phone_e164=phone))
        yield components


async def _sign_in(page: Page, url: str) -> None:
    await page.goto(f"{url}workspace")
    await page.get_by_label("User name").fill("alex")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{url}workspace")


async def test_a_dialled_call_pops_the_card_and_the_disposition_drives_the_retry(
    browser: Browser, daemon: Components
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = daemon.web_url
    assert url is not None
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        locale="en-US")
    try:
        page = await context.new_page()
        await _sign_in(page, url)
        await page.screenshot(path=ARTIFACTS / "workspace-join-desktop.png", full_page=True)
        await page.get_by_label("Campaign").select_option(label="spring (progressive)")
        await page.get_by_role("button", name="Join").click()
        state = page.locator("#agent-state")
        await expect(state).to_contain_text("Paused")
        await page.get_by_label("Pause reason").select_option("training")
        await page.get_by_role("button", name="Pause", exact=True).click()
        await expect(state).to_contain_text("Training")
        await page.get_by_role("button", name="Ready").click()
        await expect(state).to_have_text("Ready")
        # Marks this document: if the card came by a reload, the mark would be gone.
        await page.evaluate("window.contactdMark = 'no reload'")

        card = page.locator("#card")
        await expect(card).to_be_visible(timeout=30_000)  # the dialer calls, AMD, hand-off
        await expect(card.locator("#card-name")).to_have_text("Grace Hopper")
        await expect(card).to_contain_text("Analytical Engines Ltd")
        await expect(page.locator("#script-box")).to_contain_text(
            "Hello Grace, this is Alex about your order at Analytical Engines Ltd.")
        await expect(state).to_have_text("On a call")
        assert await page.evaluate("window.contactdMark") == "no reload"
        await page.screenshot(path=ARTIFACTS / "workspace-call-desktop.png", full_page=True)

        await expect(page.locator("#call-ended")).to_be_visible(timeout=30_000)  # hung up
        await expect(state).to_have_text("Wrap-up")
        await page.set_viewport_size({"width": 360, "height": 740})
        await page.screenshot(path=ARTIFACTS / "workspace-call-phone.png", full_page=True)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, "nothing wider than the phone's screen"
        await page.set_viewport_size({"width": 1280, "height": 800})

        before = datetime.now(UTC)
        await card.get_by_role("button", name="Busy").click()
        await expect(page.get_by_role("status").first).to_contain_text("Disposition saved")
        await expect(card).to_be_hidden()
        after = datetime.now(UTC)
    finally:
        await context.close()

    async with daemon.db.session() as session:
        lead = (await session.scalars(select(Lead).where(Lead.phone_e164 == PERSON))).one()
        attempt = (await session.scalars(select(CallAttempt))).one()
    assert (attempt.disposition, attempt.lead_id) == ("busy", lead.id)
    assert lead.status is LeadStatus.RETRY and lead.attempts == 1
    assert lead.next_attempt_at is not None
    due = lead.next_attempt_at
    assert before + timedelta(seconds=BUSY_RETRY_S) <= due
    assert due <= after + timedelta(seconds=BUSY_RETRY_S)


async def test_preview_skip_then_dial_and_click_to_call(
    browser: Browser, daemon: Components
) -> None:
    url = daemon.web_url
    assert url is not None
    ended: dict[str, CallEnded] = {}
    call_over = asyncio.Event()

    def on_ended(event: CallEnded) -> None:
        ended[event.attempt_id] = event
        call_over.set()

    daemon.bus.subscribe(CallEnded, on_ended)
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        locale="en-US")
    try:
        page = await context.new_page()
        await _sign_in(page, url)
        await page.get_by_label("Campaign").select_option(label="callbacks (preview)")
        await page.get_by_role("button", name="Join").click()
        await page.get_by_role("button", name="Ready").click()
        next_lead = page.locator("section", has=page.get_by_role("heading", name="Next lead"))
        await expect(next_lead).to_contain_text("Ada Lovelace")
        await page.screenshot(path=ARTIFACTS / "workspace-preview-desktop.png", full_page=True)
        await next_lead.get_by_role("button", name="Skip").click()
        await expect(next_lead).to_contain_text("Alan Turing")
        await next_lead.get_by_role("button", name="Dial").click()
        card = page.locator("#card")
        await expect(card.locator("#card-name")).to_have_text("Alan Turing", timeout=30_000)
        await expect(page.locator("#call-ended")).to_be_visible(timeout=30_000)
        await expect(card.get_by_role("button")).to_have_count(2)  # the campaign's own two
        await card.get_by_role("button", name="Sale").click()
        await expect(page.get_by_role("status").first).to_contain_text("Disposition saved")

        # Click-to-call: the agent's phone (a simulated agent who answers) rings first, then
        # Asterisk dials the number from contactd-agent.
        call_over.clear()
        await page.get_by_role("textbox", name="Number").fill("020 7942 0008")
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(page.get_by_role("status").first).to_contain_text("Your phone rings")
        async with asyncio.timeout(40):
            await call_over.wait()
    finally:
        daemon.bus.unsubscribe(CallEnded, on_ended)
        await context.close()

    async with daemon.db.session() as session:
        leads = {lead.phone_e164: lead for lead in await session.scalars(select(Lead))}
        attempts = list(await session.scalars(
            select(CallAttempt).order_by(CallAttempt.created_at)))
        alex = await session.scalar(select(User.id).where(User.username == "alex"))
    assert (leads[PREVIEWED].status, leads[PREVIEWED].attempts) == (LeadStatus.DONE, 1)
    assert (leads[SKIPPED].status, leads[SKIPPED].attempts) == (LeadStatus.NEW, 0)
    preview_call, manual = attempts
    assert (preview_call.lead_id, preview_call.disposition) == (leads[PREVIEWED].id, "sale")
    assert (manual.phone_e164, manual.agent_id, manual.lead_id) == (PERSON, alex, None)
    assert ended[manual.id].answered_by is not None, ended[manual.id]
