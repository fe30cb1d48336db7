"""Callers ringing the demo's hotline: the demo PBX places simulated inbound calls into
contactd's AudioSocket server at `DemoSettings.inbound_per_minute`, from known customers'
numbers (so the IVR recognises them and speaks their language) and now and then an unknown
one. Callers wait for each prompt to end before they answer it."""

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
# What callers do with the intake flow (contactd/ivr/flows/intake.toml): listen to the menu,
# then press 1 for an agent, or 2 for a call back, say why after the tone and confirm with 1.
# Only callers in the loaded speech model's language speak; the others use keys alone.
_AGENT: Final = [Turn(dtmf="1", after_prompt=True)]
SPEAKERS_PCT: Final = 50.0  # known callers drawn from the speech model's language
REASONS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("I would like to pay my bill", "my internet is not working since yesterday",
           "I want to cancel my contract"),
    "ko": ("요금 청구서에 대해 문의하고 싶어요", "인터넷이 어제부터 안 돼요",
           "계약을 해지하고 싶어요"),
}


def script(rng: random.Random, language: str, speech: str | None) -> list[Turn]:
    """One caller's turns: `speech` is the speech model's language (None: no model)."""
    if speech is not None and language == speech and speech in REASONS:
        reason = rng.choice(REASONS[speech])
        return [Turn(dtmf="2", after_prompt=True), Turn(text=reason, after_prompt=True),
                Turn(dtmf="1", after_prompt=True)]
    return list(_AGENT)


class InboundTraffic:
    """Async context manager: a Poisson stream of simulated callers while it is entered."""

    def __init__(self, pbx: DemoPbx, audiosocket: tuple[str, int],
                 numbers: list[str] | list[tuple[str, str]],
                 rng: random.Random | None = None, *, speech: str | None = None) -> None:
        """`numbers`: the callers' numbers, or (number, language) pairs; `speech`: the
        language of the IVR's speech model (its callers speak; None: keys only)."""
        self._pbx, self._audiosocket = pbx, audiosocket
        pairs = [n if isinstance(n, tuple) else (n, "en") for n in numbers]
        self._numbers = pairs or [("+15550009999", "en")]
        self._speech = speech
        self._first = True
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
        first, self._first = self._first, False
        if not first:  # the first caller rings at once, the next ones as Poisson arrivals
            gap_s = self._rng.expovariate(settings.inbound_per_minute / 60.0)
            await asyncio.sleep(gap_s * settings.time_scale)  # the simulated world's clock
        known = first or self._rng.random() < 0.8
        speakers = [n for n in self._numbers if n[1] == self._speech]
        # The first caller speaks when a model is loaded, so the speech path shows at once.
        if known and speakers and (first or self._rng.random() * 100 < SPEAKERS_PCT):
            number, language = self._rng.choice(speakers)  # so the speech path shows
        elif known:
            number, language = self._rng.choice(self._numbers)
        else:
            number, language = "+15550001234", "en"
        self._tasks.spawn(self._pbx.inbound_call(
            dnis=HOTLINE, caller_num=number, audiosocket=self._audiosocket,
            turns=script(self._rng, language, self._speech), voice=language,
        ), f"caller-{number}")
