"""users.theme: the panel theme each user chose ("" follows the device: light or dark)

Revision ID: 0011_i18n_user_theme
Revises: 0010_scaleout_node
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_i18n_user_theme"
down_revision: str | None = "0010_scaleout_node"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("theme", sa.String(40), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("theme")
