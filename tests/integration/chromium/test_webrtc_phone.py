"""The browser phone in Chromium (fake microphone) against the daemon on the Asterisk sandbox:
an agent with no desk phone joins a progressive campaign, the workspace's phone registers over
WebSocket, the dialer's call to a simulated person is bridged to the browser and answered at
once, RTP flows (getStats packet counts), keypad keys reach the far end, the agent hangs up,
the call's figures are kept on its interaction and the agent sets the disposition. Two
agents in two browser contexts take a call each from one campaign. A
browser whose microphone permission is refused gets a clear message; closing the page pauses
the agent. Screenshots at desktop
and phone sizes are saved."""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import InboundQueueSettings, InboundSettings, Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Interaction
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.models.users import AuditEntry
from contactd.dialer.agents import AgentState
from contactd.dialer.floor_events import AgentStateChanged
from contactd.enums import CampaignMode, CampaignStatus, Role
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.peers.asterisk import (
    AsteriskSandbox,
    human,
    talking_human,
    world_channel,
    world_e164,
)
from tests.peers.chromium import CHROMIUM, FLAGS
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asterisk, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "panel"
# The sandbox world's 21103: a person who answers, says "hello world", listens for 3 keys
# (UserEvent ContactdTestKeys) and holds 10 s more.
PERSON = "+442079421103"


def _tone(path: Path) -> Path:
    """One second of a 440 Hz tone, 48 kHz mono: the fake microphone's input."""
    import math
    import struct

    rate = 48000
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


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
            "CONTACTD_WEBRTC__ENABLED": "true",
            "CONTACTD_WEBRTC__INCLUDE_FILE": str(asterisk.etc_dir / "contactd-webrtc.conf"),
            "CONTACTD_WEBRTC__WS_URL": asterisk.ws_url,
            "CONTACTD_WEBRTC__SIP_DOMAIN": "127.0.0.1",
        },
    )


