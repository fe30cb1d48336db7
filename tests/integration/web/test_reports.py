"""Reports in the panel: a supervisor picks a report, range and filter, sees its table and
its chart, exports CSV and XLSX; agents are refused; bad input is named. The interactions
come through the ORM, so the rollup's triggers (crm.report_hours) are what is tested."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web
from openpyxl import load_workbook
from sqlalchemy import select, update

from contactd.crm.fts import create_fts
from contactd.crm.reports import REPORTS, ReportFilter
from contactd.db.models import AuditEntry, Campaign, Interaction, User
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.floor_relay import AgentStateRelay
from contactd.dialer.wrap_log import WrapLog
from contactd.enums import CampaignMode, Channel, Direction, InteractionKind
from contactd.events import EventBus
from tests.integration.web.conftest import Signed

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RANGE = {"start": "2026-11-01", "end": "2026-11-30"}


async def _calls(db: Database) -> dict[str, int]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    async with db.transaction() as session:
        users = dict((await session.execute(select(User.username, User.id))).all())
        await session.execute(update(User).where(User.username == "alex").values(team="north"))
        campaign = Campaign(name="Winter", mode=CampaignMode.PROGRESSIVE)
        session.add(campaign)
        await session.flush()
        # Day 1: 20 live answers, 1 abandoned (5%, over the line); day 2: 40 live, 1 (2.5%).
        for day, live, lost in ((0, 19, 1), (1, 39, 1)):
            for n in range(live + lost):
                at = DAY + timedelta(days=day, minutes=n)
                session.add(
                    Interaction(
                        kind=InteractionKind.CALL,
                        direction=Direction.OUTBOUND,
                        channel=Channel.CALL,
                        started_at=at,
                        campaign_id=campaign.id,
                        ended_at=at + timedelta(seconds=60) if n >= lost else None,
                        outcome="abandoned" if n < lost else "human",
                        user_id=users["alex"] if n >= lost else None,
                    )
                )
        # An IVR session that ended in the IVR, one that went to an agent.
        for outcome in ("completed", "needs_agent"):
            session.add(
                Interaction(
                    kind=InteractionKind.IVR_SESSION,
                    direction=Direction.INBOUND,
                    channel=Channel.CALL,
                    started_at=DAY,
                    outcome=outcome,
                )
            )
        # alex signed in 08:00-12:00 with a pause 10:00-11:00 (the workspace's audit entries).
        for hour, action in (
            (8, "agent.join"),
            (8.5, "agent.ready"),
            (10, "agent.pause"),
            (11, "agent.ready"),
            (12, "agent.leave"),
        ):
            session.add(
                AuditEntry(
                    user_id=users["alex"],
                    action=action,
                    entity="campaign",
                    entity_id=str(campaign.id),
                    at=DAY.replace(hour=0) + timedelta(hours=hour),
                )
            )
        # Outside the range: never counted.
        session.add(
            Interaction(
                kind=InteractionKind.CALL,
                direction=Direction.OUTBOUND,
                channel=Channel.CALL,
                started_at=DAY - timedelta(days=40),
                outcome="abandoned",
            )
        )
    return {"campaign": campaign.id, "alex": int(users["alex"])}


async def test_supervisor_reads_reports_and_exports_them(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    ids = await _calls(db)
    sam = (await signed_in("sam")).client
    page = await sam.get("/reports", params={"report": "abandon_rate", **RANGE})
    html = await page.text()
    assert page.status == 200, html
    assert "Abandon rate against the 3% line" in html
    assert "2 of 60 live answers abandoned = 3.33%" in html
    assert '<td data-label="rate %">5</td>' in html and "over" in html
    assert '<td data-label="day">Nov 2, 2026</td>' in html  # days as the locale writes them
    assert 'src="/reports/chart.svg?report=abandon_rate' in html
    chart = await sam.get("/reports/chart.svg", params={"report": "abandon_rate", **RANGE})
    assert chart.content_type == "image/svg+xml"
    svg = await chart.text()
    assert svg.startswith("<svg") and "<script" not in svg

    # The same report as XLSX and CSV: the table's rows.
    xlsx = await sam.get("/reports/export.xlsx", params={"report": "abandon_rate", **RANGE})
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == ["day", "live answers", "abandoned", "rate %", "over 3%"]
    assert [datetime(2026, 11, 2), 20, 1, 5.0, "over"] in rows  # a date cell, not text
    assert [datetime(2026, 11, 3), 40, 1, 2.5, None] in rows
    by_day = await sam.get("/reports/export.csv", params={"report": "calls_by_day", **RANGE})
    table = list(csv.reader(io.StringIO((await by_day.read()).decode("utf-8-sig"))))
    assert table[0] == ["day", "human", "abandoned", "total"]
    assert ["2026-11-02", "19", "1", "20"] in table

    # Filters: the agent's talk time; the team; a campaign with no calls.
    agents = await (
        await sam.get("/reports", params={"report": "agents", "team": "north", **RANGE})
    ).text()
    # 58 calls of 60 s: 0.97 h talk; 4 h signed in, 1.5 h paused: 0.97 / 2.5 = 38.7%.
    assert (
        '<td data-label="agent">alex</td><td data-label="calls">58</td>'
        '<td data-label="talk h">0.97</td><td data-label="wrap-up h">0</td>'
        '<td data-label="signed in h">4</td>'
        '<td data-label="pause h">1.5</td><td data-label="occupancy %">38.7</td>'
    ) in agents
    none = await (
        await sam.get(
            "/reports", params={"report": "calls_by_day", "agent": str(ids["alex"] + 100), **RANGE}
        )
    ).text()
    assert "Nov 2, 2026" in none and '<td data-label="total">0</td>' in none
    ivr = await (await sam.get("/reports", params={"report": "ivr", **RANGE})).text()
    assert "Contained: 1 of 2 sessions = 50%" in ivr


async def test_wrap_ups_are_stored_as_they_end_and_count_in_the_agents_report(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    """The daemon's wiring: the agent board's changes reach the bus through the relay, and
    the wrap log stores each wrap-up when the agent leaves it (here two: one ended by the
    button after 10 min, one by a pause after 5 min)."""
    ids = await _calls(db)
    bus = EventBus()
    board = AgentBoard(auto_ready_s=None)
    t = (DAY.replace(hour=9) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    async with WrapLog(db, bus), AgentStateRelay(board, bus):
        board.login("alex", "PJSIP/1001", ids["campaign"], t)
        board.claim(ids["campaign"], "call-1", t + 60)
        board.call_ended("call-1", t + 120)
        board.ready("alex", t + 720)  # wrap-up 10 min
        board.claim(ids["campaign"], "call-2", t + 800)
        board.call_ended("call-2", t + 900)
        board.pause("alex", t + 1200, "break")  # wrap-up 5 min, ended by a pause
    async with db.session() as session:
        wraps = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "agent.wrap"))
        ).all()
    assert sorted(w.details["after"]["seconds"] for w in wraps) == [300.0, 600.0]
    assert {w.user_id for w in wraps} == {ids["alex"]}
    sam = (await signed_in("sam")).client
    agents = await (await sam.get("/reports", params={"report": "agents", **RANGE})).text()
    # 15 min of wrap-up: 0.25 h; occupancy (0.97 h talk + 0.25 h) over 2.5 h available.
    assert '<td data-label="wrap-up h">0.25</td>' in agents
    assert '<td data-label="occupancy %">48.7</td>' in agents


async def test_reports_follow_the_readers_language_and_theme(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    """A German supervisor on the dark theme: dates, numbers and the note as German writes
    them, and a chart drawn on the theme's dark surface with its light text."""
    await _calls(db)
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.username == "sam").values(language="de", theme="dark")
        )
    sam = (await signed_in("sam")).client
    html = await (await sam.get("/reports", params={"report": "abandon_rate", **RANGE})).text()
    assert "2 von 60 Live-Annahmen abgebrochen = 3,33\xa0%" in html, html
    assert '<td data-label="Quote %">2,5</td>' in html
    assert "02.11.2026" in html and "2026-11-02<" not in html
    assert 'src="/reports/chart.svg?report=abandon_rate' in html and "theme=dark" in html
    dark = await (
        await sam.get("/reports/chart.svg", params={"report": "abandon_rate", **RANGE})
    ).text()
    light = await (
        await sam.get(
            "/reports/chart.svg", params={"report": "abandon_rate", "theme": "light", **RANGE}
        )
    ).text()
    assert "#1c2128" in dark and "#e7eaee" in dark  # dark.css: --surface, --text
    assert "#1c2128" not in light and "#ffffff" in light


