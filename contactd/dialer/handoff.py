"""The hand-off to agents: an answered person goes to a free agent (or Asterisk's queue).

A person the dialer must connect itself waits (state WAITING) until an agent of the campaign
is free, oldest first; past the grace (`[dialer] agent_connect_s`, the dialplan's own agent
wait) the call is an abandon. The agent is reached by setting CONTACTD_AGENT on the waiting
channel (`AgentConnector`); CallBridged says the two met.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from contactd.calls.events import AnsweredBy, CallAnswered, CallBridged
from contactd.config import DialerSettings
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.dialer.abandons import AbandonAccountant
from contactd.dialer.agents import AgentBoard
from contactd.dialer.callstate import DialEvent, DialState
from contactd.dialer.runtime import CampaignRuntime, Runtimes
from contactd.enums import CampaignMode

log = logging.getLogger(__name__)

CONNECT_MARGIN_S: Final = 0.5  # AMI latency allowance against the dialplan's agent wait


class AgentConnector(Protocol):
    """Hands an answered call to an agent (Setvar CONTACTD_AGENT on the waiting channel)."""

    async def connect(self, attempt_id: str, agent_dial: str) -> None: ...


class HandOff:
    def __init__(
        self,
        db: Database,
        dialer: DialerSettings,
        runtimes: Runtimes,
        agents: AgentBoard,
        accountant: AbandonAccountant,
        connector: AgentConnector | None,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.db, self.dialer, self.runtimes, self.agents = db, dialer, runtimes, agents
        self.accountant, self.connector, self.clock = accountant, connector, clock

    async def on_answered(self, event: CallAnswered) -> None:
        rt = self.runtimes.of_attempt(event.attempt_id)
        call = rt.calls.get(event.attempt_id) if rt is not None else None
        if rt is None or call is None:
            self.runtimes.answered_early(event)  # handled once originate() returns its id
            return
        now_s = self.clock()
        ring = now_s - call.dialed_at
        person = event.answered_by is not AnsweredBy.MACHINE
        async with self.db.session() as session:
            campaign = await session.get(Campaign, rt.campaign_id)
        if not person or campaign is None or campaign.mode is CampaignMode.AUTOMATED:
            what = DialEvent.ANSWERED_NO_AGENT
        elif campaign.agent_queue:
            what = DialEvent.QUEUED
        else:
            what = DialEvent.ANSWERED_PERSON
        if rt.calls.move(event.attempt_id, what, now_s) is None:
            return  # ended meanwhile, or a repeated answer: resolved once already
        rt.pacer.call_resolved(ring, needs_agent=person)
        if campaign is None or what is DialEvent.ANSWERED_NO_AGENT:
            return
        if what is DialEvent.QUEUED:
            # Asterisk's queue connects: counted connected now, amended if the queue gives up.
            await self.accountant.count(rt, event.attempt_id, abandoned=False, wait_s=0.0)
            return
        await self.settle_waiting(campaign, rt, now_s)

    async def settle_waiting(self, campaign: Campaign, rt: CampaignRuntime, now_s: float) -> None:
        """Give waiting people to free agents, oldest first; past the grace they are abandoned.

        Call events are handled while this awaits, so every step re-checks that the call is
        still waiting (a person may hang up, ending the call, at any moment).
        """
        for call in rt.calls.in_state(DialState.WAITING):
            attempt_id, since = call.attempt_id, call.since
            if call.state is not DialState.WAITING or attempt_id not in rt.calls:
                continue
            if now_s - since > self.dialer.agent_connect_s:
                await self.accountant.abandon(rt, attempt_id, now_s)
                continue
            agent = self.agents.claim(campaign.id, attempt_id, now_s, only=call.agent)
            if agent is None:
                if call.agent is not None:
                    continue  # a preview call waits for its own agent only
                break
            # The dialplan's own clock started before the AMD verdict reached us: a late
            # hand-off may find the call already in the identification message. Count it as
            # abandoned then - never under-count abandons.
            if now_s - since > self.dialer.agent_connect_s - CONNECT_MARGIN_S:
                await self.accountant.abandon(rt, attempt_id, now_s)
            else:
                rt.calls.move(attempt_id, DialEvent.HANDED_OFF, now_s)
                await self.accountant.count(rt, attempt_id, abandoned=False,
                                            wait_s=now_s - since)
            if self.connector is not None:
                try:
                    await self.connector.connect(attempt_id, agent.dial)
                except Exception as exc:  # the caller hung up meanwhile: the channel is gone
                    log.info("hand-off failed", extra={
                        "attempt_id": attempt_id, "campaign_id": campaign.id,
                        "agent": agent.name, "reason": str(exc)})
            if attempt_id not in rt.calls:  # ended while we were connecting: free the agent
                self.agents.call_ended(attempt_id, self.clock())

    def on_bridged(self, event: CallBridged) -> None:
        rt = self.runtimes.of_attempt(event.attempt_id)
        if rt is not None:
            rt.calls.move(event.attempt_id, DialEvent.BRIDGED, self.clock())
