"""The contact card an agent sees when a call reaches them: who it is, the campaign's call
script filled with the contact's fields, and the campaign's disposition buttons.

Loaded once per call by the live hub (contactd/web/live.py), never once per open tab.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from contactd.config import DialerSettings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import Contact
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.dispositions import campaign_dispositions
from contactd.errors import ValidationError

# The script is text a supervisor wrote: rendered sandboxed, a missing field renders empty.
_ENV: Final = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


@dataclass(frozen=True)
class Card:
    attempt_id: str | None
    lead_id: int | None
    phone: str
    contact_id: int | None = None
    name: str = ""
    company: str = ""
    job_title: str = ""
    email: str = ""
    phones: list[str] = field(default_factory=list)
    notes: str = ""
    campaign_id: int | None = None
    campaign: str = ""
    script: str = ""
    dispositions: list[str] = field(default_factory=list)
    queue: str = ""  # an inbound caller's queue (then attempt_id is the inbound call's id)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def render_script(script: str, contact: Contact | None, phone: str) -> str:
    """The campaign's script with the contact's fields (`{{ first_name }}`, `{{ company }}` …);
    a script that does not parse is shown as written, so the agent still has the text."""
    if not script:
        return ""
    values: dict[str, Any] = {"phone": phone}
    if contact is not None:
        values |= {
            "first_name": contact.first_name, "last_name": contact.last_name,
            "name": f"{contact.first_name} {contact.last_name}".strip(),
            "job_title": contact.job_title,
            "company": contact.organisation.name if contact.organisation else "",
            "email": contact.emails[0].address if contact.emails else "",
            **{f"custom_{k}": v for k, v in (contact.custom or {}).items()},
        }
    try:
        return _ENV.from_string(script).render(values)
    except jinja2.TemplateError:
        return script


def check_script(script: str) -> None:
    """A script that will not render is refused when it is saved, naming the line."""
    try:
        _ENV.parse(script)
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationError(f"the script does not parse at line {exc.lineno}: {exc.message}",
                              field="script") from None


async def _contact(session: AsyncSession, contact_id: int | None) -> Contact | None:
    if contact_id is None:
        return None
    return await session.scalar(
        select(Contact).where(Contact.id == contact_id).options(
            selectinload(Contact.phones), selectinload(Contact.emails),
            selectinload(Contact.organisation)))


def build_card(lead: Lead, campaign: Campaign | None, contact: Contact | None,
               dialer: DialerSettings, attempt_id: str | None) -> Card:
    return Card(
        attempt_id=attempt_id, lead_id=lead.id, phone=lead.phone_e164,
        contact_id=contact.id if contact else None,
        name=f"{contact.first_name} {contact.last_name}".strip() if contact else "",
        company=contact.organisation.name if contact and contact.organisation else "",
        job_title=contact.job_title if contact else "",
        email=contact.emails[0].address if contact and contact.emails else "",
        phones=[p.e164 for p in contact.phones] if contact else [lead.phone_e164],
        notes=contact.notes if contact else "",
        campaign_id=campaign.id if campaign else None,
        campaign=campaign.name if campaign else "",
        script=render_script(campaign.script, contact, lead.phone_e164) if campaign else "",
        dispositions=[d.name for d in campaign_dispositions(campaign, dialer)] if campaign
        else [],
    )


async def card_of_lead(db: Database, dialer: DialerSettings, lead_id: int,
                       attempt_id: str | None = None) -> Card | None:
    async with db.session() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None:
            return None
        campaign = await session.get(Campaign, lead.campaign_id)
        contact = await _contact(session, lead.contact_id)
        return build_card(lead, campaign, contact, dialer, attempt_id)


async def card_of_caller(db: Database, call_id: str, queue: str, phone: str,
                         contact_id: int | None) -> Card:
    """The card of an inbound caller handed to an agent from `queue`."""
    async with db.session() as session:
        contact = await _contact(session, contact_id)
    return Card(
        attempt_id=call_id, lead_id=None, phone=phone, queue=queue,
        contact_id=contact.id if contact else None,
        name=f"{contact.first_name} {contact.last_name}".strip() if contact else "",
        company=contact.organisation.name if contact and contact.organisation else "",
        job_title=contact.job_title if contact else "",
        email=contact.emails[0].address if contact and contact.emails else "",
        phones=[p.e164 for p in contact.phones] if contact else [phone],
        notes=contact.notes if contact else "",
    )


async def card_of_attempt(db: Database, dialer: DialerSettings, attempt_id: str) -> Card | None:
    async with db.session() as session:
        lead_id = await session.scalar(
            select(CallAttempt.lead_id).where(CallAttempt.id == attempt_id))
    if lead_id is None:
        return None
    return await card_of_lead(db, dialer, lead_id, attempt_id)
