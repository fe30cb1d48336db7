"""Reports (supervisors and admins): pick a report, a date range and a campaign, team or
agent; see its table and its chart (SVG drawn on the server); export it as CSV or XLSX."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from contactd.crm import report_charts
from contactd.crm.reports import REPORTS, Chart, ReportFilter, ReportTable
from contactd.crm.spreadsheet import write_csv, write_xlsx
from contactd.db.models import Campaign, User
from contactd.enums import Role
from contactd.errors import ValidationError
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE
from contactd.web.render import page

MAX_DAYS = 366


def titles() -> dict[str, str]:
    return {
        "calls_by_day": _("Calls by day and outcome"),
        "calls_by_hour": _("Calls by hour of day and outcome"),
        "abandon_rate": _("Abandon rate against the 3% line"),
        "agents": _("Agents: occupancy, talk and pause time"),
        "ivr": _("IVR containment and where callers left"),
        "messages": _("Messages by status and channel"),
        "tasks": _("Tasks opened, closed and overdue per person"),
        "funnel": _("Campaign funnel"),
        "decisions": _("Channel decisions by reason"),
    }


def words() -> dict[str, str]:
    """The reports' columns, chart series and call outcomes in the page's language. The
    reports name them by English keys; a key not here (a free-text outcome, say) shows as
    it is."""
    return {
        "day": _("day"),
        "hour": _("hour"),
        "total": _("total"),
        "agent": _("agent"),
        "calls": _("calls"),
        "talk h": _("talk h"),
        "signed in h": _("signed in h"),
        "pause h": _("pause h"),
        "occupancy %": _("occupancy %"),
        "live answers": _("live answers"),
        "rate %": _("rate %"),
        "over 3%": _("over 3%"),
        "abandon rate": _("abandon rate"),
        "ended as": _("ended as"),
        "which is": _("which is"),
        "sessions": _("sessions"),
        "channel": _("channel"),
        "reason": _("reason"),
        "person": _("person"),
        "opened": _("opened"),
        "closed": _("closed"),
        "overdue": _("overdue"),
        "overdue now": _("overdue now"),
        "campaign": _("campaign"),
        "all campaigns": _("all campaigns"),
        "leads": _("leads"),
        "dialled": _("dialled"),
        "answered": _("answered"),
        "positive": _("positive"),
        "human": _("human"),
        "machine": _("machine"),
        "busy": _("busy"),
        "no_answer": _("no answer"),
        "unallocated": _("unallocated"),
        "congestion": _("congestion"),
        "rejected": _("rejected"),
        "failed": _("failed"),
        "abandoned": _("abandoned"),
        "lost": _("lost"),
    }


def _chart(chart: Chart, names: dict[str, str]) -> Chart:
    """The chart with its series and labels in the page's language."""
    return dataclasses.replace(
        chart,
        labels=[names.get(label, label) for label in chart.labels],
        series={names.get(key, key): values for key, values in chart.series.items()},
    )


def _day(raw: str, field: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{field} must be a date (YYYY-MM-DD), not {raw!r}", field=field
        ) from None


def _int(raw: str, field: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationError(f"{field} must be an id", field=field)
    return int(raw)


def parse(query: Any) -> tuple[str, ReportFilter, dict[str, str]]:
    """The report's name and filter from a query string, and the raw values to show."""
    name = query.get("report", "") or "calls_by_day"
    if name not in REPORTS:
        raise ValidationError(f"no report {name!r}; one of {', '.join(REPORTS)}", field="report")
    today = datetime.now(UTC).date()
    end = _day(query.get("end", ""), "end", today)
    start = _day(query.get("start", ""), "start", end - timedelta(days=29))
    if start > end:
        raise ValidationError("the start date is after the end date", field="start")
    if (end - start).days >= MAX_DAYS:
        raise ValidationError(f"a report covers at most {MAX_DAYS} days", field="start")
    team = query.get("team", "").strip()[:64] or None
    window = ReportFilter(
        start=datetime.combine(start, time(), UTC),
        end=datetime.combine(end + timedelta(days=1), time(), UTC),
        campaign_id=_int(query.get("campaign", ""), "campaign"),
        team=team,
        user_id=_int(query.get("agent", ""), "agent"),
    )
    shown = {
        "report": name,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "campaign": query.get("campaign", ""),
        "team": team or "",
        "agent": query.get("agent", ""),
    }
    return name, window, shown


@requires(Role.SUPERVISOR)
async def reports(request: web.Request) -> web.StreamResponse:
    name, window, shown = parse(request.query)
    db = request.app[DATABASE]
    result = await REPORTS[name].build(db, window)
    title = titles()[name]
    names = words()
    async with db.engine.connect() as conn:
        campaigns = (
            await conn.execute(select(Campaign.id, Campaign.name).order_by(Campaign.name))
        ).all()
        people = (
            await conn.execute(select(User.id, User.username, User.team).order_by(User.username))
        ).all()
    query = "&".join(f"{k}={v}" for k, v in shown.items() if v)
    return page(
        request,
        "reports.html",
        {
            "result": result,
            "title": title,
            "columns": [names.get(c, c) for c in result.columns],
            "shown": shown,
            "titles": titles(),
            "campaigns": campaigns,
            "agents": people,
            "teams": sorted({p.team for p in people if p.team}),
            "query": query,
        },
    )


@requires(Role.SUPERVISOR)
async def reports_chart(request: web.Request) -> web.StreamResponse:
    """The report's chart as an SVG image (its inline styles allowed in it alone)."""
    name, window, _shown = parse(request.query)
    result = await REPORTS[name].build(request.app[DATABASE], window)
    svg = await asyncio.to_thread(
        report_charts.svg,
        _chart(result.chart, words()),
        titles()[name],
        _("Nothing in this period."),
    )
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@requires(Role.SUPERVISOR)
async def reports_export(request: web.Request) -> web.StreamResponse:
    fmt = request.match_info["fmt"]
    name, window, shown = parse(request.query)
    result = await REPORTS[name].build(request.app[DATABASE], window)
    data = await asyncio.to_thread(spreadsheet, fmt, result)
    kind = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    )
    filename = f"{name}-{shown['start']}-{shown['end']}.{fmt}"
    return web.Response(
        body=data,
        headers={
            "Content-Type": kind,
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


def spreadsheet(fmt: str, result: ReportTable) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"report.{fmt}"
        names = words()
        header = [names.get(c, c) for c in result.columns]
        if fmt == "csv":
            write_csv(target, header, result.rows)
        else:
            write_xlsx(target, result.name[:31], header, result.rows)
        return target.read_bytes()


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
    app.router.add_get("/reports/chart.svg", reports_chart)
    app.router.add_get(r"/reports/export.{fmt:csv|xlsx}", reports_export)
