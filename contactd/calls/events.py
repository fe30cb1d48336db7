"""Domain events for outbound call attempts, published on the EventBus by the CallService.

Every event carries the attempt id (the CallAttempt row id, also the Originate ActionID and
the Uniqueid/Linkedid of the originated channel). Per attempt the order is always
CallDialing → [CallRinging] → [CallAnswered → [CallBridged] → [CallAbandoned]] → CallEnded,
each at most once. CallAbandoned follows CallBridged only if the dialplan abandons a call after
a bridge ended (the shipped one does not); it always comes after CallAnswered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contactd.enums import CallOutcome
from contactd.events import DomainEvent


class AnsweredBy(StrEnum):
    """Who picked up, as answering-machine detection judged it (UNKNOWN: no or unsure AMD)."""

    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class CallEvent(DomainEvent):
    attempt_id: str


@dataclass(frozen=True, kw_only=True)
class CallDialing(CallEvent):
    """The attempt row is stored and Asterisk accepted the Originate."""

    phone_e164: str
    campaign_id: int | None = None
    lead_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent):
    channel: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent):
    """Published once the answer is classified (at the AMD verdict, or at answer without AMD)."""

    answered_by: AnsweredBy
    answered_at: datetime | None = None
    channel: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallBridged(CallEvent):
    """The callee's channel shares a bridge with another party (an agent, a queue member)."""

    agent_channel: str
    agent_interface: str


@dataclass(frozen=True, kw_only=True)
class CallAbandoned(CallEvent):
    """Asterisk gave up connecting the answered person (queue timeout, agent phone not
    answering, no agent in time) and played the identification message (UserEvent
    ContactdAbandon); `prompt_status` is its PLAYBACKSTATUS (SUCCESS/FAILED, "" if absent)."""

    prompt_status: str = ""


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    """Final: `cause` is the Q.850 hang-up cause when one was seen; `lost` when its end was
    never seen (it vanished during an AMI outage or a crash): the outcome is then what was
    seen before (MACHINE, a HUMAN who heard the message) or LOST when that is unknown.
    `message_status`: the message or flow's result (SUCCESS, FAILED, STARTED, None);
    `detail`: why the outcome is FAILED or LOST for an answered call."""

    outcome: CallOutcome
    cause: int | None
    cause_text: str = ""
    originate_reason: int | None = None
    ring_s: float = 0.0
    talk_s: float = 0.0
    answered_by: AnsweredBy | None = None
    lost: bool = False
    message_status: str | None = None
    detail: str = ""
