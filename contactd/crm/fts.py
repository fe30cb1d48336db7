"""Full-text DDL, dialect-aware and idempotent: SQLite FTS5 external-content tables kept in
step by triggers, or PostgreSQL tsvector tables with GIN indexes kept in step by triggers.

Migrations own the schema, so these take a sync Connection: the lead's migration calls
`create_fts(op.get_bind())`, tests call it after `create_all`. Every table name ends in `_fts`,
which the Alembic environment ignores.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

from contactd.crm.report_hours import create_report_hours

_SQLITE_CREATE: Final = (
    """CREATE VIRTUAL TABLE contacts_fts USING fts5(
        search_name, search_text, content='contacts', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE VIRTUAL TABLE interactions_fts USING fts5(
        subject, body, transcript, content='interactions', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
)

# Interactions without text (most calls) stay out of the index: the same condition guards
# every insert and delete, so the index always holds exactly the rows with text.
_HAS_TEXT: Final = "({r}.subject <> '' OR {r}.body <> '' OR {r}.transcript <> '')"

_SQLITE_TRIGGERS: Final = (
    """CREATE TRIGGER IF NOT EXISTS contacts_fts_ai AFTER INSERT ON contacts BEGIN
        INSERT INTO contacts_fts(rowid, search_name, search_text)
        VALUES (new.id, new.search_name, new.search_text); END""",
    """CREATE TRIGGER IF NOT EXISTS contacts_fts_ad AFTER DELETE ON contacts BEGIN
        INSERT INTO contacts_fts(contacts_fts, rowid, search_name, search_text)
        VALUES ('delete', old.id, old.search_name, old.search_text); END""",
    """CREATE TRIGGER IF NOT EXISTS contacts_fts_au
        AFTER UPDATE OF search_name, search_text ON contacts BEGIN
        INSERT INTO contacts_fts(contacts_fts, rowid, search_name, search_text)
        VALUES ('delete', old.id, old.search_name, old.search_text);
        INSERT INTO contacts_fts(rowid, search_name, search_text)
        VALUES (new.id, new.search_name, new.search_text); END""",
    f"""CREATE TRIGGER IF NOT EXISTS interactions_fts_ai AFTER INSERT ON interactions
        WHEN {_HAS_TEXT.format(r="new")} BEGIN
        INSERT INTO interactions_fts(rowid, subject, body, transcript)
        VALUES (new.id, new.subject, new.body, new.transcript); END""",
    f"""CREATE TRIGGER IF NOT EXISTS interactions_fts_ad AFTER DELETE ON interactions
        WHEN {_HAS_TEXT.format(r="old")} BEGIN
        INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, transcript)
        VALUES ('delete', old.id, old.subject, old.body, old.transcript); END""",
    f"""CREATE TRIGGER IF NOT EXISTS interactions_fts_au_old
        AFTER UPDATE OF subject, body, transcript ON interactions
        WHEN {_HAS_TEXT.format(r="old")} BEGIN
        INSERT INTO interactions_fts(interactions_fts, rowid, subject, body, transcript)
        VALUES ('delete', old.id, old.subject, old.body, old.transcript); END""",
    f"""CREATE TRIGGER IF NOT EXISTS interactions_fts_au_new
        AFTER UPDATE OF subject, body, transcript ON interactions
        WHEN {_HAS_TEXT.format(r="new")} BEGIN
        INSERT INTO interactions_fts(rowid, subject, body, transcript)
        VALUES (new.id, new.subject, new.body, new.transcript); END""",
)

# Bulk imports write pages of rows; merging segments less eagerly than FTS5's default (4)
# halves the index cost per row and queries stay fast.
_SQLITE_FILL: Final = (
    """INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('automerge', 8);
       INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')""",
    f"""INSERT INTO interactions_fts(rowid, subject, body, transcript)
        SELECT id, subject, body, transcript FROM interactions i
        WHERE {_HAS_TEXT.format(r="i")}""",
)

# Bulk imports on SQLite: inside the batch's transaction the per-row insert trigger is dropped,
# the batch's contacts are indexed with one INSERT … SELECT over their id range (one FTS5
# segment instead of a flush per statement), and the trigger is created again with the very
# statement above, so the schema is unchanged at commit and a rollback restores it anyway.
CONTACTS_INSERT_TRIGGER: Final = "contacts_fts_ai"
SQLITE_SUSPEND_CONTACTS_TRIGGER: Final = f"DROP TRIGGER {CONTACTS_INSERT_TRIGGER}"
SQLITE_RESTORE_CONTACTS_TRIGGER: Final = _SQLITE_TRIGGERS[0]
_INDEX_CONTACTS: Final = (
    "INSERT INTO contacts_fts({delete}rowid, search_name, search_text) "
    "SELECT {command}id, search_name, search_text FROM contacts WHERE {where}"
)
SQLITE_INDEX_CONTACTS_RANGE: Final = _INDEX_CONTACTS.format(
    delete="", command="", where="id BETWEEN ? AND ?"
)

# Many contacts' texts changed at once (an import's repeats of stored contacts): through the
# per-row update trigger, 100 rows took 25-45 ms here; this way 7 ms. Inside the caller's
# transaction the trigger is dropped, the old texts deleted from the index in one statement,
# the rows updated, the new texts added in one statement, and the trigger restored.
# `{ids}`: the ids' placeholders.
CONTACTS_UPDATE_TRIGGER: Final = "contacts_fts_au"
SQLITE_SUSPEND_UPDATE_TRIGGER: Final = f"DROP TRIGGER {CONTACTS_UPDATE_TRIGGER}"
SQLITE_RESTORE_UPDATE_TRIGGER: Final = _SQLITE_TRIGGERS[2]
SQLITE_UNINDEX_CONTACTS: Final = _INDEX_CONTACTS.format(
    delete="contacts_fts, ", command="'delete', ", where="id IN ({ids}) ORDER BY id"
)
SQLITE_INDEX_CONTACTS: Final = _INDEX_CONTACTS.format(
    delete="", command="", where="id IN ({ids}) ORDER BY id"
)

_SQLITE_DROP: Final = (
    "DROP TRIGGER IF EXISTS contacts_fts_ai",
    "DROP TRIGGER IF EXISTS contacts_fts_ad",
    "DROP TRIGGER IF EXISTS contacts_fts_au",
    "DROP TRIGGER IF EXISTS interactions_fts_ai",
    "DROP TRIGGER IF EXISTS interactions_fts_ad",
    "DROP TRIGGER IF EXISTS interactions_fts_au_old",
    "DROP TRIGGER IF EXISTS interactions_fts_au_new",
    "DROP TABLE IF EXISTS contacts_fts",
    "DROP TABLE IF EXISTS interactions_fts",
)

_PG_CREATE: Final = (
    """CREATE TABLE IF NOT EXISTS contacts_fts (
        contact_id integer PRIMARY KEY REFERENCES contacts(id) ON DELETE CASCADE,
        document tsvector NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS contacts_fts_document ON contacts_fts USING gin (document)",
    """CREATE TABLE IF NOT EXISTS interactions_fts (
        interaction_id integer PRIMARY KEY REFERENCES interactions(id) ON DELETE CASCADE,
        document tsvector NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS interactions_fts_document
        ON interactions_fts USING gin (document)""",
    """CREATE OR REPLACE FUNCTION contacts_fts_sync() RETURNS trigger AS $$
    BEGIN
        INSERT INTO contacts_fts (contact_id, document)
        VALUES (NEW.id, setweight(to_tsvector('simple', NEW.search_name), 'A')
                        || setweight(to_tsvector('simple', NEW.search_text), 'B'))
        ON CONFLICT (contact_id) DO UPDATE SET document = EXCLUDED.document;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION interactions_fts_sync() RETURNS trigger AS $$
    BEGIN
        IF NEW.subject <> '' OR NEW.body <> '' OR NEW.transcript <> '' THEN
            INSERT INTO interactions_fts (interaction_id, document)
            VALUES (NEW.id, setweight(to_tsvector('simple', NEW.subject), 'A')
                         || to_tsvector('simple', NEW.body)
                         || setweight(to_tsvector('simple', NEW.transcript), 'C'))
            ON CONFLICT (interaction_id) DO UPDATE SET document = EXCLUDED.document;
        ELSE
            DELETE FROM interactions_fts WHERE interaction_id = NEW.id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS contacts_fts_sync ON contacts",
    """CREATE TRIGGER contacts_fts_sync
        AFTER INSERT OR UPDATE OF search_name, search_text ON contacts
        FOR EACH ROW EXECUTE FUNCTION contacts_fts_sync()""",
    "DROP TRIGGER IF EXISTS interactions_fts_sync ON interactions",
    """CREATE TRIGGER interactions_fts_sync
        AFTER INSERT OR UPDATE OF subject, body, transcript ON interactions
        FOR EACH ROW EXECUTE FUNCTION interactions_fts_sync()""",
    """INSERT INTO contacts_fts (contact_id, document)
        SELECT id, setweight(to_tsvector('simple', search_name), 'A')
                   || setweight(to_tsvector('simple', search_text), 'B') FROM contacts
        ON CONFLICT (contact_id) DO NOTHING""",
    """INSERT INTO interactions_fts (interaction_id, document)
        SELECT id, setweight(to_tsvector('simple', subject), 'A')
                   || to_tsvector('simple', body)
                   || setweight(to_tsvector('simple', transcript), 'C')
        FROM interactions WHERE subject <> '' OR body <> '' OR transcript <> ''
        ON CONFLICT (interaction_id) DO NOTHING""",
)

_PG_DROP: Final = (
    "DROP TRIGGER IF EXISTS contacts_fts_sync ON contacts",
    "DROP TRIGGER IF EXISTS interactions_fts_sync ON interactions",
    "DROP FUNCTION IF EXISTS contacts_fts_sync()",
    "DROP FUNCTION IF EXISTS interactions_fts_sync()",
    "DROP TABLE IF EXISTS contacts_fts",
    "DROP TABLE IF EXISTS interactions_fts",
)


def create_fts(connection: Connection) -> None:
    """Create (or complete) the full-text tables and triggers and index existing rows."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        existing = set(
            connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%_fts'")
            ).scalars()
        )
        for statement, fill in zip(_SQLITE_CREATE, _SQLITE_FILL, strict=True):
            name = statement.split()[3]
            if name not in existing:
                connection.execute(text(statement))
                for part in fill.split(";"):
                    connection.execute(text(part))
        for statement in _SQLITE_TRIGGERS:
            connection.execute(text(statement))
    elif dialect == "postgresql":
        for statement in _PG_CREATE:
            connection.execute(text(statement))
    else:
        raise ValueError(f"no full-text support for the {dialect} dialect")
    # The reports' hourly rollup of interactions is kept by triggers too.
    create_report_hours(connection)


def drop_fts(connection: Connection) -> None:
    """Undo `create_fts`: the migration's downgrade."""
    statements = _SQLITE_DROP if connection.dialect.name == "sqlite" else _PG_DROP
    for statement in statements:
        connection.execute(text(statement))
