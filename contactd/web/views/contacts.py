"""The contacts table: search as you type (contactd.crm.search), filter by tag and owner.

The page works without script (the form is a plain GET); web/static/panel.js asks for the
rows only (header X-Partial: rows) while the user types and swaps them in.
"""

from __future__ import annotations

from aiohttp import web

from contactd.crm.search import Filters
from contactd.enums import Role
from contactd.errors import ValidationError
from contactd.web.access import requires
from contactd.web.keys import SEARCH, principal
from contactd.web.render import page

PAGE_SIZE = 50
MAX_OFFSET = 10_000


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise ValidationError(f"{name} must be a whole number from 0 to {maximum}", field=name)
    return int(raw)


@requires(Role.AGENT)
async def contacts(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:200]
    tag = request.query.get("tag", "").strip()
    mine = request.query.get("owner") == "me"
    offset = _int(request, "offset", 0, MAX_OFFSET)
    filters = Filters(
        query=query,
        tags=(tag,) if tag else (),
        owner_id=principal(request).user.id if mine else None,
    )
    result = await request.app[SEARCH].search(filters, limit=PAGE_SIZE + 1, offset=offset)
    hits = result.hits[:PAGE_SIZE]
    context = {
        "hits": hits, "q": query, "tag": tag, "mine": mine, "offset": offset,
        "next_offset": offset + PAGE_SIZE if len(result.hits) > PAGE_SIZE else None,
    }
    template = "contacts_rows.html" if request.headers.get("X-Partial") == "rows" else (
        "contacts.html"
    )
    return page(request, template, context)


def setup(app: web.Application) -> None:
    app.router.add_get("/contacts", contacts)
