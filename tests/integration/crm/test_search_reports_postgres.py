"""On PostgreSQL: search as you type by name prefix (the "C"-collated name_key: the same
byte order as SQLite) and a report read from the rollup its triggers keep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from contactd.crm.fts import create_fts
from contactd.crm.reports import REPORTS, ReportFilter
from contactd.crm.search import ContactSearch
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import Base, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    async with db:
        yield db


async def test_name_prefix_and_report_on_postgres(pg: Database) -> None:
    contacts = ContactService(pg, default_region="DE")
    schmidt = await contacts.create_contact(ContactInput(first_name="Hans", last_name="Schmidt"))
    schmal = await contacts.create_contact(ContactInput(first_name="Ida", last_name="Schmal"))
    muller = await contacts.create_contact(ContactInput(first_name="Jürgen", last_name="Müller"))
    search = ContactSearch(pg)
    hits = (await search.search("schm", as_you_type=True)).hits
    assert [h.contact_id for h in hits] == [schmal, schmidt]
    assert [h.contact_id for h in (await search.search("MÜL", as_you_type=True)).hits] == [muller]

    day = datetime(2026, 11, 2, 9, tzinfo=UTC)
    async with pg.transaction() as session:
        for n in range(10):
            session.add(
                Interaction(
                    kind=InteractionKind.CALL,
                    direction=Direction.OUTBOUND,
                    channel=Channel.CALL,
                    started_at=day + timedelta(minutes=n),
                    outcome="abandoned" if n < 2 else "human",
                    ended_at=day + timedelta(minutes=n, seconds=30),
                )
            )
    window = ReportFilter(start=day - timedelta(hours=9), end=day + timedelta(days=1))
    result = await REPORTS["abandon_rate"].build(pg, window)
    assert result.note == "2 of 10 live answers abandoned = 20.00%"
    async with pg.transaction() as session:
        await session.execute(
            update(Interaction).where(Interaction.outcome == "abandoned").values(outcome="human")
        )
    result = await REPORTS["abandon_rate"].build(pg, window)
    assert result.note == "0 of 10 live answers abandoned = 0.00%"
