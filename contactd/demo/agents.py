"""Simulated agents of `contactd demo`: they sit at the same desk a person uses in the web
workspace (contactd/web/desk.py AgentDesk): they join the demo campaign and say Ready, take
the calls the dialer hands them (the demo PBX's agent phone answers and talks for a time drawn
from `DemoSettings.talk_min_s..talk_max_s`), and when a call ends they take a short wrap-up,
set a disposition, and now and then pause with one of the site's pause reasons.

So campaign statistics, the live floor and the reports fill up through the production paths,
while a real agent (the demo's printed agent login is never simulated) can join too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final

from contactd.auth.audit import Actor
from contactd.background import TaskOwner
from contactd.calls.events import CallEnded
from contactd.config import Settings
from contactd.db.models import User
from contactd.db.session import Database
from contactd.dialer.agents import AgentState
from contactd.dialer.announce import AgentCallOffered
from contactd.errors import ContactdError
from contactd.events import EventBus
from contactd.web.desk import AgentDesk
from contactd.web.live import LiveHub
from contactd.web.services import PanelServices

log = logging.getLogger(__name__)

# What a call came to, weighted as a renewals campaign's day looks (the campaign's own
# buttons decide which of them are allowed).
DISPOSITIONS: Final = {
    "sale": 22.0,
    "not_interested": 38.0,
    "callback": 18.0,
    "wrong_number": 4.0,
    "do_not_call": 3.0,
    "no_answer": 5.0,
    "machine": 2.0,
}
WRAP_S: Final = (2.0, 4.0)  # wrap-up before the disposition (simulated seconds)
PAUSE_PCT: Final = 12.0  # share of wrap-ups that end in a pause
PAUSE_S: Final = (20.0, 90.0)
SETTLE_RETRIES: Final = 5  # the lead is settled right after CallEnded; look again if not yet
SETTLE_GAP_S: Final = 0.5


@dataclass(frozen=True)
class Seat:
    user: User
    actor: Actor


class SimulatedAgents:
    """Async context manager: `users` join `campaign_id` and work it until exit."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        settings: Settings,
        services: PanelServices,
        users: Sequence[User],
        campaign_id: int,
        rng: random.Random | None = None,
    ) -> None:
        self._db, self._bus, self._settings = db, bus, settings
        self._services = services
        self._hub = LiveHub(db, bus, settings.dialer)
        self.desk = AgentDesk(db, settings, services, self._hub)
        self._seats = {u.username: Seat(u, Actor(u.id, "demo")) for u in users}
        self._campaign_id = campaign_id
        self._rng = rng or random.Random(settings.demo.seed)
        self._scale = settings.demo.time_scale
        self._offered: dict[str, str] = {}  # attempt -> simulated agent
        self._tasks = TaskOwner("demo-agents", log)
        self.disposed = 0

    async def __aenter__(self) -> SimulatedAgents:
        await self._hub.__aenter__()
        self._bus.subscribe(AgentCallOffered, self._on_offered)
        self._bus.subscribe(CallEnded, self._on_ended)
        for seat in self._seats.values():
            await self.desk.join(seat.user, self._campaign_id, seat.actor)
            await self.desk.ready(seat.user, seat.actor)
            log.info("simulated agent signed in", extra={"user_id": seat.user.id})
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bus.unsubscribe(AgentCallOffered, self._on_offered)
        self._bus.unsubscribe(CallEnded, self._on_ended)
        await self._tasks.close()
        dialer = self._services.dialer
        for name in self._seats:
            if dialer is not None:
                dialer.agents.logout(name)
        await self._hub.__aexit__(et, e, tb)

    def _on_offered(self, event: AgentCallOffered) -> None:
        if event.agent in self._seats:
            self._offered[event.attempt_id] = event.agent

    def _on_ended(self, event: CallEnded) -> None:
        agent = self._offered.pop(event.attempt_id, None)
        if agent is not None:
            self._tasks.spawn(
                self._wrap_up(self._seats[agent], event.attempt_id), f"wrap-{event.attempt_id}"
            )

    def _seconds(self, span: tuple[float, float]) -> float:
        return self._rng.uniform(*span) * self._scale

    def _choose(self) -> str:
        allowed = [d for d in DISPOSITIONS if d in self._settings.dialer.dispositions]
        return self._rng.choices(allowed, [DISPOSITIONS[d] for d in allowed])[0]

    async def _wrap_up(self, seat: Seat, attempt_id: str) -> None:
        await asyncio.sleep(self._seconds(WRAP_S))  # the simulated agent writes their notes
        name = self._choose()
        callback = None
        if name == "callback":
            callback = datetime.now(UTC) + timedelta(
                days=self._rng.randint(1, 3), hours=self._rng.randint(0, 6)
            )
        for _ in range(SETTLE_RETRIES):
            try:
                await self.desk.dispose(seat.user, attempt_id, name, callback)
                break
            except ContactdError as exc:
                if exc.code != "call_not_ended":
                    log.warning(
                        "simulated disposition refused",
                        extra={"attempt_id": attempt_id, "reason": str(exc)},
                    )
                    break
                await asyncio.sleep(SETTLE_GAP_S)
        else:
            return
        self.disposed += 1
        log.info(
            "simulated agent disposed a call",
            extra={"attempt_id": attempt_id, "user_id": seat.user.id, "disposition": name},
        )
        await self._next(seat)

    async def _next(self, seat: Seat) -> None:
        """Ready again, or a pause first now and then."""
        current = await self.desk.seat(seat.user)
        if current is None:
            return
        if self._rng.random() * 100 < PAUSE_PCT:
            code = self._rng.choice(self._settings.dialer.pause_codes)
            await self.desk.pause(seat.user, code, seat.actor)
            await asyncio.sleep(self._seconds(PAUSE_S))
            await self.desk.ready(seat.user, seat.actor)
        elif current.agent.state is AgentState.WRAPPING:
            await self.desk.ready(seat.user, seat.actor)
        self._wake()

    def _wake(self) -> None:
        if self._services.dialer is not None:
            self._services.dialer.wake()
