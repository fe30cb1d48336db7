"""Outbound campaigns: lead lists, leads, each call attempt and every refusal to dial."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from contactd.db.base import Base, Timestamps, str_enum, utcnow
from contactd.enums import (
    CallOutcome,
    CampaignMode,
    CampaignStatus,
    Channel,
    LeadStatus,
)


class Campaign(Timestamps, Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    mode: Mapped[CampaignMode] = mapped_column(str_enum(CampaignMode))
    status: Mapped[CampaignStatus] = mapped_column(
        str_enum(CampaignStatus), default=CampaignStatus.DRAFT
    )
    caller_id: Mapped[str] = mapped_column(String(64), default="")
    # None: take the [dialer] setting.
    window_start: Mapped[time | None]
    window_end: Mapped[time | None]
    # The weekdays calls may be made in the callee's own zone, e.g. "mon,tue,wed,thu,fri"
    # (dialer.policy.days_text); None: every day.
    calling_days: Mapped[str | None] = mapped_column(String(40))
    # Only agents of this team (users.team) may join the campaign; None: any agent.
    team: Mapped[str | None] = mapped_column(String(64))
    max_concurrent: Mapped[int | None]
    max_calls_per_second: Mapped[float | None]
    max_attempts: Mapped[int] = mapped_column(default=3)
    # Per-outcome retry delays in seconds, e.g. {"busy": 600, "no_answer": 3600}.
    retry_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Automated campaigns: the sound file name Playback plays to the callee (e.g.
    # custom/spring-offer; checked by dialer.create), unless ivr_flow names a flow to run.
    message: Mapped[str] = mapped_column(Text, default="")
    # Automated "message" campaigns: text the IVR speaks (TTS), {first_name} etc. filled in.
    message_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    ivr_flow: Mapped[str | None] = mapped_column(String(100))
    agent_queue: Mapped[str | None] = mapped_column(String(64))
    fallback_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    fallback_template: Mapped[str | None] = mapped_column(String(100))
    abandon_limit_pct: Mapped[float | None]
    # What the agent reads beside the card: Jinja text over the contact's fields (agent
    # workspace); and the disposition buttons it shows (None: [dialer] dispositions).
    script: Mapped[str] = mapped_column(Text, default="")
    dispositions: Mapped[list[str] | None] = mapped_column()
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]


class LeadList(Timestamps, Base):
    __tablename__ = "lead_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)


class Lead(Timestamps, Base):
    """One number to work in one campaign; its status says what the dialer does next."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_claim", "campaign_id", "status", "next_attempt_at", "priority"),
        Index("ix_leads_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lead_lists.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[LeadStatus] = mapped_column(str_enum(LeadStatus), default=LeadStatus.NEW)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    callback_at: Mapped[datetime | None]
    callback_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    last_outcome: Mapped[CallOutcome | None] = mapped_column(str_enum(CallOutcome))
    # The daemon (`[general] node`) that marked it `dialing`: only that daemon's restart
    # settles it, so a second daemon never settles a call it cannot see.
    dialing_node: Mapped[str | None] = mapped_column(String(64))


class DialRefusal(Base):
    """A lead the dialer chose not to dial, and why (window, DNC, caps, abandon governor …)."""

    __tablename__ = "dial_refusals"
    __table_args__ = (Index("ix_dial_refusals_campaign_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveAnswer(Base):
    """A person answered a campaign call: connected to an agent in time, or abandoned.

    The abandon-rate governor's durable memory: its rolling windows are rebuilt from these
    rows after a restart, and campaign statistics count abandons from them.
    """

    __tablename__ = "dialer_live_answers"
    __table_args__ = (Index("ix_dialer_live_answers_campaign_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    attempt_id: Mapped[str] = mapped_column(String(36), unique=True)
    abandoned: Mapped[bool] = mapped_column(default=False)
    wait_s: Mapped[float] = mapped_column(default=0.0)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    node: Mapped[str | None] = mapped_column(String(64))  # the daemon that counted it


class AgentStateRow(Base):
    """An agent signed in on one daemon, as every daemon sharing the database sees them.

    The daemon whose board holds the agent writes the row on every change (batched, off the
    call path) and pushes `expires_at` forward while it runs; a row past `expires_at` is a
    daemon gone, and its agents are shown nowhere (contactd/cluster_agents.py).
    """

    __tablename__ = "agent_state"
    __table_args__ = (Index("ix_agent_state_expires_at", "expires_at"),)

    node: Mapped[str] = mapped_column(String(64), primary_key=True)  # the daemon's [general] node
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column()  # None: inbound queues only
    state: Mapped[str] = mapped_column(String(16))  # an AgentState value
    pause_code: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[float] = mapped_column(default=0.0)  # as AgentStateChanged.since
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
