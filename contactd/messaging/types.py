"""What the outbox hands a sender, and what a sender answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from contactd.enums import Channel


@dataclass(frozen=True)
class ClaimedMessage:
    """A stored outbox row the dispatcher claimed for one send attempt (`id` is the row's).

    Not to be confused with `OutboundMessage`, the request to store a new message.
    """

    id: int
    channel: Channel
    to: str
    body: str
    subject: str = ""
    html_body: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ReceiptOutcome(StrEnum):
    """What a provider's delivery report means for the message, in the outbox's words."""

    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    PENDING = "pending"  # an intermediate report (en route, accepted): nothing to record


@dataclass(frozen=True)
class DeliveryReceipt:
    """A delivery report translated by the adapter that received it (SMPP receipts today)."""

    provider_id: str
    outcome: ReceiptOutcome
    detail: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_ids: list[str]
    awaits_receipt: bool  # SMS: stays SENT until a delivery receipt; email: SENT is final


class Sender(Protocol):
    """Sends one message; raises SendFailedError (permanent) or TemporaryFailureError."""

    async def send(self, message: ClaimedMessage) -> SendResult: ...
