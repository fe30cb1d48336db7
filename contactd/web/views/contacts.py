"""The contacts table: search as you type (contactd.crm.search), filters (tag, owner, kind,
custom field), sort, pages by key, bulk tag (agents) and bulk assign (supervisors), and an
export of the very view on screen (same filters, order and columns) to CSV or XLSX.

The page works without script (the form is a plain GET); web/static/panel.js asks for the
rows only (header X-Partial: rows) while the user types and swaps them in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from contactd.crm.editing import bulk_assign, bulk_tag
from contactd.crm.search import Filters, SearchHit, Sort
from contactd.crm.spreadsheet import write_csv, write_xlsx
from contactd.enums import PartyKind, Role
from contactd.errors import ValidationError
from contactd.web.access import requires, safe_next, visible_owners
from contactd.web.i18n import gettext as _
from contactd.web.keys import CONTACTS, SEARCH, USERS, principal
from contactd.web.render import page
from contactd.web.views.records import actor_of

PAGE_SIZE: Final = 50
EXPORT_MAX_ROWS: Final = 100_000
BULK_MAX: Final = 500


def _sort(request: web.Request) -> Sort:
    raw = request.query.get("sort", "") or Sort.RELEVANCE.value
    try:
        return Sort(raw)
    except ValueError:
        raise ValidationError(f"sort must be one of {', '.join(Sort)}", field="sort") from None


def encode_after(key: tuple[Any, ...]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_after(raw: str, sort: Sort) -> tuple[Any, ...]:
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(values, list) or not values:
            raise ValueError
        if sort is Sort.UPDATED:
            values[0] = datetime.fromisoformat(values[0])
        return tuple(values)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("after is not a position in this list", field="after") from None


def _filters(request: web.Request) -> tuple[Filters, dict[str, str]]:
    """The view's filters, and the raw values to put back in the form and links."""
    q = request.query
    shown = {name: q.get(name, "").strip()[:200]
             for name in ("q", "tag", "owner", "kind", "field", "value", "sort")}
    owner_id: int | None = None
    if shown["owner"] == "me":
        owner_id = principal(request).user.id
    elif shown["owner"]:
        if not shown["owner"].isdigit():
            raise ValidationError("owner must be me or a user id", field="owner")
        owner_id = int(shown["owner"])
    if shown["kind"] and shown["kind"] not in set(PartyKind):
        raise ValidationError(f"kind must be one of {', '.join(PartyKind)}", field="kind")
    if shown["value"] and not shown["field"]:
        raise ValidationError("choose the custom field the value is for", field="field")
    filters = Filters(
        query=shown["q"], tags=(shown["tag"],) if shown["tag"] else (), owner_id=owner_id,
        kind=shown["kind"] or None,
        custom=((shown["field"], shown["value"]),) if shown["field"] else (),
    )
    return filters, shown


async def _scoped(request: web.Request, filters: Filters) -> Filters:
    """Teams: an agent's list holds only their team's contacts (contactd/web/access.py)."""
    owners = await visible_owners(request)
    return filters if owners is None else dataclasses.replace(filters, owners=tuple(owners))


async def _owner_names(request: web.Request) -> dict[int, str]:
    return {u.id: u.display_name or u.username for u in await request.app[USERS].list_all()}


@requires(Role.AGENT)
async def contacts(request: web.Request) -> web.StreamResponse:
    filters, shown = _filters(request)
    filters = await _scoped(request, filters)
    sort = _sort(request)
    raw_after = request.query.get("after", "")
    after = decode_after(raw_after, sort) if raw_after else None
    result = await request.app[SEARCH].search(filters, limit=PAGE_SIZE + 1, sort=sort,
                                              after=after, as_you_type=True)
    hits = result.hits[:PAGE_SIZE]
    more = len(result.hits) > PAGE_SIZE
    done = request.query.get("done", "")
    context = {
        "hits": hits, "shown": shown, "q": shown["q"], "sorts": list(Sort),
        "view_qs": urlencode({k: v for k, v in shown.items() if v}),
        "kinds": list(PartyKind), "fields": await request.app[CONTACTS].field_defs(),
        "users": [u for u in await request.app[USERS].list_all() if u.active],
        "owners": await _owner_names(request), "paged": after is not None,
        "next_after": encode_after(hits[-1].key) if more and hits else None,
        "message": _("%(n)s contacts changed.") % {"n": done} if done.isdigit() else "",
    }
    template = "contacts_rows.html" if request.headers.get("X-Partial") == "rows" else (
        "contacts.html"
    )
    return page(request, template, context)


