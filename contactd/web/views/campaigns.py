"""Campaign pages (/campaigns, supervisors): the list with live counts, creating one from a
saved segment, a contact filter or an uploaded number file, its settings, start/pause/stop
through DialerService, and its leads with `dialer explain`'s reasons for each one not being
dialled.

Creating checks the same rules as `contactd campaign create` (dialer/create.py); the settings
the CLI has no flag for (calling hours, retry delays, AMD action, fallback, dispositions) are
checked here first, so nothing is stored unless all of it is valid. Every error names its field.
"""

from __future__ import annotations

import asyncio
import io
import re
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from importlib import resources
from typing import Any, Final

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import func, select
from yarl import URL

from contactd.auth.audit import Actor, record
from contactd.config import Settings
from contactd.crm.search import ContactSearch, Filters
from contactd.db.models.crm import Segment
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.create import (
    CampaignSpec,
    CreatedCampaign,
    check_message_text,
    check_spec,
    create_campaign,
    numbers_from_text,
)
from contactd.dialer.dialvalues import check_value
from contactd.dialer.dispositions import KNOWN as DISPOSITIONS
from contactd.dialer.explain import explain_lead
from contactd.dialer.policy import WEEKDAYS, MachineAction, Refusal, RefusalCode
from contactd.dialer.recovery import change_status
from contactd.enums import (
    MESSAGE_CAMPAIGN_MODES,
    CampaignMode,
    CampaignStatus,
    Channel,
    LeadStatus,
    Role,
)
from contactd.errors import ContactdError, NotFoundError, ValidationError
from contactd.ivr.tts import Tts
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, SEARCH, SETTINGS, principal
from contactd.web.render import page, problem, status_of
from contactd.web.services import SERVICES
from contactd.web.views.floor import FLOOR

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]

LEADS_PAGE: Final = 50  # leads shown per page (each explained: a handful of reads apiece)
SEGMENT_PAGE: Final = 1000
UPLOAD_MAX: Final = 20 * 1024 * 1024
MODES: Final = ("preview", "progressive", "predictive", "message", "survey")
RETRY_FIELDS: Final = ("busy", "no_answer", "machine", "failed")
FALLBACKS: Final = ("", Channel.SMS.value, Channel.EMAIL.value)
TEMPLATE_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
SAMPLE: Final = {"first_name": "Grace", "last_name": "Hopper", "name": "Grace Hopper"}


def refusal_words(refusal: Refusal) -> str:
    """A reason a lead is not dialled, in the page's language where it is a fixed sentence
    (the ones with figures in them keep the dialer's English words for now)."""
    fixed = {
        RefusalCode.CAMPAIGN_NOT_RUNNING: _("the campaign is not running"),
        RefusalCode.DNC_GLOBAL: _("the number is on the global do-not-call list"),
        RefusalCode.DNC_CAMPAIGN: _("the number is on this campaign's do-not-call list"),
        RefusalCode.OPTED_OUT: _("the contact has opted out of calls"),
    }
    return fixed.get(refusal.code, refusal.message)


def labels() -> dict[str, dict[str, str]]:
    return {
        "modes": {
            "preview": _("Preview"),
            "progressive": _("Progressive"),
            "predictive": _("Predictive"),
            "message": _("Automated message"),
            "survey": _("Automated survey (IVR flow)"),
            "automated": _("Automated"),
            "sms": _("SMS"),
            "email": _("E-mail"),
        },
        "status": {
            "draft": _("draft"),
            "running": _("running"),
            "paused": _("paused"),
            "stopped": _("stopped"),
            "finished": _("finished"),
        },
        "leads": {
            "new": _("new"),
            "dialing": _("dialling"),
            "retry": _("retry"),
            "callback": _("callback"),
            "done": _("done"),
            "exhausted": _("exhausted"),
            "dnc": _("do not call"),
            "fallback": _("sent a message instead"),
        },
        "machine": {
            "retry": _("Try again later for a person"),
            "leave_message": _("Leave the campaign's message"),
            "fallback": _("Send the fallback message instead"),
        },
        "fallback": {"": _("None"), "sms": _("SMS"), "email": _("E-mail")},
        "retry": {
            "busy": _("Busy"),
            "no_answer": _("No answer"),
            "machine": _("Answering machine"),
            "failed": _("Failed"),
        },
    }


def _flows() -> list[str]:
    folder = resources.files("contactd.ivr") / "flows"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _id(request: web.Request) -> int:
    raw = request.match_info["campaign_id"]
    if not raw.isdigit():
        raise NotFoundError(f"no campaign {raw}")
    return int(raw)


