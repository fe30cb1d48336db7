"""Says on the bus when the dialer handed an answered call to an agent, so that the agent's
workspace pops the contact's card at once (contactd/web/live.py listens).

It wraps whichever connector the daemon uses (SetvarConnector), so the dialer itself stays as
it is: the board already knows which agent it claimed for the attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from contactd.dialer.agents import AgentBoard
from contactd.dialer.handoff import AgentConnector
from contactd.events import DomainEvent, EventBus


@dataclass(frozen=True, kw_only=True)
class AgentCallOffered(DomainEvent):
    """The call `attempt_id` is on its way to agent `agent` (an AgentBoard name)."""

    attempt_id: str
    agent: str
    campaign_id: int


class AnnouncingConnector:
    def __init__(self, inner: AgentConnector, board: AgentBoard, bus: EventBus) -> None:
        self._inner, self._board, self._bus = inner, board, bus

    async def connect(self, attempt_id: str, agent_dial: str) -> None:
        await self._inner.connect(attempt_id, agent_dial)  # raises when the call is gone
        for agent in list(self._board.agents.values()):
            if agent.attempt_id == attempt_id and agent.campaign_id is not None:
                await self._bus.publish(AgentCallOffered(
                    attempt_id=attempt_id, agent=agent.name, campaign_id=agent.campaign_id))
                return
