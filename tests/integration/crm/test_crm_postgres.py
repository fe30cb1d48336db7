"""The CRM on PostgreSQL: tsvector full text kept by triggers, lookups, merge, bulk import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from contactd.crm.fts import create_fts, drop_fts
from contactd.crm.imports.importer import ContactImporter
from contactd.crm.merge import merge_contacts
from contactd.crm.reports import period_report
from contactd.crm.routing import InboundContact, Router
from contactd.crm.routing_batch import record_many
from contactd.crm.search import ContactSearch, Filters
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Base, Task
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, PartyKind

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
        await conn.run_sync(create_fts)  # idempotent
    async with db:
        yield db


async def test_search_ranking_and_transcripts(pg: Database) -> None:
    contacts = ContactService(pg, default_region="DE")
    org = await contacts.create_organisation("Schmidt Logistik", PartyKind.BUYER)
    hans = await contacts.create_contact(ContactInput(
        first_name="Hans", last_name="Schmidt", phones=["030 1234567"], tags=["vip"]))
    eva = await contacts.create_contact(ContactInput(last_name="Braun", organisation_id=org))
    jurgen = await contacts.create_contact(ContactInput(first_name="Jürgen", last_name="Müller"))
    router = Router(pg, contacts, TaskService(pg))
    await router.record(InboundContact(
        kind=InteractionKind.IVR_SESSION, direction=Direction.INBOUND, channel=Channel.CALL,
        contact_id=jurgen, transcript="cancel the schmidt subscription"))
    search = ContactSearch(pg)
    hits = [h.contact_id for h in (await search.search("schmidt")).hits]
    assert hits[0] == hans and set(hits) == {hans, eva, jurgen}
    assert [h.contact_id for h in (await search.search("muller")).hits] == [jurgen]
    assert [h.contact_id for h in (await search.search("030 123")).hits] == [hans]
    assert [h.contact_id for h in (await search.search("subscr")).hits] == [jurgen]
    vip = await search.search(Filters(query="schmidt", tags=("vip",)))
    assert [h.contact_id for h in vip.hits] == [hans]
    match = await contacts.lookup_phone("+49 30 1234567")
    assert match is not None and match.contact_id == hans
    report = await period_report(pg, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
    assert report.total == 1 and report.by_kind == {"ivr_session": 1}


async def test_import_and_merge(pg: Database, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name;phone;email\nA One;030 1000001;a@example.com\n"
                      "B Two;030 1000002;\nA One;030 1000001;\nBad;x;\n", encoding="utf-8")
    report = await ContactImporter(pg, default_region="DE").run(source)
    assert (report.imported, report.duplicates, report.invalid) == (2, 1, 1)
    contacts = ContactService(pg, default_region="DE")
    one = await contacts.lookup_email("a@example.com")
    two = await contacts.lookup_phone("0301000002")
    assert one is not None and two is not None
    await merge_contacts(pg, one.contact_id, two.contact_id)
    moved = await contacts.lookup_phone("0301000002")
    assert moved is not None and moved.contact_id == one.contact_id
    hits = (await ContactSearch(pg).search("030 1000002")).hits  # the moved number
    assert [h.contact_id for h in hits] == [one.contact_id]


async def test_drop_fts(pg: Database) -> None:
    async with pg.engine.begin() as conn:
        await conn.run_sync(drop_fts)
        left = await conn.execute(text(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_fts'"))
        assert left.scalar_one() == 0
        await conn.run_sync(create_fts)


async def test_a_routing_batch_lands_each_item_on_its_contact_with_its_task(pg: Database) -> None:
    """`record_many` on PostgreSQL (ordered RETURNING, not SQLite's driver hand-offs): a known
    sender, an unknown one made a lead, each interaction with its own reply task."""
    contacts = ContactService(pg, default_region="DE")
    ann = await contacts.create_contact(ContactInput(first_name="Ann", phones=["+4930100001"]))
    router = Router(pg, contacts, TaskService(pg))

    def sms(sender: str) -> InboundContact:
        return InboundContact(kind=InteractionKind.SMS, direction=Direction.INBOUND,
                              channel=Channel.SMS, remote_address=sender, body="hi",
                              outcome="received")

    routed = await record_many(router, [sms("+4930100001"), sms("+4930999999"),
                                        sms("030 100001")])
    assert routed[0].contact_id == ann == routed[2].contact_id
    assert routed[1].contact_id not in (None, ann)  # the unknown sender: a new lead
    async with pg.session() as session:
        tasks = list(await session.scalars(select(Task).order_by(Task.id)))
    assert [(t.interaction_id, t.contact_id) for t in tasks] == [
        (r.interaction_id, r.contact_id) for r in routed
    ]
    assert [t.id for t in tasks] == [i for r in routed for i in r.task_ids]
    assert tasks[0].title == "Reply to sms from Ann"
