"""The demo PBX against the recorded real sequences (conformance.json and
conformance_actions.json, recorded from the Asterisk 22 sandbox by
tests/integration/demo/test_conformance.py): no Asterisk needed."""

from __future__ import annotations

import asyncio
import json

from contactd.config import AmiSettings
from contactd.demo.pbx import DemoPbx
from tests.replay.ami.conformance import CONFORMANCE_WORLD, FIXTURE, SCENARIOS, drive, projection
from tests.replay.ami.conformance_actions import ACTIONS_FIXTURE, drive_actions

SECRET = "demo-replay"


async def test_demo_pbx_matches_the_recorded_asterisk_sequences() -> None:
    recorded = json.loads(FIXTURE.read_text())
    assert set(recorded) == set(SCENARIOS)
    async with DemoPbx(CONFORMANCE_WORLD, secret=SECRET) as pbx:
        demo = await drive(AmiSettings(port=pbx.port, secret=SECRET), SCENARIOS)
    for name, (events, published, attempt) in demo.items():
        real = recorded[name]
        assert [list(map(str, s)) for s in published] == real["published"], name
        assert projection(events, attempt) == projection(real["events"], real["attempt"]), name


async def test_demo_pbx_answers_actions_as_the_recorded_asterisk_did() -> None:
    """Setvar, Getvar, Redirect, Hangup, CoreShowChannels, DBGet/DBDel, queue members."""
    recorded = json.loads(ACTIONS_FIXTURE.read_text())
    async with DemoPbx(CONFORMANCE_WORLD, secret=SECRET) as pbx:
        demo = await drive_actions(AmiSettings(port=pbx.port, secret=SECRET))
    demo.pop("_seconds")
    assert json.loads(json.dumps(demo)) == recorded


async def test_demo_pbx_refuses_a_wrong_secret() -> None:
    async with DemoPbx(CONFORMANCE_WORLD, secret=SECRET) as pbx:
        reader, writer = await asyncio.open_connection("127.0.0.1", pbx.port)
        banner = await reader.readline()
        writer.write(b"Action: Login\r\nActionID: 1\r\nUsername: contactd\r\nSecret: no\r\n\r\n")
        reply = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert banner.startswith(b"Asterisk Call Manager/")
    assert b"Response: Error" in reply and b"Authentication failed" in reply
