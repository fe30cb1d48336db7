"""Issue 21's first test as worded: a predictive campaign's call over the real PJSIP trunk,
answered by a SIPp callee, bridged to the agent's browser phone, with audio both ways: the
browser's getStats counts what it sends and receives, and the packets that reach SIPp's media
port are captured off the loopback interface, where the browser's microphone (a tone) must be
heard. The agent then hangs up and sets the disposition."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import Settings, load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.enums import CampaignMode, CampaignStatus, Role
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.integration.chromium.test_webrtc_phone import PASSWORD, _join, media_browser
from tests.integration.sipp.test_sipp_outbound import _sound
from tests.peers.ports import free_port
from tests.peers.rtpcapture import RtpCapture
from tests.peers.sipp import SipAsteriskSandbox, SippLauncher, SippProcess, write_rtp_pcap

pytestmark = [
    pytest.mark.chromium, pytest.mark.sipp, pytest.mark.asterisk,
    pytest.mark.asyncio(loop_scope="session"),
]
__all__ = ["media_browser"]  # the fixture, shared with the other browser-phone tests

NUMBER = "+442079460417"


def _settings(tmp_path: Path, sandbox: SipAsteriskSandbox) -> Settings:
    return load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path),
        "CONTACTD_GENERAL__DEFAULT_REGION": "GB",
        "CONTACTD_WEB__PORT": str(free_port()),
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
        "CONTACTD_AMI__PORT": str(sandbox.ami_port),
        "CONTACTD_AMI__USERNAME": sandbox.ami_username,
        "CONTACTD_AMI__SECRET": sandbox.ami_secret,
        "CONTACTD_DIALER__WINDOW_START": "00:00:00",
        "CONTACTD_DIALER__WINDOW_END": "23:59:59",
        "CONTACTD_DIALER__PACING_TICK_S": "0.2",
        "CONTACTD_DIALER__AGENT_WRAP_S": "120",
        "CONTACTD_WEBRTC__ENABLED": "true",
        "CONTACTD_WEBRTC__INCLUDE_FILE": str(sandbox.etc_dir / "contactd-webrtc.conf"),
        "CONTACTD_WEBRTC__WS_URL": sandbox.ws_url,
        "CONTACTD_WEBRTC__SIP_DOMAIN": "127.0.0.1",
    })  # fmt: skip


@pytest_asyncio.fixture(loop_scope="session")
async def sip_daemon(
    tmp_path: Path, sip_asterisk: SipAsteriskSandbox
) -> AsyncIterator[Components]:
    async with running(_settings(tmp_path, sip_asterisk)) as components:
        await UserService(components.db).add("wendy", PASSWORD, Role.AGENT,
                                             display_name="Wendy Web")
        assert components.contacts is not None
        contact_id = await components.contacts.create_contact(
            ContactInput(first_name="Ada", last_name="Lovelace", phones=[NUMBER]))
        async with components.db.transaction() as session:
            campaign = Campaign(name="forecast", mode=CampaignMode.PREDICTIVE,
                                status=CampaignStatus.RUNNING, dispositions=["sale", "busy"])
            session.add(campaign)
            await session.flush()
            session.add(Lead(campaign_id=campaign.id, contact_id=contact_id, phone_e164=NUMBER))
        yield components


async def _callee(sandbox: SipAsteriskSandbox, sipp: SippLauncher, folder: Path) -> SippProcess:
    """The SIPp callee: answers and says "hello world" (AMD: a person, in ~2.6 s)."""
    pcap = folder / "hello.pcap"
    write_rtp_pcap(_sound(sandbox, "hello-world"), pcap)
    return await sipp.carrier("answer", ring_ms=200, pcap=pcap)


async def test_a_predictive_call_answered_by_sipp_is_bridged_to_the_browser_with_audio(
    media_browser: Browser, sip_daemon: Components, sip_asterisk: SipAsteriskSandbox,
    sipp: SippLauncher, tmp_path: Path,
) -> None:
    url = sip_daemon.web_url
    assert url is not None
    carrier = await _callee(sip_asterisk, sipp, tmp_path)
    context = await media_browser.new_context(locale="en-US", permissions=["microphone"])
    try:
        async with RtpCapture(carrier.media_port) as heard_by_callee:
            page = await _join(context, url, "wendy", "forecast", mode="predictive")
            await expect(page.locator("#phone-reg")).to_have_text(
                "Registered: calls ring here", timeout=15_000)
            await page.get_by_role("button", name="Ready").click()
            await expect(page.locator("#phone-call")).to_have_text("In a call", timeout=30_000)
            await expect(page.locator("#card-name")).to_have_text("Ada Lovelace")
            stats = page.locator("#phone-stats")
            at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
            await expect(stats).to_have_attribute("data-packets-sent", at_least_20,
                                                  timeout=15_000)
            await expect(stats).to_have_attribute("data-packets-received", at_least_20,
                                                  timeout=15_000)
            # The browser's microphone (a 440 Hz tone) reaches the callee: one second of it.
            await heard_by_callee.until_loud(50, timeout_s=15)
        # A workspace button pressed during the call answers in place: the page (and with
        # it the call's audio and buttons) stays.
        await page.locator("#card").get_by_role("button", name="Sale").click()
        await expect(page.get_by_role("alert").first).to_contain_text("not ended")
        await expect(page.locator("#phone-call")).to_have_text("In a call")
        await page.get_by_role("button", name="Hang up").click()
        await expect(page.locator("#phone-call")).to_have_text("Call ended", timeout=10_000)
        await page.locator("#card").get_by_role("button", name="Sale").click()
        await expect(page.get_by_role("status").first).to_contain_text("Disposition saved")
        await carrier.finish(timeout_s=15)  # SIPp saw its call through to Asterisk's BYE
    finally:
        await context.close()
        await carrier.stop()  # in this test's loop (the sipp fixture's loop is another)
    async with sip_daemon.db.session() as session:
        attempt = (await session.scalars(select(CallAttempt))).one()
    assert attempt.disposition == "sale"
    assert attempt.phone_e164 == NUMBER


async def test_click_to_call_rings_the_browser_phone_then_the_number_over_the_trunk(
    media_browser: Browser, sip_daemon: Components, sip_asterisk: SipAsteriskSandbox,
    sipp: SippLauncher, tmp_path: Path,
) -> None:
    """The workspace's "Call a number" with a browser phone: the browser rings first (and
    answers at once), then Asterisk dials the number over the trunk; SIPp answers and the
    two hear each other."""
    url = sip_daemon.web_url
    assert url is not None
    carrier = await _callee(sip_asterisk, sipp, tmp_path)
    context = await media_browser.new_context(locale="en-US", permissions=["microphone"])
    try:
        async with RtpCapture(carrier.media_port) as heard_by_callee:
            page = await _join(context, url, "wendy", "forecast", mode="predictive")
            await expect(page.locator("#phone-reg")).to_have_text(
                "Registered: calls ring here", timeout=15_000)
            # Paused (no campaign call comes): the agent calls a number by hand.
            await page.get_by_role("textbox", name="Number").fill("020 7946 0999")
            await page.get_by_role("button", name="Call", exact=True).click()
            await expect(page.get_by_role("status").filter(has_text="Your phone rings first")
                         ).to_be_visible()
            await expect(page.locator("#phone-call")).to_have_text("In a call", timeout=20_000)
            stats = page.locator("#phone-stats")
            at_least_20 = re.compile(r"^([2-9][0-9]|[0-9]{3,})$")
            await expect(stats).to_have_attribute("data-packets-received", at_least_20,
                                                  timeout=15_000)
            await heard_by_callee.until_loud(50, timeout_s=15)
        await page.get_by_role("button", name="Hang up").click()
        await expect(page.locator("#phone-call")).to_have_text("Call ended", timeout=10_000)
        await carrier.finish(timeout_s=15)
    finally:
        await context.close()
        await carrier.stop()  # in this test's loop (the sipp fixture's loop is another)
    assert "+442079460999" in carrier.messages()  # the number, dialled over the trunk
