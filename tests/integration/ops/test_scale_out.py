"""Issue 20, scale-out: two `contactd run` daemons, each beside its own Asterisk sandbox,
share one campaign through one PostgreSQL database.

- no lead is dialled twice: every lead ends with exactly one attempt, and the two Asterisks
  together placed exactly one call per lead;
- the campaign's own cap on concurrent calls holds across both daemons (B alone would be
  allowed the cap, so two daemons ignoring each other would pass it), and each daemon's own
  `[dialer] max_concurrent_calls` (its trunk) holds beside it;
- daemon A is killed (`kill -9`) while its calls are up: daemon B never settles them (they
  are on A's Asterisk, which B cannot see) and dials the leads A would have dialled; A's
  restart reconciles its own calls, and the campaign finishes.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from panoramisk import Manager
from sqlalchemy import select, update

from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models.calls import CallAttempt
from contactd.db.models.dialer import Campaign, Lead
from contactd.db.session import Database
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.create import CampaignSpec, create_campaign
from contactd.dialer.recovery import change_status
from contactd.enums import AttemptState, LeadStatus
from tests.integration.sipp.operator_flow import until_finished
from tests.peers.asterisk import (
    WORLD_TRUNK_TEMPLATE,
    AmiEvents,
    AsteriskSandbox,
    _free_udp_port,
    ami_connect,
    human,
    world_e164,
)
from tests.peers.contactd import daemon_process, write_config
from tests.peers.ports import free_port

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

LEADS = 14
JOINT_CAP = 4
A_CAP = 2  # A's own trunk: A never holds the whole joint cap, so B always has room
PROGRESS_TIMEOUT_S = 90.0
LOOK_S = 0.5  # between two looks at the shared database while waiting on the other daemon


@pytest.fixture(scope="module")
def asterisk_b(asterisk: AsteriskSandbox) -> Iterator[AsteriskSandbox]:
    """A second sandbox instance (the second daemon's own Asterisk), from the same build."""
    ami_port = free_port()
    sandbox = AsteriskSandbox(instance=f"pytest-{os.getpid()}-b", ami_port=ami_port,
                              sip_port=_free_udp_port(avoid=ami_port), root=asterisk.root,
                              http_port=free_port())  # never the default 18088 another holds
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def ami_a(asterisk: AsteriskSandbox) -> AsyncIterator[Manager]:
    manager = await ami_connect(asterisk)
    yield manager
    manager.close()


def short_message(sandbox: AsteriskSandbox) -> str:
    """A 1 s prompt (8 kHz 16-bit mono silence) in the sandboxes' shared custom sounds."""
    name = f"scale-out-{uuid.uuid4().hex[:8]}"
    with wave.open(str(sandbox.sounds_dir / f"{name}.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000)
    return f"custom/{name}"


def node_config(folder: Path, sandbox: AsteriskSandbox, node: str, url: str,
                calls: int) -> Path:
    folder.mkdir()
    return write_config(
        folder, sandbox,
        general={"node": node},
        database={"url": url},
        asterisk={"trunk_dial_template": WORLD_TRUNK_TEMPLATE},
        audiosocket={"enabled": False},  # no IVR here: a quicker start
        dialer={"max_concurrent_calls": calls, "retry_no_answer_s": 0, "retry_failed_s": 0,
                "retry_busy_s": 0},
    )


async def attempts_in(db: Database, campaign: str) -> list[CallAttempt]:
    async with db.session() as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == campaign))
        return list((await session.execute(
            select(CallAttempt).where(CallAttempt.campaign_id == campaign_id)
            .order_by(CallAttempt.created_at))).scalars().all())


async def attempts_of(config: Path, campaign: str) -> list[CallAttempt]:
    async with await open_database(load_settings(config, {}), upgrade=False) as db:
        return await attempts_in(db, campaign)


async def leads_of(config: Path, campaign: str) -> list[Lead]:
    async with await open_database(load_settings(config, {}), upgrade=False) as db, \
            db.session() as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == campaign))
        return list((await session.execute(
            select(Lead).where(Lead.campaign_id == campaign_id))).scalars().all())


def most_at_once(attempts: list[CallAttempt], until: datetime) -> int:
    """The most attempts open at one instant, from their stored start and end; one still
    open counts as open until `until`."""
    edges = sorted([(a.created_at, 1) for a in attempts]
                   + [(a.ended_at or until, -1) for a in attempts],
                   key=lambda edge: (edge[0], edge[1]))  # an end before a start at a tie
    peak = now = 0
    for _at, step in edges:
        now += step
        peak = max(peak, now)
    return peak


async def until_a_call_of_a_is_up_after(config: Path, campaign: str, placed: int) -> None:
    """Until at least `placed` calls were placed in all and one of A's is up. (A's open calls
    keep their places in the joint cap after the kill, until A's restart settles them: A's own
    cap, below the joint one, leaves B room to dial meanwhile.) One connection polls, quickly:
    the moment lasts a call's few seconds, and a poll that opened the database each time
    once missed every such moment of a short campaign."""
    async with await open_database(load_settings(config, {}), upgrade=False) as db, \
            asyncio.timeout(PROGRESS_TIMEOUT_S):
        while True:
            rows = await attempts_in(db, campaign)
            if len(rows) >= placed and any(
                    x.node == "pbx-a" and x.state is AttemptState.ANSWERED for x in rows):
                return
            await asyncio.sleep(LOOK_S / 10)  # polling the shared database (other processes)