async def test_reports_refuse_agents_and_bad_input(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _calls(db)
    agent = (await signed_in("alex")).client
    assert (await agent.get("/reports")).status == 403
    assert "/reports" not in await (await agent.get("/")).text()
    sam = (await signed_in("sam")).client
    assert 'href="/reports"' in await (await sam.get("/")).text()
    for params, message in (
        ({"report": "nope"}, "no report &#39;nope&#39;"),
        ({"start": "2026-13-01"}, "start must be a date"),
        ({"start": "2026-11-30", "end": "2026-11-01"}, "the start date is after the end date"),
        ({"agent": "x"}, "agent must be an id"),
    ):
        response = await sam.get("/reports", params=params)
        assert response.status == 422 and message in await response.text(), params


async def test_rollup_follows_updates_and_deletes(db: Database, app: web.Application) -> None:
    await _calls(db)  # `app` made the users
    async with db.transaction() as session:
        await session.execute(
            update(Interaction).where(Interaction.outcome == "abandoned").values(outcome="human")
        )
    window = ReportFilter(start=DAY - timedelta(days=1), end=DAY + timedelta(days=5))
    result = await REPORTS["abandon_rate"].build(db, window)
    assert result.note == "0 of 60 live answers abandoned = 0.00%"
    async with db.transaction() as session:
        for row in (
            await session.execute(
                select(Interaction).where(Interaction.kind == InteractionKind.CALL)
            )
        ).scalars():
            await session.delete(row)
    result = await REPORTS["calls_by_day"].build(db, window)
    assert all(row[-1] == 0 for row in result.rows)
