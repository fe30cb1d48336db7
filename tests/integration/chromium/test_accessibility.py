"""The panel for keyboard users and screen readers, in every theme: axe-core finds no serious
or critical violation on the main pages in any shipped theme; the skip link, visible focus and
Tab/Enter reach every action; an admin previews a theme live and one failing contrast is
refused. (Switching to Chichewa and the dark theme is walked in chromium/test_floor.py.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from contactd.auth.service import UserService
from contactd.config import load_settings
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.migrate import upgrade
from contactd.db.session import Database
from contactd.enums import Role
from contactd.health import ComponentHealth, HealthRegistry
from contactd.web.app import WebServer, create_app
from contactd.web.themes import parse
from tests.peers.axe import COLOUR_RULES, violations
from tests.peers.ports import free_port

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[3]
THEMES = {p.stem: parse(p.stem, p.read_text()) for p in sorted((ROOT / "web/themes").glob("*.css"))}
# The main pages, and the Themes page, which shows every colour role (ok, error, warning).
PAGES = ("/", "/contacts", "/contacts/1", "/tasks", "/workspace", "/users", "/themes")
SIZES = {"desktop": (1280, 800), "phone": (360, 740)}


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest_asyncio.fixture(loop_scope="session")
async def web_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path)})
    health = HealthRegistry()
    health.register("database", lambda: ComponentHealth("ok", "sqlite"))
    async with Database(settings.database_url) as db:
        await upgrade(db)
        users = UserService(db)
        await users.add("ada", PASSWORD, Role.ADMIN, display_name="Ada Lovelace")
        contacts = ContactService(db, default_region="GB")
        ids = [
            await contacts.create_contact(
                ContactInput(
                    first_name=first,
                    last_name=last,
                    phones=[f"+44 20 7946 001{n}"],
                    emails=[f"{first.lower()}@example.org"],
                    tags=["pilot"],
                )
            )
            for n, (first, last) in enumerate((("Grace", "Hopper"), ("Alan", "Turing")))
        ]
        await TaskService(db).create(
            NewTask(title="Call back about the renewal", contact_id=ids[0])
        )
        port = free_port()
        async with WebServer(create_app(settings, db, health), "127.0.0.1", port):
            yield f"http://127.0.0.1:{port}"


async def _context(browser: Browser, size: str = "desktop", **extra: object) -> BrowserContext:
    width, height = SIZES[size]
    # axe is injected as an inline script, which the panel's CSP rightly forbids.
    return await browser.new_context(
        viewport={"width": width, "height": height}, locale="en-US", bypass_csp=True, **extra
    )  # type: ignore[arg-type]


async def _sign_in(page: Page, web_url: str) -> None:
    await page.goto(f"{web_url}/login")
    await page.get_by_label("User name").fill("ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{web_url}/")


SWAP_THEME = """id => new Promise((loaded, failed) => {
  const link = document.querySelector('link[href^="/themes/"]');
  link.addEventListener("load", () => loaded(), {once: true});
  link.addEventListener("error", () => failed(new Error(`theme ${id} did not load`)), {once: true});
  link.href = `/themes/${id}.css`;
})"""


async def _use_theme(page: Page, theme_id: str) -> None:
    """Swaps the page's theme stylesheet in place (no reload) and waits until it applies."""
    await page.evaluate(SWAP_THEME, theme_id)
    await expect(page.locator("body")).to_have_css(
        "background-color", rgb(THEMES[theme_id].colours["bg"])
    )


async def test_axe_finds_nothing_serious_on_the_main_pages_in_any_theme(
    browser: Browser, web_url: str
) -> None:
    context = await _context(browser)
    found: list[str] = []
    try:
        page = await context.new_page()
        for path in ("/login", *PAGES):
            if path == PAGES[0]:
                await _sign_in(page, web_url)
            await page.goto(f"{web_url}{path}")
            found += [f"{path}: {v}" for v in await violations(page)]  # every rule
            for theme_id in THEMES:  # what a theme changes: the colours
                await _use_theme(page, theme_id)
                found += [
                    f"{path} in {theme_id}: {v}" for v in await violations(page, only=COLOUR_RULES)
                ]
    finally:
        await context.close()
    assert not found, "\n".join(found)


async def test_axe_would_see_a_theme_that_fails_contrast(browser: Browser, web_url: str) -> None:
    """The sweep above can fail: faint secondary text is reported as axe sees it."""
    context = await _context(browser)
    try:
        page = await context.new_page()
        await page.goto(f"{web_url}/login")
        await page.add_style_tag(content=":root { --muted: #c8c8c8 !important; }")
        found = await violations(page, only=COLOUR_RULES)
        assert any(v.startswith("color-contrast") for v in found), found
    finally:
        await context.close()


async def test_a_keyboard_alone_signs_in_and_reaches_the_contacts(
    browser: Browser, web_url: str
) -> None:
    context = await _context(browser)
    try:
        page = await context.new_page()
        await page.goto(f"{web_url}/login")
        await expect(page.get_by_label("User name")).to_be_focused()  # autofocus
        await page.keyboard.type("ada")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{web_url}/")
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        await expect(skip).to_be_focused()
        box = await skip.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0  # on screen when focused
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{web_url}/#main")
        await page.goto(f"{web_url}/")
        for _ in range(30):  # Tab along the header until the Contacts link has the focus
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.textContent.trim()") == "Contacts":
                break
        ring = await page.evaluate(
            "(() => { const s = getComputedStyle(document.activeElement);"
            " return [s.outlineStyle, s.outlineWidth]; })()"
        )
        assert ring[0] == "solid" and ring[1] != "0px", ring  # focus is visible
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{web_url}/contacts")
    finally:
        await context.close()


async def test_an_admin_previews_a_theme_live_and_a_failing_one_is_refused(
    browser: Browser, web_url: str
) -> None:
    context = await _context(browser)
    try:
        page = await context.new_page()
        await _sign_in(page, web_url)
        await page.goto(f"{web_url}/themes")
        colours = page.get_by_label("Colours")
        css = (await colours.input_value()).replace("--bg: #f6f7f9;", "--bg: #fff4d6;")
        await colours.fill(css.replace("--muted: #4d5561;", "--muted: #c0c0c0;"))
        preview = page.locator("#theme-preview")
        await expect(preview).to_have_css("background-color", rgb("#fff4d6"))  # as typed
        await page.get_by_label("Id (file name)").fill("parchment")
        await page.get_by_role("button", name="Add theme").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("--muted #c0c0c0 on --bg #fff4d6")
        await expect(colours).to_have_value(re.compile("--muted: #c0c0c0;"))  # kept to fix
    finally:
        await context.close()
