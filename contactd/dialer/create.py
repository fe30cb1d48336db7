"""Creating a campaign: every field that reaches AMI or the dialplan is checked first.

Public API (the CLI `contactd campaign create` and, later, the web panel use it)::

    spec = CampaignSpec(name="spring", mode="automated", message="custom/spring-offer")
    created = await create_campaign(db, settings, spec, numbers=lines)     # or contacts=ids
    created.campaign_id, created.leads, created.skipped    # skipped: (where, why) per entry

`check_spec(spec)` raises ValidationError naming the field, what is wrong and the characters
allowed. Why so strict: the values travel as AMI channel variables and dialplan arguments,
where a CR/LF ends the AMI message (a header injection), a NUL cuts it, and a comma splits an
application's arguments (`Playback(Hello, world)` plays "Hello" and treats " world" as
options: issue 13). Nothing is stored unless all of it is valid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from contactd.config import Settings
from contactd.db.models.crm import ContactPhone
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.dialvalues import check_value
from contactd.enums import CampaignMode
from contactd.errors import ConflictError, ValidationError
from contactd.phones import parse_phone


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    mode: str
    caller_id: str = ""
    message: str = ""  # a sound file name (automated campaigns without an IVR flow)
    ivr_flow: str | None = None
    agent_queue: str | None = None
    max_attempts: int | None = None  # None: [dialer] max_attempts


def check_spec(spec: CampaignSpec) -> CampaignMode:
    """Every field checked; returns the mode. ValidationError names the first wrong field."""
    try:
        mode = CampaignMode(spec.mode)
    except ValueError:
        allowed = ", ".join(m.value for m in CampaignMode)
        raise ValidationError(f"mode {spec.mode!r} is unknown; allowed: {allowed}",
                              field="mode") from None
    check_value("name", spec.name)
    check_value("caller_id", spec.caller_id)
    if spec.message:
        check_value("message", spec.message)
    if spec.ivr_flow is not None:
        check_value("ivr_flow", spec.ivr_flow)
    if spec.agent_queue is not None:
        check_value("agent_queue", spec.agent_queue)
    if mode is CampaignMode.AUTOMATED and not spec.message and not spec.ivr_flow:
        raise ValidationError("an automated campaign needs --message (a sound file name) or "
                              "--ivr-flow", field="message")
    if spec.max_attempts is not None and spec.max_attempts < 1:
        raise ValidationError(f"max_attempts {spec.max_attempts} must be at least 1",
                              field="max_attempts")
    return mode


@dataclass
class CreatedCampaign:
    campaign_id: int
    name: str
    leads: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)


def numbers_from_text(text: str) -> list[tuple[str, str]]:
    """(where, raw number) per entry of a lead file: a CSV with a `phone` column, or one
    number per line (the first cell). Blank lines are not entries."""
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    column, start = (header.index("phone"), 1) if "phone" in header else (0, 0)
    out = []
    for i, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        out.append((f"line {i}", row[column] if column < len(row) else ""))
    return out


async def create_campaign(
    db: Database,
    settings: Settings,
    spec: CampaignSpec,
    *,
    numbers: Iterable[tuple[str, str]] = (),
    contacts: Sequence[int] = (),
) -> CreatedCampaign:
    """Store a draft campaign and its leads in one transaction (all or nothing).

    `numbers`: (where, raw) entries, each parsed with contactd.phones (general.default_region)
    and linked to the contact holding that number if any. `contacts`: contact ids, each dialled
    on its primary number (else its first). Entries that cannot be dialled are skipped and
    listed; a duplicate number makes one lead.
    """
    mode = check_spec(spec)
    leads: dict[str, int | None] = {}
    skipped: list[tuple[str, str]] = []
    for where, raw in numbers:
        try:
            e164 = parse_phone(raw, settings.general.default_region).e164
        except ValidationError as exc:
            skipped.append((where, str(exc)))
            continue
        leads.setdefault(e164, None)
    async with db.transaction() as session:
        if await session.scalar(select(Campaign.id).where(Campaign.name == spec.name)):
            raise ConflictError(f"a campaign named {spec.name!r} exists already",
                                field="name")
        if contacts:
            phones = (await session.execute(
                select(ContactPhone.contact_id, ContactPhone.e164)
                .where(ContactPhone.contact_id.in_(contacts))
                .order_by(ContactPhone.contact_id, ContactPhone.is_primary.desc(),
                          ContactPhone.id)
            )).all()
            first: dict[int, str] = {}
            for contact_id, e164 in phones:
                first.setdefault(contact_id, e164)
            for contact_id in contacts:
                if contact_id not in first:
                    skipped.append((f"contact {contact_id}", "has no phone number"))
                elif first[contact_id] not in leads:
                    leads[first[contact_id]] = contact_id
        if numbers:  # link file numbers to the contacts that hold them
            owners = (await session.execute(
                select(ContactPhone.e164, ContactPhone.contact_id)
                .where(ContactPhone.e164.in_([n for n, c in leads.items() if c is None]))
                .order_by(ContactPhone.id)
            )).all()
            for e164, owner in owners:
                leads[e164] = leads[e164] or owner
        campaign = Campaign(
            name=spec.name, mode=mode, caller_id=spec.caller_id, message=spec.message,
            ivr_flow=spec.ivr_flow, agent_queue=spec.agent_queue,
            max_attempts=spec.max_attempts or settings.dialer.max_attempts,
        )
        session.add(campaign)
        await session.flush()
        session.add_all([Lead(campaign_id=campaign.id, phone_e164=e164, contact_id=contact_id)
                         for e164, contact_id in leads.items()])
        return CreatedCampaign(campaign.id, campaign.name, len(leads), skipped)
