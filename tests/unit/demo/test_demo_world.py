"""Who answers the demo PBX: the sandbox's test-world numbers, then the configured odds."""

from __future__ import annotations

import random

import pytest

from contactd.config import DemoSettings
from contactd.demo.amiserver import AmiSession, parse, posix_to_python
from contactd.demo.world import FOREVER_S, Fate, World, split_dial

WORLD = "contactd-test-world"


@pytest.mark.parametrize(("number", "fate", "ring", "hold"), [
    ("20004", Fate.HUMAN, 0.0, 4.0),
    ("20000", Fate.HUMAN, 0.0, 60.0),
    ("20107", Fate.HUMAN, 7.0, 60.0),
    ("300", Fate.BUSY, 0.0, FOREVER_S),
    ("301", Fate.NO_ANSWER, FOREVER_S, FOREVER_S),
    ("302", Fate.FAILED, 0.0, FOREVER_S),
    ("303", Fate.CONGESTION, 0.0, FOREVER_S),
    ("40000", Fate.MACHINE, 0.0, 30.0),
    ("50003", Fate.SILENT, 0.0, 3.0),
    ("50109", Fate.HUMAN, 0.0, 9.0),
])
def test_test_world_numbers_behave_as_in_the_sandbox(
    number: str, fate: Fate, ring: float, hold: float
) -> None:
    callee = World(DemoSettings()).callee(f"Local/{number}@{WORLD}", 30.0)
    assert (callee.fate, callee.ring_s, callee.hold_s) == (fate, ring, hold)


def test_other_numbers_follow_the_weights_and_the_time_scale() -> None:
    only_busy = DemoSettings(answered_human=0, machine=0, no_answer=0, congestion=0, failed=0,
                             busy=1, time_scale=0.5)
    callee = World(only_busy, random.Random(1)).callee("PJSIP/+15550001111@trunk", 25.0)
    assert callee.fate is Fate.BUSY and callee.ring_s <= 0.5


def test_a_ring_past_the_originate_timeout_is_no_answer() -> None:
    slow = DemoSettings(answered_human=1, machine=0, busy=0, no_answer=0, congestion=0,
                        failed=0, ring_min_s=40, ring_max_s=50)
    callee = World(slow, random.Random(1)).callee("PJSIP/+15550001111@trunk", 25.0)
    assert callee.fate is Fate.NO_ANSWER


def test_agent_phones_of_the_test_world() -> None:
    world = World(DemoSettings())
    assert world.agent_phone(f"Local/7198@{WORLD}").busy
    assert not world.agent_phone(f"Local/7199@{WORLD}").answers
    assert world.agent_phone(f"Local/7003@{WORLD}").talk_s == 3.0


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="all zero"):
        World(DemoSettings(answered_human=0, machine=0, busy=0, no_answer=0, congestion=0,
                           failed=0))


def test_split_dial() -> None:
    assert split_dial("Local/200@ctx") == ("Local", "200", "ctx")
    assert split_dial("PJSIP/555") == ("PJSIP", "555", "")


def test_login_filter_and_event_classes_as_contactd_sends_them() -> None:
    session = AmiSession(writer=None)  # type: ignore[arg-type]
    session.username = "contactd"
    session.set_classes("system,call,user,agent")
    session.add_filter("Event: (Hangup|UserEvent)[[:space:]]")
    assert session.wants("call,all", "Event: Hangup\r\nCause: 16\r\n")
    assert not session.wants("call,all", "Event: HangupRequest\r\nCause: 16\r\n")
    assert not session.wants("dialplan,all", "Event: UserEvent\r\n")  # class not asked for
    assert posix_to_python("a[[:space:]]b") == r"a\sb"


def test_repeated_action_headers_become_a_list() -> None:
    action = parse(b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n")
    assert action == {"Action": "Originate", "Variable": ["A=1", "B=2"]}
