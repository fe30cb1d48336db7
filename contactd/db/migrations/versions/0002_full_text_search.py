"""full-text search tables (SQLite FTS5 / PostgreSQL tsvector) kept in step by triggers

Revision ID: 0002
Revises: 0001

The DDL lives in contactd.crm.fts so the tests and the migration build the same index; a
later change to that DDL comes with a new revision that drops and recreates it.
"""

from collections.abc import Sequence

from alembic import op

from contactd.crm.fts import create_fts, drop_fts

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_fts(op.get_bind())


def downgrade() -> None:
    drop_fts(op.get_bind())
