"""The dial loop's lead order is the SQL query's (repo.due_leads), the same on SQLite and
PostgreSQL: callbacks due first, then fresh leads, then recycled ones; by priority, then
oldest due (a lead never scheduled, next_attempt_at NULL, first), then id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from contactd.db.models import Base
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.enums import CampaignMode, LeadStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_db(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield db
        return
    pg = Database(request.getfixturevalue("postgres_url"))
    async with pg.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with pg:
        yield pg


async def test_due_leads_order_is_the_same_on_both_databases(any_db: Database) -> None:
    due = NOW - timedelta(minutes=5)
    async with any_db.transaction() as session:
        campaign = Campaign(name="order", mode=CampaignMode.PROGRESSIVE)
        session.add(campaign)
        await session.flush()
        rows = [
            ("retry-9", LeadStatus.RETRY, 9, due),
            ("new-0-null", LeadStatus.NEW, 0, None),
            ("callback", LeadStatus.CALLBACK, 0, due),
            ("new-5", LeadStatus.NEW, 5, None),
            ("new-0-due", LeadStatus.NEW, 0, due - timedelta(minutes=1)),  # reverted once
            ("callback-later", LeadStatus.CALLBACK, 0, NOW + timedelta(hours=1)),
            ("retry-0-older", LeadStatus.RETRY, 0, due - timedelta(hours=1)),
            ("retry-0", LeadStatus.RETRY, 0, due),
        ]
        for phone, status, priority, at in rows:
            session.add(Lead(campaign_id=campaign.id, phone_e164=phone, status=status,
                             priority=priority, next_attempt_at=at))
        await session.flush()
        campaign_id = campaign.id
    async with any_db.session() as session:
        order = [lead.phone_e164 for lead in await repo.due_leads(session, campaign_id, NOW, 10)]
    assert order == ["callback", "new-5", "new-0-null", "new-0-due", "retry-9",
                     "retry-0-older", "retry-0"]
