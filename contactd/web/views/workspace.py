"""The agent workspace (/workspace): join a campaign, Ready/Pause, the contact's card pushed
over SSE when a call arrives, dispositions, the call script, preview and click-to-call.

Every form posts and comes back to /workspace (303), so the page works without script;
web/static/workspace.js listens on /workspace/events and fills the card in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Final
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from contactd.auth.audit import Actor
from contactd.db.models.users import User
from contactd.dialer.dispositions import campaign_dispositions
from contactd.enums import CampaignMode, Role
from contactd.errors import ContactdError, ValidationError
from contactd.events import EventBus
from contactd.web.access import requires
from contactd.web.card import Card
from contactd.web.desk import AgentDesk
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, SETTINGS, principal
from contactd.web.live import LiveHub
from contactd.web.render import page
from contactd.web.services import SERVICES

DESK = web.AppKey("agent_desk", AgentDesk)
LIVE = web.AppKey("live_hub", LiveHub)
KEEPALIVE_S: Final = 20.0  # a comment line this often keeps proxies from closing the stream

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
Step = Callable[[web.Request, AgentDesk, User, Form], Awaitable[object]]


def _actor(request: web.Request) -> Actor:
    return Actor(user_id=principal(request).user.id, remote_addr=request.remote)


def _back(message: str = "", error: str = "") -> web.HTTPSeeOther:
    query = {k: v for k, v in (("message", message), ("error", error)) if v}
    return web.HTTPSeeOther(str(URL("/workspace").with_query(query)))


def _int(form: Form, name: str) -> int:
    raw = str(form.get(name, "")).strip()
    if not raw.isdigit():
        raise ValidationError(f"{name} must be a whole number", field=name)
    return int(raw)


def _optional_int(form: Form, name: str) -> int | None:
    """An optional choice ("" = none)."""
    return _int(form, name) if str(form.get(name, "")).strip() else None


def _callback_at(form: Form, zone_name: str) -> datetime | None:
    """The form's local date and time; the browser's UTC offset when the script sent it,
    else the configured time zone."""
    raw = str(form.get("callback_at", "")).strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"callback time {raw!r} is not a date and time",
                              field="callback_at") from None
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    offset = str(form.get("tz_offset", "")).strip()
    if offset.lstrip("-").isdigit() and abs(int(offset)) <= 14 * 60:
        # JavaScript's getTimezoneOffset(): minutes to add to local time to reach UTC.
        return local.replace(tzinfo=timezone(timedelta(minutes=-int(offset)))).astimezone(UTC)
    return local.replace(tzinfo=ZoneInfo(zone_name)).astimezone(UTC)


def labels() -> dict[str, dict[str, str]]:
    """Words for the states, modes, dispositions and pause codes, in the page's language."""
    return {
        "states": {"free": _("Ready"), "talking": _("On a call"), "wrapping": _("Wrap-up"),
                   "paused": _("Paused")},
        "modes": {"preview": _("preview"), "progressive": _("progressive"),
                  "predictive": _("predictive"), "automated": _("automated")},
        "dispositions": {
            "sale": _("Sale"), "not_interested": _("Not interested"),
            "callback": _("Callback"), "no_answer": _("No answer"), "busy": _("Busy"),
            "machine": _("Answering machine"), "wrong_number": _("Wrong number"),
            "do_not_call": _("Do not call"),
        },
        "pauses": {"break": _("Break"), "lunch": _("Lunch"), "training": _("Training"),
                   "meeting": _("Meeting"), "after_call_work": _("After-call work"),
                   "no_answer": _("Your phone did not answer a caller"),
                   "tab_closed": _("The workspace was closed"),
                   "phone_lost": _("Your browser phone lost its registration")},
    }


