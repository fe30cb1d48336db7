"""contacts.name_key for search as you type, and interaction_hours for the reports

- contacts.name_key: surname and first name folded, B-tree indexed, for prefix search in name
  order (a 2-4 letter prefix matches thousands of full-text entries; ranking them all by bm25
  was the cost of search as you type). Existing contacts are backfilled in pages.
- ix_contacts_name_order (last_name, first_name, id): the contact list in name order walks
  it and stops at the page (at 1M contacts it sorted a surname's rows: ~150 ms).
- ix_tasks_created_assignee, ix_tasks_completed_assignee: the tasks report counts a period's
  opened and closed tasks per person from these indexes (3.4 s at 200,000 tasks without).
- interaction_hours: the hourly rollup of interactions the reports read, filled from the
  stored interactions and kept in step by triggers (contactd.crm.report_hours).

Revision ID: 0012_scale_search_reports
Revises: 0011_i18n_user_theme

Frozen: the folding and the trigger text below are contactd.crm.searchtext.name_key and
contactd.crm.report_hours as they were when this revision was written (a revision never
imports app code).
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_scale_search_reports"
down_revision: str | None = "0011_i18n_user_theme"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 20_000
_SPECIAL = {0xDF: "ss", 0xC6: "ae", 0xE6: "ae", 0xD8: "o", 0xF8: "o", 0x141: "l", 0x142: "l"}


_SQLITE_TRIGGERS = (
    "CREATE TRIGGER interaction_hours_ai AFTER INSERT ON interactions BEGIN INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) VALUES (substr(new.started_at, 1, 13), new.channel, new.kind, new.direction, new.outcome, coalesce(new.campaign_id, 0), coalesce(new.user_id, 0), 1, CASE WHEN new.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(new.ended_at) - julianday(new.started_at)) * 86400.0) END) ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = n + 1, talk_s = talk_s + excluded.talk_s; END",
    "CREATE TRIGGER interaction_hours_ad AFTER DELETE ON interactions BEGIN UPDATE interaction_hours SET n = n - 1, talk_s = talk_s - CASE WHEN old.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(old.ended_at) - julianday(old.started_at)) * 86400.0) END WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (substr(old.started_at, 1, 13), old.channel, old.kind, old.direction, old.outcome, coalesce(old.campaign_id, 0), coalesce(old.user_id, 0)); END",
    "CREATE TRIGGER interaction_hours_au AFTER UPDATE OF started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id ON interactions BEGIN UPDATE interaction_hours SET n = n - 1, talk_s = talk_s - CASE WHEN old.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(old.ended_at) - julianday(old.started_at)) * 86400.0) END WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (substr(old.started_at, 1, 13), old.channel, old.kind, old.direction, old.outcome, coalesce(old.campaign_id, 0), coalesce(old.user_id, 0)); INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) VALUES (substr(new.started_at, 1, 13), new.channel, new.kind, new.direction, new.outcome, coalesce(new.campaign_id, 0), coalesce(new.user_id, 0), 1, CASE WHEN new.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(new.ended_at) - julianday(new.started_at)) * 86400.0) END) ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = n + 1, talk_s = talk_s + excluded.talk_s; END",
)
_SQLITE_FILL = "INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) SELECT substr(i.started_at, 1, 13), i.channel, i.kind, i.direction, i.outcome, coalesce(i.campaign_id, 0), coalesce(i.user_id, 0), count(*), sum(CASE WHEN i.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(i.ended_at) - julianday(i.started_at)) * 86400.0) END) FROM interactions i GROUP BY substr(i.started_at, 1, 13), i.channel, i.kind, i.direction, i.outcome, coalesce(i.campaign_id, 0), coalesce(i.user_id, 0)"
_SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS interaction_hours_ai",
    "DROP TRIGGER IF EXISTS interaction_hours_ad",
    "DROP TRIGGER IF EXISTS interaction_hours_au",
)
_PG_FUNCTION = "CREATE OR REPLACE FUNCTION interaction_hours_sync() RETURNS trigger AS $$\n    BEGIN\n        IF TG_OP IN ('UPDATE', 'DELETE') THEN\n            UPDATE interaction_hours SET n = n - 1,\n                talk_s = talk_s - coalesce(greatest(0.0, extract(epoch FROM OLD.ended_at - OLD.started_at)), 0.0)\n            WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (to_char(OLD.started_at, 'YYYY-MM-DD HH24'), OLD.channel, OLD.kind, OLD.direction, OLD.outcome, coalesce(OLD.campaign_id, 0), coalesce(OLD.user_id, 0));\n        END IF;\n        IF TG_OP IN ('UPDATE', 'INSERT') THEN\n            INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s)\n            VALUES (to_char(NEW.started_at, 'YYYY-MM-DD HH24'), NEW.channel, NEW.kind, NEW.direction, NEW.outcome, coalesce(NEW.campaign_id, 0), coalesce(NEW.user_id, 0), 1, coalesce(greatest(0.0, extract(epoch FROM NEW.ended_at - NEW.started_at)), 0.0))\n            ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = interaction_hours.n + 1,\n                talk_s = interaction_hours.talk_s + EXCLUDED.talk_s;\n        END IF;\n        RETURN NULL;\n    END $$ LANGUAGE plpgsql"
_PG_TRIGGERS = (
    "CREATE TRIGGER interaction_hours_ins AFTER INSERT OR DELETE ON interactions\n        FOR EACH ROW EXECUTE FUNCTION interaction_hours_sync()",
    "CREATE TRIGGER interaction_hours_upd AFTER UPDATE OF started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id ON interactions\n        FOR EACH ROW EXECUTE FUNCTION interaction_hours_sync()",
)
_PG_FILL = "INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) SELECT to_char(i.started_at, 'YYYY-MM-DD HH24'), i.channel, i.kind, i.direction, i.outcome, coalesce(i.campaign_id, 0), coalesce(i.user_id, 0), count(*), sum(coalesce(greatest(0.0, extract(epoch FROM i.ended_at - i.started_at)), 0.0)) FROM interactions i GROUP BY 1, 2, 3, 4, 5, 6, 7"
_PG_DROP = (
    "DROP TRIGGER IF EXISTS interaction_hours_ins ON interactions",
    "DROP TRIGGER IF EXISTS interaction_hours_upd ON interactions",
    "DROP FUNCTION IF EXISTS interaction_hours_sync()",
)


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    text = text.translate(_SPECIAL)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _key(first: str, last: str, organisation: str) -> str:
    words = f"{last or ''} {first or ''}".split() or (organisation or "").split()
    return _fold(" ".join(words))


def upgrade() -> None:
    column_type = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.add_column("contacts", sa.Column("name_key", column_type, nullable=False, server_default=""))
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT c.id, c.first_name, c.last_name, o.name FROM contacts c "
                "LEFT JOIN organisations o ON o.id = c.organisation_id "
                "WHERE c.id > :after ORDER BY c.id LIMIT :page"
            ),
            {"after": after, "page": _PAGE},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text("UPDATE contacts SET name_key = :key WHERE id = :id"),
            [{"id": cid, "key": _key(first, last, org)} for cid, first, last, org in rows],
        )
        after = rows[-1][0]
    op.create_index("ix_contacts_name_key", "contacts", ["name_key", "id"])
    op.create_index("ix_contacts_name_order", "contacts", ["last_name", "first_name", "id"])
    op.create_index("ix_tasks_created_assignee", "tasks", ["created_at", "assignee_id"])
    op.create_index("ix_tasks_completed_assignee", "tasks", ["completed_at", "assignee_id"])

    op.create_table(
        "interaction_hours",
        sa.Column("hour", sa.String(13), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("direction", sa.String(20), primary_key=True),
        sa.Column("outcome", sa.String(40), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("talk_s", sa.Double(), nullable=False),
    )
    pg = bind.dialect.name == "postgresql"
    bind.execute(sa.text(_PG_FILL if pg else _SQLITE_FILL))
    if pg:
        bind.execute(sa.text(_PG_FUNCTION))
    for statement in _PG_TRIGGERS if pg else _SQLITE_TRIGGERS:
        bind.execute(sa.text(statement))


def downgrade() -> None:
    bind = op.get_bind()
    for statement in _PG_DROP if bind.dialect.name == "postgresql" else _SQLITE_DROP:
        bind.execute(sa.text(statement))
    op.drop_table("interaction_hours")
    op.drop_index("ix_tasks_completed_assignee", table_name="tasks")
    op.drop_index("ix_tasks_created_assignee", table_name="tasks")
    op.drop_index("ix_contacts_name_order", table_name="contacts")
    op.drop_index("ix_contacts_name_key", table_name="contacts")
    op.drop_column("contacts", "name_key")
