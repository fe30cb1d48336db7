"""Debian's Chromium driven by Playwright, for the web panel's tests.

Fixtures:
- `browser` (session): a headless Chromium (`/usr/bin/chromium`, never a downloaded build),
  with background networking off since this machine has no network but the registries.
- `page` (function): a fresh browser context and page, closed after the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("CONTACTD_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} not found: run scripts/install-test-deps")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="en-US")
    try:
        yield await context.new_page()
    finally:
        await context.close()

