"""contact version: optimistic concurrency for edits from the panel

Revision ID: 0007_records_contact_version
Revises: 0006_agent_workspace
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_records_contact_version"
down_revision: str | None = "0006_agent_workspace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite allows it with a default): batch mode would rebuild the table
    # and drop the full-text triggers on it.
    op.add_column(
        "contacts",
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )


def downgrade() -> None:
    # SQLite 3.35+ and PostgreSQL drop a column in place (the triggers stay).
    op.execute("ALTER TABLE contacts DROP COLUMN version")
