"""Merge two contacts (supervisors and admins): a preview of the surviving record (the same
rule as contactd.crm.merge) and what moves to it, then the merge, audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from contactd.auth import audit
from contactd.crm.card import load_card
from contactd.crm.merge import MOVED, merge_contacts, merged_values
from contactd.enums import Role
from contactd.errors import ValidationError
from contactd.web.access import requires
from contactd.web.keys import DATABASE
from contactd.web.render import page
from contactd.web.views.records import actor_of, contact_id_of


def _other(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationError("other must be a contact id", field="other")
    return int(raw)


@requires(Role.SUPERVISOR)
async def merge_preview(request: web.Request) -> web.StreamResponse:
    survivor_id = contact_id_of(request)
    raw = request.query.get("other", "").strip()
    context: dict[str, Any] = {"survivor": (await load_card(request.app[DATABASE],
                                                            survivor_id)).contact,
                               "other": None, "raw_other": raw}
    if raw:
        other_id = _other(raw)
        if other_id == survivor_id:
            raise ValidationError("cannot merge a contact into itself", field="other")
        db = request.app[DATABASE]
        survivor, other = (await load_card(db, survivor_id)), (await load_card(db, other_id))
        values = merged_values(survivor.contact, other.contact)
        moved: dict[str, int] = {}
        async with db.session() as session:
            for model in MOVED:
                table: Any = model.__table__
                n = await session.scalar(select(func.count()).select_from(table)
                                         .where(table.c.contact_id == other_id))
                if n:
                    moved[table.name] = int(n)
        s, o = survivor.contact, other.contact
        context.update(
            other=o, values=values, moved=moved,
            phones=sorted({p.e164 for p in (*s.phones, *o.phones)}),
            emails=sorted({e.address for e in (*s.emails, *o.emails)}),
            tags=sorted({t.name for t in (*s.tags, *o.tags)}),
            fields=["first_name", "last_name", "job_title", "timezone", "preferred_channel",
                    "kind", "owner_id", "organisation_id"],
        )
    return page(request, "merge.html", context)


@requires(Role.SUPERVISOR)
async def merge(request: web.Request) -> web.StreamResponse:
    survivor_id = contact_id_of(request)
    form = await request.post()
    other_id = _other(str(form.get("other", "")))
    result = await merge_contacts(request.app[DATABASE], survivor_id, other_id)
    async with request.app[DATABASE].transaction() as session:
        audit.record(session, actor_of(request), "contact.merge", "contact", survivor_id,
                     {"merged_id": other_id}, {"moved": result.moved})
    raise web.HTTPSeeOther(f"/contacts/{survivor_id}?merged={other_id}")


def setup(app: web.Application) -> None:
    app.router.add_get(r"/contacts/{contact_id:\d+}/merge", merge_preview)
    app.router.add_post(r"/contacts/{contact_id:\d+}/merge", merge)
