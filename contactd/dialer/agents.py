"""Who can take a campaign's answered calls right now: the agent board the pacer reads.

The web panel (agent logs in, ends wrap-up) and the dialer (claims an agent for an answered
call, releases it when the call ends) move agents through an explicit state machine.

Blending (contactd/dialer/inbound.py): an agent signed in to inbound queues as well is the
same board entry. While callers wait in one of their queues, a free blended agent is held for
them: the campaign's claim and the pacer's free count leave them out. An agent on an inbound
call (or its wrap-up) is counted out of the campaign's view altogether, and that time is no
talk or wrap sample of the campaign. The board is the one truth of agent state; no second
state lives in Asterisk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from contactd.dialer.dialvalues import check_agent_dial
from contactd.dialer.floor_events import AgentStateChanged
from contactd.errors import ConflictError, NotFoundError


class AgentState(StrEnum):
    FREE = "free"
    TALKING = "talking"
    WRAPPING = "wrapping"
    PAUSED = "paused"


LOGGED_OUT: Final = "logged_out"  # the `state` an AgentStateChanged carries on logout


class AgentEvent(StrEnum):
    CLAIM = "claim"
    CALL_ENDED = "call_ended"
    READY = "ready"
    PAUSE = "pause"


AGENT_TRANSITIONS: Final[dict[tuple[AgentState, AgentEvent], AgentState]] = {
    (AgentState.FREE, AgentEvent.CLAIM): AgentState.TALKING,
    (AgentState.TALKING, AgentEvent.CALL_ENDED): AgentState.WRAPPING,
    (AgentState.WRAPPING, AgentEvent.READY): AgentState.FREE,
    (AgentState.PAUSED, AgentEvent.READY): AgentState.FREE,
    (AgentState.FREE, AgentEvent.PAUSE): AgentState.PAUSED,
    (AgentState.WRAPPING, AgentEvent.PAUSE): AgentState.PAUSED,
}


@dataclass
class Agent:
    name: str
    dial: str  # dial string the dialplan connects the callee to, e.g. PJSIP/1001
    campaign_id: int | None  # None: inbound queues only
    state: AgentState = AgentState.FREE
    since: float = 0.0
    attempt_id: str | None = None
    queues: frozenset[str] = frozenset()  # inbound queues the agent takes callers from
    inbound: bool = False  # the current call (or wrap-up) is an inbound caller's
    pause_code: str | None = None  # why a paused agent is paused (break, phone_lost, ...)


@dataclass(frozen=True)
class AgentsView:
    free: int
    talking: tuple[float, ...]
    wrapping: tuple[float, ...]


@dataclass
class AgentBoard:
    """In-process agent states per campaign; `auto_ready_s` ends wrap-up by itself."""

    auto_ready_s: float | None = None
    agents: dict[str, Agent] = field(default_factory=dict)
    # (campaign id, seconds) of finished talks and wraps, drained by the dialer's pacers.
    finished_talks: list[tuple[int, float]] = field(default_factory=list)
    finished_wraps: list[tuple[int, float]] = field(default_factory=list)
    # Callers waiting per inbound queue that goes before campaigns (kept by InboundQueues).
    waiting: dict[str, int] = field(default_factory=dict)
    # Told of every login, move and logout (the daemon relays it to the bus for the floor).
    on_change: Callable[[AgentStateChanged], None] | None = None

    def _changed(self, agent: Agent, state: str) -> None:
        if self.on_change is not None:
            self.on_change(AgentStateChanged(agent=agent.name, campaign_id=agent.campaign_id,
                                             state=state, since=agent.since,
                                             pause_code=agent.pause_code))

    def login(self, name: str, dial: str, campaign_id: int | None, now: float,
              queues: frozenset[str] = frozenset()) -> Agent:
        """`dial` goes into Dial() as is: ValidationError unless it is TECH/resource."""
        agent = Agent(name, check_agent_dial(dial), campaign_id, AgentState.FREE, now,
                      queues=queues)
        self.agents[name] = agent
        self._changed(agent, agent.state.value)
        return agent

    def held_for_inbound(self, agent: Agent) -> bool:
        """A blended agent whose queue has a caller waiting takes that caller first."""
        return any(self.waiting.get(queue, 0) > 0 for queue in agent.queues)

    def logout(self, name: str) -> None:
        agent = self.agents.pop(name, None)
        if agent is not None:
            self._changed(agent, LOGGED_OUT)

    def _move(
        self, agent: Agent, event: AgentEvent, now: float, *, talk_sample: bool = True
    ) -> None:
        try:
            new = AGENT_TRANSITIONS[(agent.state, event)]
        except KeyError:
            raise ConflictError(
                f"agent {agent.name} is {agent.state.value}: cannot {event.value}",
                code="agent_transition_invalid",
            ) from None
        campaign = None if agent.inbound else agent.campaign_id  # inbound: no campaign sample
        if agent.state is AgentState.TALKING and talk_sample and campaign is not None:
            self.finished_talks.append((campaign, now - agent.since))
        if agent.state is AgentState.WRAPPING and new is AgentState.FREE and campaign is not None:
            self.finished_wraps.append((campaign, now - agent.since))
        agent.state, agent.since = new, now
        if new is not AgentState.PAUSED:
            agent.pause_code = None
        if new in (AgentState.FREE, AgentState.PAUSED):
            agent.inbound = False
        self._changed(agent, new.value)

    def claim(self, campaign_id: int, attempt_id: str, now: float,
              only: str | None = None) -> Agent | None:
        """The agent free the longest takes the call, or None when nobody is free; `only`:
        that agent or nobody (a preview call goes to the agent who chose the lead)."""
        self.tick(now)
        free = [a for a in self.agents.values()
                if a.campaign_id == campaign_id and a.state is AgentState.FREE
                and (only is None or a.name == only)
                and (only is not None or not self.held_for_inbound(a))]
        if not free:
            return None
        agent = min(free, key=lambda a: a.since)
        self._move(agent, AgentEvent.CLAIM, now)
        agent.attempt_id = attempt_id
        return agent

    def claim_inbound(self, queue: str, call_id: str, now: float) -> Agent | None:
        """The agent of `queue` free the longest takes the inbound caller, or None."""
        self.tick(now)
        free = [a for a in self.agents.values()
                if queue in a.queues and a.state is AgentState.FREE]
        if not free:
            return None
        agent = min(free, key=lambda a: a.since)
        self._move(agent, AgentEvent.CLAIM, now)
        agent.attempt_id, agent.inbound = call_id, True
        return agent

    def call_ended(self, attempt_id: str, now: float, *, talked: bool = True) -> Agent | None:
        """The agent's call ended; `talked=False` when the agent never spoke with the person
        (their phone only rang): that time is no talk sample for the pacer."""
        for agent in self.agents.values():
            if agent.attempt_id == attempt_id and agent.state is AgentState.TALKING:
                self._move(agent, AgentEvent.CALL_ENDED, now, talk_sample=talked)
                agent.attempt_id = None
                return agent
        return None

    def ready(self, name: str, now: float) -> None:
        agent = self.agents.get(name)
        if agent is None:
            raise NotFoundError(f"agent {name} is not logged in")
        self._move(agent, AgentEvent.READY, now)

    def pause(self, name: str, now: float, code: str | None = None) -> None:
        """Pauses the agent, with the reason (`code`) the floor shows; a paused agent given
        another reason keeps pausing, with the new one."""
        agent = self.agents.get(name)
        if agent is None:
            raise NotFoundError(f"agent {name} is not logged in")
        if agent.state is AgentState.PAUSED and code is not None:
            if code != agent.pause_code:
                agent.pause_code = code
                self._changed(agent, agent.state.value)
            return
        previous, agent.pause_code = agent.pause_code, code
        try:
            self._move(agent, AgentEvent.PAUSE, now)
        except ConflictError:
            agent.pause_code = previous  # no move: the agent keeps its state and reason
            raise

    def tick(self, now: float) -> None:
        """End wrap-ups that reached `auto_ready_s`."""
        if self.auto_ready_s is None:
            return
        for agent in self.agents.values():
            if agent.state is AgentState.WRAPPING and now - agent.since >= self.auto_ready_s:
                self._move(agent, AgentEvent.READY, agent.since + self.auto_ready_s)

    def view(self, campaign_id: int, now: float) -> AgentsView:
        self.tick(now)
        # Agents on an inbound call, or held for a waiting inbound caller, are counted out.
        mine = [a for a in self.agents.values()
                if a.campaign_id == campaign_id and not a.inbound]
        return AgentsView(
            free=sum(1 for a in mine
                     if a.state is AgentState.FREE and not self.held_for_inbound(a)),
            talking=tuple(now - a.since for a in mine if a.state is AgentState.TALKING),
            wrapping=tuple(now - a.since for a in mine if a.state is AgentState.WRAPPING),
        )
