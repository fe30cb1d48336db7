"""full-text search tables (SQLite FTS5 / PostgreSQL tsvector) kept in step by triggers

Revision ID: 0002
Revises: 0001

Frozen text: the DDL as contactd.crm.fts had it when this revision was written, copied here so
the revision means the same thing whatever the application code later becomes (a revision
never imports app code). tests/integration/test_migrations.py checks that the schema after
`alembic upgrade head` is what the runtime models and contactd.crm.fts expect.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (CREATE VIRTUAL TABLE …, the statements that index the rows already stored)
SQLITE_CREATE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "CREATE VIRTUAL TABLE contacts_fts USING fts5(\n        search_name, search_text, content='contacts', content_rowid='id',\n        tokenize='unicode61 remove_diacritics 2')",
        (
            "INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('automerge', 8)",
            "\n       INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')",
        ),
    ),
    (
        "CREATE VIRTUAL TABLE interactions_fts USING fts5(\n        subject, body, transcript, content='interactions', content_rowid='id',\n        tokenize='unicode61 remove_diacritics 2')",
        (
            "INSERT INTO interactions_fts(rowid, subject, body, transcript)\n        SELECT id, subject, body, transcript FROM interactions i\n        WHERE (i.subject <> '' OR i.body <> '' OR i.transcript <> '')",
        ),
    ),
)
SQLITE_TRIGGERS = (
    'CREATE TRIGGER IF NOT EXISTS contacts_fts_ai AFTER INSERT ON contacts BEGIN\n        INSERT INTO contacts_fts(rowid, search_name, search_text)\n        VALUES (new.id, new.search_name, new.search_text); END',
    "CREATE TRIGGER IF NOT EXISTS contacts_fts_ad AFTER DELETE ON contacts BEGIN\n        INSERT INTO contacts_fts(contacts_fts, rowid, search_name, search_text)\n        VALUES ('delete', old.id, old.search_name, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS contacts_fts_au\n        AFTER UPDATE OF search_name, search_text ON contacts BEGIN\n        INSERT INTO contacts_fts(contacts_fts, rowid, search_name, search_text)\n        VALUES ('delete', old.id, old.search_name, old.search_text);\n        INSERT INTO contacts_fts(rowid, search_name, search_text)\n        VALUES (new.id, new.search_name, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS interactions_fts_ai AFTER INSERT ON interactions\n        WHEN (new.subject <> '' OR new.body <> '' OR new.transcript <> '') BEGIN\n        INSERT INTO interactions_fts(rowid, subject, body, transcript)\n        VALUES (new.id, new.subject, new.body, new.transcript); END",
    "CREATE TRIGGER IF NOT EXISTS interactions_fts_ad AFTER DELETE ON interactions\n        WHEN (old.subject <> '' OR old.body <> '' OR old.transcript <> '') BEGIN\n        INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, transcript)\n        VALUES ('delete', old.id, old.subject, old.body, old.transcript); END",
    "CREATE TRIGGER IF NOT EXISTS interactions_fts_au_old\n        AFTER UPDATE OF subject, body, transcript ON interactions\n        WHEN (old.subject <> '' OR old.body <> '' OR old.transcript <> '') BEGIN\n        INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, transcript)\n        VALUES ('delete', old.id, old.subject, old.body, old.transcript); END",
    "CREATE TRIGGER IF NOT EXISTS interactions_fts_au_new\n        AFTER UPDATE OF subject, body, transcript ON interactions\n        WHEN (new.subject <> '' OR new.body <> '' OR new.transcript <> '') BEGIN\n        INSERT INTO interactions_fts(rowid, subject, body, transcript)\n        VALUES (new.id, new.subject, new.body, new.transcript); END",
)
SQLITE_DROP = (
    'DROP TRIGGER IF EXISTS contacts_fts_ai',
    'DROP TRIGGER IF EXISTS contacts_fts_ad',
    'DROP TRIGGER IF EXISTS contacts_fts_au',
    'DROP TRIGGER IF EXISTS interactions_fts_ai',
    'DROP TRIGGER IF EXISTS interactions_fts_ad',
    'DROP TRIGGER IF EXISTS interactions_fts_au_old',
    'DROP TRIGGER IF EXISTS interactions_fts_au_new',
    'DROP TABLE IF EXISTS contacts_fts',
    'DROP TABLE IF EXISTS interactions_fts',
)
PG_CREATE = (
    'CREATE TABLE IF NOT EXISTS contacts_fts (\n        contact_id integer PRIMARY KEY REFERENCES contacts(id) ON DELETE CASCADE,\n        document tsvector NOT NULL)',
    'CREATE INDEX IF NOT EXISTS contacts_fts_document ON contacts_fts USING gin (document)',
    'CREATE TABLE IF NOT EXISTS interactions_fts (\n        interaction_id integer PRIMARY KEY REFERENCES interactions(id) ON DELETE CASCADE,\n        document tsvector NOT NULL)',
    'CREATE INDEX IF NOT EXISTS interactions_fts_document\n        ON interactions_fts USING gin (document)',
    "CREATE OR REPLACE FUNCTION contacts_fts_sync() RETURNS trigger AS $$\n    BEGIN\n        INSERT INTO contacts_fts (contact_id, document)\n        VALUES (NEW.id, setweight(to_tsvector('simple', NEW.search_name), 'A')\n                        || setweight(to_tsvector('simple', NEW.search_text), 'B'))\n        ON CONFLICT (contact_id) DO UPDATE SET document = EXCLUDED.document;\n        RETURN NULL;\n    END $$ LANGUAGE plpgsql",
    "CREATE OR REPLACE FUNCTION interactions_fts_sync() RETURNS trigger AS $$\n    BEGIN\n        IF NEW.subject <> '' OR NEW.body <> '' OR NEW.transcript <> '' THEN\n            INSERT INTO interactions_fts (interaction_id, document)\n            VALUES (NEW.id, setweight(to_tsvector('simple', NEW.subject), 'A')\n                         || to_tsvector('simple', NEW.body)\n                         || setweight(to_tsvector('simple', NEW.transcript), 'C'))\n            ON CONFLICT (interaction_id) DO UPDATE SET document = EXCLUDED.document;\n        ELSE\n            DELETE FROM interactions_fts WHERE interaction_id = NEW.id;\n        END IF;\n        RETURN NULL;\n    END $$ LANGUAGE plpgsql",
    'DROP TRIGGER IF EXISTS contacts_fts_sync ON contacts',
    'CREATE TRIGGER contacts_fts_sync\n        AFTER INSERT OR UPDATE OF search_name, search_text ON contacts\n        FOR EACH ROW EXECUTE FUNCTION contacts_fts_sync()',
    'DROP TRIGGER IF EXISTS interactions_fts_sync ON interactions',
    'CREATE TRIGGER interactions_fts_sync\n        AFTER INSERT OR UPDATE OF subject, body, transcript ON interactions\n        FOR EACH ROW EXECUTE FUNCTION interactions_fts_sync()',
    "INSERT INTO contacts_fts (contact_id, document)\n        SELECT id, setweight(to_tsvector('simple', search_name), 'A')\n                   || setweight(to_tsvector('simple', search_text), 'B') FROM contacts\n        ON CONFLICT (contact_id) DO NOTHING",
    "INSERT INTO interactions_fts (interaction_id, document)\n        SELECT id, setweight(to_tsvector('simple', subject), 'A')\n                   || to_tsvector('simple', body)\n                   || setweight(to_tsvector('simple', transcript), 'C')\n        FROM interactions WHERE subject <> '' OR body <> '' OR transcript <> ''\n        ON CONFLICT (interaction_id) DO NOTHING",
)
PG_DROP = (
    'DROP TRIGGER IF EXISTS contacts_fts_sync ON contacts',
    'DROP TRIGGER IF EXISTS interactions_fts_sync ON interactions',
    'DROP FUNCTION IF EXISTS contacts_fts_sync()',
    'DROP FUNCTION IF EXISTS interactions_fts_sync()',
    'DROP TABLE IF EXISTS contacts_fts',
    'DROP TABLE IF EXISTS interactions_fts',
)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        for create, fill in SQLITE_CREATE:
            bind.execute(sa.text(create))
            for statement in fill:
                bind.execute(sa.text(statement))
        for statement in SQLITE_TRIGGERS:
            bind.execute(sa.text(statement))
    elif dialect == "postgresql":
        for statement in PG_CREATE:
            bind.execute(sa.text(statement))
    else:
        raise ValueError(f"no full-text support for the {dialect} dialect")


def downgrade() -> None:
    bind = op.get_bind()
    for statement in SQLITE_DROP if bind.dialect.name == "sqlite" else PG_DROP:
        bind.execute(sa.text(statement))