@pytest_asyncio.fixture(loop_scope="session")
async def media_browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Chromium with a fake microphone playing a tone; no permission unless a context grants it."""
    wav = _tone(tmp_path / "tone.wav")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            timeout=60_000,
            args=[
                *FLAGS,
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def daemon(tmp_path: Path, asterisk: AsteriskSandbox) -> AsyncIterator[Components]:
    async with running(_settings(tmp_path, asterisk)) as components:
        # Added after the daemon started: as an admin adding an agent, the phone is added.
        await UserService(components.db).add(
            "wendy", PASSWORD, Role.AGENT, display_name="Wendy Web"
        )
        assert components.contacts is not None
        contact_id = await components.contacts.create_contact(
            ContactInput(first_name="Grace", last_name="Hopper", phones=[PERSON])
        )
        async with components.db.transaction() as session:
            campaign = Campaign(
                name="webphone",
                mode=CampaignMode.PROGRESSIVE,
                status=CampaignStatus.RUNNING,
                dispositions=["sale", "busy"],
            )
            session.add(campaign)
            await session.flush()
            session.add(Lead(campaign_id=campaign.id, contact_id=contact_id, phone_e164=PERSON))
        yield components


async def _join(
    context: BrowserContext,
    url: str,
    user: str = "wendy",
    campaign: str = "webphone",
    queues: tuple[str, ...] = (),
    mode: str = "progressive",
) -> Page:
    page = await context.new_page()
    await page.goto(f"{url}workspace")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{url}workspace")
    await page.get_by_label("Campaign").select_option(label=f"{campaign} ({mode})")
    for queue in queues:  # blended: the campaign and these inbound queues
        await page.locator(f"input[name=queue][value={queue}]").check()
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#agent-state")).to_contain_text("Paused")
    return page


async def test_a_campaign_call_reaches_the_browser_phone(
    media_browser: Browser, daemon: Components, asterisk: AsteriskSandbox
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = daemon.web_url
    assert url is not None
    assert daemon.dialer is not None
    context = await media_browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", permissions=["microphone"]
    )
    try:
        page = await _join(context, url)
        assert daemon.dialer.agents.agents["wendy"].dial == "PJSIP/webrtc-wendy"
        await expect(page.locator("#phone-reg")).to_have_text(
            "Registered: calls ring here", timeout=15_000
        )
        assert "webrtc-wendy" in await asterisk.acli("pjsip show contacts")
        await page.screenshot(path=ARTIFACTS / "workspace-phone-desktop.png", full_page=True)
        await page.get_by_role("button", name="Ready").click()
        call = page.locator("#phone-call")
        await expect(call).to_have_text("In a call", timeout=30_000)  # dialled, AMD, bridged
        await expect(page.locator("#card-name")).to_have_text("Grace Hopper")
        # Audio both ways: the browser sends its microphone and receives Asterisk's RTP.
        stats = page.locator("#phone-stats")
        at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
        await expect(stats).to_have_attribute("data-packets-sent", at_least_20, timeout=15_000)
        await expect(stats).to_have_attribute("data-packets-received", at_least_20, timeout=15_000)
        await expect(stats).to_contain_text("Jitter")
        # The keypad's keys (RFC 4733) reach the far end.
        keys: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_user_event(event: Any) -> None:
            if event.get("UserEvent") == "ContactdTestKeys" and not keys.done():
                keys.set_result(str(event.get("Keys", "")))

        assert daemon.calls is not None
        daemon.calls.ami.events.on("UserEvent", on_user_event)
        keypad = page.get_by_role("group", name="Keypad")
        for key in "4", "2", "7":
            await keypad.get_by_role("button", name=key, exact=True).click()
        assert await asyncio.wait_for(keys, 15) == "427"
        await page.screenshot(path=ARTIFACTS / "workspace-phone-call-desktop.png", full_page=True)
        await page.set_viewport_size({"width": 360, "height": 740})
        await page.screenshot(path=ARTIFACTS / "workspace-phone-call-phone.png", full_page=True)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.get_by_role("button", name="Hang up").click()
        await expect(call).to_have_text("Call ended", timeout=10_000)
        # The call's getStats figures are kept on its interaction.
        await expect(page.locator("#phone")).to_have_attribute(
            "data-quality-stored", "true", timeout=10_000
        )
        await page.locator("#card").get_by_role("button", name="Sale").click()
        await expect(page.get_by_role("status").first).to_contain_text("Disposition saved")
    finally:
        await context.close()
    async with daemon.db.session() as session:
        attempt = (await session.scalars(select(CallAttempt))).one()
        assert attempt.interaction_id is not None
        interaction = await session.get(Interaction, attempt.interaction_id)
    assert attempt.disposition == "sale"
    assert interaction is not None
    quality = interaction.data["call_quality"]
    assert quality["packets_received"] > 20 and quality["packets_sent"] > 20
    assert set(quality) >= {"jitter_ms", "loss_pct", "rtt_ms"}


async def test_two_agents_in_two_browsers_take_calls_from_one_campaign(
    media_browser: Browser, daemon: Components
) -> None:
    """Two agents, each in a browser context of their own, both Ready on one campaign: each
    browser phone is bridged to a call of its own, with audio both ways."""
    url = daemon.web_url
    assert url is not None and daemon.contacts is not None and daemon.dialer is not None
    await UserService(daemon.db).add("walt", PASSWORD, Role.AGENT, display_name="Walt Web")
    numbers = [world_e164(human(20), index) for index in (1, 2)]
    async with daemon.db.transaction() as session:
        campaign = Campaign(name="pair", mode=CampaignMode.PROGRESSIVE,
                            status=CampaignStatus.RUNNING, dispositions=["sale", "busy"])
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id
    for n, number in enumerate(numbers):
        contact_id = await daemon.contacts.create_contact(
            ContactInput(first_name="Caller", last_name=f"Number{n}", phones=[number])
        )
        async with daemon.db.transaction() as session:
            session.add(Lead(campaign_id=campaign_id, contact_id=contact_id, phone_e164=number))
    talked: set[str] = set()

    def on_agent(event: AgentStateChanged) -> None:
        if event.state == AgentState.TALKING.value and event.campaign_id == campaign_id:
            talked.add(event.agent)

    daemon.bus.subscribe(AgentStateChanged, on_agent)
    contexts = [
        await media_browser.new_context(locale="en-US", permissions=["microphone"])
        for _ in range(2)
    ]
    try:
        pages = [
            await _join(context, url, user, "pair")
            for context, user in zip(contexts, ("wendy", "walt"), strict=True)
        ]
        for page in pages:
            await expect(page.locator("#phone-reg")).to_have_text(
                "Registered: calls ring here", timeout=15_000
            )
        for page in pages:
            await page.get_by_role("button", name="Ready").click()
        at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
        for page in pages:
            await expect(page.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
            stats = page.locator("#phone-stats")
            await expect(stats).to_have_attribute("data-packets-sent", at_least_20, timeout=15_000)
            await expect(stats).to_have_attribute(
                "data-packets-received", at_least_20, timeout=15_000
            )
        # Each browser has its own caller's card.
        names = sorted([await page.locator("#card-name").inner_text() for page in pages])
        assert names == ["Caller Number0", "Caller Number1"]
        for page in pages:
            await page.get_by_role("button", name="Hang up").click()
    finally:
        for context in contexts:
            await context.close()
        daemon.bus.unsubscribe(AgentStateChanged, on_agent)
    async with daemon.db.session() as session:
        attempts = (
            await session.scalars(select(CallAttempt).where(CallAttempt.campaign_id == campaign_id))
        ).all()
    assert len(attempts) == 2 and talked == {"wendy", "walt"}  # a call each


async def test_an_agent_transfers_the_call_to_another_agent(
    media_browser: Browser, daemon: Components
) -> None:
    """A blind transfer from the workspace: wendy's caller goes to walt, who is Ready; walt's
    browser phone takes the call (audio flows) and his card pops; wendy's leg ends."""
    url = daemon.web_url
    assert url is not None and daemon.contacts is not None
    await UserService(daemon.db).add("walt", PASSWORD, Role.AGENT, display_name="Walt Web")
    number = world_e164(talking_human(40), 3)
    contact_id = await daemon.contacts.create_contact(
        ContactInput(first_name="Caller", last_name="Relayed", phones=[number])
    )
    async with daemon.db.transaction() as session:
        campaign = Campaign(name="relay", mode=CampaignMode.PROGRESSIVE,
                            status=CampaignStatus.RUNNING, dispositions=["sale", "busy"])
        session.add(campaign)
        await session.flush()
        session.add(Lead(campaign_id=campaign.id, contact_id=contact_id, phone_e164=number))
    contexts = [
        await media_browser.new_context(locale="en-US", permissions=["microphone"])
        for _ in range(2)
    ]
    try:
        wendy = await _join(contexts[0], url, "wendy", "relay")
        await expect(wendy.locator("#phone-reg")).to_have_text(
            "Registered: calls ring here", timeout=15_000
        )
        await wendy.get_by_role("button", name="Ready").click()
        await expect(wendy.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
        walt = await _join(contexts[1], url, "walt", "relay")
        await expect(walt.locator("#phone-reg")).to_have_text(
            "Registered: calls ring here", timeout=15_000
        )
        await walt.get_by_role("button", name="Ready").click()
        await expect(walt.locator("#agent-state")).to_have_text("Ready")
        target = wendy.locator("form.transfer select[name=target]")
        await target.focus()  # the list is asked for again: walt is Ready now
        await expect(target.locator("option[value='agent:walt']")).to_have_count(1)
        await target.select_option("agent:walt")
        await wendy.get_by_role("button", name="Transfer", exact=True).click()
        await expect(wendy.get_by_role("status").first).to_contain_text("Call transferred.")
        await expect(walt.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
        await expect(walt.locator("#card-name")).to_have_text("Caller Relayed")
        at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
        await expect(walt.locator("#phone-stats")).to_have_attribute(
            "data-packets-received", at_least_20, timeout=15_000
        )
        await walt.screenshot(path=ARTIFACTS / "workspace-transferred-call.png", full_page=True)
    finally:
        for context in contexts:
            await context.close()
    assert daemon.dialer is not None
    async with daemon.db.session() as session:
        moved = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "call.transfer"))
        ).all()
    assert [m.details["after"] for m in moved] == [{"agent": "walt"}]


