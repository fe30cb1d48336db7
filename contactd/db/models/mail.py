"""Inbound e-mail received: one row per message (its dedup key makes a re-delivery or an IMAP
re-fetch after a crash harmless), with the Message-ID and thread it belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from contactd.db.base import Base, utcnow


class InboundEmail(Base):
    __tablename__ = "inbound_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The Message-ID of the thread's first message: what the timeline groups by.
    thread_id: Mapped[str] = mapped_column(String(255), index=True)
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))  # smtp | imap
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
