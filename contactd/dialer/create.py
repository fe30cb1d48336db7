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
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Final

from sqlalchemy import select

from contactd.config import Settings
from contactd.db.models.crm import ContactPhone
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.dialvalues import check_value
from contactd.enums import MESSAGE_CAMPAIGN_MODES, CampaignMode
from contactd.errors import ConflictError, ValidationError
from contactd.phones import parse_phone


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    mode: str
    caller_id: str = ""
    message: str = ""  # a sound file name (automated campaigns without an IVR flow)
    ivr_flow: str | None = None
    message_text: str = ""  # spoken by the IVR (TTS); mode "message"
    agent_queue: str | None = None
    max_attempts: int | None = None  # None: [dialer] max_attempts


# Modes a person asks for that are automated campaigns of one kind: "message" speaks
# message_text to the callee, "survey" runs an IVR flow that stores the answers.
AUTOMATED_KINDS: Final = ("message", "survey")
MESSAGE_TEXT_MAX: Final = 2000
# Contact fields a spoken message may name, e.g. "Hello {first_name}".
MESSAGE_FIELDS: Final = ("first_name", "last_name", "name")


def check_message_text(text: str) -> str:
    """The text when the IVR can speak it; ValidationError naming what is wrong."""
    if not text.strip():
        raise ValidationError("message_text is empty", field="message_text")
    if len(text) > MESSAGE_TEXT_MAX:
        raise ValidationError(f"message_text has {len(text)} characters; at most "
                              f"{MESSAGE_TEXT_MAX}", field="message_text")
    if "\0" in text:
        raise ValidationError("message_text contains a NUL byte", field="message_text")
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValidationError(f"message_text {text!r}: {exc} (write {{{{ for a brace)",
                              field="message_text") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in MESSAGE_FIELDS or spec or conversion:
            raise ValidationError(
                f"message_text names {{{name}}}; allowed: "
                + ", ".join(f"{{{f}}}" for f in MESSAGE_FIELDS), field="message_text")
    return text


def _shipped_flow_exists(name: str) -> bool:
    # Read as data (the flow files), not through contactd.ivr's code, which sits above us.
    return (resources.files("contactd.ivr") / "flows" / f"{name}.toml").is_file()


def check_spec(spec: CampaignSpec) -> CampaignMode:
    """Every field checked; returns the mode. ValidationError names the first wrong field."""
    kind = spec.mode if spec.mode in AUTOMATED_KINDS else ""
    try:
        mode = CampaignMode.AUTOMATED if kind else CampaignMode(spec.mode)
    except ValueError:
        allowed = ", ".join([*(m.value for m in CampaignMode if m not in MESSAGE_CAMPAIGN_MODES),
                             *AUTOMATED_KINDS])
        raise ValidationError(f"mode {spec.mode!r} is unknown; allowed: {allowed}",
                              field="mode") from None
    if mode in MESSAGE_CAMPAIGN_MODES:
        raise ValidationError(f"mode {spec.mode!r} sends messages, it dials nobody: "
                              "messaging/campaigns.MessageCampaigns creates it", field="mode")
    check_value("name", spec.name)
    check_value("caller_id", spec.caller_id)
    if spec.message:
        check_value("message", spec.message)
    if spec.ivr_flow is not None:
        check_value("ivr_flow", spec.ivr_flow)
    if spec.agent_queue is not None:
        check_value("agent_queue", spec.agent_queue)
    if spec.message_text and kind != "message":
        raise ValidationError("message_text is for --mode message only", field="message_text")
    if kind == "message":
        if spec.ivr_flow:
            raise ValidationError("--mode message speaks --message-text; a flow is for "
                                  "--mode survey", field="ivr_flow")
        if not spec.message_text:
            raise ValidationError("--mode message needs --message-text (the text to speak)",
                                  field="message_text")
        check_message_text(spec.message_text)
    if kind == "survey":
        if not spec.ivr_flow:
            raise ValidationError("--mode survey needs --flow (an IVR flow, e.g. survey)",
                                  field="ivr_flow")
        if not _shipped_flow_exists(spec.ivr_flow):
            raise ValidationError(f"ivr_flow {spec.ivr_flow!r} is not a shipped IVR flow",
                                  field="ivr_flow")
    if mode is CampaignMode.AUTOMATED and not (spec.message or spec.ivr_flow
                                               or spec.message_text):
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
            message_text=spec.message_text,
            ivr_flow=spec.ivr_flow, agent_queue=spec.agent_queue,
            max_attempts=spec.max_attempts or settings.dialer.max_attempts,
        )
        session.add(campaign)
        await session.flush()
        session.add_all([Lead(campaign_id=campaign.id, phone_e164=e164, contact_id=contact_id)
                         for e164, contact_id in leads.items()])
        return CreatedCampaign(campaign.id, campaign.name, len(leads), skipped)
