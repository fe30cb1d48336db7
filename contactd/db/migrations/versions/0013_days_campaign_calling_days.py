"""campaigns.calling_days: the weekdays a campaign may call, in the callee's zone (NULL: all)

Revision ID: 0013_days_campaign_calling_days
Revises: 0012_scale_search_reports
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_days_campaign_calling_days"
down_revision: str | None = "0012_scale_search_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("calling_days", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("calling_days")
