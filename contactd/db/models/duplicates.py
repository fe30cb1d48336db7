"""Possible duplicates: two contacts sharing a number whose names contradict (see
contactd.crm.matching). They are kept apart and listed here for a person to review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from contactd.db.base import Base, utcnow


class PossibleDuplicate(Base):
    __tablename__ = "possible_duplicates"
    __table_args__ = (
        UniqueConstraint("contact_id", "other_id"),
        CheckConstraint("contact_id < other_id", name="ordered_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The pair in id order, so each pair is stored once.
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    other_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(32), default="shared_phone")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