async def test_an_agent_transfers_the_call_to_an_inbound_queue(
    media_browser: Browser, tmp_path: Path, asterisk: AsteriskSandbox
) -> None:
    """The queue target: wendy passes her caller to the inbound queue "support"; contactd's
    hand-off gives the caller to walt, who takes that queue (blended), on his browser phone."""
    settings = _settings(tmp_path, asterisk).model_copy(
        update={"inbound": InboundSettings(queues={"support": InboundQueueSettings()})}
    )
    async with running(settings) as daemon:
        url = daemon.web_url
        assert url is not None and daemon.contacts is not None
        for user in ("wendy", "walt"):
            await UserService(daemon.db).add(user, PASSWORD, Role.AGENT)
        number = world_e164(talking_human(40), 4)
        contact_id = await daemon.contacts.create_contact(
            ContactInput(first_name="Caller", last_name="Queued", phones=[number])
        )
        async with daemon.db.transaction() as session:
            campaign = Campaign(name="relay", mode=CampaignMode.PROGRESSIVE,
                                status=CampaignStatus.RUNNING, dispositions=["sale", "busy"])
            session.add(campaign)
            await session.flush()
            session.add(Lead(campaign_id=campaign.id, contact_id=contact_id, phone_e164=number))
        contexts = [
            await media_browser.new_context(locale="en-US", permissions=["microphone"])
            for _ in range(2)
        ]
        try:
            wendy = await _join(contexts[0], url, "wendy", "relay")
            await expect(wendy.locator("#phone-reg")).to_have_text(
                "Registered: calls ring here", timeout=15_000
            )
            await wendy.get_by_role("button", name="Ready").click()
            await expect(wendy.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
            walt = await _join(contexts[1], url, "walt", "relay", queues=("support",))
            await expect(walt.locator("#phone-reg")).to_have_text(
                "Registered: calls ring here", timeout=15_000
            )
            await walt.get_by_role("button", name="Ready").click()
            target = wendy.locator("form.transfer select[name=target]")
            await target.focus()
            await expect(target.locator("option[value='queue:support']")).to_have_count(1)
            await target.select_option("queue:support")
            await wendy.get_by_role("button", name="Transfer", exact=True).click()
            await expect(wendy.get_by_role("status").first).to_contain_text("Call transferred.")
            await expect(walt.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
            at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
            await expect(walt.locator("#phone-stats")).to_have_attribute(
                "data-packets-received", at_least_20, timeout=15_000
            )
        finally:
            for context in contexts:
                await context.close()
        async with daemon.db.session() as session:
            moved = (
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "call.transfer")
                )
            ).all()
    assert [m.details["after"] for m in moved] == [{"queue": "support"}]


