"""The campaign life cycle as an explicit state machine: an enum plus a transition table."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from contactd.enums import CampaignStatus
from contactd.errors import ConflictError

S = CampaignStatus


class CampaignAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    STOP = "stop"
    FINISH = "finish"  # the dialer ran out of leads


TRANSITIONS: Final[dict[tuple[CampaignStatus, CampaignAction], CampaignStatus]] = {
    (S.DRAFT, CampaignAction.START): S.RUNNING,
    (S.PAUSED, CampaignAction.START): S.RUNNING,
    (S.STOPPED, CampaignAction.START): S.RUNNING,
    (S.FINISHED, CampaignAction.START): S.RUNNING,  # new leads were added
    (S.RUNNING, CampaignAction.PAUSE): S.PAUSED,
    (S.RUNNING, CampaignAction.STOP): S.STOPPED,
    (S.PAUSED, CampaignAction.STOP): S.STOPPED,
    (S.DRAFT, CampaignAction.STOP): S.STOPPED,
    (S.RUNNING, CampaignAction.FINISH): S.FINISHED,
}


class CampaignTransitionError(ConflictError):
    code = "campaign_transition_invalid"


def next_status(current: CampaignStatus, action: CampaignAction) -> CampaignStatus:
    """The status after `action`, or CampaignTransitionError naming what is allowed."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is current)
        raise CampaignTransitionError(
            f"cannot {action.value} a campaign that is {current.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else ""),
            status=current.value,
            action=action.value,
        ) from None


def is_dialing(status: CampaignStatus) -> bool:
    return status is S.RUNNING
