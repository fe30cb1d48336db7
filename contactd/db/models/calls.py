"""Call attempts: one row per dial, written before the Originate leaves (DESIGN.md §3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from contactd.db.base import Base, str_enum, utcnow
from contactd.enums import AttemptState, CallOutcome


class CallAttempt(Base):
    """One dial. Written in state `dialing` before the Originate; its id is the ActionID."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        Index("ix_call_attempts_state", "state"),
        Index("ix_call_attempts_campaign_created", "campaign_id", "created_at"),
        Index("ix_call_attempts_lead", "lead_id"),
        Index("ix_call_attempts_node_state", "node", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    state: Mapped[AttemptState] = mapped_column(
        str_enum(AttemptState), default=AttemptState.DIALING
    )
    outcome: Mapped[CallOutcome | None] = mapped_column(str_enum(CallOutcome))
    disposition: Mapped[str | None] = mapped_column(String(40))  # what the agent said it was
    hangup_cause: Mapped[int | None]
    # Whether the dialplan runs AMD on this call (CallAnswered then waits for its verdict).
    detect_machine: Mapped[bool] = mapped_column(default=False)
    originate_reason: Mapped[int | None]
    amd_status: Mapped[str | None] = mapped_column(String(16))
    amd_cause: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(200))
    uniqueid: Mapped[str | None] = mapped_column(String(64), index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64))
    # The daemon (`[general] node`) that dialed it, beside its own Asterisk: the only one that
    # can see its channels, so the only one that reconciles it.
    node: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    bridged_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ring_s: Mapped[float | None]
    talk_s: Mapped[float | None]
    # Why it ended as it did, when the outcome alone does not say (CallEnded.detail): an
    # answered call cut before AMD's verdict, a message not played, a call contactd hung up.
    detail: Mapped[str | None] = mapped_column(String(300))
