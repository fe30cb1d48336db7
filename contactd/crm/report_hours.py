"""The hourly rollup of interactions the reports read: one row per (hour, channel, kind,
direction, outcome, campaign, agent) with its count and talk seconds, kept in step by
triggers on `interactions` (insert, delete, and an update of any counted column moves the
row's share from its old bucket to its new one, or only its talk seconds when the bucket
stays the same).

30 days of a busy centre are ~800,000 interactions; grouping them costs seconds, reading
their rollup (a few thousand rows per day) milliseconds. Campaign and agent are 0 for none,
so the key is a plain primary key on both databases. `hour` is "YYYY-MM-DD HH" (UTC).

The table is a model (contactd.db.models.InteractionHour); the triggers and the first fill
are here, run by fts.create_fts (tests) and copied, frozen, into the migration.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

_KEY: Final = "hour, channel, kind, direction, outcome, campaign_id, user_id"

_SQLITE_PARTS: Final = (
    "substr({r}.started_at, 1, 13)", "{r}.channel", "{r}.kind", "{r}.direction", "{r}.outcome",
    "coalesce({r}.campaign_id, 0)", "coalesce({r}.user_id, 0)",
)
_SQLITE_ROW: Final = ", ".join(_SQLITE_PARTS)
_SQLITE_TALK: Final = (
    "CASE WHEN {r}.ended_at IS NULL THEN 0.0 ELSE "
    "max(0.0, (julianday({r}.ended_at) - julianday({r}.started_at)) * 86400.0) END"
)
_SQLITE_ADD: Final = (
    f"INSERT INTO interaction_hours ({_KEY}, n, talk_s) "
    f"VALUES ({_SQLITE_ROW.format(r='new')}, 1, {_SQLITE_TALK.format(r='new')}) "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET n = n + 1, talk_s = talk_s + excluded.talk_s;"
)
_SQLITE_SUB: Final = (
    f"UPDATE interaction_hours SET n = n - 1, talk_s = talk_s - {_SQLITE_TALK.format(r='old')} "
    f"WHERE ({_KEY}) = ({_SQLITE_ROW.format(r='old')});"
)
_COUNTED: Final = "started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id"

# An update that leaves the row in its bucket (a call's end written onto it, the usual case)
# only moves its talk seconds: one statement, not a subtraction and an upsert.
_SQLITE_SAME: Final = " AND ".join(
    f"{part.format(r='old')} IS {part.format(r='new')}" for part in _SQLITE_PARTS)
_SQLITE_TALK_MOVE: Final = (
    f"UPDATE interaction_hours SET talk_s = talk_s - {_SQLITE_TALK.format(r='old')} "
    f"+ {_SQLITE_TALK.format(r='new')} WHERE ({_KEY}) = ({_SQLITE_ROW.format(r='new')});"
)

SQLITE_TRIGGERS: Final = (
    f"CREATE TRIGGER interaction_hours_ai AFTER INSERT ON interactions BEGIN {_SQLITE_ADD} END",
    f"CREATE TRIGGER interaction_hours_ad AFTER DELETE ON interactions BEGIN {_SQLITE_SUB} END",
    f"CREATE TRIGGER interaction_hours_au AFTER UPDATE OF {_COUNTED} ON interactions "
    f"WHEN NOT ({_SQLITE_SAME}) BEGIN {_SQLITE_SUB} {_SQLITE_ADD} END",
    f"CREATE TRIGGER interaction_hours_at AFTER UPDATE OF {_COUNTED} ON interactions "
    f"WHEN {_SQLITE_SAME} BEGIN {_SQLITE_TALK_MOVE} END",
)
SQLITE_FILL: Final = (
    f"INSERT INTO interaction_hours ({_KEY}, n, talk_s) "
    f"SELECT {_SQLITE_ROW.format(r='i')}, count(*), sum({_SQLITE_TALK.format(r='i')}) "
    f"FROM interactions i GROUP BY {_SQLITE_ROW.format(r='i')}"
)
SQLITE_DROP: Final = (
    "DROP TRIGGER IF EXISTS interaction_hours_ai",
    "DROP TRIGGER IF EXISTS interaction_hours_ad",
    "DROP TRIGGER IF EXISTS interaction_hours_au",
    "DROP TRIGGER IF EXISTS interaction_hours_at",
)

_PG_ROW: Final = (
    "to_char({r}.started_at, 'YYYY-MM-DD HH24'), {r}.channel, {r}.kind, {r}.direction, "
    "{r}.outcome, coalesce({r}.campaign_id, 0), coalesce({r}.user_id, 0)"
)
_PG_TALK: Final = "coalesce(greatest(0.0, extract(epoch FROM {r}.ended_at - {r}.started_at)), 0.0)"
PG_FUNCTION: Final = f"""CREATE OR REPLACE FUNCTION interaction_hours_sync() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND ({_PG_ROW.format(r="OLD")})
                IS NOT DISTINCT FROM ({_PG_ROW.format(r="NEW")}) THEN
            UPDATE interaction_hours SET talk_s = talk_s - {_PG_TALK.format(r="OLD")}
                + {_PG_TALK.format(r="NEW")}
            WHERE ({_KEY}) = ({_PG_ROW.format(r="NEW")});
            RETURN NULL;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE interaction_hours SET n = n - 1,
                talk_s = talk_s - {_PG_TALK.format(r="OLD")}
            WHERE ({_KEY}) = ({_PG_ROW.format(r="OLD")});
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO interaction_hours ({_KEY}, n, talk_s)
            VALUES ({_PG_ROW.format(r="NEW")}, 1, {_PG_TALK.format(r="NEW")})
            ON CONFLICT ({_KEY}) DO UPDATE SET n = interaction_hours.n + 1,
                talk_s = interaction_hours.talk_s + EXCLUDED.talk_s;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql"""
PG_TRIGGERS: Final = (
    """CREATE TRIGGER interaction_hours_ins AFTER INSERT OR DELETE ON interactions
        FOR EACH ROW EXECUTE FUNCTION interaction_hours_sync()""",
    f"""CREATE TRIGGER interaction_hours_upd AFTER UPDATE OF {_COUNTED} ON interactions
        FOR EACH ROW EXECUTE FUNCTION interaction_hours_sync()""",
)
PG_FILL: Final = (
    f"INSERT INTO interaction_hours ({_KEY}, n, talk_s) "
    f"SELECT {_PG_ROW.format(r='i')}, count(*), sum({_PG_TALK.format(r='i')}) "
    f"FROM interactions i GROUP BY 1, 2, 3, 4, 5, 6, 7"
)
PG_DROP: Final = (
    "DROP TRIGGER IF EXISTS interaction_hours_ins ON interactions",
    "DROP TRIGGER IF EXISTS interaction_hours_upd ON interactions",
    "DROP FUNCTION IF EXISTS interaction_hours_sync()",
)


def create_report_hours(connection: Connection) -> None:
    """Add the triggers (again: idempotent) and, when the rollup is empty, fill it from the
    stored interactions."""
    pg = connection.dialect.name == "postgresql"
    for statement in PG_DROP if pg else SQLITE_DROP:
        connection.execute(text(statement))
    if connection.execute(text("SELECT count(*) FROM interaction_hours")).scalar_one() == 0:
        connection.execute(text(PG_FILL if pg else SQLITE_FILL))
    if pg:
        connection.execute(text(PG_FUNCTION))
    for statement in PG_TRIGGERS if pg else SQLITE_TRIGGERS:
        connection.execute(text(statement))
