"""Scheduled reports: each `[reports.schedules.NAME]` is built for its last complete period
(daily: yesterday, UTC; weekly: Monday to Sunday) once its hour has come, laid out as a PDF
and queued in the durable outbox for every subscriber.

The outbox key names the schedule, the period and the address, so a restart, a second
daemon or a retried step never mails a period twice; a period the daemon was down for is
mailed when it starts. Between periods the loop waits for the next send time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final

from sqlalchemy import select

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.config import ReportScheduleSettings, Settings
from contactd.crm.report_pdf import render_report_pdf
from contactd.crm.reports import REPORTS, ReportFilter
from contactd.db.base import utcnow
from contactd.db.models import OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel
from contactd.errors import StartupError
from contactd.messaging.outbox_store import OutboundMessage

log = logging.getLogger(__name__)

Send = Callable[[OutboundMessage], Awaitable[int]]
MAX_WAIT_S: Final = 3600.0  # look again at least hourly (clock changes, a long suspend)


def period(schedule: ReportScheduleSettings, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the last complete period whose send time has come."""
    today = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    length = timedelta(days=1 if schedule.period == "daily" else 7)
    end = today if schedule.period == "daily" else today - timedelta(days=today.weekday())
    if now < end + timedelta(hours=schedule.hour_utc):
        end -= length
    return end - length, end


def next_send(schedule: ReportScheduleSettings, now: datetime) -> datetime:
    _, end = period(schedule, now)
    length = timedelta(days=1 if schedule.period == "daily" else 7)
    return end + length + timedelta(hours=schedule.hour_utc)


def mail_key(name: str, start: datetime, address: str) -> str:
    return f"report:{name}:{start:%Y%m%d}:{address.lower()}"


class ReportMailer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        send: Send,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.schedules = settings.reports.schedules
        for name, schedule in self.schedules.items():
            if schedule.report not in REPORTS:
                raise StartupError(
                    f"[reports.schedules.{name}] report {schedule.report!r} is not one of "
                    f"{', '.join(REPORTS)}"
                )
        self.db = db
        self.send = send
        self.clock = clock
        self.folder = settings.general.data_dir / "reports"
        self.state = LoopState("report-mail")
        self._owner = TaskOwner("report-mail", log)

    async def __aenter__(self) -> ReportMailer:
        if self.schedules:
            self._owner.spawn(run_resilient(self._step, self.state, logger=log), "schedule")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.close()

    async def _step(self) -> None:
        await self.send_due()
        now = self.clock()
        wake = min(next_send(s, now) for s in self.schedules.values())
        await asyncio.sleep(min(max((wake - now).total_seconds(), 1.0), MAX_WAIT_S))

    async def send_due(self) -> list[int]:
        """Queue every schedule's last complete period not queued yet; the outbox ids."""
        now = self.clock()
        queued: list[int] = []
        for name, schedule in self.schedules.items():
            start, end = period(schedule, now)
            keys = {a: mail_key(name, start, a) for a in schedule.subscribers}
            async with self.db.session() as session:
                done = set(
                    (
                        await session.execute(
                            select(OutboxMessage.idempotency_key).where(
                                OutboxMessage.idempotency_key.in_(keys.values())
                            )
                        )
                    ).scalars()
                )
            if done >= set(keys.values()):
                continue
            queued += await self._mail(
                name, schedule, start, end, {a: k for a, k in keys.items() if k not in done}
            )
        return queued

    async def _mail(
        self,
        name: str,
        schedule: ReportScheduleSettings,
        start: datetime,
        end: datetime,
        keys: dict[str, str],
    ) -> list[int]:
        report = REPORTS[schedule.report]
        result = await report.build(
            self.db,
            ReportFilter(
                start=start,
                end=end,
                campaign_id=schedule.campaign_id,
                team=schedule.team,
                user_id=schedule.agent_id,
            ),
        )
        last = (end - timedelta(days=1)).date()
        span = (
            f"{start.date().isoformat()}"
            if schedule.period == "daily"
            else f"{start.date().isoformat()} – {last.isoformat()}"
        )
        filters = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("campaign", schedule.campaign_id),
                ("team", schedule.team),
                ("agent", schedule.agent_id),
            )
            if v is not None
        )
        heading = f"{span} (UTC)" + (f"; {filters}" if filters else "")
        data = await asyncio.to_thread(render_report_pdf, result, report.title, heading)
        path = self.folder / f"{name}-{start:%Y%m%d}.pdf"
        await asyncio.to_thread(_write, path, data)
        ids = []
        for address, key in keys.items():
            ids.append(
                await self.send(
                    OutboundMessage(
                        idempotency_key=key,
                        channel=Channel.EMAIL,
                        to=address,
                        subject=f"{report.title}: {span}"[:300],
                        body=f"{report.title}\n{heading}\n\n{result.note}\n\n"
                        "The report is attached as a PDF.\n",
                        meta={
                            "report": schedule.report,
                            "schedule": name,
                            "attachments": [
                                {
                                    "path": str(path),
                                    "filename": path.name,
                                    "content_type": "application/pdf",
                                }
                            ],
                        },
                    )
                )
            )
        log.info(
            "scheduled report queued",
            extra={
                "schedule": name,
                "report": schedule.report,
                "period_start": start.isoformat(),
                "recipients": len(ids),
            },
        )
        return ids


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
