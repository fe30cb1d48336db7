"""The demo PBX against the real Asterisk 22 sandbox: the same scenarios, the same events.

Both sides are driven by contactd's own AmiClient and CallTracker (tests/replay/ami/
conformance.py). Per call: what the tracker published must be equal, and per channel the
ordered events with every field contactd reads. Where they differ, the demo PBX is wrong.
With CONTACTD_RECORD_CONFORMANCE=1 the sandbox's events are written to
tests/replay/ami/conformance.json, which test_demo_conformance_replay.py holds the demo to
on machines without Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from contactd.config import AmiSettings
from contactd.demo.pbx import DemoPbx
from tests.peers.asterisk import AsteriskSandbox
from tests.replay.ami.conformance import (
    CONFORMANCE_WORLD,
    FIXTURE,
    SCENARIOS,
    drive,
    projection,
)
from tests.replay.ami.conformance_actions import ACTIONS_FIXTURE, drive_actions

pytestmark = pytest.mark.asterisk
SECRET = "demo-conformance"


async def test_demo_pbx_plays_every_scenario_as_asterisk_does(
    asterisk: AsteriskSandbox,
) -> None:
    async with DemoPbx(CONFORMANCE_WORLD, secret=SECRET) as pbx:
        real, demo = await asyncio.gather(
            drive(asterisk.ami_settings(), SCENARIOS),
            drive(AmiSettings(port=pbx.port, secret=SECRET), SCENARIOS),
        )
    if os.environ.get("CONTACTD_RECORD_CONFORMANCE") == "1":
        FIXTURE.write_text(json.dumps(
            {name: {"attempt": attempt, "events": events, "published": [list(map(str, s))
             for s in published]} for name, (events, published, attempt) in real.items()},
            indent=1,
        ) + "\n")
    for name in SCENARIOS:
        real_events, real_published, real_id = real[name]
        demo_events, demo_published, demo_id = demo[name]
        assert demo_published == real_published, name
        assert projection(demo_events, demo_id) == projection(real_events, real_id), name


async def test_demo_pbx_answers_contactds_actions_as_asterisk_does(
    asterisk: AsteriskSandbox,
) -> None:
    """Setvar (the dialer's connector), Getvar, Redirect, Hangup, CoreShowChannels, DBGet/
    DBDel and the queue member actions: the same replies and the same call events."""
    async with DemoPbx(CONFORMANCE_WORLD, secret=SECRET) as pbx:
        real, demo = await asyncio.gather(
            drive_actions(asterisk.ami_settings()),
            drive_actions(AmiSettings(port=pbx.port, secret=SECRET)),
        )
    real.pop("_seconds"), demo.pop("_seconds")
    real = json.loads(json.dumps(real))  # as the fixture stores it: tuples become lists
    if os.environ.get("CONTACTD_RECORD_CONFORMANCE") == "1":
        ACTIONS_FIXTURE.write_text(json.dumps(real, indent=1) + "\n")
    assert _settled(json.loads(json.dumps(demo))) == _settled(real)


def _settled(steps: dict[str, object]) -> dict[str, object]:
    """Asterisk races on one field: when the redirected caller's Local pair is torn down, the
    far half (`;2`) hangs up with cause 16 or, now and then, 0 (seen 2 runs in 10 at load 3),
    depending on which half goes first. contactd's outcome comes from the channel it dialled
    (`;1`); of the far half it keeps only a specific cause (calls/outcome.is_specific), which
    neither 0 nor 16 is, so that one field is set aside here; every other is compared as is."""
    events = steps.get("redirect_events")
    if not isinstance(events, dict):
        return steps
    calmed = {
        channel: [
            ["Hangup", "(either)"] if channel.endswith(";2") and event[0] == "Hangup" else event
            for event in seen
        ]
        for channel, seen in events.items()
    }
    return {**steps, "redirect_events": calmed}
