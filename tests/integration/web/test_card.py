"""The contact card: what it shows, its timeline paged by key (no entry repeated or skipped),
and the inline edit that refuses a stale form, keeps what was typed, and audits the change."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from contactd.crm.card import Cursor
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import (
    AuditEntry,
    Campaign,
    ChannelDecision,
    Consent,
    Contact,
    Document,
    Interaction,
    Task,
    User,
)
from contactd.db.session import Database
from contactd.enums import (
    CampaignMode,
    Channel,
    ConsentStatus,
    CustomFieldType,
    Direction,
    DocumentKind,
    InteractionKind,
)
from tests.integration.web.conftest import Signed

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
VERSION_RE = re.compile(r'name="version" value="(\d+)"')


async def _ada(db: Database) -> int:
    service = ContactService(db, default_region="GB")
    await service.define_field("tier", "Tier", CustomFieldType.CHOICE, choices=["gold", "silver"])
    return await service.create_contact(ContactInput(
        first_name="Ada", last_name="Lovelace", phones=["+44 20 7946 0001"],
        emails=["ada@example.org"], tags=["vip"], custom={"tier": "gold"}))


async def _history(db: Database, contact_id: int) -> None:
    async with db.transaction() as session:
        alex = await session.scalar(select(User.id).where(User.username == "alex"))
        campaign = Campaign(name="Spring renewals", mode=CampaignMode.PROGRESSIVE)
        session.add(campaign)
        await session.flush()
        session.add_all([
            Interaction(contact_id=contact_id, kind=InteractionKind.CALL,
                        direction=Direction.OUTBOUND, channel=Channel.CALL, started_at=T0,
                        ended_at=T0 + timedelta(seconds=125), outcome="sale", user_id=alex,
                        campaign_id=campaign.id),
            Interaction(contact_id=contact_id, kind=InteractionKind.IVR_SESSION,
                        direction=Direction.INBOUND, channel=Channel.CALL,
                        started_at=T0 + timedelta(hours=1), transcript="I would like a callback"),
            Interaction(contact_id=contact_id, kind=InteractionKind.SMS,
                        direction=Direction.OUTBOUND, channel=Channel.SMS,
                        started_at=T0 + timedelta(hours=2), body="Your renewal is due"),
            Interaction(contact_id=contact_id, kind=InteractionKind.EMAIL,
                        direction=Direction.INBOUND, channel=Channel.EMAIL,
                        started_at=T0 + timedelta(hours=3), subject="Re: renewal"),
            Task(title="Call back about the renewal", contact_id=contact_id, assignee_id=alex,
                 created_at=T0 + timedelta(hours=4)),
            Document(contact_id=contact_id, kind=DocumentKind.OFFER, title="Offer OFF-1",
                     storage_path="documents/1/OFF-1.pdf", created_at=T0 + timedelta(hours=5)),
            ChannelDecision(contact_id=contact_id, channel=Channel.SMS, reason="no_answer",
                            decided_at=T0 + timedelta(hours=6)),
            Consent(contact_id=contact_id, channel=Channel.SMS, status=ConsentStatus.GRANTED,
                    recorded_at=T0),
            Consent(contact_id=contact_id, channel=Channel.SMS, status=ConsentStatus.REVOKED,
                    recorded_at=T0 + timedelta(days=1)),
        ])


async def test_the_card_shows_the_record_and_every_kind_of_timeline_entry_newest_first(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    await _history(db, contact_id)
    agent = await signed_in("alex")
    response = await agent.client.get(f"/contacts/{contact_id}")
    text = await response.text()
    assert response.status == 200
    for shown in ("Ada Lovelace", "+442079460001", "ada@example.org", ">vip<", "Tier",
                  "Spring renewals", "sale", "2:05", "I would like a callback",
                  "Your renewal is due", "Re: renewal", "Call back about the renewal",
                  "Offer OFF-1", "sms: no_answer"):
        assert shown in text, shown
    # The newest consent row is in force: SMS was granted, then revoked.
    assert re.search(r"sms: <span class=\"pill pill-bad\">revoked", text)
    order = [text.index(s) for s in ("sms: no_answer", "Offer OFF-1", "Call back about",
                                     "Re: renewal", "Your renewal is due", "I would like",
                                     "Spring renewals")]
    assert order == sorted(order)


async def test_the_contacts_table_links_each_row_to_its_card(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    agent = await signed_in("alex")
    rows = await (await agent.client.get("/contacts")).text()
    assert f'href="/contacts/{contact_id}"' in rows


async def test_the_timeline_pages_by_key_without_repeating_or_skipping(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    async with db.transaction() as session:
        # 60 notes, several sharing an instant: a page cut by time alone would lose some.
        session.add_all([
            Interaction(contact_id=contact_id, kind=InteractionKind.NOTE,
                        direction=Direction.INTERNAL, channel=Channel.NONE,
                        started_at=T0 + timedelta(minutes=n // 3), subject=f"note-{n:02d}")
            for n in range(60)
        ])
    agent = await signed_in("alex")
    seen: list[str] = []
    url: str | None = f"/contacts/{contact_id}"
    pages = 0
    while url is not None:
        text = await (await agent.client.get(url, headers={"X-Partial": "timeline"})).text()
        assert "<html" not in text
        seen.extend(re.findall(r"note-\d\d", text))
        found = re.search(r'href="(/contacts/\d+\?before=[^"#]+)', text)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3
    assert len(seen) == 60 and len(set(seen)) == 60
    # Newest first: later minutes first.
    minutes = [int(s[5:]) // 3 for s in seen]
    assert minutes == sorted(minutes, reverse=True)


async def test_a_bad_timeline_position_is_refused_by_name(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    agent = await signed_in("alex")
    response = await agent.client.get(f"/contacts/{contact_id}", params={"before": "yesterday"})
    assert response.status == 422 and "before is not a timeline position" in await response.text()
    assert (await agent.client.get("/contacts/999999")).status == 404


def test_a_cursor_reads_back_what_it_wrote() -> None:
    cursor = Cursor(T0, "task", 7)
    assert Cursor.decode(cursor.encode()) == cursor


async def test_an_edit_is_saved_and_audited_with_before_and_after(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    agent = await signed_in("alex")
    card = await (await agent.client.get(f"/contacts/{contact_id}")).text()
    version = VERSION_RE.search(card)
    assert version
    response = await agent.client.post(f"/contacts/{contact_id}", data={
        "csrf_token": agent.csrf, "version": version.group(1), "first_name": "Augusta Ada",
        "last_name": "Lovelace", "job_title": "Analyst", "custom.tier": "silver",
        "preferred_channel": "email", "notes": "Prefers mornings",
    }, allow_redirects=False)
    assert response.status == 303
    after = await (await agent.client.get(response.headers["Location"])).text()
    assert "Augusta Ada Lovelace" in after and "Saved." in after
    async with db.session() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        assert (contact.job_title, contact.custom, contact.preferred_channel) == (
            "Analyst", {"tier": "silver"}, Channel.EMAIL)
        assert contact.version == int(version.group(1)) + 1
        entries = list(await session.scalars(select(AuditEntry).where(
            AuditEntry.entity == "contact", AuditEntry.entity_id == str(contact_id))))
    assert len(entries) == 1
    assert entries[0].action == "contact.update"
    assert entries[0].details["before"]["first_name"] == "Ada"
    assert entries[0].details["after"]["first_name"] == "Augusta Ada"
    assert entries[0].details["after"]["custom"] == {"tier": "silver"}
    assert entries[0].details["after"]["preferred_channel"] == "email"
    assert "last_name" not in entries[0].details["after"]  # unchanged fields are not listed


async def test_a_stale_edit_is_refused_shows_current_values_and_keeps_what_was_typed(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    agent = await signed_in("alex")
    supervisor = await signed_in("sam")
    card = await (await agent.client.get(f"/contacts/{contact_id}")).text()
    old = VERSION_RE.search(card)
    assert old
    first = await supervisor.client.post(f"/contacts/{contact_id}", data={
        "csrf_token": supervisor.csrf, "version": old.group(1), "job_title": "Countess",
    }, allow_redirects=False)
    assert first.status == 303
    stale = await agent.client.post(f"/contacts/{contact_id}", data={
        "csrf_token": agent.csrf, "version": old.group(1), "job_title": "Mathematician",
    }, allow_redirects=False)
    text = await stale.text()
    assert stale.status == 409
    assert "someone else changed this contact" in text
    assert 'name="job_title" value="Countess"' in text  # the current value in the form
    assert "Mathematician" in text  # what was typed, listed beside it
    async with db.session() as session:
        assert (await session.get(Contact, contact_id)).job_title == "Countess"  # type: ignore[union-attr]
        audits = (await session.scalars(select(AuditEntry.id).where(
            AuditEntry.entity == "contact"))).all()
    assert len(audits) == 1


async def test_bad_edits_are_refused_by_name_and_keep_the_typed_values(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _ada(db)
    agent = await signed_in("alex")
    version = VERSION_RE.search(await (await agent.client.get(f"/contacts/{contact_id}")).text())
    assert version
    for form, message in (
        ({"custom.tier": "bronze"}, "custom field &#39;tier&#39;"),
        ({"timezone": "Mars/Olympus"}, "is not a time zone name"),
        ({"kind": "rival"}, "kind has no choice"),
        ({"job_title": "x" * 201}, "job_title is longer than 200"),
    ):
        response = await agent.client.post(f"/contacts/{contact_id}", data={
            "csrf_token": agent.csrf, "version": version.group(1), "first_name": "Typed", **form})
        text = await response.text()
        assert response.status == 422, form
        assert message in text, (form, text[:2000])
        assert 'name="first_name" value="Typed"' in text
    missing = await agent.client.post(f"/contacts/{contact_id}",
                                      data={"csrf_token": agent.csrf, "first_name": "x"})
    assert missing.status == 422 and "the form carries no version" in await missing.text()
    async with db.session() as session:
        assert (await session.get(Contact, contact_id)).first_name == "Ada"  # type: ignore[union-attr]