def _clock_time(raw: str, field: str) -> time | None:
    if not raw:
        return None
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{field} {raw!r} is not a time of day (HH:MM)", field=field
        ) from None


@dataclass(frozen=True)
class Extras:
    """Settings the CLI has no flag for, checked before anything is stored."""

    window_start: time | None
    window_end: time | None
    retry_rules: dict[str, Any]
    calling_days: str | None
    team: str | None
    fallback_channel: Channel | None
    fallback_template: str | None
    dispositions: list[str] | None
    abandon_limit_pct: float | None


def check_extras(form: Form) -> Extras:
    start = _clock_time(_text(form, "window_start"), "window_start")
    end = _clock_time(_text(form, "window_end"), "window_end")
    if (start is None) != (end is None):
        raise ValidationError(
            "calling hours need both a start and an end",
            field="window_start" if start is None else "window_end",
        )
    if start is not None and end is not None and start >= end:
        raise ValidationError(
            f"window_end {end:%H:%M} must be after window_start {start:%H:%M}", field="window_end"
        )
    rules: dict[str, Any] = {}
    for name in RETRY_FIELDS:
        raw = _text(form, f"retry_{name}_min")
        if not raw:
            continue
        if not raw.isdigit():
            raise ValidationError(
                f"retry_{name}_min {raw!r} must be a whole number of minutes",
                field=f"retry_{name}_min",
            )
        rules[name] = int(raw) * 60
    action = _text(form, "machine_action") or MachineAction.RETRY.value
    try:
        rules["machine_action"] = MachineAction(action).value
    except ValueError:
        raise ValidationError(
            f"machine_action {action!r} is unknown; allowed: "
            + ", ".join(m.value for m in MachineAction),
            field="machine_action",
        ) from None
    channel = _text(form, "fallback_channel")
    if channel not in FALLBACKS:
        raise ValidationError(
            f"fallback_channel {channel!r} is unknown; allowed: sms, email",
            field="fallback_channel",
        )
    template = _text(form, "fallback_template") or None
    if template is not None and not TEMPLATE_NAME.fullmatch(template):
        raise ValidationError(
            f"fallback_template {template!r} is not a template name "
            "(letters, digits, '_', '-', '.')",
            field="fallback_template",
        )
    if rules["machine_action"] == MachineAction.FALLBACK.value and not channel:
        raise ValidationError(
            "machine_action fallback needs a fallback_channel", field="fallback_channel"
        )
    raw_dispositions = _text(form, "dispositions")
    dispositions = None
    if raw_dispositions:
        dispositions = [d.strip() for d in raw_dispositions.split(",") if d.strip()]
        for d in dispositions:
            if d not in DISPOSITIONS:
                raise ValidationError(
                    f"dispositions: {d!r} is unknown; allowed: " + ", ".join(DISPOSITIONS),
                    field="dispositions",
                )
    team = _text(form, "team") or None
    if team is not None and len(team) > 64:
        raise ValidationError("team: at most 64 characters", field="team")
    ticked = [day for day in WEEKDAYS if _text(form, f"day_{day}")]  # stored in this order
    # None ticked or all seven: every day.
    calling_days = ",".join(ticked) if 0 < len(ticked) < 7 else None
    raw_limit = _text(form, "abandon_limit_pct")
    limit = None
    if raw_limit:
        try:
            limit = float(raw_limit)
        except ValueError:
            limit = -1.0
        if not 0 < limit <= 100:
            raise ValidationError(
                f"abandon_limit_pct {raw_limit!r} must be a percentage above 0",
                field="abandon_limit_pct",
            )
    return Extras(
        start,
        end,
        rules,
        calling_days,
        team,
        Channel(channel) if channel else None,
        template,
        dispositions,
        limit,
    )


def _apply(campaign: Campaign, extras: Extras, caller_id: str) -> None:
    campaign.window_start, campaign.window_end = extras.window_start, extras.window_end
    campaign.calling_days = extras.calling_days
    campaign.team = extras.team
    campaign.retry_rules = extras.retry_rules
    campaign.fallback_channel, campaign.fallback_template = (
        extras.fallback_channel,
        extras.fallback_template,
    )
    campaign.dispositions = extras.dispositions
    campaign.abandon_limit_pct = extras.abandon_limit_pct
    campaign.caller_id = caller_id


