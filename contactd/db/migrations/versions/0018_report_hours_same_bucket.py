"""interaction_hours triggers: an update that keeps a row in its bucket moves its talk seconds only

A call's interaction is stored when the call ends and updated once it is routed (its end
written onto it): the update trigger subtracted the row from its bucket and added it back,
two statements where one does. PostgreSQL's trigger function and SQLite's update trigger
now take the one-statement path when the bucket's key is unchanged. The statements are the
ones contactd.crm.report_hours held when this revision was written, frozen here.

Revision ID: 0018_report_hours_same_bucket
Revises: 0017_task_team_last
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_report_hours_same_bucket"
down_revision: str | None = "0017_task_team_last"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_NEW = (
    'CREATE TRIGGER interaction_hours_au AFTER UPDATE OF started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id ON interactions WHEN NOT (substr(old.started_at, 1, 13) IS substr(new.started_at, 1, 13) AND old.channel IS new.channel AND old.kind IS new.kind AND old.direction IS new.direction AND old.outcome IS new.outcome AND coalesce(old.campaign_id, 0) IS coalesce(new.campaign_id, 0) AND coalesce(old.user_id, 0) IS coalesce(new.user_id, 0)) BEGIN UPDATE interaction_hours SET n = n - 1, talk_s = talk_s - CASE WHEN old.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(old.ended_at) - julianday(old.started_at)) * 86400.0) END WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (substr(old.started_at, 1, 13), old.channel, old.kind, old.direction, old.outcome, coalesce(old.campaign_id, 0), coalesce(old.user_id, 0)); INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) VALUES (substr(new.started_at, 1, 13), new.channel, new.kind, new.direction, new.outcome, coalesce(new.campaign_id, 0), coalesce(new.user_id, 0), 1, CASE WHEN new.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(new.ended_at) - julianday(new.started_at)) * 86400.0) END) ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = n + 1, talk_s = talk_s + excluded.talk_s; END',
    'CREATE TRIGGER interaction_hours_at AFTER UPDATE OF started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id ON interactions WHEN substr(old.started_at, 1, 13) IS substr(new.started_at, 1, 13) AND old.channel IS new.channel AND old.kind IS new.kind AND old.direction IS new.direction AND old.outcome IS new.outcome AND coalesce(old.campaign_id, 0) IS coalesce(new.campaign_id, 0) AND coalesce(old.user_id, 0) IS coalesce(new.user_id, 0) BEGIN UPDATE interaction_hours SET talk_s = talk_s - CASE WHEN old.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(old.ended_at) - julianday(old.started_at)) * 86400.0) END + CASE WHEN new.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(new.ended_at) - julianday(new.started_at)) * 86400.0) END WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (substr(new.started_at, 1, 13), new.channel, new.kind, new.direction, new.outcome, coalesce(new.campaign_id, 0), coalesce(new.user_id, 0)); END',
)

_SQLITE_OLD = 'CREATE TRIGGER interaction_hours_au AFTER UPDATE OF started_at, ended_at, channel, kind, direction, outcome, campaign_id, user_id ON interactions BEGIN UPDATE interaction_hours SET n = n - 1, talk_s = talk_s - CASE WHEN old.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(old.ended_at) - julianday(old.started_at)) * 86400.0) END WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (substr(old.started_at, 1, 13), old.channel, old.kind, old.direction, old.outcome, coalesce(old.campaign_id, 0), coalesce(old.user_id, 0)); INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s) VALUES (substr(new.started_at, 1, 13), new.channel, new.kind, new.direction, new.outcome, coalesce(new.campaign_id, 0), coalesce(new.user_id, 0), 1, CASE WHEN new.ended_at IS NULL THEN 0.0 ELSE max(0.0, (julianday(new.ended_at) - julianday(new.started_at)) * 86400.0) END) ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = n + 1, talk_s = talk_s + excluded.talk_s; END'
_PG_NEW = "CREATE OR REPLACE FUNCTION interaction_hours_sync() RETURNS trigger AS $$\n    BEGIN\n        IF TG_OP = 'UPDATE' AND (to_char(OLD.started_at, 'YYYY-MM-DD HH24'), OLD.channel, OLD.kind, OLD.direction, OLD.outcome, coalesce(OLD.campaign_id, 0), coalesce(OLD.user_id, 0))\n                IS NOT DISTINCT FROM (to_char(NEW.started_at, 'YYYY-MM-DD HH24'), NEW.channel, NEW.kind, NEW.direction, NEW.outcome, coalesce(NEW.campaign_id, 0), coalesce(NEW.user_id, 0)) THEN\n            UPDATE interaction_hours SET talk_s = talk_s - coalesce(greatest(0.0, extract(epoch FROM OLD.ended_at - OLD.started_at)), 0.0)\n                + coalesce(greatest(0.0, extract(epoch FROM NEW.ended_at - NEW.started_at)), 0.0)\n            WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (to_char(NEW.started_at, 'YYYY-MM-DD HH24'), NEW.channel, NEW.kind, NEW.direction, NEW.outcome, coalesce(NEW.campaign_id, 0), coalesce(NEW.user_id, 0));\n            RETURN NULL;\n        END IF;\n        IF TG_OP IN ('UPDATE', 'DELETE') THEN\n            UPDATE interaction_hours SET n = n - 1,\n                talk_s = talk_s - coalesce(greatest(0.0, extract(epoch FROM OLD.ended_at - OLD.started_at)), 0.0)\n            WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (to_char(OLD.started_at, 'YYYY-MM-DD HH24'), OLD.channel, OLD.kind, OLD.direction, OLD.outcome, coalesce(OLD.campaign_id, 0), coalesce(OLD.user_id, 0));\n        END IF;\n        IF TG_OP IN ('UPDATE', 'INSERT') THEN\n            INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s)\n            VALUES (to_char(NEW.started_at, 'YYYY-MM-DD HH24'), NEW.channel, NEW.kind, NEW.direction, NEW.outcome, coalesce(NEW.campaign_id, 0), coalesce(NEW.user_id, 0), 1, coalesce(greatest(0.0, extract(epoch FROM NEW.ended_at - NEW.started_at)), 0.0))\n            ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = interaction_hours.n + 1,\n                talk_s = interaction_hours.talk_s + EXCLUDED.talk_s;\n        END IF;\n        RETURN NULL;\n    END $$ LANGUAGE plpgsql"
_PG_OLD = "CREATE OR REPLACE FUNCTION interaction_hours_sync() RETURNS trigger AS $$\n    BEGIN\n        IF TG_OP IN ('UPDATE', 'DELETE') THEN\n            UPDATE interaction_hours SET n = n - 1,\n                talk_s = talk_s - coalesce(greatest(0.0, extract(epoch FROM OLD.ended_at - OLD.started_at)), 0.0)\n            WHERE (hour, channel, kind, direction, outcome, campaign_id, user_id) = (to_char(OLD.started_at, 'YYYY-MM-DD HH24'), OLD.channel, OLD.kind, OLD.direction, OLD.outcome, coalesce(OLD.campaign_id, 0), coalesce(OLD.user_id, 0));\n        END IF;\n        IF TG_OP IN ('UPDATE', 'INSERT') THEN\n            INSERT INTO interaction_hours (hour, channel, kind, direction, outcome, campaign_id, user_id, n, talk_s)\n            VALUES (to_char(NEW.started_at, 'YYYY-MM-DD HH24'), NEW.channel, NEW.kind, NEW.direction, NEW.outcome, coalesce(NEW.campaign_id, 0), coalesce(NEW.user_id, 0), 1, coalesce(greatest(0.0, extract(epoch FROM NEW.ended_at - NEW.started_at)), 0.0))\n            ON CONFLICT (hour, channel, kind, direction, outcome, campaign_id, user_id) DO UPDATE SET n = interaction_hours.n + 1,\n                talk_s = interaction_hours.talk_s + EXCLUDED.talk_s;\n        END IF;\n        RETURN NULL;\n    END $$ LANGUAGE plpgsql"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_PG_NEW))  # the triggers call it by name
        return
    bind.execute(sa.text("DROP TRIGGER IF EXISTS interaction_hours_au"))
    for statement in _SQLITE_NEW:
        bind.execute(sa.text(statement))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_PG_OLD))
        return
    bind.execute(sa.text("DROP TRIGGER IF EXISTS interaction_hours_at"))
    bind.execute(sa.text("DROP TRIGGER IF EXISTS interaction_hours_au"))
    bind.execute(sa.text(_SQLITE_OLD))