async def test_a_refused_microphone_is_said_plainly(
    media_browser: Browser, daemon: Components
) -> None:
    url = daemon.web_url
    assert url is not None
    context = await media_browser.new_context(locale="en-US")  # no microphone permission
    try:
        page = await _join(context, url)
        alert = page.locator("#phone-error")
        await expect(alert).to_contain_text("The browser refused the microphone", timeout=15_000)
        await expect(page.locator("#phone-reg")).to_have_text(
            "Not registered: calls cannot reach you"
        )
    finally:
        await context.close()


async def test_closing_the_page_pauses_the_agent(
    media_browser: Browser, daemon: Components
) -> None:
    url = daemon.web_url
    assert url is not None
    paused = asyncio.Event()

    def on_agent(event: AgentStateChanged) -> None:
        if event.agent == "wendy" and event.state == AgentState.PAUSED.value:
            paused.set()

    context = await media_browser.new_context(locale="en-US", permissions=["microphone"])
    try:
        page = await _join(context, url)
        await expect(page.locator("#phone-reg")).to_have_text(
            "Registered: calls ring here", timeout=15_000
        )
        await page.get_by_role("button", name="Ready").click()
        await expect(page.locator("#agent-state")).to_have_text("Ready")
        daemon.bus.subscribe(AgentStateChanged, on_agent)
    finally:
        await context.close()  # the laptop lid: the WebSocket closes, the contact is removed
    # Before the tab-closed grace (30 s): the lost registration (webrtc.lost_grace_s 5 s).
    await asyncio.wait_for(paused.wait(), 15)
    context = await media_browser.new_context(locale="en-US", permissions=["microphone"])
    try:
        page = await context.new_page()
        await page.goto(f"{url}workspace")
        await page.get_by_label("User name").fill("wendy")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#agent-state")).to_contain_text(
            "Your browser phone lost its registration"
        )
    finally:
        await context.close()
