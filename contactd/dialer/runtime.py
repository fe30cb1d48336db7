"""The live, in-memory side of the campaigns this process dials: pacer, calls out, answers.

Shared by the dial loop, the hand-off, the abandon accountant and the lead settler; what must
survive a restart lives in the database instead (recovery.py).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from contactd.calls.events import CallAnswered
from contactd.config import DialerSettings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer import answers
from contactd.dialer.callstate import DialState, LiveCalls
from contactd.dialer.governor import DAY_S, AbandonGovernor
from contactd.dialer.pacing import PredictivePacer, ProgressivePacer
from contactd.enums import CampaignMode

ENDED_EARLY_KEEP: Final = 10_000


@dataclass
class CampaignRuntime:
    """One campaign's pacer, answer ledger and the calls it has out."""

    campaign_id: int
    pacer: PredictivePacer | ProgressivePacer
    ledger: answers.AnswerLedger
    calls: LiveCalls
    recent: deque[datetime] = field(default_factory=lambda: deque(maxlen=1000))
    refused: dict[int, set[str]] = field(default_factory=dict)  # lead -> reasons stored
    seeded: bool = False
    # Recent live answers already in the governor (row id -> time): other daemons' are
    # folded in once each (recovery.fold_peer_answers).
    answers_seen: dict[int, float] = field(default_factory=dict)

    def ringing_ages(self, now_s: float) -> tuple[float, ...]:
        """Ages of the calls the pacer counts in flight: those not yet resolved (still
        ringing, or answered with AMD's verdict pending). A call handed to an agent is that
        agent's talk, and a machine's is no one's: counting them too, as the loop once did,
        made a progressive campaign with five agents talking dial nothing for five free. A call
        the dialer has hung up is gone for the pacer, though its end has not come yet."""
        return tuple(now_s - c.dialed_at for c in self.calls
                     if c.state is DialState.RINGING and c.hung_up_at is None)


class Runtimes:
    """Every campaign's runtime, made on first use with the [dialer] settings."""

    def __init__(self, db: Database, dialer: DialerSettings, node: str | None = None) -> None:
        self.db, self.dialer, self.node = db, dialer, node
        self._by_campaign: dict[int, CampaignRuntime] = {}
        # CallEnded can be handled before originate() returned the attempt id (an instant
        # failure): remembered here so the call is not counted as ringing forever.
        self._ended_early: OrderedDict[str, float] = OrderedDict()
        # Likewise CallAnswered: a call without AMD (preview) can be answered that fast.
        self._answered_early: OrderedDict[str, CallAnswered] = OrderedDict()

    def __iter__(self) -> Iterator[CampaignRuntime]:
        return iter(list(self._by_campaign.values()))

    def get(self, campaign_id: int) -> CampaignRuntime | None:
        return self._by_campaign.get(campaign_id)

    def for_campaign(self, campaign: Campaign) -> CampaignRuntime:
        rt = self._by_campaign.get(campaign.id)
        if rt is None:
            pacer = self._pacer(campaign)
            ledger = answers.AnswerLedger(self.db, campaign.id, pacer, self.node)
            rt = self._by_campaign[campaign.id] = CampaignRuntime(
                campaign.id, pacer, ledger, LiveCalls(campaign.id))
        return rt

    def _pacer(self, campaign: Campaign) -> PredictivePacer | ProgressivePacer:
        if campaign.mode is not CampaignMode.PREDICTIVE:
            return ProgressivePacer()
        governor = AbandonGovernor(
            limit_pct=campaign.abandon_limit_pct or self.dialer.abandon_limit_pct,
            windows_s=(self.dialer.abandon_window_days * DAY_S,
                       self.dialer.abandon_short_window_hours * 3600.0),
            target_fraction=self.dialer.abandon_target_fraction,
        )
        return PredictivePacer(governor, grace_s=self.dialer.agent_connect_s,
                               hangup_after_s=float(self.dialer.surplus_hangup_after_s) or None)

    def of_attempt(self, attempt_id: str) -> CampaignRuntime | None:
        """The runtime whose calls include `attempt_id` (a call this process dialed)."""
        for rt in self._by_campaign.values():
            if attempt_id in rt.calls:
                return rt
        return None

    def seeded_pacer(self, campaign_id: int) -> PredictivePacer | ProgressivePacer | None:
        """The campaign's pacer once it was seeded from the stored answers, else None."""
        rt = self._by_campaign.get(campaign_id)
        return rt.pacer if rt is not None and rt.seeded else None

    def any_waiting(self) -> bool:
        return any(rt.calls.in_state(DialState.WAITING) for rt in self._by_campaign.values())

    def ended_early(self, attempt_id: str, now_s: float) -> None:
        self._ended_early[attempt_id] = now_s
        while len(self._ended_early) > ENDED_EARLY_KEEP:
            self._ended_early.popitem(last=False)

    def answered_early(self, event: CallAnswered) -> None:
        """Perhaps ours, answered before originate() returned its id: kept until it has."""
        self._answered_early[event.attempt_id] = event
        while len(self._answered_early) > ENDED_EARLY_KEEP:
            self._answered_early.popitem(last=False)

    def took_answered_early(self, attempt_id: str) -> CallAnswered | None:
        return self._answered_early.pop(attempt_id, None)

    def took_ended_early(self, attempt_id: str) -> bool:
        """True (once) when the call's CallEnded was handled before its Originate returned."""
        return self._ended_early.pop(attempt_id, None) is not None