def _spec(form: Form) -> CampaignSpec:
    raw_attempts = _text(form, "max_attempts")
    if raw_attempts and not raw_attempts.isdigit():
        raise ValidationError(
            f"max_attempts {raw_attempts!r} must be a whole number", field="max_attempts"
        )
    mode = _text(form, "mode")
    return CampaignSpec(
        name=_text(form, "name"),
        mode=mode,
        caller_id=_text(form, "caller_id"),
        message_text=_text(form, "message_text") if mode == "message" else "",
        ivr_flow=(_text(form, "ivr_flow") or None) if mode == "survey" else None,
        agent_queue=_text(form, "agent_queue") or None,
        max_attempts=int(raw_attempts) if raw_attempts else None,
    )


async def contacts_of(search: ContactSearch, filters: Filters) -> list[int]:
    """Every contact the filter (or saved segment) selects."""
    ids: list[int] = []
    while True:
        found = await search.search(filters, limit=SEGMENT_PAGE, offset=len(ids))
        ids += [hit.contact_id for hit in found.hits]
        if len(found.hits) < SEGMENT_PAGE:
            return ids


async def _leads_source(
    request: web.Request, form: Form
) -> tuple[list[tuple[str, str]], list[int]]:
    source = _text(form, "source")
    search = request.app[SEARCH]
    if source == "segment":
        segment = _text(form, "segment")
        if not segment:
            raise ValidationError("choose a saved segment", field="segment")
        return [], await contacts_of(search, Filters(segment=segment))
    if source == "filter":
        query, tag = _text(form, "filter_query"), _text(form, "filter_tag")
        if not query and not tag:
            raise ValidationError(
                "a filter needs words to search for or a tag", field="filter_query"
            )
        return [], await contacts_of(search, Filters(query=query, tags=(tag,) if tag else ()))
    if source == "file":
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise ValidationError("choose a file of numbers to upload", field="file")
        blob = await asyncio.to_thread(upload.file.read, UPLOAD_MAX + 1)
        if len(blob) > UPLOAD_MAX:
            raise ValidationError(f"{upload.filename} is larger than 20 MB", field="file")
        try:
            text = blob.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{upload.filename} is not UTF-8 text: {exc}", field="file"
            ) from None
        return [(f"{upload.filename} {where}", raw) for where, raw in numbers_from_text(text)], []
    raise ValidationError(
        "choose where the leads come from: a segment, a filter or a file", field="source"
    )


async def _segments(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Segment.name).order_by(Segment.name)))


def _form_values(form: Form | None) -> dict[str, str]:
    if form is None:
        return {"mode": "progressive", "source": "segment", "machine_action": "retry"}
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _new_page(
    request: web.Request, form: Form | None = None, error: ContactdError | None = None
) -> web.Response:
    return page(
        request,
        "campaigns_new.html",
        {
            "labels": labels(),
            "modes": MODES,
            "flows": _flows(),
            "segments": await _segments(request.app[DATABASE]),
            "machine_actions": [m.value for m in MachineAction],
            "fallbacks": FALLBACKS,
            "retry_fields": RETRY_FIELDS,
            "values": _form_values(form),
            "error": error.message if error else "",
            "error_field": error.details.get("field", "") if error else "",
        },
        status=400 if error else 200,
    )


@requires(Role.SUPERVISOR)
async def campaigns(request: web.Request) -> web.StreamResponse:
    db = request.app[DATABASE]
    async with db.session() as session:
        rows = list(await session.scalars(select(Campaign).order_by(Campaign.name)))
        counts: dict[int, dict[str, int]] = {}
        for campaign_id, status, n in await session.execute(
            select(Lead.campaign_id, Lead.status, func.count()).group_by(
                Lead.campaign_id, Lead.status
            )
        ):
            counts.setdefault(campaign_id, {})[status.value] = n
    floor = request.app[FLOOR].campaigns
    return page(
        request,
        "campaigns.html",
        {
            "campaigns": rows,
            "counts": counts,
            "live": floor,
            "labels": labels(),
            "message": request.query.get("message", ""),
            "error": request.query.get("error", ""),
        },
    )


@requires(Role.SUPERVISOR)
async def new(request: web.Request) -> web.StreamResponse:
    return await _new_page(request)


@requires(Role.SUPERVISOR)
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        spec = _spec(form)
        check_spec(spec)
        extras = check_extras(form)
        numbers, contacts = await _leads_source(request, form)
        db, settings = request.app[DATABASE], request.app[SETTINGS]
        created = await create_campaign(db, settings, spec, numbers=numbers, contacts=contacts)
    except ContactdError as exc:
        return await _new_page(request, form, exc)
    async with db.transaction() as session:
        campaign = await session.get(Campaign, created.campaign_id)
        assert campaign is not None
        _apply(campaign, extras, spec.caller_id)
        record(
            session,
            _actor(request),
            "campaign.create",
            "campaign",
            campaign.id,
            None,
            {
                "name": campaign.name,
                "mode": spec.mode,
                "leads": created.leads,
                "skipped": len(created.skipped),
            },
        )
    request.app[FLOOR].refresh_campaigns()
    return await _show(request, created.campaign_id, created=created)


