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
from babel.dates import format_skeleton
from babel.numbers import format_decimal, format_percent
from sqlalchemy import select

from contactd.crm import report_charts
from contactd.crm.report_charts import Palette
from contactd.crm.reports import REPORTS, Chart, ReportFilter, ReportTable
from contactd.crm.spreadsheet import write_csv, write_xlsx
from contactd.db.models import Campaign, User
from contactd.enums import Role
from contactd.errors import ValidationError
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, LANGUAGE, THEME, THEMES
from contactd.web.render import page
from contactd.web.templates import format_day
from contactd.web.themes import SYSTEM, Theme, contrast

MAX_DAYS = 366
DAY_COLUMN = "day"  # reports whose rows (and chart labels) are days, as ISO dates
# Text cells that are words of the report (not names of people, campaigns or reasons).
WORD_COLUMNS = frozenset({"ended as", "which is", "over 3%", "person"})


def titles() -> dict[str, str]:
    return {
        "calls_by_day": _("Calls by day and outcome"),
        "calls_by_hour": _("Calls by hour of day and outcome"),
        "abandon_rate": _("Abandon rate against the 3% line"),
        "agents": _("Agents: occupancy, talk, wrap-up and pause time"),
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
        "wrap h": _("wrap-up h"),
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
        "over": _("over"),
        "contained": _("contained"),
        "to an agent": _("to an agent"),
        "left the IVR": _("left the IVR"),
        "unassigned": _("unassigned"),
        "none": _("none"),
    }


def note(result: ReportTable, lang: str) -> str:
    """The line under a report's title, in the page's language, from the report's rows."""
    if result.name == "abandon_rate":
        live = sum(int(row[1]) for row in result.rows)
        lost = sum(int(row[2]) for row in result.rows)
        return _("{lost} of {live} live answers abandoned = {rate}").format(
            lost=format_decimal(lost, locale=lang),
            live=format_decimal(live, locale=lang),
            rate=_share(lost, live, 4, lang),
        )
    if result.name == "ivr":
        total = sum(int(row[2]) for row in result.rows)
        kept = sum(int(row[2]) for row in result.rows if row[1] == "contained")
        return _("Contained: {kept} of {total} sessions = {rate}").format(
            kept=format_decimal(kept, locale=lang),
            total=format_decimal(total, locale=lang),
            rate=_share(kept, total, 3, lang),
        )
    if result.name == "agents":
        return _(
            "Occupancy: talk and wrap-up time over signed-in time less pauses (workspace "
            "sign-ins, pauses and wrap-ups from the audit log)."
        )
    return ""


def _share(part: int, whole: int, digits: int, lang: str) -> str:
    """part / whole as the locale writes a percentage ("3.33%", "3,33 %")."""
    ratio = round(part / whole, digits) if whole else 0.0
    return format_percent(ratio, locale=lang, decimal_quantization=False)


def cells(result: ReportTable, lang: str, names: dict[str, str]) -> list[list[str]]:
    """The table's cells as the reader writes them: days and numbers by Babel for the
    locale, the report's own words translated; names of people and campaigns as they are."""
    days = bool(result.columns) and result.columns[0] == DAY_COLUMN
    out = []
    for row in result.rows:
        shown = []
        for index, cell in enumerate(row):
            if index == 0 and days and isinstance(cell, str):
                shown.append(format_day(date.fromisoformat(cell), lang))
            elif cell is None or isinstance(cell, bool):
                shown.append("" if cell is None else str(cell))
            elif isinstance(cell, int | float):
                shown.append(format_decimal(cell, locale=lang))
            else:
                shown.append(_word(result, index, cell, names))
        out.append(shown)
    return out


def _word(result: ReportTable, index: int, cell: Any, names: dict[str, str]) -> Any:
    """A text cell of one of the report's own words, translated; any other cell as it is."""
    if isinstance(cell, str) and result.columns[index] in WORD_COLUMNS:
        return names.get(cell, cell)
    return cell


def palette(theme: Theme | None) -> Palette:
    """A chart in the theme's colours: its surface, text and error colours, and series
    colours that keep 3:1 against that surface (WCAG 1.4.11), lightened on a dark theme
    and darkened on a light one when the default ones fall short."""
    if theme is None:
        return report_charts.LIGHT
    c = theme.colours
    background = c["surface"]
    dark = contrast(background, "#000000") < contrast(background, "#ffffff")
    toward = "#ffffff" if dark else "#000000"
    return Palette(
        background=background,
        text=c["text"],
        muted=c["muted"],
        line=c["line"],
        alert=c["error"],
        series=tuple(_until_contrast(colour, background, toward) for colour in Palette().series),
    )


def _until_contrast(colour: str, background: str, toward: str, ratio: float = 3.0) -> str:
    """`colour` mixed step by step with `toward` until it stands 3:1 from `background`."""
    for step in range(11):
        mixed = _mix(colour, toward, step / 10)
        if contrast(mixed, background) >= ratio:
            return mixed
    return toward


def _mix(a: str, b: str, share: float) -> str:
    pa = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    pb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(pa, pb, strict=True))


def _chart(chart: Chart, names: dict[str, str], lang: str, days: bool) -> Chart:
    """The chart with its series and labels in the page's language (days as "6 Nov")."""
    if days:
        labels = [
            format_skeleton("MMMd", date.fromisoformat(label), locale=lang)
            for label in chart.labels
        ]
    else:
        labels = [names.get(label, label) for label in chart.labels]
    return dataclasses.replace(
        chart,
        labels=labels,
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
    lang = request.get(LANGUAGE, "en")
    theme = request.get(THEME, SYSTEM)
    return page(
        request,
        "reports.html",
        {
            "result": result,
            "title": title,
            "columns": [names.get(c, c) for c in result.columns],
            "cells": cells(result, lang, names),
            "note": note(result, lang),
            "period": (
                format_day(window.start.date(), lang),
                format_day((window.end - timedelta(days=1)).date(), lang),
            ),
            "chart_theme": "" if theme == SYSTEM else theme,
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
    themes = request.app[THEMES]
    asked = request.query.get("theme", "") or request.get(THEME, SYSTEM)
    theme = await themes.get(asked) or await themes.get("light")
    days = bool(result.columns) and result.columns[0] == DAY_COLUMN
    svg = await asyncio.to_thread(
        report_charts.svg,
        _chart(result.chart, words(), request.get(LANGUAGE, "en"), days),
        titles()[name],
        _("Nothing in this period."),
        palette(theme),
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
        days = bool(result.columns) and result.columns[0] == DAY_COLUMN
        rows = [
            [
                date.fromisoformat(cell)
                if index == 0 and days and fmt == "xlsx"  # a date cell, not text
                else _word(result, index, cell, names)
                for index, cell in enumerate(row)
            ]
            for row in result.rows
        ]
        if fmt == "csv":
            write_csv(target, header, rows)
        else:
            write_xlsx(target, result.name[:31], header, rows)
        return target.read_bytes()


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
    app.router.add_get("/reports/chart.svg", reports_chart)
    app.router.add_get(r"/reports/export.{fmt:csv|xlsx}", reports_export)
