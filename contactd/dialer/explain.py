"""Why a number may or may not be dialed now: facts from the database, the verdict from policy.

The CLI (`contactd dialer explain`), the web panel's lead view and the dial loop all build the
same `DialRequest` through `build_request` (the dial loop through `build_requests`, its
batch form), so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from contactd.config import DialerSettings, Settings
from contactd.db.models.dialer import Campaign, Lead
from contactd.dialer import repo
from contactd.dialer.campaigns import is_dialing
from contactd.dialer.policy import (
    CallingWindow,
    DialRequest,
    MachineAction,
    Refusal,
    RetryRules,
    callee_zones,
    local_times,
    parse_days,
    rate_window_s,
    refusals,
)
from contactd.errors import NotFoundError
from contactd.phones import parse_phone


def normalise_number(raw: str, default_region: str) -> str:
    """E.164 form of a number typed by a person (contactd.phones: the same rule as the dial
    loop's); ValidationError saying why when it is not a valid number."""
    return parse_phone(raw, default_region).e164


def campaign_window(campaign: Campaign | None, dialer: DialerSettings) -> CallingWindow:
    base = CallingWindow(dialer.window_start, dialer.window_end)
    if campaign is None:
        return base
    days = parse_days(campaign.calling_days) if campaign.calling_days else None
    start, end = campaign.window_start, campaign.window_end
    if start is None or end is None:
        start, end = base.start, base.end
    return base.narrowed(CallingWindow(start, end, days))


def retry_rules_for(campaign: Campaign | None, dialer: DialerSettings) -> RetryRules:
    """[dialer] defaults, overlaid with the campaign's max attempts and stored retry rules."""
    base = RetryRules(
        busy_s=dialer.retry_busy_s,
        no_answer_s=dialer.retry_no_answer_s,
        machine_s=dialer.retry_machine_s,
        failed_s=dialer.retry_failed_s,
        abandoned_s=dialer.retry_abandoned_s,
        max_attempts=campaign.max_attempts if campaign is not None else dialer.max_attempts,
        machine_action=MachineAction(dialer.machine_action),
    )
    if campaign is None or not campaign.retry_rules:
        return base
    return RetryRules.from_mapping(dict(campaign.retry_rules), base)


async def build_request(
    session: AsyncSession,
    settings: Settings,
    e164: str,
    at: datetime,
    campaign: Campaign | None = None,
    lead: Lead | None = None,
) -> DialRequest:
    campaign_id = campaign.id if campaign is not None else None
    if lead is None and campaign is not None:
        lead = await repo.lead_for_number(session, campaign.id, e164)
    contact_id = lead.contact_id if lead is not None else None
    on_global, on_campaign = await repo.dnc_flags(session, e164, campaign_id)
    shared = await _campaign_facts(session, settings, at, campaign)
    return replace(
        shared,
        e164=e164,
        contact_zone=await repo.contact_zone(session, contact_id),
        dnc_global=on_global,
        dnc_campaign=on_campaign,
        opted_out=await repo.opted_out(session, contact_id),
        attempts=lead.attempts if lead is not None else 0,
        next_attempt_at=lead.next_attempt_at if lead is not None else None,
    )


async def build_requests(
    session: AsyncSession, settings: Settings, at: datetime, campaign: Campaign,
    leads: Sequence[Lead],
) -> list[DialRequest]:
    """`build_request` for a campaign's leads at once (the dial loop's claim): one statement
    per kind of fact instead of one per lead. The calls in progress and the recent dials are
    the campaign's as stored; the caller adds the ones it claims before each next lead."""
    contacts = {lead.contact_id for lead in leads if lead.contact_id is not None}
    dnc = await repo.dnc_flags_many(session, [lead.phone_e164 for lead in leads], campaign.id)
    zones = await repo.contact_zones(session, contacts)
    opted_out = await repo.opted_out_many(session, contacts)
    shared = await _campaign_facts(session, settings, at, campaign)
    out = []
    for lead in leads:
        on_global, on_campaign = dnc.get(lead.phone_e164, (False, False))
        out.append(replace(
            shared,
            e164=lead.phone_e164,
            contact_zone=zones.get(lead.contact_id) if lead.contact_id is not None else None,
            dnc_global=on_global,
            dnc_campaign=on_campaign,
            opted_out=lead.contact_id in opted_out,
            attempts=lead.attempts,
            next_attempt_at=lead.next_attempt_at,
        ))
    return out


async def _campaign_facts(
    session: AsyncSession, settings: Settings, at: datetime, campaign: Campaign | None
) -> DialRequest:
    """The facts every number of a campaign shares at `at` (rules, window, caps and load);
    the number's own facts are left at their defaults for the caller to fill."""
    dialer = settings.dialer
    campaign_id = campaign.id if campaign is not None else None
    max_cps = (campaign.max_calls_per_second if campaign and campaign.max_calls_per_second
               else dialer.max_calls_per_second)
    max_concurrent = (campaign.max_concurrent if campaign and campaign.max_concurrent
                      else dialer.max_concurrent_calls)
    return DialRequest(
        e164="",
        at=at,
        window=campaign_window(campaign, dialer),
        fallback_zone=dialer.unknown_zone_fallback or None,
        campaign_running=is_dialing(campaign.status) if campaign is not None else True,
        max_attempts=retry_rules_for(campaign, dialer).max_attempts,
        active_calls=await repo.active_calls(session, campaign_id),
        max_concurrent=max_concurrent,
        recent_dials=await repo.recent_dials(session, campaign_id, at, rate_window_s(max_cps)),
        max_calls_per_second=max_cps,
        ring_timeout_s=dialer.ring_timeout_s,
    )


@dataclass(frozen=True)
class Explanation:
    request: DialRequest
    refusals: list[Refusal]
    local: list[tuple[str, datetime]]

    @property
    def dialable(self) -> bool:
        return not self.refusals

    def lines(self) -> list[str]:
        req = self.request
        verdict = "may be dialed" if self.dialable else "may NOT be dialed"
        out = [f"{req.e164} {verdict} at {req.at.isoformat(timespec='seconds')}"]
        if self.local:
            shown = ", ".join(f"{name} {lt:%Y-%m-%d %H:%M %Z}" for name, lt in self.local[:6])
            more = f" (+{len(self.local) - 6} zones)" if len(self.local) > 6 else ""
            out.append(f"  callee local time: {shown}{more}")
        out.extend(f"  - [{r.code.value}] {r.message}" for r in self.refusals)
        return out


async def explain(
    session: AsyncSession,
    settings: Settings,
    raw_number: str,
    at: datetime,
    campaign_name: str | None = None,
) -> Explanation:
    e164 = normalise_number(raw_number, settings.general.default_region)
    campaign = await repo.campaign_by_name(session, campaign_name) if campaign_name else None
    req = await build_request(session, settings, e164, at, campaign)
    zones = callee_zones(e164, req.contact_zone, req.fallback_zone) or ()
    return Explanation(req, refusals(req), local_times(at, zones))


async def explain_lead(
    session: AsyncSession, settings: Settings, lead_id: int, at: datetime
) -> Explanation:
    """The same answer for one lead, as the web panel shows it on the lead's page."""
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError(f"no lead {lead_id}", lead_id=lead_id)
    campaign = await session.get(Campaign, lead.campaign_id)
    req = await build_request(session, settings, lead.phone_e164, at, campaign, lead)
    zones = callee_zones(lead.phone_e164, req.contact_zone, req.fallback_zone) or ()
    return Explanation(req, refusals(req), local_times(at, zones))
