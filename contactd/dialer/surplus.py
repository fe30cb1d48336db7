"""Surplus hang-ups: a predictive pacer may say that some calls still ringing are too many,
the answers already coming would leave theirs without a free agent (an abandon, the regulated
nuisance). The youngest of those that rang `[dialer] surplus_hangup_after_s` (the legal floor
is 15 s) are ended unanswered, never one already answered at the telephony level.

Each is marked before its hang-up leaves, so its end, however soon it comes, is told to the
pacer as cut short (`call_cancelled`, abandons.py), and the dial decision of the same tick no
longer counts it ringing (`CampaignRuntime.ringing_ages`).
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

from contactd.ami.errors import AmiUnavailable
from contactd.dialer.callstate import DialState
from contactd.dialer.events import SurplusHangup
from contactd.dialer.pacing import PacingSnapshot
from contactd.dialer.runtime import CampaignRuntime
from contactd.events import EventBus

log = logging.getLogger(__name__)

# Why a surplus call ended, as its attempt stores it (after "ended unanswered after N s of
# ringing: ").
SURPLUS_WHY: Final = "the answers coming outnumbered free agents"


class RingingHangup(Protocol):
    # Hang up a call only while it still rings unanswered; False when it did not.
    async def end_unanswered(self, attempt_id: str, why: str) -> bool: ...


async def end_surplus(line: RingingHangup, bus: EventBus, rt: CampaignRuntime,
                      snap: PacingSnapshot, now_s: float, after_s: float) -> int:
    """End the ringing calls `rt`'s pacer says are too many; how many were ended."""
    wanted = rt.pacer.calls_to_cancel(snap, now_s)
    if wanted <= 0:
        return 0
    old = sorted((c for c in rt.calls.in_state(DialState.RINGING)
                  if c.hung_up_at is None and now_s - c.dialed_at >= after_s),
                 key=lambda c: c.dialed_at, reverse=True)
    ended = 0
    for call in old:
        if ended >= wanted:
            break
        call.hung_up_at = now_s
        try:
            sent = await line.end_unanswered(call.attempt_id, SURPLUS_WHY)
        except AmiUnavailable:
            call.hung_up_at = None  # nothing left: still ringing (the tick waits for AMI)
            raise
        if not sent:  # answered (at the telephony level) or gone: it ends as it ends
            call.hung_up_at = None
            continue
        ended += 1
        ring_s = round(now_s - call.dialed_at, 1)
        log.info("ringing call ended unanswered: answers coming outnumbered free agents",
                 extra={"attempt_id": call.attempt_id, "campaign_id": rt.campaign_id,
                        "ring_s": ring_s})
        await bus.publish(SurplusHangup(campaign_id=rt.campaign_id, attempt_id=call.attempt_id,
                                        ring_s=ring_s))
    return ended