async def until_only_a_is_left(config: Path, campaign: str) -> list[Lead]:
    """Until every lead is done, or `dialing` by A (the killed daemon, its restart awaited)."""
    async with asyncio.timeout(PROGRESS_TIMEOUT_S):
        while True:
            leads = await leads_of(config, campaign)
            if all(lead.status is LeadStatus.DONE or (
                    lead.status is LeadStatus.DIALING and lead.dialing_node == "pbx-a")
                   for lead in leads):
                return leads
            await asyncio.sleep(LOOK_S)  # polling the shared database (another process)


async def test_two_daemons_share_a_campaign_and_survive_a_kill_9(
    asterisk: AsteriskSandbox, asterisk_b: AsteriskSandbox, ami_a: Manager,
    postgres_url: str, tmp_path: Path,
) -> None:
    config_a = node_config(tmp_path / "a", asterisk, "pbx-a", postgres_url, A_CAP)
    config_b = node_config(tmp_path / "b", asterisk_b, "pbx-b", postgres_url, 20)
    # People who answer (AMD: human) and listen to the whole message. The campaign is made
    # in-process with the service the CLI uses (the CLI's own flow is tested elsewhere):
    # its own cap on concurrent calls is the joint one.
    numbers = [world_e164(human(), i) for i in range(LEADS)]
    settings = load_settings(config_a, {})
    async with await open_database(settings) as db:
        await create_campaign(db, settings, CampaignSpec(
            name="shared", mode="automated", message=short_message(asterisk),
            caller_id='"contactd" <5550100>', max_attempts=2),
            numbers=[(f"lead {i}", n) for i, n in enumerate(numbers)])
        async with db.transaction() as session:
            await session.execute(update(Campaign).where(Campaign.name == "shared")
                                  .values(max_concurrent=JOINT_CAP))
    events_a = AmiEvents(ami_a, "UserEvent")

    async with daemon_process(config_b, tmp_path / "b.log") as b:
        async with daemon_process(config_a, tmp_path / "a-1.log") as a:
            await asyncio.gather(a.wait_ready(), b.wait_ready())
            # The operator's start: both daemons follow the campaign's stored status.
            async with await open_database(settings, upgrade=False) as db:
                await change_status(db, "shared", CampaignAction.START)
            # Both daemons dial for a while (more calls than the cap), then A is killed
            # while one of its calls is up.
            await until_a_call_of_a_is_up_after(config_a, "shared", JOINT_CAP + 2)
            await a.kill9()
        killed_at = datetime.now(UTC)
        in_flight_a = {x.id for x in await attempts_of(config_a, "shared")
                       if x.node == "pbx-a" and x.state is not AttemptState.ENDED}
        assert in_flight_a, "A was killed with none of its calls up"

        # B dials every lead A did not, and leaves A's calls alone: it cannot see them.
        leads = await until_only_a_is_left(config_b, "shared")
        # Left `dialing`: the leads A was dialling (a call up, or ended while A settled it),
        # each A's alone, for A's restart to settle.
        stuck = [lead for lead in leads if lead.status is LeadStatus.DIALING]
        rows = await attempts_of(config_b, "shared")
        assert {x.lead_id for x in rows if x.id in in_flight_a} <= {x.id for x in stuck}
        assert not [x for x in rows if x.node == "pbx-b" and x.lead_id in {y.id for y in stuck}]
        assert all(x.state is not AttemptState.ENDED for x in rows if x.id in in_flight_a)
        assert any(x.node == "pbx-b" and x.created_at > killed_at for x in rows), (
            "B picked up no lead after A was killed")

        async with daemon_process(config_a, tmp_path / "a-2.log") as a2:
            await a2.wait_ready()
            await until_finished(config_a, "shared", events_a)
        reconciled = [line for line in a2.log_lines()
                      if line.get("msg") == "reconciled open call attempts"]
        assert [(line["checked"], line["lost"]) for line in reconciled] == [
            (len(in_flight_a), 0)], a2.log()
    assert not [line for line in b.log_lines()
                if line.get("msg") == "reconciled open call attempts" and line["checked"]], (
        "B reconciled calls that were not its own")

    rows = await attempts_of(config_a, "shared")
    leads = await leads_of(config_a, "shared")
    # No lead dialled twice: one attempt each, one call per number across both Asterisks.
    assert sorted(x.lead_id for x in rows) == sorted(lead.id for lead in leads)
    assert {(lead.status, lead.attempts) for lead in leads} == {(LeadStatus.DONE, 1)}
    assert {x.node for x in rows} == {"pbx-a", "pbx-b"}
    assert all(x.state is AttemptState.ENDED and x.outcome is not None for x in rows)
    # The joint cap held, and was reached: two daemons each taking the cap would exceed it.
    last_end = max(x.ended_at for x in rows if x.ended_at is not None)
    peak = most_at_once(rows, last_end)
    timeline = [(x.node, x.created_at.time(), x.ended_at and x.ended_at.time()) for x in rows]
    assert peak == JOINT_CAP, timeline
    assert most_at_once([x for x in rows if x.node == "pbx-a"], last_end) <= A_CAP, timeline
