"""call_attempts.detail: why a call ended as it did, when its outcome alone does not say

An answered call cut before the AMD verdict, a message that did not play, and now a ringing
call the predictive dialer ended unanswered (its answer would have found no free agent): the
reason was only logged; it is stored with the attempt.

Revision ID: 0019_attempt_detail
Revises: 0018_report_hours_same_bucket
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_attempt_detail"
down_revision: str | None = "0018_report_hours_same_bucket"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.add_column(sa.Column("detail", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("detail")
