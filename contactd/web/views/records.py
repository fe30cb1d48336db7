"""The contact card (/contacts/{id}): the record, its consent and products, the timeline a
page at a time, and the inline edit that refuses a stale form rather than overwrite."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import available_timezones

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.orm import Session

from contactd.auth.audit import Actor
from contactd.crm.card import (
    Cursor,
    read_card,
    read_organisation_choices,
    read_timeline_page,
    timeline_page,
)
from contactd.crm.editing import edit_contact
from contactd.crm.errors import StaleEditError
from contactd.db.models import DocumentTemplate
from contactd.enums import Channel, PartyKind, Role
from contactd.errors import ContactdError, ValidationError
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import CONTACTS, DATABASE, USERS, principal
from contactd.web.render import page, status_of

CUSTOM_PREFIX = "custom."
TEXT_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "job_title": 200,
    "language": 16,
    "notes": 20_000,
}


def contact_id_of(request: web.Request) -> int:
    raw = request.match_info["contact_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound()
    return int(raw)


def actor_of(request: web.Request) -> Actor:
    return Actor(user_id=principal(request).user.id, remote_addr=request.remote)


def _choice(form: MultiDictProxy[Any], name: str, enum: type[PartyKind] | type[Channel]) -> Any:
    raw = str(form.get(name, "")).strip()
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        raise ValidationError(f"{name} has no choice {raw!r}", field=name) from None


def _optional_id(form: MultiDictProxy[Any], name: str) -> int | None:
    raw = str(form.get(name, "")).strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError(f"{name} must be a number", field=name)
    return int(raw)


def parse_edit(form: MultiDictProxy[Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(version, plain changes, custom values) from the card's edit form."""
    raw_version = str(form.get("version", ""))
    if not raw_version.isdigit():
        raise ValidationError("the form carries no version; reload the page", field="version")
    changes: dict[str, Any] = {}
    for name, limit in TEXT_LIMITS.items():
        if name in form:
            value = str(form[name]).strip()
            if len(value) > limit:
                raise ValidationError(f"{name} is longer than {limit} characters", field=name)
            changes[name] = value
    if "timezone" in form:
        zone = str(form["timezone"]).strip() or None
        if zone is not None and zone not in available_timezones():
            raise ValidationError(f"{zone!r} is not a time zone name", field="timezone")
        changes["timezone"] = zone
    if "kind" in form:
        changes["kind"] = _choice(form, "kind", PartyKind)
    if "preferred_channel" in form:
        changes["preferred_channel"] = _choice(form, "preferred_channel", Channel)
    for name in ("owner_id", "organisation_id"):
        if name in form:
            changes[name] = _optional_id(form, name)
    custom = {
        key[len(CUSTOM_PREFIX) :]: str(value)
        for key, value in form.items()
        if key.startswith(CUSTOM_PREFIX)
    }
    return int(raw_version), changes, custom


async def _card_page(
    request: web.Request,
    contact_id: int,
    *,
    message: str = "",
    error: str = "",
    unsaved: dict[str, Any] | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    raw_before = request.query.get("before", "")
    before = Cursor.decode(raw_before) if raw_before else None

    def read(session: Session) -> dict[str, Any]:
        # The whole card in one read: record, a timeline page and the form's choices.
        card = read_card(session, contact_id)
        return {
            "card": card,
            "c": card.contact,
            "timeline": read_timeline_page(session, contact_id, before=before),
            "organisations": read_organisation_choices(session),
            "doc_templates": [
                (name, kind)
                for name, kind in session.execute(
                    select(DocumentTemplate.name, DocumentTemplate.kind)
                    .distinct()
                    .order_by(DocumentTemplate.name)
                )
            ],
        }

    found = await request.app[DATABASE].read(read)
    users = [u for u in await request.app[USERS].list_all() if u.active]
    return page(
        request,
        "card.html",
        found
        | {
            "paged": before is not None,
            "users": users,
            "kinds": list(PartyKind),
            "channels": list(Channel),
            "message": message,
            "error": error,
            "unsaved": unsaved or {},
            "typed": typed or {},
            "duration": duration,
        },
        status=status,
    )


def duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


@requires(Role.AGENT)
async def card(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    if request.headers.get("X-Partial") == "timeline":
        raw = request.query.get("before", "")
        timeline = await timeline_page(
            request.app[DATABASE], contact_id, before=Cursor.decode(raw) if raw else None
        )
        return page(
            request,
            "card_timeline.html",
            {"timeline": timeline, "c": {"id": contact_id}, "duration": duration},
        )
    saved = request.query.get("saved") == "1"
    return await _card_page(request, contact_id, message=_("Saved.") if saved else "")


@requires(Role.AGENT)
async def card_edit(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    form = await request.post()
    unsaved = {k: v for k, v in form.items() if k not in ("csrf_token", "version")}
    try:
        version, changes, custom = parse_edit(form)
        await edit_contact(
            request.app[CONTACTS],
            contact_id,
            version=version,
            changes=changes,
            custom=custom,
            actor=actor_of(request),
        )
    except StaleEditError as exc:
        # The current values are shown; what this user typed is listed beside them, not lost.
        return await _card_page(request, contact_id, error=exc.message, unsaved=unsaved, status=409)
    except ContactdError as exc:
        return await _card_page(
            request, contact_id, error=exc.message, typed=unsaved, status=status_of(exc)
        )
    raise web.HTTPSeeOther(f"/contacts/{contact_id}?saved=1")


def setup(app: web.Application) -> None:
    app.router.add_get(r"/contacts/{contact_id:\d+}", card)
    app.router.add_post(r"/contacts/{contact_id:\d+}", card_edit)
