"""The dial loop: each pacing tick asks the pacer how many calls to start, claims that many
leads in one transaction, and originates them side by side.

Crash safety: the lead is marked `dialing` with `attempts + 1` and `next_attempt_at` pushed
past its retry window in the same transaction *before* the Originate, so a restart can never
re-dial it early. While the AMI link is down the loop tries no lead; it says so once, and once
again when the link is back. A campaign row the code cannot read (an unknown mode) is set
aside with a logged reason; the other campaigns go on. Every refusal to dial is stored as a
DialRefusal once per lead and reason, and logged as one summary per campaign and minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from contactd.ami.errors import AmiUnavailable
from contactd.background import LoopState, run_resilient
from contactd.calls.errors import OriginateRejected, OriginateUncertain
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.agents import AgentBoard
from contactd.dialer.callstate import DialState
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.dialplan import originate_request
from contactd.dialer.explain import build_requests, retry_rules_for
from contactd.dialer.handoff import HandOff
from contactd.dialer.pacing import PacingSnapshot, PredictivePacer
from contactd.dialer.policy import (
    SELECTION_ORDER,
    Refusal,
    rate_allowance,
    rate_window_s,
    refusals,
)
from contactd.dialer.recovery import change_status, fold_peer_answers, seed_governor
from contactd.dialer.runtime import CampaignRuntime, Runtimes
from contactd.dialer.surplus import RingingHangup, end_surplus
from contactd.enums import CampaignMode
from contactd.events import EventBus

log = logging.getLogger(__name__)

WAITING_CHECK_S: Final = 0.1
REFUSAL_SUMMARY_S: Final = 60.0  # refusals are logged as one summary per campaign this often


class PeerLoad(NamedTuple):
    """Calls on a campaign as stored: other daemons' (zero with one daemon), and this
    daemon's own still open (some may be an earlier process's, not yet reconciled)."""

    open_calls: int = 0
    started: int = 0  # by other daemons, in the campaign's rate window
    own_open: int = 0


def spread(leads: list[Lead]) -> list[Lead]:
    """Due leads in a random order within each rank (callbacks, fresh, recycled) and
    priority: daemons sharing a campaign read the same candidates, and in one order they
    would reach for the same lead one after another, each but the first finding it taken."""
    rank = {status: i for i, status in enumerate(SELECTION_ORDER)}
    keyed = [(rank.get(lead.status, len(rank)), -lead.priority, random.random(), lead)
             for lead in leads]
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


class CallLauncher(RingingHangup, Protocol):
    @property
    def connected(self) -> bool: ...  # the AMI link is up: an Originate can leave

    async def originate(self, request: OriginateRequest) -> str: ...


class DialLoop:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        calls: CallLauncher,
        runtimes: Runtimes,
        agents: AgentBoard,
        handoff: HandOff,
        *,
        seeding: asyncio.Lock,
        recover: Callable[[], Awaitable[bool]],
        clock: Callable[[], float],
        bus: EventBus,
    ) -> None:
        self.db, self.settings, self.calls, self.bus = db, settings, calls, bus
        self.dialer = settings.dialer
        self.node = settings.general.node
        # Several daemons may share a PostgreSQL database: a campaign's own caps and its
        # abandon rate are then held across all of them (SQLite serves one daemon).
        self.shared = db.dialect == "postgresql"
        self.runtimes, self.agents, self.handoff = runtimes, agents, handoff
        self._lock = seeding  # one tick at a time; abandons of older calls wait for seeding
        self._recover = recover
        self.clock = clock
        self._wake = asyncio.Event()
        # The dial loop survives a failed tick (a locked database) and says so in health.
        self.state = LoopState("dialer loop")
        # Leads of an earlier process may still be `dialing`: swept at each tick until none.
        self.orphans = True
        self._link_down = False  # said once per outage
        self._set_aside: dict[int, str] = {}  # campaign id -> why it cannot be run
        self._running: set[int] = set()  # campaigns the last tick ran (logs their changes)
        self._refusals: dict[int, dict[str, int]] = {}  # since the last summary
        self._refusals_said = clock()

    def wake(self) -> None:
        self._wake.set()

    @property
    def set_aside(self) -> dict[int, str]:
        return dict(self._set_aside)

    async def run(self) -> None:
        await run_resilient(self._step, self.state, logger=log)

    async def _step(self) -> None:
        """One tick, then wait for a wake-up or the next tick; a failed tick backs off."""
        await self.tick()
        # People waiting for an agent are checked often; otherwise once per pacing tick.
        timeout = WAITING_CHECK_S if self.runtimes.any_waiting() else self.dialer.pacing_tick_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        self._wake.clear()

    async def tick(self) -> None:
        async with self._lock:
            if self.orphans:
                self.orphans = await self._recover()
            if not self._link_ready():
                return
            campaigns = await self._running_campaigns()
            await self._say_changes({c.id for c in campaigns})
            self._say_refusals()
            for campaign in campaigns:
                try:
                    await self._run(campaign)
                except AmiUnavailable:
                    self._link_ready(dropped=True)
                    return

    async def _say_changes(self, running: set[int]) -> None:
        """Log each campaign the loop starts or stops running, with its totals."""
        changed = running ^ self._running
        self._running = running
        for campaign_id in sorted(changed):
            async with self.db.session() as session:
                status = await repo.campaign_status(session, campaign_id)
                totals = await repo.totals(session, campaign_id)
            what = "started" if campaign_id in running else (
                status.value if status is not None else "deleted")
            log.info(f"campaign {what}", extra={"campaign_id": campaign_id, "totals": totals})

    def _say_refusals(self) -> None:
        """One line per campaign and minute: how many leads each reason kept from dialling."""
        now = self.clock()
        if now - self._refusals_said < REFUSAL_SUMMARY_S:
            return
        self._refusals_said = now
        for campaign_id, counts in sorted(self._refusals.items()):
            log.info("dial refusals in the last minute", extra={
                "campaign_id": campaign_id, "refusals": dict(sorted(counts.items()))})
        self._refusals.clear()

    def _link_ready(self, *, dropped: bool = False) -> bool:
        """Whether an Originate can leave now; an outage is logged once, and its end."""
        up = self.calls.connected and not dropped
        if not up and not self._link_down:
            log.warning("dialing waits: the AMI link to Asterisk is down")
        elif up and self._link_down:
            log.info("the AMI link is back: dialing resumes")
        self._link_down = not up
        return up

    async def _running_campaigns(self) -> list[Campaign]:
        """Running campaigns; a row the code cannot read is set aside (logged once)."""
        async with self.db.session() as session:
            out = []
            for campaign_id in await repo.running_campaign_ids(session):
                try:
                    campaign = await repo.campaign_by_id(session, campaign_id)
                except repo.CampaignUnreadable as exc:
                    if campaign_id not in self._set_aside:
                        self._set_aside[campaign_id] = str(exc)
                        log.error("campaign set aside", extra={
                            "campaign_id": campaign_id, "reason": str(exc)})
                    continue
                self._set_aside.pop(campaign_id, None)
                if campaign is not None:
                    out.append(campaign)
        return out

    async def _run(self, campaign: Campaign) -> None:
        rt = self.runtimes.for_campaign(campaign)
        if not rt.seeded:
            rt.seeded = True
            if isinstance(rt.pacer, PredictivePacer):
                rt.answers_seen = await seed_governor(self.db, campaign.id, rt.pacer.governor)
        now_s = self.clock()
        await self.handoff.settle_waiting(campaign, rt, now_s)
        self._feed_pacer(rt)
        peers = PeerLoad()
        if self.shared:
            peers = await self._peer_load(campaign, rt, now_s)
        after_s = self.dialer.surplus_hangup_after_s
        if campaign.mode is CampaignMode.PREDICTIVE and after_s:  # before the dial decision
            await end_surplus(self.calls, self.bus, rt, self._snapshot(rt, now_s), now_s,
                              after_s)
        wanted = self._wanted(campaign, rt, now_s, peers)
        if wanted <= 0:
            return
        now = datetime.fromtimestamp(now_s, UTC)
        async with self.db.session() as session:
            leads = list(await repo.due_leads(session, campaign.id, now, wanted * 4 + 10))
            if self.shared:
                leads = spread(leads)
            if not leads and not rt.calls and await repo.leads_left(session, campaign.id) == 0:
                await change_status(self.db, campaign.name, CampaignAction.FINISH)
                return
        claimed = await self._claim(campaign, rt, leads, now, wanted)
        await self._dial_claimed(campaign, rt, claimed, now)

    async def _peer_load(self, campaign: Campaign, rt: CampaignRuntime, now_s: float
                         ) -> PeerLoad:
        """Other daemons' open calls and recent starts on this campaign, and their live
        answers folded into this governor: the campaign's caps and abandon rate are joint."""
        if isinstance(rt.pacer, PredictivePacer):
            await fold_peer_answers(self.db, campaign.id, rt.pacer.governor, self.node,
                                    rt.answers_seen, now_s)
        cps = campaign.max_calls_per_second or self.dialer.max_calls_per_second
        since = datetime.fromtimestamp(now_s - rate_window_s(cps), UTC)
        async with self.db.session() as session:
            own, others, started = await repo.node_load(session, campaign.id, self.node, since)
        return PeerLoad(others, started, own)

    def _wanted(self, campaign: Campaign, rt: CampaignRuntime, now_s: float,
                peers: PeerLoad) -> int:
        if campaign.mode is CampaignMode.PREVIEW:
            return 0
        # The campaign's own caps hold across daemons; the [dialer] ones are this daemon's
        # (its trunk to its own Asterisk) and hold beside them.
        # An earlier process's calls still open count until reconciliation ends them.
        own_open = max(len(rt.calls), peers.own_open)
        room = min(self.dialer.max_concurrent_calls - own_open,
                   self._rate_room(rt, now_s, self.dialer.max_calls_per_second, 0))
        if campaign.max_concurrent:
            room = min(room, campaign.max_concurrent - peers.open_calls - own_open)
        if campaign.max_calls_per_second:
            room = min(room, self._rate_room(rt, now_s, campaign.max_calls_per_second,
                                             peers.started))
        if campaign.mode is CampaignMode.AUTOMATED:
            return room
        return min(room, rt.pacer.calls_to_dial(self._snapshot(rt, now_s), now_s))

    def _snapshot(self, rt: CampaignRuntime, now_s: float) -> PacingSnapshot:
        view = self.agents.view(rt.campaign_id, now_s)
        return PacingSnapshot(
            free_agents=view.free,
            talking=view.talking,
            wrapping=view.wrapping,
            ringing=rt.ringing_ages(now_s),
            waiting=len(rt.calls.in_state(DialState.WAITING)),
        )

    @staticmethod
    def _rate_room(rt: CampaignRuntime, now_s: float, cps: float, others: int) -> int:
        """Calls a rate cap of `cps` still allows in its window, with `others` started in it
        by other daemons."""
        since = datetime.fromtimestamp(now_s - rate_window_s(cps), UTC)
        return rate_allowance(cps) - others - sum(1 for t in rt.recent if t > since)

    def _feed_pacer(self, rt: CampaignRuntime) -> None:
        for store, report in ((self.agents.finished_talks, rt.pacer.talk_ended),
                              (self.agents.finished_wraps, rt.pacer.wrap_ended)):
            keep = []
            for campaign_id, seconds in store:
                if campaign_id == rt.campaign_id:
                    report(seconds)
                else:
                    keep.append((campaign_id, seconds))
            store[:] = keep

    async def _claim(
        self, campaign: Campaign, rt: CampaignRuntime, leads: list[Lead], now: datetime,
        wanted: int,
    ) -> list[tuple[Lead, repo.LeadMark]]:
        """Up to `wanted` of `leads`, in order, marked `dialing` in one transaction; a lead
        refused by policy has its reasons stored and is passed over."""
        claimed: list[tuple[Lead, repo.LeadMark]] = []
        rules = retry_rules_for(campaign, self.dialer)
        # Crash safety: until the outcome is known, the lead is not due again before the
        # shortest retry window has passed, whatever happens to this process.
        not_before = now + timedelta(seconds=min(rules.busy_s, rules.failed_s, rules.no_answer_s))
        async with self.db.transaction() as session:
            if self.shared and campaign.max_concurrent:
                # The other daemons' calls count against the campaign's cap, and one claim
                # takes at most half the free places: the daemons sharing the cap take turns
                # (a daemon woken first by its own calls' ends would otherwise refill every
                # place each time, and the others would never dial).
                free = campaign.max_concurrent - await repo.joint_calls(session, campaign.id)
                wanted = min(wanted, -(-free // 2))
            rest = leads
            while rest and len(claimed) < wanted:
                batch, rest = rest[:wanted - len(claimed)], rest[wanted - len(claimed):]
                fresh = await repo.dialable_leads(session, [lead.id for lead in batch])
                requests = await build_requests(session, self.settings, now, campaign, fresh)
                for lead, req in zip(fresh, requests, strict=True):
                    # The calls this claim has taken are in progress and recent for the next.
                    taken = len(claimed)
                    reasons = refusals(replace(
                        req, active_calls=req.active_calls + taken,
                        recent_dials=[*req.recent_dials, *(now for _ in range(taken))]))
                    if reasons:
                        await self._refused(session, campaign, rt, lead, reasons, now)
                        continue
                    claimed.append((lead, repo.mark_dialing(lead, not_before, self.node)))
        for lead, _previous in claimed:
            rt.refused.pop(lead.id, None)
        return claimed

    async def _refused(
        self, session: AsyncSession, campaign: Campaign, rt: CampaignRuntime, lead: Lead,
        reasons: list[Refusal], now: datetime,
    ) -> None:
        """Each reason is stored once per lead until it is dialed, not once per tick."""
        seen = rt.refused.setdefault(lead.id, set())
        new = [r for r in reasons if r.code.value not in seen]
        seen.update(r.code.value for r in new)
        counts = self._refusals.setdefault(campaign.id, {})
        for refusal in new:
            counts[refusal.code.value] = counts.get(refusal.code.value, 0) + 1
        await repo.record_refusals(session, campaign.id, lead.id, lead.phone_e164, new, now)

    async def _dial_claimed(
        self, campaign: Campaign, rt: CampaignRuntime,
        claimed: list[tuple[Lead, repo.LeadMark]], now: datetime, agent: str | None = None,
    ) -> int:
        """Originate the claimed leads side by side (their attempt rows are written in one
        batch, their Originates leave back to back); how many left. A link that fell is
        raised once every one of them has settled its lead."""
        results = await asyncio.gather(
            *(self._dial(campaign, rt, lead, previous, now, agent) for lead, previous in claimed),
            return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return sum(1 for r in results if r is True)

    async def _dial(
        self, campaign: Campaign, rt: CampaignRuntime, lead: Lead, previous: repo.LeadMark,
        now: datetime, agent: str | None,
    ) -> bool:
        """One claimed lead's Originate; False when nothing left (the claim is undone)."""
        request = originate_request(campaign, lead, float(self.dialer.ring_timeout_s))
        dialed_at = self.clock()
        try:
            attempt_id = await self.calls.originate(request)
        except (OriginateUncertain, OriginateRejected):
            # Uncertain: reconciliation publishes its CallEnded. Rejected: CallEnded (FAILED)
            # was published already.
            return True
        except Exception as exc:
            async with self.db.transaction() as session:  # nothing left the building
                await repo.unmark_dialing(session, lead.id, previous)
            if isinstance(exc, AmiUnavailable):
                raise  # the link fell: the tick stops and waits for it (said once)
            log.warning("dial not sent", extra={
                "lead_id": lead.id, "campaign_id": campaign.id, "reason": str(exc)})
            return False
        rt.recent.append(now)
        answered = self.runtimes.took_answered_early(attempt_id)
        if self.runtimes.took_ended_early(attempt_id):
            # It failed so fast that CallEnded was handled before originate() returned.
            rt.pacer.call_resolved(self.clock() - dialed_at, needs_agent=False)
        else:
            rt.calls.add(attempt_id, dialed_at).agent = agent
            if answered is not None:  # answered at once (no AMD: a preview call)
                await self.handoff.on_answered(answered)
        return True

    async def dial_lead(self, campaign: Campaign, rt: CampaignRuntime, lead: Lead,
                        now: datetime, agent: str | None = None) -> bool:
        """One chosen lead now (preview), under the same rules and lock as a tick; answered,
        it goes to `agent` (the one who chose it) when given."""
        async with self._lock:
            claimed = await self._claim(campaign, rt, [lead], now, 1)
            return await self._dial_claimed(campaign, rt, claimed, now, agent) > 0
