"""The outbox's two value types: a request to store a message, and a state change to record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contactd.enums import Channel, MessageState


@dataclass(frozen=True)
class OutboundMessage:
    """What a caller asks to send; `idempotency_key` makes asking twice harmless."""

    idempotency_key: str
    channel: Channel
    to: str
    body: str = ""
    subject: str = ""
    html_body: str | None = None
    contact_id: int | None = None
    campaign_id: int | None = None
    interaction_id: int | None = None
    template: str | None = None
    language: str = "en"
    expires_at: datetime | None = None
    not_before: datetime | None = None  # held back until then (a campaign's quiet hours)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A state change for the writer; `done` resolves once it is committed."""

    state: MessageState
    id: int
    values: dict[str, Any]
    done: asyncio.Future[None] | None = None
