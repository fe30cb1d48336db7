"""Merging two contacts from the panel: supervisors only, a preview that shows the result the
merge then produces, the merged record gone from the list, an edit form from before refused."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import AuditEntry, Contact, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind
from tests.integration.web.conftest import Signed


async def _pair(db: Database) -> tuple[int, int]:
    service = ContactService(db, default_region="GB")
    keep = await service.create_contact(ContactInput(
        first_name="Ada", last_name="Lovelace", phones=["+44 20 7946 0001"], tags=["vip"]))
    other = await service.create_contact(ContactInput(
        first_name="A.", last_name="Lovelace", job_title="Countess",
        emails=["ada@example.org"], tags=["pilot"], notes="met at the fair"),
        allow_duplicate=True)
    async with db.transaction() as session:
        session.add(Interaction(contact_id=other, kind=InteractionKind.NOTE,
                                direction=Direction.INTERNAL, channel=Channel.NONE,
                                subject="old note"))
    return keep, other


async def test_a_supervisor_previews_then_merges_and_the_result_matches(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    keep, other = await _pair(db)
    agent = await signed_in("alex")
    assert (await agent.client.get(f"/contacts/{keep}/merge")).status == 403
    supervisor = await signed_in("sam")
    card = await (await supervisor.client.get(f"/contacts/{keep}")).text()
    assert f"/contacts/{keep}/merge" in card
    old_version = re.search(r'name="version" value="(\d+)"', card)
    assert old_version
    preview = await supervisor.client.get(f"/contacts/{keep}/merge", params={"other": other})
    text = await preview.text()
    assert preview.status == 200
    assert "<strong>Countess</strong>" in text  # filled from the merged contact
    assert "<strong>Ada</strong>" in text  # the kept name wins
    assert "+442079460001" in text and "ada@example.org" in text and "pilot, vip" in text
    assert "interactions 1" in text
    merged = await supervisor.client.post(f"/contacts/{keep}/merge", data={
        "csrf_token": supervisor.csrf, "other": str(other)}, allow_redirects=False)
    assert merged.status == 303
    async with db.session() as session:
        kept = await session.get(Contact, keep)
        gone = await session.get(Contact, other)
        moved = await session.scalar(select(Interaction.contact_id))
        audits = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "contact"))).all()
    assert kept is not None and gone is not None
    assert (kept.first_name, kept.job_title, gone.merged_into_id, moved) == (
        "Ada", "Countess", keep, keep)
    assert audits == ["contact.merge"]
    assert (await supervisor.client.get(f"/contacts/{other}")).status == 404
    # A form opened before the merge no longer matches the record.
    stale = await supervisor.client.post(f"/contacts/{keep}", data={
        "csrf_token": supervisor.csrf, "version": old_version.group(1), "job_title": "x"})
    assert stale.status == 409


async def test_bad_merges_are_refused_by_name(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    keep, _other = await _pair(db)
    supervisor = await signed_in("sam")
    for other, message in (("abc", "other must be a contact id"),
                           (str(keep), "cannot merge a contact into itself")):
        response = await supervisor.client.get(f"/contacts/{keep}/merge",
                                               params={"other": other})
        assert response.status == 422 and message in await response.text()
    missing = await supervisor.client.get(f"/contacts/{keep}/merge", params={"other": "9999"})
    assert missing.status == 404
