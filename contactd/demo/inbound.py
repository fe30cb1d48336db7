"""Callers ringing the demo's hotline: the demo PBX places simulated inbound calls into
contactd's AudioSocket server at `DemoSettings.inbound_per_minute`, from known customers'
numbers (so the IVR recognises them) and now and then an unknown one."""

from __future__ import annotations

import asyncio
import logging
import random
from types import TracebackType
from typing import Final

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.demo.caller import Turn
from contactd.demo.pbx import DemoPbx

log = logging.getLogger(__name__)

HOTLINE: Final = "5550100"
SCRIPTS: Final = (
    [Turn(text="I would like to pay my bill")],
    [Turn(text="my internet is not working since yesterday")],
    [Turn(dtmf="2"), Turn(text="please call me back tomorrow morning")],
    [Turn(text="I want to cancel my contract"), Turn(dtmf="1")],
    [Turn(dtmf="3")],
)


class InboundTraffic:
    """Async context manager: a Poisson stream of simulated callers while it is entered."""

    def __init__(self, pbx: DemoPbx, audiosocket: tuple[str, int], numbers: list[str],
                 rng: random.Random | None = None) -> None:
        self._pbx, self._audiosocket = pbx, audiosocket
        self._numbers = numbers or ["+15550009999"]
        self._rng = rng or random.Random(pbx.settings.seed)
        self._tasks = TaskOwner("demo-inbound", log)
        self.state = LoopState("demo-inbound")

    async def __aenter__(self) -> InboundTraffic:
        if self._pbx.settings.inbound_per_minute > 0:
            self._tasks.spawn(run_resilient(self._next_caller, self.state, logger=log),
                              "arrivals")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._tasks.close()

    async def _next_caller(self) -> None:
        settings = self._pbx.settings
        gap_s = self._rng.expovariate(settings.inbound_per_minute / 60.0) * settings.time_scale
        await asyncio.sleep(gap_s)  # the simulated world's next arrival
        known = self._rng.random() < 0.8
        number = self._rng.choice(self._numbers) if known else "+15550001234"
        self._tasks.spawn(self._pbx.inbound_call(
            dnis=HOTLINE, caller_num=number, audiosocket=self._audiosocket,
            turns=list(self._rng.choice(SCRIPTS)),
        ), f"caller-{number}")
