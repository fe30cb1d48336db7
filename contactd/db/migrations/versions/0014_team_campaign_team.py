"""campaigns.team: only agents of this team may join the campaign (NULL: any agent)

Revision ID: 0014_team_campaign_team
Revises: 0013_days_campaign_calling_days
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_team_campaign_team"
down_revision: str | None = "0013_days_campaign_calling_days"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("team", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("team")