@requires(Role.AGENT)
async def workspace(request: web.Request) -> web.StreamResponse:
    user = principal(request).user
    desk = request.app[DESK]
    settings = request.app[SETTINGS]
    seat = await desk.seat(user)
    live = request.app[LIVE].last.get(user.username) if seat else None
    preview = None
    if (seat is not None and seat.campaign is not None
            and seat.campaign.mode is CampaignMode.PREVIEW and live is None):
        preview = await desk.preview(user)
    dispositions = []
    if seat is not None and seat.campaign is not None:
        dispositions = [d.name for d in campaign_dispositions(seat.campaign, settings.dialer)]
    phones = request.app[SERVICES].webrtc
    browser_phone = seat is not None and phones is not None and not user.extension
    response = page(request, "workspace.html", {
        "browser_phone": browser_phone,
        "seat": seat, "campaigns": [] if seat else await desk.campaigns(user),
        "queues": [] if seat else desk.queues(user),
        "card": live["card"] if live else Card(None, None, "").as_json(),
        "ended": bool(live and live.get("ended")), "preview": preview,
        "pause_codes": desk.pause_codes, "dispositions": dispositions, "labels": labels(),
        "wrap_s": desk.wrap_s,
        "transfer_targets": _targets(desk, user) if seat is not None else [],
        "message": request.query.get("message", ""), "error": request.query.get("error", ""),
    })
    if browser_phone and phones is not None:
        # The phone's WebSocket goes to Asterisk (another origin unless a proxy joins them).
        ws = URL(phones.settings.ws_url)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; connect-src 'self' {ws.scheme}://{ws.authority}; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    return response


@requires(Role.AGENT)
async def phone_credentials(request: web.Request) -> web.StreamResponse:
    """The browser phone's SIP credentials, minted for this panel session (POST with the
    CSRF token; never in the page source). A new mint replaces the agent's previous password."""
    phones = request.app[SERVICES].webrtc
    if phones is None:
        return web.json_response(
            {"error": _("Browser phones are off on this server (webrtc.enabled).")}, status=404)
    user = principal(request).user
    creds = await phones.mint(user.username, user.display_name)
    return web.json_response(creds.as_json(), headers={"Cache-Control": "no-store"})


QUALITY_FIELDS: Final = ("jitter_ms", "loss_pct", "rtt_ms", "packets_received",
                          "packets_sent", "packets_lost")


@requires(Role.AGENT)
async def phone_quality(request: web.Request) -> web.StreamResponse:
    """The browser phone posts the call's getStats figures at hang-up (JSON, CSRF header);
    they are kept on the call's interaction. 409 while the call is not recorded yet."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("attempt_id"), str):
        return web.json_response({"error": "attempt_id (a string) is required"}, status=400)
    figures: dict[str, float] = {}
    for name in QUALITY_FIELDS:
        value = body.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            return web.json_response(
                {"error": f"{name} must be a number of at least 0"}, status=400)
        figures[name] = float(value)
    try:
        stored = await request.app[DESK].store_quality(
            principal(request).user, body["attempt_id"], figures)
    except ContactdError as exc:
        return web.json_response({"error": exc.message}, status=404)
    if not stored:
        return web.json_response({"error": "the call is not recorded yet"}, status=409)
    return web.json_response({"stored": True})


async def _act(request: web.Request, done: str, step: Step) -> web.StreamResponse:
    """Runs one desk action from a form and comes back to the workspace with its result."""
    form = await request.post()
    try:
        await step(request, request.app[DESK], principal(request).user, form)
    except ContactdError as exc:
        raise _back(error=exc.message) from None
    raise _back(message=done)


@requires(Role.AGENT)
async def join(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("You joined the campaign. Say Ready to take calls."),
                      lambda r, desk, user, form: desk.join(
                          user, _optional_int(form, "campaign_id"), _actor(r),
                          [str(q) for q in form.getall("queue", [])]))


@requires(Role.AGENT)
async def leave(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("You left the campaign."),
                      lambda r, desk, user, form: desk.leave(user, _actor(r)))


@requires(Role.AGENT)
async def ready(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("Ready: calls come to you now."),
                      lambda r, desk, user, form: desk.ready(user, _actor(r)))


@requires(Role.AGENT)
async def pause(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("Paused."), lambda r, desk, user, form: desk.pause(
        user, str(form.get("pause_code", "")), _actor(r)))


@requires(Role.AGENT)
async def dispose(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("Disposition saved."), lambda r, desk, user, form: desk.dispose(
        user, str(form.get("attempt_id", "")), str(form.get("disposition", "")),
        _callback_at(form, r.app[SETTINGS].general.timezone)))


def _targets(desk: AgentDesk, user: User) -> list[tuple[str, str]]:
    """Transfer targets as the select shows them: agents by name, queues as "Queue: name"."""
    return [(value, _("Queue: %(name)s") % {"name": label} if value.startswith("queue:")
             else label) for value, label in desk.transfer_targets(user)]


@requires(Role.AGENT)
async def transfer_targets(request: web.Request) -> web.StreamResponse:
    """Who can take a call now (the page asks when a call arrives and when the list opens)."""
    targets = _targets(request.app[DESK], principal(request).user)
    return web.json_response([{"value": v, "label": label} for v, label in targets],
                             headers={"Cache-Control": "no-store"})


@requires(Role.AGENT)
async def transfer(request: web.Request) -> web.StreamResponse:
    """Blind transfer of the agent's call to a Ready agent or an inbound queue."""
    return await _act(request, _("Call transferred."), lambda r, desk, user, form: desk.transfer(
        user, str(form.get("target", "")), _actor(r)))


