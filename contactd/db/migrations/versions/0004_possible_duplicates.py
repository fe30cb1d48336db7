"""possible duplicates: contacts sharing a number whose names contradict

Revision ID: 0004_possible_duplicates
Revises: 0003_panel
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_possible_duplicates"
down_revision: str | None = "0003_panel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "possible_duplicates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("other_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("contact_id < other_id",
                           name=op.f("ck_possible_duplicates_ordered_pair")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_possible_duplicates_contact_id_contacts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["other_id"], ["contacts.id"],
                                name=op.f("fk_possible_duplicates_other_id_contacts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_possible_duplicates")),
        sa.UniqueConstraint("contact_id", "other_id",
                            name=op.f("uq_possible_duplicates_contact_id")),
    )
    with op.batch_alter_table("possible_duplicates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_possible_duplicates_other_id"), ["other_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("possible_duplicates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_possible_duplicates_other_id"))
    op.drop_table("possible_duplicates")
