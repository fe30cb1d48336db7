"""The driver path of execute_many stores exactly what SQLAlchemy's Core path stores."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, update

from contactd.db.executemany import execute_many
from contactd.db.models import Base
from contactd.db.models.messaging import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, MessageState

OUTBOX = OutboxMessage.__table__

COLUMNS = ("state", "provider_id", "sent_at", "attempts", "error")
SET = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"))
    .values(**{c: bindparam(f"b_{c}") for c in COLUMNS})
)
SET_META = SET.values(meta=bindparam("b_meta"))


def _values(row_id: int, **extra: Any) -> dict[str, Any]:
    local = timezone(timedelta(hours=5, minutes=30))
    return {
        "b_id": row_id,
        "b_state": MessageState.SENT,
        "b_sent_at": datetime(2026, 12, 5, 6, 0, 0, 0, tzinfo=local),  # no fraction at all
        "b_attempts": 2,
        "b_error": "",
        "b_provider_id": None,
        **extra,
    }


async def _stored(
    tmp_path: Path, statement: Any, params: list[dict[str, Any]], *, driver: bool
) -> list[tuple[Any, ...]]:
    path = tmp_path / f"{'driver' if driver else 'core'}.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db, db.engine.begin() as conn:
        await conn.execute(
            insert(OUTBOX),
            [
                {"idempotency_key": f"k{i}", "channel": Channel.SMS, "to_address": "+1"}
                for i in (1, 2)
            ],
        )
        if driver:
            await execute_many(conn, statement, params)
        else:
            await conn.execute(statement, params)
    with sqlite3.connect(path) as raw:
        return raw.execute(
            "SELECT id, state, provider_id, sent_at, attempts, error, meta"
            " FROM outbox_messages ORDER BY id"
        ).fetchall()


async def test_the_driver_path_writes_what_core_writes(tmp_path: Path) -> None:
    later = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    params = [_values(1), _values(2, b_sent_at=later, b_provider_id="smsc-7")]
    core = await _stored(tmp_path, SET, params, driver=False)
    driver = await _stored(tmp_path, SET, params, driver=True)
    assert driver == core
    assert core[0][3] == "2026-12-05 00:30:00.000000"  # UTC, six-digit fraction


async def test_a_value_it_cannot_write_plainly_goes_through_core(tmp_path: Path) -> None:
    params = [_values(1, b_meta={"parts": ["a", "b"]}), _values(2, b_meta={})]
    core = await _stored(tmp_path, SET_META, params, driver=False)
    driver = await _stored(tmp_path, SET_META, params, driver=True)
    assert driver == core
    assert '"parts"' in core[0][6]
