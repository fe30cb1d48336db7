"""agent_presence: each signed-in agent's state, for every daemon sharing the database

Revision ID: 0016_presence_agent_presence
Revises: 0015_webperf_task_team_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0016_presence_agent_presence"
down_revision: str | None = "0015_webperf_task_team_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_presence",
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("pause_code", sa.String(40), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agent_presence_seen_at", "agent_presence", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_presence_seen_at", table_name="agent_presence")
    op.drop_table("agent_presence")