def _actor(request: web.Request) -> Actor:
    return Actor(user_id=principal(request).user.id, remote_addr=request.remote)


async def _show(
    request: web.Request,
    campaign_id: int,
    *,
    created: CreatedCampaign | None = None,
    error: ContactdError | None = None,
    status: int = 200,
) -> web.Response:
    db, settings = request.app[DATABASE], request.app[SETTINGS]
    offset = request.query.get("offset", "0")
    start = int(offset) if offset.isdigit() else 0
    shown = request.query.get("status", "")
    now = datetime.now(UTC)
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
        counts = dict(
            (s.value, n)
            for s, n in await session.execute(
                select(Lead.status, func.count())
                .where(Lead.campaign_id == campaign_id)
                .group_by(Lead.status)
            )
        )
        query = select(Lead).where(Lead.campaign_id == campaign_id)
        if shown in {s.value for s in LeadStatus}:
            query = query.where(Lead.status == LeadStatus(shown))
        leads = list(
            await session.scalars(query.order_by(Lead.id).offset(start).limit(LEADS_PAGE + 1))
        )
        more = len(leads) > LEADS_PAGE
        rows = []
        for lead in leads[:LEADS_PAGE]:
            reasons: list[str] = []
            dialled = campaign.mode not in MESSAGE_CAMPAIGN_MODES  # an SMS lead is not dialled
            if dialled and lead.status is not LeadStatus.DIALING:
                explanation = await explain_lead(session, settings, lead.id, now)
                reasons = [refusal_words(r) for r in explanation.refusals]
            rows.append((lead, reasons))
    runtime = request.app[SERVICES].dialer
    kind = (
        (
            "message"
            if campaign.message_text
            else "survey"
            if campaign.ivr_flow
            else campaign.mode.value
        )
        if campaign.mode is CampaignMode.AUTOMATED
        else campaign.mode.value
    )
    rules = dict(campaign.retry_rules or {})
    return page(
        request,
        "campaigns_show.html",
        {
            "campaign": campaign,
            "kind": kind,
            "counts": counts,
            "leads": rows,
            "more": more,
            "offset": start,
            "page_size": LEADS_PAGE,
            "shown": shown,
            "labels": labels(),
            "live": request.app[FLOOR].campaigns.get(campaign_id),
            "dialer_running": runtime is not None,
            "created": created,
            "retry_min": {k: int(v) // 60 for k, v in rules.items() if k in RETRY_FIELDS},
            "machine_action": rules.get("machine_action", settings.dialer.machine_action),
            "machine_actions": [m.value for m in MachineAction],
            "fallbacks": FALLBACKS,
            "retry_fields": RETRY_FIELDS,
            "lead_statuses": [s.value for s in LeadStatus],
            "error": error.message if error else request.query.get("error", ""),
            "error_field": error.details.get("field", "") if error else "",
            "message": request.query.get("message", ""),
        },
        status=status,
    )


@requires(Role.SUPERVISOR)
async def show(request: web.Request) -> web.StreamResponse:
    return await _show(request, _id(request))


@requires(Role.SUPERVISOR)
async def save_settings(request: web.Request) -> web.StreamResponse:
    campaign_id = _id(request)
    form = await request.post()
    db = request.app[DATABASE]
    try:
        extras = check_extras(form)
        caller_id = _text(form, "caller_id")
        check_value("caller_id", caller_id)
        async with db.transaction() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None:
                raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
            if campaign.message_text:
                campaign.message_text = check_message_text(_text(form, "message_text"))
            before = {"caller_id": campaign.caller_id, "retry_rules": campaign.retry_rules}
            _apply(campaign, extras, caller_id)
            record(
                session,
                _actor(request),
                "campaign.settings",
                "campaign",
                campaign_id,
                before,
                {"caller_id": caller_id, "retry_rules": extras.retry_rules},
            )
    except ContactdError as exc:
        return await _show(request, campaign_id, error=exc, status=400)
    raise web.HTTPSeeOther(
        str(URL(f"/campaigns/{campaign_id}").with_query(message=_("Settings saved.")))
    )


async def _life(request: web.Request, action: str) -> web.StreamResponse:
    campaign_id = _id(request)
    db = request.app[DATABASE]
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"no campaign {campaign_id}", code="campaign_not_found")
    done = {
        "start": _("Campaign started."),
        "pause": _("Campaign paused."),
        "stop": _("Campaign stopped."),
    }[action]
    try:
        if campaign.mode in MESSAGE_CAMPAIGN_MODES:  # SMS/e-mail: no dialer involved
            status = await _message_life(request, campaign, action)
        else:
            dialer = request.app[SERVICES].need_dialer()
            status = await getattr(dialer, action)(campaign.name)
    except ContactdError as exc:
        raise web.HTTPSeeOther(
            str(URL(f"/campaigns/{campaign_id}").with_query(error=exc.message))
        ) from None
    async with db.transaction() as session:
        record(
            session,
            _actor(request),
            f"campaign.{action}",
            "campaign",
            campaign_id,
            {"status": campaign.status.value},
            {"status": status.value},
        )
    request.app[FLOOR].refresh_campaigns()
    raise web.HTTPSeeOther(str(URL(f"/campaigns/{campaign_id}").with_query(message=done)))


