"""The panel in a real browser: an agent signs in, moves around, signs out; an admin adds a
user; screenshots of each page at desktop and phone sizes are saved for people to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from contactd.web.app import WebServer, create_app
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
SIZES = {"desktop": (1280, 800), "phone": (360, 740)}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "panel"


@pytest_asyncio.fixture(loop_scope="session")
async def web_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})
    health = HealthRegistry()
    health.register("database", lambda: ComponentHealth("ok", "sqlite"))
    async with Database(settings.database_url) as db:
        await upgrade(db)
        users = UserService(db)
        await users.add("ada", PASSWORD, Role.ADMIN, display_name="Ada Lovelace")
        await users.add("alex", PASSWORD, Role.AGENT, display_name="Alex Agent")
        contacts = ContactService(db, default_region="GB")
        people = (("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"))
        for n, (first, last) in enumerate(people):
            await contacts.create_contact(ContactInput(first_name=first, last_name=last,
                                                       phones=[f"+44 20 7946 001{n}"]))
        port = free_port()
        async with WebServer(create_app(settings, db, health), "127.0.0.1", port):
            yield f"http://127.0.0.1:{port}"


async def _sign_in(page: Page, web_url: str, username: str) -> None:
    await page.goto(f"{web_url}/")
    await expect(page).to_have_url(f"{web_url}/login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{web_url}/")


async def test_an_agent_signs_in_and_out(page: Page, web_url: str) -> None:
    await page.goto(f"{web_url}/login")
    await page.get_by_label("User name").fill("alex")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    await _sign_in(page, web_url, "alex")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Alex Agent")
    await expect(page.get_by_role("link", name="Users")).to_have_count(0)  # not for agents
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{web_url}/login")
    await page.goto(f"{web_url}/account")
    await expect(page).to_have_url(f"{web_url}/login?next=/account")


async def test_an_agent_finds_a_contact_by_typing_half_a_surname(
    page: Page, web_url: str
) -> None:
    await _sign_in(page, web_url, "alex")
    await page.get_by_role("link", name="Contacts").click()
    rows = page.locator("#contact-rows tr")
    await expect(rows).to_have_count(3)
    await page.get_by_label("Search").type("Hop")  # typed, not submitted
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Grace Hopper")
    await expect(page).to_have_url(f"{web_url}/contacts?q=Hop&tag=&owner=&kind=&sort=relevance")


async def test_an_admin_adds_a_user_who_can_then_sign_in(page: Page, web_url: str) -> None:
    await _sign_in(page, web_url, "ada")
    await page.get_by_role("link", name="Users").click()
    form = page.locator("form.card")
    await form.get_by_label("User name").fill("noor")
    await form.get_by_label("Name", exact=True).fill("Noor")
    await form.get_by_label("Role").select_option("agent")
    await form.get_by_label("Password").fill("another good pw")
    await form.get_by_role("button", name="Add").click()
    await expect(page.get_by_role("status")).to_contain_text("User noor added")
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("User name").fill("noor")
    await page.get_by_label("Password").fill("another good pw")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Noor")


async def test_screenshots_of_the_pages(browser: Browser, web_url: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        for scheme in ("light", "dark"):
            context = await browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            try:
                page = await context.new_page()
                await page.goto(f"{web_url}/login")
                await page.screenshot(path=ARTIFACTS / f"login-{size}-{scheme}.png")
                await _sign_in(page, web_url, "ada")
                for name in ("home", "contacts", "users", "account", "campaigns/new"):
                    await page.goto(f"{web_url}/{'' if name == 'home' else name}")
                    shot = name.replace("/", "-")
                    await page.screenshot(path=ARTIFACTS / f"{shot}-{size}-{scheme}.png",
                                          full_page=True)
                    # Nothing wider than the screen: no sideways scrolling on a phone.
                    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
                    assert scroll_width <= width, (name, size)
            finally:
                await context.close()