async def _skip(request: web.Request, desk: AgentDesk, user: User, form: Form) -> None:
    desk.skip(user, _int(form, "lead_id"))


@requires(Role.AGENT)
async def preview_skip(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("Skipped."), _skip)


@requires(Role.AGENT)
async def preview_dial(request: web.Request) -> web.StreamResponse:
    return await _act(request, _("Dialling: the card comes when the person answers."),
                      lambda r, desk, user, form: desk.dial_preview(user, _int(form, "lead_id")))


@requires(Role.AGENT)
async def call(request: web.Request) -> web.StreamResponse:
    def contact(form: Form) -> int | None:
        raw = str(form.get("contact_id", "")).strip()
        return int(raw) if raw.isdigit() else None

    return await _act(request, _("Your phone rings first, then the number."),
                      lambda r, desk, user, form: desk.click_to_call(
                          user, str(form.get("number", "")), contact(form)))


@requires(Role.AGENT)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events for this agent's tab: offer (the card), ended, disposed."""
    hub = request.app[LIVE]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    agent = principal(request).user.username
    # A tab that went away (closed, reloaded) ends its stream here, quietly.
    with hub.listen(agent) as queue, contextlib.suppress(ConnectionResetError):
        await response.write(b": open\n\n")
        current = hub.last.get(agent)
        if current is not None:  # offered between the page's render and this stream
            queue.put_nowait(current)
        while True:
            try:
                push = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if push is None:  # the server is stopping
                break
            data = json.dumps(push, separators=(",", ":"))
            await response.write(f"event: {push['type']}\ndata: {data}\n\n".encode())
    return response


def setup(app: web.Application) -> None:
    """The desk and the live hub (one bus subscription for the whole panel), then the routes."""
    services = app[SERVICES]
    hub = LiveHub(app[DATABASE], services.bus or EventBus(), app[SETTINGS].dialer)
    app[LIVE] = hub
    app[DESK] = AgentDesk(app[DATABASE], app[SETTINGS], services, hub)

    async def live(_app: web.Application) -> AsyncIterator[None]:
        async with hub:
            yield

    async def end_streams(_app: web.Application) -> None:
        hub.close_tabs()  # open event streams end now, so the server stops without waiting

    app.cleanup_ctx.append(live)
    app.on_shutdown.append(end_streams)
    app.router.add_get("/workspace", workspace)
    app.router.add_get("/workspace/events", events)
    app.router.add_post("/workspace/join", join)
    app.router.add_post("/workspace/leave", leave)
    app.router.add_post("/workspace/ready", ready)
    app.router.add_post("/workspace/pause", pause)
    app.router.add_post("/workspace/disposition", dispose)
    app.router.add_post("/workspace/transfer", transfer)
    app.router.add_get("/workspace/transfer-targets", transfer_targets)
    app.router.add_post("/workspace/preview/skip", preview_skip)
    app.router.add_post("/workspace/preview/dial", preview_dial)
    app.router.add_post("/workspace/call", call)
    app.router.add_post("/workspace/phone/credentials", phone_credentials)
    app.router.add_post("/workspace/phone/quality", phone_quality)
