"""inbound e-mail: one row per received message, with its Message-ID and thread

Revision ID: 0005_email_inbound
Revises: 0004_possible_duplicates
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_email_inbound"
down_revision: str | None = "0004_possible_duplicates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("thread_id", sa.String(length=255), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"],
                                name=op.f("fk_inbound_emails_interaction_id_interactions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_emails")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_inbound_emails_dedup_key")),
    )
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_emails_interaction_id"), ["interaction_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_inbound_emails_message_id"), ["message_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_inbound_emails_thread_id"), ["thread_id"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("inbound_emails")
