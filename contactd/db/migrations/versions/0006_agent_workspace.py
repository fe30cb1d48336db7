"""agent workspace: a campaign's call script and disposition buttons, each call's disposition

Revision ID: 0006_agent_workspace
Revises: 0005_email_inbound
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_agent_workspace"
down_revision: str | None = "0005_email_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("script", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("dispositions", sa.JSON(), nullable=True))
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_column("disposition")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("dispositions")
        batch_op.drop_column("script")
