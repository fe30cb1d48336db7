"""Inbound queues, blended with campaigns: contactd's own hand-off, not `app_queue` members.

Decision (docs/inbound-queues.md): the caller waits in the dialplan and contactd picks the
agent, as VICIdial's in-groups do. The agent board (contactd/dialer/agents.py) stays the one
truth of agent state: an agent busy with an inbound caller is TALKING on the board, so the
pacer counts them out at once, and no second agent state lives in Asterisk (no QueueAdd /
QueuePause to keep in step with Ready/Pause/wrap-up).

The path of one caller:

1. The IVR's "transfer" action to a configured queue (`route_of`), or any dialplan that sets
   CONTACTD_ROUTE=inqueue and CONTACTD_QUEUE, sends the caller to `contactd-inqueue`: music
   on hold and `UserEvent(ContactdQueued, Queue, Call, CallerNum)`.
2. `InboundQueues` stores an inbound call interaction on the caller's contact (the Router),
   publishes `InboundQueued`, and gives the caller to the queue's agent free the longest
   (`AgentBoard.claim_inbound`), higher queue priority and then the oldest caller first, by
   setting CONTACTD_AGENT on the waiting channel (AMI Setvar); the dialplan dials the agent.
   `InboundAnswered` and `InboundCallOffered` (the agent's card pops) follow.
3. `ContactdQueueAgent` says how the agent's phone answered: not answered, the agent is paused
   and the caller waits for the next agent.
4. `ContactdQueueHangup` (hangup handler) ends it: an answered call is recorded "answered"
   (the agent goes to wrap-up); a caller who hung up before reaching an agent is recorded
   "abandoned" (`InboundAbandoned`; the Router's rules make a missed-call task).

While callers wait in a queue with `over_campaigns`, its blended agents are held for them:
the board's campaign claim and the pacer's free count leave them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol

from sqlalchemy import select

from contactd.background import TaskOwner
from contactd.config import InboundQueueSettings, InboundSettings
from contactd.crm.routing import FollowUp, InboundContact, Router
from contactd.db.base import utcnow
from contactd.db.models.users import User
from contactd.dialer.agents import AgentBoard, AgentState
from contactd.dialer.floor_events import InboundAbandoned, InboundAnswered, InboundQueued
from contactd.enums import Channel, Direction, InteractionKind
from contactd.errors import ConflictError, NotFoundError
from contactd.events import DomainEvent, EventBus

log = logging.getLogger(__name__)

ROUTE: Final = "inqueue"  # CONTACTD_ROUTE that sends a caller to contactd-inqueue
AGENT_VARIABLE: Final = "CONTACTD_AGENT"
RECHECK_S: Final = 1.0  # while callers wait, free agents are looked for at least this often
NOT_ANSWERED_PAUSE: Final = "no_answer"  # pause reason of an agent whose phone did not answer


@dataclass(frozen=True, kw_only=True)
class InboundCallOffered(DomainEvent):
    """The waiting caller `call_id` is on its way to agent `agent`: their card pops."""

    call_id: str
    agent: str
    queue: str
    caller: str
    contact_id: int | None
    interaction_id: int | None


@dataclass(frozen=True, kw_only=True)
class InboundCallEnded(DomainEvent):
    """The inbound call given to `agent` ended (the agent is in wrap-up, or was paused)."""

    call_id: str
    agent: str
    answered: bool


class ChannelControl(Protocol):
    async def setvar(self, channel: str, name: str, value: str) -> None: ...


@dataclass
class Caller:
    call_id: str
    queue: str
    channel: str
    caller: str
    since: float
    interaction_id: int | None = None
    contact_id: int | None = None
    agent: str | None = None


def route_of(settings: InboundSettings, queue: str) -> str:
    """The CONTACTD_ROUTE for an IVR transfer to `queue`: contactd's own queue when it is
    configured, else Asterisk's `app_queue` of that name (`queue`)."""
    return ROUTE if queue in settings.queues else "queue"


def may_join(queue: InboundQueueSettings, username: str, team: str | None) -> bool:
    if not queue.agents and not queue.teams:
        return True
    return username in queue.agents or (team is not None and team in queue.teams)


