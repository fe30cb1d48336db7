"""Who answers the demo PBX's calls: a callee or agent behaviour per dialled number.

The sandbox's test world (tests/peers/asterisk.py: 200NN person, 300 busy, 400NN machine, …)
is honoured number for number on `Local/<n>@contactd-test-world`, so the conformance test can
play the same scenarios against both. Every other number draws its fate from the weights and
time ranges of `DemoSettings`. Pure: the random generator is passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from contactd.config import DemoSettings

TEST_WORLD: Final = "contactd-test-world"
FOREVER_S: Final = 3600.0


class Fate(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    SILENT = "silent"  # answers and says nothing: AMD ends HANGUP or NOTSURE
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"


# Q.850 cause of the callee's channel and OriginateResponse Reason per unanswered fate
# (measured in the sandbox: tests/replay/ami/calls.ami).
UNANSWERED: Final = {
    Fate.BUSY: (17, 5, "BUSY"),
    Fate.NO_ANSWER: (19, 3, "NOANSWER"),
    Fate.CONGESTION: (34, 8, "CONGESTION"),
    Fate.FAILED: (1, 0, "NOANSWER"),
}


@dataclass(frozen=True)
class Callee:
    """What the far end does: rings `ring_s`, then answers (or not); hangs up `hold_s` after
    answering unless the PBX side ends the call first."""

    fate: Fate
    ring_s: float = 0.0
    hold_s: float = FOREVER_S
    cause: int = 16


@dataclass(frozen=True)
class AgentPhone:
    """An agent's phone: answers after `ring_s` (or is busy / never answers), talks `talk_s`."""

    answers: bool = True
    busy: bool = False
    ring_s: float = 0.0
    talk_s: float = 60.0


def split_dial(dial: str) -> tuple[str, str, str]:
    """'Local/200@ctx' → ('Local', '200', 'ctx'); 'PJSIP/555@trunk' → ('PJSIP', '555', 'trunk')."""
    tech, _, rest = dial.partition("/")
    number, _, where = rest.partition("@")
    return tech, number, where


def _seconds(two_digits: str, zero: float) -> float:
    value = int(two_digits)
    return float(value) if value else zero


def _test_world_callee(number: str) -> Callee | None:
    fixed = {
        "300": Callee(Fate.BUSY),
        "301": Callee(Fate.NO_ANSWER, ring_s=FOREVER_S),
        "302": Callee(Fate.FAILED, cause=1),
        "303": Callee(Fate.CONGESTION),
    }
    if number in fixed:
        return fixed[number]
    if len(number) != 5 or not number.isdigit():
        return None
    head, tail = number[:3], number[3:]
    if head == "200":
        return Callee(Fate.HUMAN, hold_s=_seconds(tail, 60.0))
    if head == "201":
        return Callee(Fate.HUMAN, ring_s=_seconds(tail, 0.0), hold_s=60.0)
    if head == "400":
        return Callee(Fate.MACHINE, hold_s=_seconds(tail, 30.0))
    if head == "500":
        return Callee(Fate.SILENT, hold_s=_seconds(tail, 0.0))
    if head == "501":
        return Callee(Fate.HUMAN, hold_s=_seconds(tail, 60.0))
    return None


class World:
    """Draws callees and agent phones; scripted numbers first, then the weighted odds."""

    def __init__(self, settings: DemoSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random(settings.seed)
        self._fates = list(Fate)
        self._weights = [
            settings.answered_human,
            settings.machine,
            0.0,
            settings.busy,
            settings.no_answer,
            settings.congestion,
            settings.failed,
        ]
        if sum(self._weights) <= 0:
            raise ValueError("demo outcome weights are all zero")

    def scaled(self, seconds: float) -> float:
        return seconds * self.settings.time_scale

    def callee(self, dial: str, ring_timeout_s: float) -> Callee:
        tech, number, where = split_dial(dial)
        if tech == "Local" and where == TEST_WORLD:
            scripted = _test_world_callee(number)
            if scripted is not None:
                return Callee(
                    scripted.fate,
                    self.scaled(scripted.ring_s),
                    self.scaled(scripted.hold_s),
                    scripted.cause,
                )
        s = self.settings
        fate = self.rng.choices(self._fates, self._weights)[0]
        ring = self.scaled(self.rng.uniform(s.ring_min_s, s.ring_max_s))
        if fate is Fate.NO_ANSWER:
            ring = FOREVER_S
        elif fate in (Fate.BUSY, Fate.CONGESTION, Fate.FAILED):
            ring = min(ring, self.scaled(1.0))
        # A person stays on the line while someone talks to them; the agent ends the call.
        hold = FOREVER_S if fate is Fate.HUMAN else self.scaled(s.message_s * 3)
        if ring >= ring_timeout_s and fate is not Fate.NO_ANSWER:
            fate, ring = Fate.NO_ANSWER, FOREVER_S
        return Callee(fate, ring, hold, 1 if fate is Fate.FAILED else 16)

    def agent_phone(self, dial: str) -> AgentPhone:
        tech, number, where = split_dial(dial)
        if tech == "Local" and where == TEST_WORLD and len(number) == 4 and number[:2] == "71":
            return AgentPhone(answers=number != "7199", busy=number == "7198")
        if tech == "Local" and where == TEST_WORLD and len(number) == 4 and number[:2] == "70":
            return AgentPhone(talk_s=self.scaled(_seconds(number[2:], 60.0)))
        s = self.settings
        return AgentPhone(
            ring_s=self.scaled(0.3),
            talk_s=self.scaled(self.rng.uniform(s.talk_min_s, s.talk_max_s)),
        )
