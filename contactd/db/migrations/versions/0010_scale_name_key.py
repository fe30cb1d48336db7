"""contacts.name_key: surname and first name folded, B-tree indexed, for prefix search in
name order (a 2-4 letter prefix matches thousands of full-text entries; ranking them all by
bm25 was the cost of search as you type)

Revision ID: 0010_scale_name_key
Revises: 0009_ivr_message_text

Frozen: the folding below is contactd.crm.searchtext.name_key as it was when this revision was
written (a revision never imports app code). Existing contacts are backfilled in pages.
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_scale_name_key"
down_revision: str | None = "0009_ivr_message_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 20_000
_SPECIAL = {0xDF: "ss", 0xC6: "ae", 0xE6: "ae", 0xD8: "o", 0xF8: "o", 0x141: "l", 0x142: "l"}


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    text = text.translate(_SPECIAL)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _key(first: str, last: str, organisation: str) -> str:
    words = f"{last or ''} {first or ''}".split() or (organisation or "").split()
    return _fold(" ".join(words))


def upgrade() -> None:
    column_type = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.add_column("contacts", sa.Column("name_key", column_type, nullable=False, server_default=""))
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT c.id, c.first_name, c.last_name, o.name FROM contacts c "
                "LEFT JOIN organisations o ON o.id = c.organisation_id "
                "WHERE c.id > :after ORDER BY c.id LIMIT :page"
            ),
            {"after": after, "page": _PAGE},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text("UPDATE contacts SET name_key = :key WHERE id = :id"),
            [{"id": cid, "key": _key(first, last, org)} for cid, first, last, org in rows],
        )
        after = rows[-1][0]
    op.create_index("ix_contacts_name_key", "contacts", ["name_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_contacts_name_key", table_name="contacts")
    op.drop_column("contacts", "name_key")
