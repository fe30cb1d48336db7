"""Domain events published by messaging; the live panel, metrics and the dialer listen."""

from __future__ import annotations

from dataclasses import dataclass

from contactd.enums import Channel, MessageState
from contactd.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class MessageStateChanged(DomainEvent):
    """Base of the outbox events: one message moved to `state`."""

    message_id: int
    channel: Channel
    state: MessageState
    contact_id: int | None = None
    campaign_id: int | None = None
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class MessageSent(MessageStateChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class MessageDelivered(MessageStateChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class MessageFailed(MessageStateChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class MessageExpired(MessageStateChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class InboundSmsReceived(DomainEvent):
    contact_id: int | None
    from_number: str
    text: str
    opted_out: bool


@dataclass(frozen=True, kw_only=True)
class ChannelChosen(DomainEvent):
    contact_id: int
    campaign_id: int | None
    channel: Channel
    reason: str
