"""Node names on attempts, dialing leads and live answers: several daemons share one database

Revision ID: 0010_scaleout_node
Revises: 0009_ivr_message_text
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_scaleout_node"
down_revision: str | None = "0009_ivr_message_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.add_column(sa.Column("node", sa.String(length=64), nullable=True))
        batch.create_index("ix_call_attempts_node_state", ["node", "state"])
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("dialing_node", sa.String(length=64), nullable=True))
    with op.batch_alter_table("dialer_live_answers") as batch:
        batch.add_column(sa.Column("node", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dialer_live_answers") as batch:
        batch.drop_column("node")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("dialing_node")
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_index("ix_call_attempts_node_state")
        batch.drop_column("node")
