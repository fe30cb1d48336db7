"""axe-core, from the npm registry (scripts/install-test-deps puts it in the cache), injected
into a page by Playwright; `violations` returns the serious and critical ones in words."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

CACHE = Path(os.environ.get("CONTACTD_CACHE", "/var/cache/contactd"))
SEVERE = ("serious", "critical")
# The rules whose outcome a theme (colours only) can change.
COLOUR_RULES = ("color-contrast", "link-in-text-block")


@cache
def axe_script() -> str:
    """The axe.min.js installed by scripts/install-test-deps (or $CONTACTD_AXE)."""
    given = os.environ.get("CONTACTD_AXE")
    found = (
        [Path(given)]
        if given
        else sorted(CACHE.glob("axe-core-*/node_modules/axe-core/axe.min.js"), reverse=True)
    )
    for path in found:
        if path.is_file():
            return path.read_text("utf-8")
    raise RuntimeError(f"axe-core not found under {CACHE}: run scripts/install-test-deps")


async def violations(page: Page, only: tuple[str, ...] = ()) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now, one line each
    (`only`: run just these rules)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=axe_script())  # the context must bypass the CSP
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in SEVERE
    ]
