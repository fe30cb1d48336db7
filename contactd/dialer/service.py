"""DialerService: runs the campaigns - picks leads, asks the policy, paces, dials, follows up.

Public API::

    board = AgentBoard(auto_ready_s=settings.dialer.agent_wrap_s)
    async with DialerService(db, bus, settings, calls, agents=board, connector=calls_connector,
                             fallback=messaging) as dialer:
        await dialer.start("spring-sale"); await dialer.pause(...); await dialer.stop(...)
        await dialer.schedule_callback(lead_id, at, user_id=3)
        await dialer.dial_lead(lead_id)          # preview mode: the agent clicked
        dialer.runtime(campaign_id).pacer.last   # the pacer's live forecast

`calls` is the CallService (`originate(OriginateRequest) -> attempt id`); CallAnswered,
CallBridged, CallAbandoned and CallEnded arrive on the bus. Each live answer is counted once (a
LiveAnswer row, the governor); when Asterisk abandons a call counted connected (queue timeout,
agent phone not answering: CallAbandoned), or it ends never bridged to anyone, that count is
amended to abandoned, never doubled (dialer.answers). Every
refusal to dial is stored as a DialRefusal (once per lead and reason, not every tick). Crash
safety: the lead is marked `dialing` with `attempts + 1` and `next_attempt_at` pushed past its
retry window in the same transaction *before* the Originate, so a restart can never re-dial it
early. Recovery does not depend on start-up order: leads left `dialing` by an earlier process
are settled from their stored attempt rows, at start and at every tick until none is left
(the call layer may reconcile and publish before the dialer subscribes); each lead is settled
exactly once (`settle_lead` only moves a lead that is still `dialing`, one at a time).
While the AMI link is down the dial loop tries no lead; it says so once, and once again when
the link is back. A campaign row the code cannot read (an unknown mode) is set aside with a
logged reason; the other campaigns go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Protocol

from sqlalchemy import select

from contactd.ami.errors import AmiUnavailable
from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.calls.errors import OriginateRejected, OriginateUncertain
from contactd.calls.events import (
    AnsweredBy,
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEnded,
)
from contactd.calls.service import OriginateRequest
from contactd.config import Settings
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer import answers, repo
from contactd.dialer.agents import AgentBoard
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.dialplan import originate_request
from contactd.dialer.explain import build_request, retry_rules_for
from contactd.dialer.governor import DAY_S, AbandonGovernor
from contactd.dialer.pacing import (
    PacingSnapshot,
    PredictivePacer,
    ProgressivePacer,
)
from contactd.dialer.policy import (
    after_outcome,
    rate_allowance,
    rate_window_s,
    refusals,
    schedule_callback,
)
from contactd.dialer.recovery import change_status, recover_leads, seed_governor
from contactd.enums import CallOutcome, CampaignMode, CampaignStatus, LeadStatus
from contactd.errors import NotFoundError
from contactd.events import EventBus

log = logging.getLogger(__name__)

CONNECT_MARGIN_S: Final = 0.5  # AMI latency allowance against the dialplan's agent wait
WAITING_CHECK_S: Final = 0.1
ENDED_EARLY_KEEP: Final = 10_000
REFUSAL_SUMMARY_S: Final = 60.0  # refusals are logged as one summary per campaign this often


class CallLauncher(Protocol):
    @property
    def connected(self) -> bool: ...  # the AMI link is up: an Originate can leave

    async def originate(self, request: OriginateRequest) -> str: ...


class AgentConnector(Protocol):
    """Hands an answered call to an agent (Setvar CONTACTD_AGENT on the waiting channel)."""

    async def connect(self, attempt_id: str, agent_dial: str) -> None: ...


class FallbackSender(Protocol):
    async def fallback(
        self,
        contact_id: int,
        *,
        idempotency_key: str,
        campaign_id: int | None = None,
        failed_call_attempts: int = 0,
        last_outcome: CallOutcome | None = None,
    ) -> Any: ...


@dataclass
class CampaignRuntime:
    """The live, in-memory side of one campaign: its pacer and the calls it has out."""

    campaign_id: int
    pacer: PredictivePacer | ProgressivePacer
    ledger: answers.AnswerLedger
    dialed: dict[str, float] = field(default_factory=dict)  # attempt -> dial time
    waiting: dict[str, float] = field(default_factory=dict)  # answered, no agent yet
    abandoned: set[str] = field(default_factory=set)
    bridged: set[str] = field(default_factory=set)  # reached an agent or a queue member
    recent: deque[datetime] = field(default_factory=lambda: deque(maxlen=1000))
    refused: dict[int, set[str]] = field(default_factory=dict)
    seeded: bool = False


class DialerService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        settings: Settings,
        calls: CallLauncher,
        *,
        agents: AgentBoard | None = None,
        connector: AgentConnector | None = None,
        fallback: FallbackSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.bus, self.settings, self.calls = db, bus, settings, calls
        self.dialer = settings.dialer
        self.agents = agents or AgentBoard(auto_ready_s=settings.dialer.agent_wrap_s)
        self.connector = connector
        self.fallback = fallback
        self.clock = clock
        self._runtimes: dict[int, CampaignRuntime] = {}
        self._wake = asyncio.Event()
        self._tasks = TaskOwner("dialer", log)
        # The dial loop survives a failed tick (a locked database) and says so in health.
        self.loop_state = LoopState("dialer loop")
        self._lock = asyncio.Lock()
        # CallEnded can be handled before originate() returned the attempt id (an instant
        # failure): remembered here so the call is not counted as ringing forever.
        self._ended_early: OrderedDict[str, float] = OrderedDict()
        # Likewise CallAnswered: a call without AMD (preview) can be answered that fast.
        self._answered_early: OrderedDict[str, CallAnswered] = OrderedDict()
        # Attempts of an earlier process that Asterisk abandoned: their lead ends ABANDONED.
        self._abandoned_elsewhere: OrderedDict[str, float] = OrderedDict()
        # Leads of an earlier process may still be `dialing`: swept at each tick until none.
        self._started = datetime.now(UTC)
        self._orphans = True
        self._settling = asyncio.Lock()  # one lead settlement at a time: exactly once
        self._link_down = False  # said once per outage
        self._set_aside: dict[int, str] = {}  # campaign id -> why it cannot be run
        self._running: set[int] = set()  # campaigns the last tick ran (logs their changes)
        self._refusals: dict[int, dict[str, int]] = {}  # since the last summary
        self._refusals_said = clock()

    # ---- life cycle ----------------------------------------------------------------------
    async def __aenter__(self) -> DialerService:
        self._started = datetime.now(UTC)
        await self.recover()
        self.subscribe()
        self._spawn(self._loop(), "dialer-loop")
        return self

    def handlers(self) -> tuple[tuple[type[Any], Callable[[Any], Any]], ...]:
        """Every bus event the dialer handles (its whole inbound surface)."""
        return (
            (CallAnswered, self._on_answered),
            (CallBridged, self._on_bridged),
            (CallAbandoned, self._on_abandoned),
            (CallEnded, self._on_ended),
        )

    def subscribe(self) -> None:
        for event_type, handler in self.handlers():
            self.bus.subscribe(event_type, handler)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for event_type, handler in self.handlers():
            self.bus.unsubscribe(event_type, handler)
        await self._tasks.close()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

    def wake(self) -> None:
        """Something changed (agent free, campaign started): decide now, not at the next tick."""
        self._wake.set()

    async def _loop(self) -> None:
        await run_resilient(self._step, self.loop_state, logger=log)

    async def _step(self) -> None:
        """One tick, then wait for a wake-up or the next tick; a failed tick backs off."""
        await self.tick()
        # People waiting for an agent are checked often; otherwise once per pacing tick.
        waiting = any(rt.waiting for rt in self._runtimes.values())
        timeout = WAITING_CHECK_S if waiting else self.dialer.pacing_tick_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        self._wake.clear()

    # ---- campaign commands ---------------------------------------------------------------
    async def start(self, name: str) -> CampaignStatus:
        status = await change_status(self.db, name, CampaignAction.START)
        self.wake()
        return status

    async def pause(self, name: str) -> CampaignStatus:
        return await change_status(self.db, name, CampaignAction.PAUSE)

    async def stop(self, name: str) -> CampaignStatus:
        return await change_status(self.db, name, CampaignAction.STOP)

    async def schedule_callback(
        self, lead_id: int, at: datetime, user_id: int | None = None
    ) -> None:
        now = datetime.now(UTC)
        decision = schedule_callback(at, now)
        async with self.db.transaction() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFoundError(f"no lead {lead_id}")
            lead.status = decision.status
            lead.callback_at = decision.next_attempt_at
            lead.next_attempt_at = decision.next_attempt_at
            lead.callback_user_id = user_id

    async def dial_lead(self, lead_id: int) -> bool:
        """Preview mode: an agent chose this lead, dial it now under the same rules as the loop.

        False when it is not due or a rule refused it (the refusal is stored, as the loop does).
        The answered call goes to a free agent of its campaign like any other.
        """
        async with self._lock:
            async with self.db.session() as session:
                lead = await session.get(Lead, lead_id)
                campaign = await repo.campaign_by_id(session, lead.campaign_id) if lead else None
            if lead is None or campaign is None:
                raise NotFoundError(f"no lead {lead_id}", code="lead_not_found")
            return await self._try_dial(campaign, self.runtime(campaign), lead,
                                        datetime.fromtimestamp(self.clock(), UTC))

    # ---- the dial loop -------------------------------------------------------------------
    def runtime(self, campaign: Campaign) -> CampaignRuntime:
        rt = self._runtimes.get(campaign.id)
        if rt is None:
            if campaign.mode is CampaignMode.PREDICTIVE:
                governor = AbandonGovernor(
                    limit_pct=campaign.abandon_limit_pct or self.dialer.abandon_limit_pct,
                    windows_s=(self.dialer.abandon_window_days * DAY_S,
                               self.dialer.abandon_short_window_hours * 3600.0),
                    target_fraction=self.dialer.abandon_target_fraction,
                )
                pacer: PredictivePacer | ProgressivePacer = PredictivePacer(
                    governor, grace_s=self.dialer.agent_connect_s
                )
            else:
                pacer = ProgressivePacer()
            ledger = answers.AnswerLedger(self.db, campaign.id, pacer)
            rt = self._runtimes[campaign.id] = CampaignRuntime(campaign.id, pacer, ledger)
        return rt

    async def tick(self) -> None:
        async with self._lock:
            if self._orphans:
                await self.recover()
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
                status = await session.scalar(
                    select(Campaign.status).where(Campaign.id == campaign_id))
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
            ids = (await session.execute(
                select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING)
            )).scalars().all()
            out = []
            for campaign_id in ids:
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

    @property
    def set_aside(self) -> dict[int, str]:
        """Running campaigns the dial loop skips, and why."""
        return dict(self._set_aside)

    async def _run(self, campaign: Campaign) -> None:
        rt = self.runtime(campaign)
        if not rt.seeded:
            rt.seeded = True
            if isinstance(rt.pacer, PredictivePacer):
                await seed_governor(self.db, campaign.id, rt.pacer.governor)
        now_s = self.clock()
        await self._settle_waiting(campaign, rt, now_s)
        self._feed_pacer(rt)
        wanted = self._wanted(campaign, rt, now_s)
        if wanted <= 0:
            return
        now = datetime.fromtimestamp(now_s, UTC)
        async with self.db.session() as session:
            leads = list(await repo.due_leads(session, campaign.id, now, wanted * 4 + 10))
            if not leads and not rt.dialed and await repo.leads_left(session, campaign.id) == 0:
                await change_status(self.db, campaign.name, CampaignAction.FINISH)
                return
        for lead in leads:
            if wanted <= 0:
                break
            if await self._try_dial(campaign, rt, lead, now):
                wanted -= 1

    def _wanted(self, campaign: Campaign, rt: CampaignRuntime, now_s: float) -> int:
        if campaign.mode is CampaignMode.PREVIEW:
            return 0
        cap = campaign.max_concurrent or self.dialer.max_concurrent_calls
        cps = campaign.max_calls_per_second or self.dialer.max_calls_per_second
        since = datetime.fromtimestamp(now_s - rate_window_s(cps), UTC)
        started = sum(1 for t in rt.recent if t > since)
        room = min(cap - len(rt.dialed), rate_allowance(cps) - started)
        if campaign.mode is CampaignMode.AUTOMATED:
            return room
        view = self.agents.view(campaign.id, now_s)
        snap = PacingSnapshot(
            free_agents=view.free,
            talking=view.talking,
            wrapping=view.wrapping,
            ringing=tuple(now_s - t for a, t in rt.dialed.items() if a not in rt.waiting
                          and a not in rt.abandoned),
            waiting=len(rt.waiting),
        )
        return min(room, rt.pacer.calls_to_dial(snap, now_s))

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

    async def _try_dial(
        self, campaign: Campaign, rt: CampaignRuntime, lead: Lead, now: datetime
    ) -> bool:
        async with self.db.transaction() as session:
            fresh = await session.get(Lead, lead.id)
            if fresh is None or fresh.status not in (LeadStatus.NEW, LeadStatus.RETRY,
                                                     LeadStatus.CALLBACK):
                return False
            req = await build_request(session, self.settings, fresh.phone_e164, now,
                                      campaign, fresh)
            reasons = refusals(req)
            if reasons:
                # Each reason is stored once per lead until it is dialed, not once per tick.
                seen = rt.refused.setdefault(fresh.id, set())
                new = [r for r in reasons if r.code.value not in seen]
                seen.update(r.code.value for r in new)
                counts = self._refusals.setdefault(campaign.id, {})
                for refusal in new:
                    counts[refusal.code.value] = counts.get(refusal.code.value, 0) + 1
                await repo.record_refusals(session, campaign.id, fresh.id, fresh.phone_e164,
                                           new, now)
                return False
            rules = retry_rules_for(campaign, self.dialer)
            previous = (fresh.status, fresh.attempts, fresh.next_attempt_at)
            fresh.status = LeadStatus.DIALING
            fresh.attempts += 1
            # Crash safety: until the outcome is known, the lead is not due again before the
            # shortest retry window has passed, whatever happens to this process.
            fresh.next_attempt_at = now + timedelta(seconds=min(rules.busy_s, rules.failed_s,
                                                                rules.no_answer_s))
        rt.refused.pop(lead.id, None)
        request = originate_request(campaign, lead, self.dial_string(lead.phone_e164),
                                    float(self.dialer.ring_timeout_s))
        dialed_at = self.clock()
        try:
            attempt_id = await self.calls.originate(request)
        except (OriginateUncertain, OriginateRejected):
            # Uncertain: reconciliation publishes its CallEnded. Rejected: CallEnded (FAILED)
            # was published already.
            return True
        except Exception as exc:
            async with self.db.transaction() as session:  # nothing left the building
                back = await session.get(Lead, lead.id)
                if back is not None:
                    back.status, back.attempts, back.next_attempt_at = previous
            if isinstance(exc, AmiUnavailable):
                raise  # the link fell: the tick stops and waits for it (said once)
            log.warning("dial not sent", extra={"lead_id": lead.id, "reason": str(exc)})
            return False
        rt.recent.append(now)
        answered = self._answered_early.pop(attempt_id, None)
        if self._ended_early.pop(attempt_id, None) is None:
            rt.dialed[attempt_id] = dialed_at
            if answered is not None:  # answered at once (no AMD: a preview call)
                await self._on_answered(answered)
        else:  # it failed so fast that CallEnded was handled before originate() returned
            rt.pacer.call_resolved(self.clock() - dialed_at, needs_agent=False)
        return True

    def dial_string(self, e164: str) -> str | None:
        """None: the call layer's trunk template. Overridden in tests to reach the sandbox."""
        return None

    # ---- answers and outcomes ------------------------------------------------------------
    async def _on_answered(self, event: CallAnswered) -> None:
        rt = self._runtime_of(event.attempt_id)
        if rt is None:
            # Perhaps ours, answered before originate() returned its id: handled once it has.
            self._answered_early[event.attempt_id] = event
            while len(self._answered_early) > ENDED_EARLY_KEEP:
                self._answered_early.popitem(last=False)
            return
        now_s = self.clock()
        ring = now_s - rt.dialed.get(event.attempt_id, now_s)
        person = event.answered_by is not AnsweredBy.MACHINE
        rt.pacer.call_resolved(ring, needs_agent=person)
        async with self.db.session() as session:
            campaign = await session.get(Campaign, rt.campaign_id)
        if not person or campaign is None or campaign.mode is CampaignMode.AUTOMATED:
            return
        if campaign.agent_queue:
            # Asterisk's queue connects: counted connected now, amended if the queue gives up.
            await self._live_answer(rt, event.attempt_id, abandoned=False, wait_s=0.0)
            return
        rt.waiting[event.attempt_id] = now_s
        await self._settle_waiting(campaign, rt, now_s)

    async def _settle_waiting(self, campaign: Campaign, rt: CampaignRuntime, now_s: float) -> None:
        """Give waiting people to free agents, oldest first; past the grace they are abandoned.

        Call events are handled while this awaits, so every step re-checks that the call is
        still waiting (a person may hang up, ending the call, at any moment).
        """
        for attempt_id, since in sorted(rt.waiting.items(), key=lambda kv: kv[1]):
            if attempt_id not in rt.waiting:
                continue
            if now_s - since > self.dialer.agent_connect_s:
                del rt.waiting[attempt_id]
                rt.abandoned.add(attempt_id)
                await self._live_answer(rt, attempt_id, abandoned=True, wait_s=now_s - since)
                continue
            agent = self.agents.claim(campaign.id, attempt_id, now_s)
            if agent is None:
                break
            del rt.waiting[attempt_id]
            # The dialplan's own 2 s clock started before the AMD verdict reached us: a late
            # hand-off may find the call already in the identification message. Count it as
            # abandoned then - never under-count abandons.
            late = now_s - since > self.dialer.agent_connect_s - CONNECT_MARGIN_S
            if late:
                rt.abandoned.add(attempt_id)
            await self._live_answer(rt, attempt_id, abandoned=late, wait_s=now_s - since)
            if self.connector is not None:
                try:
                    await self.connector.connect(attempt_id, agent.dial)
                except Exception as exc:  # the caller hung up meanwhile: the channel is gone
                    log.info("hand-off of %s to %s failed: %s", attempt_id, agent.name, exc)
            if attempt_id not in rt.dialed:  # ended while we were connecting: free the agent
                self.agents.call_ended(attempt_id, self.clock())

    async def _live_answer(
        self, rt: CampaignRuntime, attempt_id: str, *, abandoned: bool, wait_s: float
    ) -> None:
        """Count a live answer once; one counted connected may later turn abandoned."""
        await rt.ledger.count(attempt_id, at=self.clock(), abandoned=abandoned, wait_s=wait_s)

    async def _on_abandoned(self, event: CallAbandoned) -> None:
        """Asterisk gave up connecting the person (queue timeout, agent phone not answering):
        an abandon, whatever the dialer had counted; its lead ends ABANDONED."""
        now_s = self.clock()
        attempt_id = event.attempt_id
        rt = self._runtime_of(attempt_id)
        if rt is not None:
            since = rt.waiting.pop(attempt_id, None)
            rt.abandoned.add(attempt_id)
            wait_s = now_s - since if since is not None else 0.0
            await self._live_answer(rt, attempt_id, abandoned=True, wait_s=wait_s)
        else:
            # Dialed before a restart. Under the tick's lock: a governor is seeded from the
            # rows either before (then amended here) or after this change (reads the new row).
            async with self._lock:
                mine = await answers.amend_stored(self.db, attempt_id, now_s, self._seeded_pacer)
            if mine:
                self._abandoned_elsewhere[attempt_id] = now_s
                while len(self._abandoned_elsewhere) > ENDED_EARLY_KEEP:
                    self._abandoned_elsewhere.popitem(last=False)
        # The person hears the identification message: the agent claimed for them is free.
        # Their phone only rang: no talk sample for the pacer (it would shorten its estimate).
        self.agents.call_ended(attempt_id, now_s, talked=False)
        self.wake()

    def _on_bridged(self, event: CallBridged) -> None:
        rt = self._runtime_of(event.attempt_id)
        if rt is not None:
            rt.bridged.add(event.attempt_id)

    def _seeded_pacer(self, campaign_id: int) -> PredictivePacer | ProgressivePacer | None:
        rt = self._runtimes.get(campaign_id)
        return rt.pacer if rt is not None and rt.seeded else None

    def _runtime_of(self, attempt_id: str) -> CampaignRuntime | None:
        for rt in self._runtimes.values():
            if attempt_id in rt.dialed:
                return rt
        return None

    async def _on_ended(self, event: CallEnded) -> None:
        now_s = self.clock()
        rt = self._runtime_of(event.attempt_id)
        abandoned = self._abandoned_elsewhere.pop(event.attempt_id, None) is not None
        if rt is not None:
            if event.answered_by is None:  # never answered: a failure the pacer learns from
                rt.pacer.call_resolved(now_s - rt.dialed[event.attempt_id], needs_agent=False)
            rt.dialed.pop(event.attempt_id, None)
            counted = rt.ledger.get(event.attempt_id)
            if rt.waiting.pop(event.attempt_id, None) is not None:
                rt.abandoned.add(event.attempt_id)  # hung up while waiting: still an abandon
                await self._live_answer(rt, event.attempt_id, abandoned=True, wait_s=0.0)
            elif counted and not counted.abandoned and event.attempt_id not in rt.bridged:
                # Counted connected, yet it never reached anyone: the queue or the agent gave
                # up and the person hung up before ContactdAbandon (during the identification
                # message), or while the queue or the agent's phone still rang. An abandon.
                rt.abandoned.add(event.attempt_id)
                await self._live_answer(rt, event.attempt_id, abandoned=True, wait_s=0.0)
            rt.bridged.discard(event.attempt_id)
            abandoned = event.attempt_id in rt.abandoned
            rt.abandoned.discard(event.attempt_id)
        else:
            self._ended_early[event.attempt_id] = now_s
            while len(self._ended_early) > ENDED_EARLY_KEEP:
                self._ended_early.popitem(last=False)
        self.agents.call_ended(event.attempt_id, now_s)
        if event.detail:  # an answered call ended FAILED (message not played) or unknown
            log.warning("answered call not completed", extra={
                "attempt_id": event.attempt_id, "outcome": event.outcome.value,
                "reason": event.detail, "message_status": event.message_status})
        outcome = CallOutcome.ABANDONED if abandoned else event.outcome
        await self.settle_lead(event.attempt_id, outcome)
        self.wake()

    async def settle_lead(self, attempt_id: str, outcome: CallOutcome) -> None:
        """Apply the retry rules to the attempt's lead; queue a fallback message if they say so.

        Only a lead still `dialing` moves, one settlement at a time: the CallEnded handler and
        the recovery sweep may both reach the same lead, and only the first one settles it.
        """
        async with self._settling:
            await self._settle_lead(attempt_id, outcome)

    async def _settle_lead(self, attempt_id: str, outcome: CallOutcome) -> None:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            attempt = await session.get(CallAttempt, attempt_id)
            if attempt is None or attempt.lead_id is None:
                return
            lead = await session.get(Lead, attempt.lead_id)
            campaign = await session.get(Campaign, lead.campaign_id) if lead else None
            if lead is None or campaign is None or lead.status is not LeadStatus.DIALING:
                return
            rules = retry_rules_for(campaign, self.dialer)
            # Without a contact there is no address to fall back to.
            fallback = campaign.fallback_channel if lead.contact_id is not None else None
            decision = after_outcome(outcome, lead.attempts, rules, now, fallback)
            lead.status = decision.status
            lead.last_outcome = outcome
            lead.next_attempt_at = decision.next_attempt_at
            lead_id, contact_id, attempts = lead.id, lead.contact_id, lead.attempts
        if decision.fallback is not None and contact_id is not None and self.fallback:
            try:
                await self.fallback.fallback(
                    contact_id, idempotency_key=f"dialer-fallback:{lead_id}:{attempts}",
                    campaign_id=campaign.id, failed_call_attempts=attempts, last_outcome=outcome,
                )
            except Exception:
                log.exception("fallback message for lead %s failed", lead_id)

    # ---- crash safety ----------------------------------------------------------------------
    async def recover(self) -> None:
        """Settle leads left `dialing` by an earlier process from their attempts' stored fate.

        Called at start and by every tick while some are left (their attempts still open).
        """
        self._orphans = await recover_leads(self.db, self.settle_lead, before=self._started)