async def _message_life(request: web.Request, campaign: Campaign, action: str) -> CampaignStatus:
    """Start (decide and queue), pause (cancel what is queued) or stop an SMS/e-mail campaign."""
    if action == "stop":
        return await change_status(request.app[DATABASE], campaign.name, CampaignAction.STOP)
    service = request.app[SERVICES].need_message_campaigns()
    if action == "start":
        await service.start(campaign.id)
        return CampaignStatus.RUNNING
    await service.pause(campaign.id)
    return CampaignStatus.PAUSED


@requires(Role.SUPERVISOR)
async def start(request: web.Request) -> web.StreamResponse:
    return await _life(request, "start")


@requires(Role.SUPERVISOR)
async def pause(request: web.Request) -> web.StreamResponse:
    return await _life(request, "pause")


@requires(Role.SUPERVISOR)
async def stop(request: web.Request) -> web.StreamResponse:
    return await _life(request, "stop")


def wav_of(pcm: bytes, rate: int = 8000) -> bytes:
    """16-bit mono PCM (the prompts' slin) as a WAV file the browser plays."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def sample_text(text: str, sample: Mapping[str, str] = SAMPLE) -> str:
    """The message as a callee would hear it, with an example contact's names filled in."""
    return check_message_text(text).format(**sample)


class Speaker:
    """The message preview's voice: the IVR's own TTS when the daemon runs one, else one
    started on the first preview (espeak-ng is one engine per process: never two at once)."""

    def __init__(self, shared: Tts | None, settings: Settings) -> None:
        self._shared, self._settings = shared, settings
        self._own: Tts | None = None
        self._lock = asyncio.Lock()

    async def speak(self, text: str) -> bytes:
        if self._shared is not None:
            return await self._shared.speak(text)
        async with self._lock:
            if self._own is None:
                speech = self._settings.speech
                tts = Tts(
                    speech.prompt_cache_dir or self._settings.general.data_dir / "prompts",
                    default_voice=speech.tts_voice,
                    language=speech.tts_language,
                )
                await tts.__aenter__()
                self._own = tts
        return await self._own.speak(text)

    async def close(self) -> None:
        if self._own is not None:
            await self._own.__aexit__(None, None, None)
            self._own = None


SPEAKER = web.AppKey("campaign_speaker", Speaker)


@requires(Role.SUPERVISOR)
async def preview_audio(request: web.Request) -> web.StreamResponse:
    """The message text spoken by the IVR's TTS, as audio/wav (400 naming the field)."""
    try:
        pcm = await request.app[SPEAKER].speak(sample_text(request.query.get("message_text", "")))
    except ContactdError as exc:
        return problem(status_of(exc), exc.code, exc.message, **exc.details)
    return web.Response(
        body=wav_of(pcm), content_type="audio/wav", headers={"Cache-Control": "no-store"}
    )


def setup(app: web.Application) -> None:
    speaker = Speaker(app[SERVICES].tts, app[SETTINGS])
    app[SPEAKER] = speaker

    async def stop_speaking(_app: web.Application) -> None:
        await speaker.close()

    app.on_cleanup.append(stop_speaking)
    app.router.add_get("/campaigns", campaigns)
    app.router.add_get("/campaigns/new", new)
    app.router.add_post("/campaigns/new", create)
    app.router.add_get("/campaigns/preview.wav", preview_audio)
    app.router.add_get(r"/campaigns/{campaign_id:\d+}", show)
    app.router.add_post(r"/campaigns/{campaign_id:\d+}/settings", save_settings)
    app.router.add_post(r"/campaigns/{campaign_id:\d+}/start", start)
    app.router.add_post(r"/campaigns/{campaign_id:\d+}/pause", pause)
    app.router.add_post(r"/campaigns/{campaign_id:\d+}/stop", stop)