@requires(Role.AGENT)
async def contacts_export(request: web.Request) -> web.StreamResponse:
    """Every row of the view, in its order, with the table's columns and headings."""
    fmt = request.match_info["fmt"]
    filters, _shown = _filters(request)
    filters = await _scoped(request, filters)
    sort = _sort(request)
    owners = await _owner_names(request)
    rows: list[list[Any]] = []
    after: tuple[Any, ...] | None = None
    while True:
        found = await request.app[SEARCH].search(filters, limit=1000, sort=sort, after=after,
                                                 as_you_type=True)
        rows.extend(_row(hit, owners) for hit in found.hits)
        if len(found.hits) < 1000:
            break
        if len(rows) > EXPORT_MAX_ROWS:
            raise ValidationError(
                f"this view has more than {EXPORT_MAX_ROWS} contacts; narrow it to export")
        after = found.hits[-1].key
    header = [_("Name"), _("Organisation"), _("Phone"), _("E-mail"), _("Owner")]
    data = await asyncio.to_thread(_spreadsheet, fmt, header, rows)
    kind = "text/csv; charset=utf-8" if fmt == "csv" else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return web.Response(body=data, headers={
        "Content-Type": kind, "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="contacts.{fmt}"'})


def _row(hit: SearchHit, owners: dict[int, str]) -> list[Any]:
    return [hit.display_name, hit.organisation or "", hit.phone or "", hit.email or "",
            owners.get(hit.owner_id, "") if hit.owner_id is not None else ""]


def _spreadsheet(fmt: str, header: list[str], rows: list[list[Any]]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"contacts.{fmt}"
        if fmt == "csv":
            write_csv(target, header, rows)
        else:
            write_xlsx(target, "contacts", header, rows)
        return target.read_bytes()


def _selected(form: Any) -> list[int]:
    ids = [str(v) for v in form.getall("id", [])]
    if not ids:
        raise ValidationError("select at least one contact", field="id")
    if len(ids) > BULK_MAX or not all(i.isdigit() for i in ids):
        raise ValidationError(f"select from 1 to {BULK_MAX} contacts by id", field="id")
    return [int(i) for i in ids]


def _back(form: Any, changed: int) -> web.HTTPSeeOther:
    target = safe_next(str(form.get("back", "")))
    if not target.startswith("/contacts"):
        target = "/contacts"
    return web.HTTPSeeOther(f"{target}{'&' if '?' in target else '?'}done={changed}")


@requires(Role.AGENT)
async def contacts_bulk_tag(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    changed = await bulk_tag(request.app[CONTACTS], _selected(form), str(form.get("tag", "")),
                             actor=actor_of(request))
    raise _back(form, changed)


@requires(Role.SUPERVISOR)
async def contacts_bulk_assign(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    raw = str(form.get("owner_id", ""))
    if raw and not raw.isdigit():
        raise ValidationError("owner_id must be a user id", field="owner_id")
    changed = await bulk_assign(request.app[CONTACTS], _selected(form),
                                int(raw) if raw else None, actor=actor_of(request))
    raise _back(form, changed)


def setup(app: web.Application) -> None:
    app.router.add_get("/contacts", contacts)
    app.router.add_get(r"/contacts/export.{fmt:csv|xlsx}", contacts_export)
    app.router.add_post("/contacts/bulk/tag", contacts_bulk_tag)
    app.router.add_post("/contacts/bulk/assign", contacts_bulk_assign)
