"""agent_state: every daemon's signed-in agents, where every daemon sharing the database sees them

- agent_state (node, agent): the agent's state, campaign and pause reason as the daemon whose
  board holds them last wrote it, and `expires_at`, which that daemon pushes forward while it
  runs (contactd/cluster_agents.py). A row past it is a daemon gone: its agents show nowhere.

Revision ID: 0016_scale_agent_state
Revises: 0015_webperf_task_team_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_scale_agent_state"
down_revision: str | None = "0015_webperf_task_team_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_state",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pause_code", sa.String(32), nullable=True),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agent_state_expires_at", "agent_state", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_state_expires_at", table_name="agent_state")
    op.drop_table("agent_state")
