"""The operator's campaign flow as CLI subprocesses, shared by the operator and kill -9 tests:
`contactd import contacts people.csv`, `contactd campaign create NAME --from-file people.csv`
(each number linked to its imported contact), `contactd dialer start NAME`; then the books of
the finished campaign read from the database and from what the SIPp carrier received."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from panoramisk.message import Message
from sqlalchemy import select

from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models.calls import CallAttempt
from contactd.db.models.crm import ContactPhone, Interaction
from contactd.db.models.dialer import Campaign, Lead
from contactd.enums import CampaignStatus
from tests.peers.asterisk import AmiEvents
from tests.peers.contactd import contactd_cli

FINISH_TIMEOUT_S = 90.0
RECHECK_S = 1.0  # the longest wait between two looks when no call ends meanwhile


def people_csv(folder: Path, numbers: list[str]) -> Path:
    """A contact export as an operator gets one: names, numbers written the local way."""
    path = folder / "people.csv"
    rows = "".join(f"Person{i},Caller{chr(65 + i)},0{n[3:]}\n" for i, n in enumerate(numbers))
    path.write_text("first_name,last_name,phone\n" + rows, encoding="utf-8")
    return path


async def import_people(config: Path, people: Path, *, count: int) -> None:
    """`contactd import contacts FILE`: every row a new contact."""
    imported = await contactd_cli(config, "import", "contacts", str(people))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert f"imported: {count}" in imported.stdout, imported.stdout


async def create_campaign(
    config: Path, people: Path, name: str, *, message: str, max_attempts: int, count: int
) -> None:
    """`contactd campaign create NAME --from-file FILE`: an automated campaign."""
    made = await contactd_cli(
        config, "campaign", "create", name, "--mode", "automated", "--message", message,
        "--caller-id", '"contactd" <5550100>', "--max-attempts", str(max_attempts),
        "--from-file", str(people))
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"with {count} leads; 0 skipped" in made.stdout, made.stdout


async def import_and_create(
    config: Path, people: Path, name: str, *, message: str, max_attempts: int, count: int
) -> None:
    """`contactd import contacts` then `contactd campaign create` from the same file."""
    await import_people(config, people, count=count)
    await create_campaign(config, people, name, message=message, max_attempts=max_attempts,
                          count=count)


async def start_campaign(config: Path, name: str) -> str:
    """`contactd dialer start NAME`; its output (it says whether a daemon follows)."""
    started = await contactd_cli(config, "dialer", "start", name)
    assert started.returncode == 0, started.stdout + started.stderr
    return started.stdout


async def campaign_status(config: Path, name: str) -> CampaignStatus:
    async with await open_database(load_settings(config, {})) as db, db.session() as session:
        status = await session.scalar(select(Campaign.status).where(Campaign.name == name))
    assert status is not None, f"no campaign {name}"
    return status


async def until_finished(config: Path, name: str, events: AmiEvents) -> None:
    """Until the daemon marks the campaign finished; looks again whenever a call ends."""
    async with asyncio.timeout(FINISH_TIMEOUT_S):
        while await campaign_status(config, name) is not CampaignStatus.FINISHED:
            # Wake on the next AMI event (a call ending), or look again after RECHECK_S:
            # the daemon settles and finishes after the last hangup, with no event of its own.
            with contextlib.suppress(TimeoutError):
                await events.wait_for(_newer_than(events, len(events.seen)), RECHECK_S)


def _newer_than(events: AmiEvents, seen: int) -> Callable[[Message], bool]:
    return lambda _event: len(events.seen) > seen


@dataclass
class Books:
    """A finished campaign as stored, per lead number."""

    leads: dict[str, tuple[str, int, str | None]]  # number: (status, attempts, last outcome)
    attempts: dict[str, list[CallAttempt]]  # number: its attempts
    interactions: dict[str, list[Interaction]]  # number: interactions on its contact
    contact_of_lead: dict[str, int | None]  # number: the lead's contact
    contact_of_number: dict[str, int]  # number: the imported contact holding it


async def books(config: Path, name: str) -> Books:
    async with await open_database(load_settings(config, {})) as db, db.session() as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == name))
        leads = (await session.execute(
            select(Lead).where(Lead.campaign_id == campaign_id))).scalars().all()
        attempts = (await session.execute(
            select(CallAttempt).where(CallAttempt.campaign_id == campaign_id)
            .order_by(CallAttempt.created_at))).scalars().all()
        owners = {e164: contact for e164, contact in (await session.execute(
            select(ContactPhone.e164, ContactPhone.contact_id))).all()}
        interactions = (await session.execute(
            select(Interaction).where(Interaction.campaign_id == campaign_id))).scalars().all()
    by_contact = {contact: number for number, contact in owners.items()}
    return Books(
        leads={lead.phone_e164: (lead.status.value, lead.attempts,
                                 lead.last_outcome.value if lead.last_outcome else None)
               for lead in leads},
        attempts={lead.phone_e164: [a for a in attempts if a.lead_id == lead.id]
                  for lead in leads},
        interactions={number: [i for i in interactions if i.contact_id == contact]
                      for contact, number in by_contact.items()},
        contact_of_lead={lead.phone_e164: lead.contact_id for lead in leads},
        contact_of_number=owners,
    )


def invites_per_number(sip_messages: str, numbers: list[str]) -> dict[str, int]:
    """Calls (INVITEs, retransmissions counted once) SIPp received per dialled number, read
    from its -trace_msg log. Re-INVITEs go to SIPp's Contact, which holds no number."""
    calls: dict[str, set[str]] = {n: set() for n in numbers}
    for message in re.split(r"^-{5,}.*$", sip_messages, flags=re.MULTILINE):
        request = re.search(r"^INVITE sip:([^@\s]+)@", message, re.MULTILINE)
        call_id = re.search(r"^(?:Call-ID|i):\s*(\S+)", message, re.MULTILINE | re.IGNORECASE)
        if request and call_id and request.group(1) in calls:
            calls[request.group(1)].add(call_id.group(1))
    return {n: len(ids) for n, ids in calls.items()}
