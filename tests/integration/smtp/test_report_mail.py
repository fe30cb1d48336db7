"""A scheduled report arrives by e-mail as a PDF: the daemon, configured with
[reports.schedules.NAME], builds yesterday's report and mails it through the outbox to the
SMTP peer; the PDF holds the report's title, period and figures. Mailed once per period."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from contactd.config import load_settings
from contactd.crm.report_mail import ReportMailer, period
from contactd.daemon import Components, run_daemon
from contactd.db.bootstrap import open_database
from contactd.db.models import Interaction, OutboxMessage
from contactd.enums import Channel, Direction, InteractionKind
from contactd.errors import StartupError
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.smtp


def _config(tmp_path: Path, smtp: SmtpPeer, report: str = "abandon_rate") -> Path:
    path = tmp_path / "contactd.toml"
    path.write_text(
        f"""
[general]
data_dir = "{tmp_path}"
[ami]
enabled = false
[web]
enabled = false
[audiosocket]
enabled = false
[email]
enabled = true
host = "{smtp.host}"
port = {smtp.port}
from_address = "contactd@contactd.test"
[reports.schedules.abandons]
report = "{report}"
period = "daily"
hour_utc = 0
subscribers = ["grace@contactd.test", "boss@contactd.test"]
""",
        encoding="utf-8",
    )
    return path


async def test_the_daemon_mails_yesterdays_report_as_a_pdf(tmp_path: Path, smtp: SmtpPeer) -> None:
    settings = load_settings(_config(tmp_path, smtp))
    yesterday = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(9), UTC)
    async with await open_database(settings) as db, db.transaction() as session:
        for n in range(25):  # 1 of 25 live answers abandoned: 4%
            session.add(
                Interaction(
                    kind=InteractionKind.CALL,
                    direction=Direction.OUTBOUND,
                    channel=Channel.CALL,
                    started_at=yesterday + timedelta(minutes=n),
                    outcome="abandoned" if n == 0 else "human",
                )
            )
    stop = asyncio.Event()

    async def ready(components: Components) -> None:
        try:
            await smtp.wait_for(2, timeout_s=30)
        finally:
            stop.set()

    await asyncio.wait_for(run_daemon(settings, stop=stop, on_ready=ready), 90)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "boss@contactd.test",
        "grace@contactd.test",
    ]
    message = smtp.messages[0].parsed()
    day = yesterday.date().isoformat()
    assert message["Subject"] == f"Abandon rate against the 3% line: {day}"
    [pdf] = [p for p in message.iter_attachments()]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == f"abandons-{yesterday:%Y%m%d}.pdf"
    text = PdfReader(io.BytesIO(pdf.get_content())).pages[0].extract_text()
    assert "Abandon rate against the 3% line" in text
    assert f"{day} (UTC)" in text
    assert "1 of 25 live answers abandoned = 4.00%" in text
    assert f"{day} 25 1 4.0 over" in text

    # Started again: the period is mailed already, nothing is queued twice.
    async with await open_database(settings) as db:
        async with db.session() as session:
            before = await session.scalar(select(func.count()).select_from(OutboxMessage))
        assert before == 2
        assert await ReportMailer(settings, db, _never).send_due() == []


async def _never(_message: object) -> int:
    raise AssertionError("nothing is due")


def test_periods_and_a_bad_report_name(tmp_path: Path, smtp: SmtpPeer) -> None:
    settings = load_settings(_config(tmp_path, smtp))
    daily = settings.reports.schedules["abandons"]
    weekly = daily.model_copy(update={"period": "weekly", "hour_utc": 6})
    thursday = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert period(daily, thursday) == (
        datetime(2026, 12, 2, tzinfo=UTC),
        datetime(2026, 12, 3, tzinfo=UTC),
    )
    # Weekly: Monday to Sunday before this week's Monday, from its hour on.
    assert period(weekly, thursday) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    monday_early = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    assert period(weekly, monday_early)[0] == datetime(2026, 11, 16, tzinfo=UTC)
    wrong = load_settings(_config(tmp_path, smtp, report="sales_by_moon"))
    with pytest.raises(StartupError, match="report 'sales_by_moon' is not one of"):
        ReportMailer(wrong, None, _never)  # type: ignore[arg-type]
