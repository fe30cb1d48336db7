"""DialerService: runs the campaigns - the one facade the daemon, CLI, panel and tests use.

Public API::

    async with DialerService(db, bus, settings, calls, connector=calls_connector,
                             fallback=messaging) as dialer:
        dialer.agents.login("ann", "PJSIP/1001", campaign_id, time.time())
        await dialer.start("spring-sale"); await dialer.pause(...); await dialer.stop(...)
        await dialer.schedule_callback(lead_id, at, user_id=3)
        dialer.runtime_of(campaign_id).pacer.last   # the pacer's live forecast

`calls` is the CallService (`originate(OriginateRequest) -> attempt id`); CallAnswered,
CallBridged, CallAbandoned and CallEnded arrive on the bus. The work is split by job:

- `dial_loop.DialLoop`: each pacing tick asks the pacer, claims leads, originates; a
  predictive pacer may first have surplus ringing calls ended unanswered (`surplus`);
- `handoff.HandOff`: an answered person goes to a free agent or Asterisk's queue;
- `abandons.AbandonAccountant`: each live answer counted once for the governor, abandons
  amended, never doubled;
- `settler.LeadSettler`: CallEnded moves the lead by the retry rules, with a fallback message;
- `recovery`: leads left `dialing` by an earlier process are settled from their stored
  attempt rows, at start and at every tick until none is left (the call layer may reconcile
  and publish before the dialer subscribes); each lead is settled exactly once.

Each call the dialer placed has one state (`callstate.py`) that only its table moves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from contactd.background import TaskOwner
from contactd.calls.events import CallAbandoned, CallAnswered, CallBridged, CallEnded
from contactd.config import Settings
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.abandons import AbandonAccountant
from contactd.dialer.agents import AgentBoard
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.dial_loop import CallLauncher, DialLoop
from contactd.dialer.handoff import AgentConnector, HandOff
from contactd.dialer.policy import schedule_callback
from contactd.dialer.recovery import change_status, recover_leads
from contactd.dialer.runtime import CampaignRuntime, Runtimes
from contactd.dialer.settler import FallbackSender, LeadSettler
from contactd.enums import CallOutcome, CampaignStatus
from contactd.errors import NotFoundError
from contactd.events import EventBus

log = logging.getLogger(__name__)

__all__ = ["AgentConnector", "CallLauncher", "DialerService", "FallbackSender"]


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
        self.agents = agents or AgentBoard(auto_ready_s=settings.dialer.agent_wrap_s)
        self.clock = clock
        self._tasks = TaskOwner("dialer", log)
        self._started = datetime.now(UTC)
        # One tick at a time; an abandon of an earlier process's call waits for seeding.
        seeding = asyncio.Lock()
        self.runtimes = Runtimes(db, settings.dialer, settings.general.node)
        self.accountant = AbandonAccountant(db, self.runtimes, self.agents, seeding=seeding,
                                            clock=clock, wake=self.wake)
        self.handoff = HandOff(db, settings.dialer, self.runtimes, self.agents,
                               self.accountant, connector, clock=clock)
        self.settler = LeadSettler(db, settings.dialer, self.runtimes, self.agents,
                                   self.accountant, fallback, clock=clock, wake=self.wake)
        self.loop = DialLoop(db, settings, calls, self.runtimes, self.agents, self.handoff,
                             seeding=seeding, recover=self._recover_leads, clock=clock,
                             bus=bus)
        self.loop_state = self.loop.state

    # ---- life cycle ----------------------------------------------------------------------
    async def __aenter__(self) -> DialerService:
        self._started = datetime.now(UTC)
        await self.recover()
        self.subscribe()
        self._tasks.spawn(self.loop.run(), "dialer-loop")
        return self

    def handlers(self) -> tuple[tuple[type[Any], Callable[[Any], Any]], ...]:
        """Every bus event the dialer handles (its whole inbound surface)."""
        return (
            (CallAnswered, self.handoff.on_answered),
            (CallBridged, self.handoff.on_bridged),
            (CallAbandoned, self.accountant.on_abandoned),
            (CallEnded, self.settler.on_ended),
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

    def wake(self) -> None:
        """Something changed (agent free, campaign started): decide now, not at the next tick."""
        self.loop.wake()

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
        decision = schedule_callback(at, datetime.now(UTC))
        async with self.db.transaction() as session:
            await repo.set_callback(session, lead_id, decision.status,
                                    decision.next_attempt_at, user_id)

    async def dial_lead(self, lead_id: int, agent: str | None = None) -> bool:
        """Preview mode: an agent chose this lead, dial it now under the same rules as the loop.

        False when it is not due or a rule refused it (the refusal is stored, as the loop does).
        The answered call goes to `agent` (the board name of the agent who clicked), or, without
        one, to a free agent of its campaign like any other.
        """
        async with self.db.session() as session:
            lead = await session.get(Lead, lead_id)
            campaign = await repo.campaign_by_id(session, lead.campaign_id) if lead else None
        if lead is None or campaign is None:
            raise NotFoundError(f"no lead {lead_id}", code="lead_not_found")
        return await self.loop.dial_lead(campaign, self.runtime(campaign), lead,
                                         datetime.fromtimestamp(self.clock(), UTC), agent)

    # ---- the dial loop -------------------------------------------------------------------
    async def tick(self) -> None:
        """One pacing tick now (the loop runs them by itself; tests tick by hand)."""
        await self.loop.tick()

    def runtime(self, campaign: Campaign) -> CampaignRuntime:
        return self.runtimes.for_campaign(campaign)

    def runtime_of(self, campaign_id: int) -> CampaignRuntime | None:
        """The live side of a campaign this process has run, if any."""
        return self.runtimes.get(campaign_id)

    @property
    def set_aside(self) -> dict[int, str]:
        """Running campaigns the dial loop skips, and why."""
        return self.loop.set_aside

    # ---- outcomes and crash safety ---------------------------------------------------------
    async def settle_lead(self, attempt_id: str, outcome: CallOutcome) -> None:
        """Apply the retry rules to the attempt's lead (only a lead still `dialing` moves)."""
        await self.settler.settle_lead(attempt_id, outcome)

    async def recover(self) -> None:
        """Settle leads left `dialing` by an earlier process from their attempts' stored fate.

        Called at start and by every tick while some are left (their attempts still open).
        """
        self.loop.orphans = await self._recover_leads()

    async def _recover_leads(self) -> bool:
        return await recover_leads(self.db, self.settler.settle_lead, before=self._started,
                                   node=self.settings.general.node)
