"""Records and work in a real browser: an agent finds a contact by typing half a surname,
opens the card, edits it, adds a task, generates a PDF and queues an SMS, which the SMSC peer
receives through the outbox running in this harness. Screenshots of each new page at desktop
and phone sizes are saved for people to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from contactd.auth.service import UserService
from contactd.config import load_settings
from contactd.crm.service import ContactInput, ContactService
from contactd.db.migrate import upgrade
from contactd.db.session import Database
from contactd.enums import Role
from contactd.health import ComponentHealth, HealthRegistry
from contactd.messaging.service import MessagingService
from contactd.web.app import WebServer, create_app
from contactd.web.services import PanelServices
from tests.peers.ports import free_port
from tests.peers.smsc import SmscPeer, start_peer, stop_peer

pytestmark = [pytest.mark.chromium, pytest.mark.smsc, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
SIZES = {"desktop": (1280, 800), "phone": (360, 740)}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "records"
SMS_WAIT_S = 30.0


@pytest.fixture(scope="module")
def smsc_here() -> Iterator[SmscPeer]:
    peer = start_peer()
    try:
        yield peer
    finally:
        stop_peer(peer)


@dataclass
class Harness:
    url: str
    messaging: MessagingService


@pytest_asyncio.fixture(loop_scope="session")
async def harness(tmp_path: Path, smsc_here: SmscPeer) -> AsyncIterator[Harness]:
    await smsc_here.acall("POST", "/reset", {})
    smpp = smsc_here.settings()
    settings = load_settings(None, {
        "CONTACTD_GENERAL__DATA_DIR": str(tmp_path), "CONTACTD_GENERAL__DEFAULT_REGION": "GB",
        "CONTACTD_SMPP__ENABLED": "true", "CONTACTD_SMPP__HOST": smpp.host,
        "CONTACTD_SMPP__PORT": str(smpp.port), "CONTACTD_SMPP__SYSTEM_ID": smpp.system_id,
        "CONTACTD_SMPP__PASSWORD": smpp.password.get_secret_value(),
        "CONTACTD_SMPP__SOURCE_ADDR": smpp.source_addr,
    })
    health = HealthRegistry()
    health.register("database", lambda: ComponentHealth("ok", "sqlite"))
    async with Database(settings.database_url) as db:
        await upgrade(db)
        users = UserService(db)
        await users.add("ada", PASSWORD, Role.ADMIN, display_name="Ada Admin")
        await users.add("alex", PASSWORD, Role.AGENT, display_name="Alex Agent")
        contacts = ContactService(db, default_region="GB")
        for n, (first, last) in enumerate((("Grace", "Hopper"), ("Margaret", "Hamilton"),
                                           ("Alan", "Turing"))):
            await contacts.create_contact(ContactInput(
                first_name=first, last_name=last, phones=[f"+44 7911 12345{n}"],
                emails=[f"{first.lower()}@example.org"], tags=["pilot"]))
        async with MessagingService(settings, db) as messaging:
            port = free_port()
            app = create_app(settings, db, health, PanelServices(messaging=messaging))
            async with WebServer(app, "127.0.0.1", port):
                yield Harness(f"http://127.0.0.1:{port}", messaging)


async def _sign_in(page: Page, web_url: str, username: str) -> None:
    await page.goto(f"{web_url}/login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{web_url}/")


async def test_an_agent_works_a_contact_from_search_to_sms(
    page: Page, harness: Harness, smsc_here: SmscPeer
) -> None:
    web_url = harness.url
    await _sign_in(page, web_url, "alex")
    await page.get_by_role("link", name="Contacts").click()
    rows = page.locator("#contact-rows tr")
    await page.get_by_label("Search").type("Hami")  # half a surname, not submitted
    await expect(rows).to_have_count(1)
    await rows.first.get_by_role("link", name="Margaret Hamilton").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Margaret Hamilton")

    edit = page.locator("form#edit")
    await edit.get_by_label("Job title").fill("Director of Software Engineering")
    await edit.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator("form#edit").get_by_label("Job title")).to_have_value(
        "Director of Software Engineering")

    task = page.locator("form#new-task")
    await task.get_by_label("Title").fill("Send the Apollo contract")
    await task.get_by_label("Assign to").select_option("me")
    await task.get_by_role("button", name="Add task").click()
    await expect(page.locator("#timeline")).to_contain_text("Send the Apollo contract")

    doc = page.locator("form#new-document")
    await doc.get_by_label("Template").select_option("contract")
    await doc.get_by_role("button", name="Generate PDF").click()
    link = page.locator('#timeline a[href^="/documents/"]')
    await expect(link).to_have_count(1)
    pdf = await page.request.get(web_url + (await link.get_attribute("href") or ""))
    assert pdf.ok and (await pdf.body()).startswith(b"%PDF-")

    await page.get_by_role("link", name="Send SMS").click()
    text = page.locator("pre.message-text")
    await expect(text).to_contain_text("Margaret")
    await expect(page.locator("p.segments")).to_contain_text("1 SMS segment")
    shown = await text.inner_text()
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("status")).to_contain_text("Queued for +447911123451")
    # The outbox's writer commits "sent" once the SMSC answered the submit_sm.
    await harness.messaging.outbox.wait_for(lambda stats: stats.sent >= 1, SMS_WAIT_S)
    submitted = await smsc_here.submits()
    assert len(submitted) == 1
    assert submitted[0]["destination_addr"] == "447911123451"  # international TON, no +
    assert submitted[0]["text"] == shown.strip()


async def test_screenshots_of_the_records_pages(browser: Browser, harness: Harness) -> None:
    web_url = harness.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            await _sign_in(page, web_url, "ada")
            for name, path in (("contacts", "/contacts?sort=name"), ("card", "/contacts/1"),
                               ("tasks", "/tasks"), ("message", "/contacts/1/message"),
                               ("templates", "/templates?edit=1"),
                               ("merge", "/contacts/1/merge?other=2"),
                               ("organisations", "/organisations"),
                               ("products", "/products")):
                await page.goto(f"{web_url}{path}")
                await page.screenshot(path=ARTIFACTS / f"{name}-{size}.png", full_page=True)
                scroll_width = await page.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= width, (name, size)
        finally:
            await context.close()