class InboundQueues:
    """Callers waiting in contactd's inbound queues, and the hand-off to the board's agents.

    AMI UserEvents go through `on_user_event` onto one queue handled by one task, in order,
    so a hang-up never overtakes the caller's arrival."""

    def __init__(
        self,
        settings: InboundSettings,
        board: AgentBoard,
        channels: ChannelControl | None,
        router: Router | None,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.board, self.channels = settings, board, channels
        self.router, self.bus, self.clock = router, bus, clock
        self.callers: dict[str, Caller] = {}
        self._events: asyncio.Queue[Mapping[str, Any] | None] = asyncio.Queue()
        self._tasks = TaskOwner("inbound-queues", log)
        # Pause reasons the board cannot hold (it knows states only); the desk shows them.
        self.paused_because: dict[str, str] = {}

    async def __aenter__(self) -> InboundQueues:
        self._tasks.spawn(self._run(), "events")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._tasks.close()

    # ---- what the workspace asks --------------------------------------------------------
    def queues_for(self, username: str, team: str | None) -> list[str]:
        return sorted(n for n, q in self.settings.queues.items() if may_join(q, username, team))

    def check_join(self, username: str, team: str | None, queues: list[str]) -> frozenset[str]:
        """The queues asked for, when this agent may take their callers; NotFoundError naming
        the first one they may not."""
        allowed = set(self.queues_for(username, team))
        for name in queues:
            if name not in allowed:
                raise NotFoundError(
                    f"no inbound queue {name!r} you may sign in to", code="queue_not_found"
                )
        return frozenset(queues)

    def waiting(self, queue: str) -> int:
        return sum(1 for c in self.callers.values() if c.queue == queue and c.agent is None)

    def wake(self) -> None:
        """An agent may have become free: give waiting callers to them first."""
        self._events.put_nowait({"UserEvent": "ContactdDispatch"})

    # ---- AMI --------------------------------------------------------------------------------
    def on_user_event(self, event: Mapping[str, Any]) -> None:
        name = str(event.get("UserEvent", ""))
        if name.startswith("ContactdQueue"):
            self._events.put_nowait(event)

    async def _run(self) -> None:
        while True:
            try:
                event = await asyncio.wait_for(
                    self._events.get(), RECHECK_S if self.callers else None
                )
            except TimeoutError:
                event = {"UserEvent": "ContactdDispatch"}
            if event is None:
                return
            try:
                await self._handle(event)
            except Exception:
                log.exception(
                    "inbound queue event failed",
                    extra={"ami_event": str(event.get("UserEvent", ""))},
                )

    async def _handle(self, event: Mapping[str, Any]) -> None:
        name = str(event.get("UserEvent", ""))
        call_id = str(event.get("Call", ""))
        if name == "ContactdQueued":
            await self._queued(event, call_id)
        elif name == "ContactdQueueAgent":
            await self._agent_dialled(call_id, str(event.get("DialStatus", "")))
        elif name == "ContactdQueueHangup":
            await self._hung_up(call_id, str(event.get("DialStatus", "")))
        elif name == "ContactdQueueTimeout":
            await self._timed_out(call_id)
        await self._dispatch()

    def _count(self) -> None:
        """The board's held-for-inbound counts: callers waiting in queues over campaigns."""
        self.board.waiting = {
            queue: self.waiting(queue)
            for queue, cfg in self.settings.queues.items()
            if cfg.over_campaigns
        }

    async def _queued(self, event: Mapping[str, Any], call_id: str) -> None:
        queue = str(event.get("Queue", ""))
        if not call_id or queue not in self.settings.queues:
            log.warning(
                "caller in an unknown inbound queue", extra={"queue": queue, "call_id": call_id}
            )
            return
        caller = Caller(
            call_id,
            queue,
            str(event.get("Channel", "")),
            str(event.get("CallerNum", "")),
            self.clock(),
        )
        if call_id in self.callers:  # a repeated event: the caller is waiting already
            return
        self.callers[call_id] = caller
        self._count()
        if self.router is not None:
            routed = await self.router.start(
                InboundContact(
                    kind=InteractionKind.CALL,
                    direction=Direction.INBOUND,
                    channel=Channel.CALL,
                    remote_address=caller.caller,
                    subject=f"Inbound queue {queue}",
                    outcome="waiting",
                    data={"queue": queue, "call_id": call_id},
                )
            )
            caller.interaction_id, caller.contact_id = routed.interaction_id, routed.contact_id
        log.info("caller queued", extra={"queue": queue, "call_id": call_id})
        await self.bus.publish(
            InboundQueued(
                queue=queue, call_id=call_id, caller=caller.caller, contact_id=caller.contact_id
            )
        )

    def _order(self) -> list[Caller]:
        waiting = [c for c in self.callers.values() if c.agent is None]
        return sorted(waiting, key=lambda c: (-self.settings.queues[c.queue].priority, c.since))

    async def _dispatch(self) -> None:
        for caller in self._order():
            if caller.call_id not in self.callers or caller.agent is not None:
                continue
            now = self.clock()
            agent = self.board.claim_inbound(caller.queue, caller.call_id, now)
            if agent is None:
                continue
            caller.agent = agent.name
            self._count()
            try:
                if self.channels is None:
                    raise ConflictError("no AMI link to reach the caller", code="call_gone")
                await self.channels.setvar(caller.channel, AGENT_VARIABLE, agent.dial)
            except Exception as exc:  # the caller hung up meanwhile: the channel is gone
                log.info(
                    "inbound hand-off failed",
                    extra={
                        "call_id": caller.call_id,
                        "queue": caller.queue,
                        "agent": agent.name,
                        "reason": str(exc),
                    },
                )
                self.board.call_ended(caller.call_id, self.clock(), talked=False)
                caller.agent = None
                self._count()
                continue
            waited = now - caller.since
            log.info(
                "caller handed to agent",
                extra={
                    "call_id": caller.call_id,
                    "queue": caller.queue,
                    "agent": agent.name,
                    "waited_s": round(waited, 3),
                },
            )
            await self.bus.publish(
                InboundAnswered(
                    queue=caller.queue, call_id=caller.call_id, agent=agent.name, waited_s=waited
                )
            )
            await self.bus.publish(
                InboundCallOffered(
                    call_id=caller.call_id,
                    agent=agent.name,
                    queue=caller.queue,
                    caller=caller.caller,
                    contact_id=caller.contact_id,
                    interaction_id=caller.interaction_id,
                )
            )
            if self.router is not None and caller.interaction_id is not None:
                level = self.settings.queues[caller.queue].service_level_s
                await self.router.update(
                    caller.interaction_id,
                    data={
                        "agent": agent.name,
                        "waited_s": round(waited, 3),
                        "within_service_level": waited <= level,
                    },
                )

    async def _agent_dialled(self, call_id: str, status: str) -> None:
        caller = self.callers.get(call_id)
        if caller is None or caller.agent is None or status == "ANSWER":
            return
        # The agent's phone did not answer: pause them, the caller waits for the next agent.
        agent, caller.agent = caller.agent, None
        self._count()
        self.board.call_ended(call_id, self.clock(), talked=False)
        with contextlib.suppress(ConflictError, NotFoundError):
            self.board.pause(agent, self.clock(), NOT_ANSWERED_PAUSE)
            self.paused_because[agent] = NOT_ANSWERED_PAUSE
        log.info(
            "agent did not answer an inbound caller",
            extra={"call_id": call_id, "agent": agent, "dial_status": status},
        )
        await self.bus.publish(InboundCallEnded(call_id=call_id, agent=agent, answered=False))

    async def _hung_up(self, call_id: str, status: str) -> None:
        caller = self.callers.pop(call_id, None)
        if caller is None:
            return
        self._count()
        now = self.clock()
        answered = caller.agent is not None and status == "ANSWER"
        if caller.agent is not None:
            board_agent = self.board.agents.get(caller.agent)
            if (
                board_agent is not None
                and board_agent.attempt_id == call_id
                and board_agent.state is AgentState.TALKING
            ):
                self.board.call_ended(call_id, now, talked=answered)
        if answered:
            await self._finish(caller, "answered")
        if caller.agent is not None:  # told once the call is stored
            await self.bus.publish(
                InboundCallEnded(call_id=call_id, agent=caller.agent, answered=answered)
            )
        if answered:
            return
        waited = now - caller.since
        log.info(
            "inbound caller abandoned",
            extra={"call_id": call_id, "queue": caller.queue, "waited_s": round(waited, 3)},
        )
        await self.bus.publish(
            InboundAbandoned(queue=caller.queue, call_id=call_id, waited_s=waited)
        )
        await self._finish(caller, "abandoned")

    async def _timed_out(self, call_id: str) -> None:
        """Nobody took the caller within the dialplan's wait: the fallback queue has them, and
        a missed-call task makes sure somebody calls back."""
        caller = self.callers.pop(call_id, None)
        if caller is None:
            return
        self._count()
        if caller.agent is not None:
            self.board.call_ended(call_id, self.clock(), talked=False)
        await self.bus.publish(
            InboundAbandoned(
                queue=caller.queue, call_id=call_id, waited_s=self.clock() - caller.since
            )
        )
        await self._finish(caller, "missed")

    async def _finish(self, caller: Caller, outcome: str) -> None:
        if self.router is None or caller.interaction_id is None:
            return
        user_id = None
        if caller.agent is not None and outcome == "answered":
            user_id = await self._user_id(caller.agent)
        if user_id is not None:
            await self.router.update(caller.interaction_id, user_id=user_id)
        await self.router.finish(
            caller.interaction_id, FollowUp(outcome=outcome, ended_at=utcnow())
        )

    async def _user_id(self, username: str) -> int | None:
        assert self.router is not None
        async with self.router.db.session() as session:
            found: int | None = await session.scalar(
                select(User.id).where(User.username == username)
            )
            return found
