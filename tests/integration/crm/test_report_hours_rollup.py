"""The hourly rollup the reports read stays equal to a fresh count of `interactions` through
what calls do to their rows: written at the end (talk seconds only: the row keeps its bucket),
an outcome amended, a start moved into another hour, a row deleted. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update

from contactd.crm.fts import create_fts
from contactd.crm.report_hours import PG_FILL, SQLITE_FILL
from contactd.db.models import Base, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind

START = datetime(2026, 11, 2, 9, 50, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_db(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/rollup.db"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    async with db:
        yield db


async def rollup(db: Database) -> dict[tuple[object, ...], tuple[int, float]]:
    async with db.session() as session:
        rows = (await session.execute(text(
            "SELECT hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s "
            "FROM interaction_hours WHERE n != 0"))).all()
    return {tuple(r[:7]): (int(r[7]), round(float(r[8]), 3)) for r in rows}


async def recount(db: Database) -> dict[tuple[object, ...], tuple[int, float]]:
    """What the rollup must hold: the first fill's GROUP BY, run into a scratch table."""
    pg = db.engine.dialect.name == "postgresql"
    async with db.transaction() as session:
        await session.execute(text(
            "CREATE TEMPORARY TABLE fresh AS SELECT * FROM interaction_hours WHERE 1 = 0"))
        await session.execute(text((PG_FILL if pg else SQLITE_FILL).replace(
            "INSERT INTO interaction_hours", "INSERT INTO fresh")))
        rows = (await session.execute(text(
            "SELECT hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s "
            "FROM fresh"))).all()
        await session.execute(text("DROP TABLE fresh"))
    return {tuple(r[:7]): (int(r[7]), round(float(r[8]), 3)) for r in rows}


async def test_rollup_matches_a_fresh_count_after_every_kind_of_change(any_db: Database) -> None:
    db = any_db
    async with db.transaction() as session:
        for n in range(12):  # calls dialled a minute apart, around an hour's turn
            session.add(Interaction(kind=InteractionKind.CALL, direction=Direction.OUTBOUND,
                                    channel=Channel.CALL, started_at=START + timedelta(minutes=n),
                                    outcome="human", data={"n": n}))
    assert await rollup(db) == await recount(db)

    async with db.session() as session:
        ids = list(await session.scalars(select(Interaction.id).order_by(Interaction.id)))
    async with db.transaction() as session:  # each call's end: same bucket, talk seconds
        for n, row_id in enumerate(ids):
            await session.execute(update(Interaction).where(Interaction.id == row_id).values(
                ended_at=START + timedelta(minutes=n, seconds=20 + n), data={"n": n, "done": 1}))
    after_ends = await rollup(db)
    assert after_ends == await recount(db)
    assert sum(talk for _n, talk in after_ends.values()) == sum(20 + n for n in range(12))

    async with db.transaction() as session:
        await session.execute(update(Interaction).where(Interaction.id.in_(ids[:3]))
                              .values(outcome="abandoned"))  # another bucket
        await session.execute(update(Interaction).where(Interaction.id == ids[4])
                              .values(started_at=START + timedelta(hours=2)))  # another hour
        await session.execute(update(Interaction).where(Interaction.id == ids[5])
                              .values(ended_at=None))  # its end taken back
        await session.execute(delete(Interaction).where(Interaction.id == ids[6]))
    assert await rollup(db) == await recount(db)
    assert sum(n for n, _talk in (await rollup(db)).values()) == 11
