"""Inbound e-mail parsed and routed per second, end to end.

contactd: each mail through `MailIntake.receive` into a fresh SQLite file: MIME parse and
checks, the durable store (interaction, `inbound_emails` row, attachment file and document),
then routing (sender matched or a new lead contact made, the thread looked up, the reply task
created, the interaction marked routed). Mails arrive over CONCURRENCY sessions at once, as
an MTA delivers over several connections; the daemon's MailIntake routes what arrives together
in one transaction (crm/routing_pending.PendingBatcher). Half the senders are new, a quarter
of the mails answer an earlier one, one in ten carries a small attachment.
Baseline: the bare standard library parse of the same mails (From, Subject, text body) and
one `executemany` of the same interaction rows into the same schema.

Each side runs --runs times (default 3), interleaved; the median and the worst run are printed.
Target: contactd >= 500 mails/s in the worst run.

    .venv/bin/python bench/routing_mail.py [--quick] [--mails 2000] [--runs 3]

Prints a table; the last line is one JSON object. `measure(quick)` returns the same figures
for bench/routing.py.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import os
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from contactd.crm.documents import DocumentService
from contactd.crm.fts import create_fts
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Base, Interaction
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind
from contactd.messaging.mail_in import MailLimits

TARGET_PER_S = 500.0
CONCURRENCY = 8  # SMTP sessions delivering at once
LIMITS = MailLimits(max_bytes=25 * 1024 * 1024, max_depth=10, max_parts=200)


def make_mails(count: int, seed: int) -> list[bytes]:
    mails: list[bytes] = []
    for i in range(count):
        message = EmailMessage()
        sender = i // 2 if i % 2 else i  # every other sender writes twice
        message["From"] = f"Customer {sender} <customer{sender}-{seed}@example.test>"
        message["To"] = "service@contactd.test"
        message["Subject"] = f"Question about order {i}"
        message["Message-ID"] = f"<m{i}-{seed}@example.test>"
        if i % 4 == 3:
            message["In-Reply-To"] = f"<m{i - 1}-{seed}@example.test>"
            message["References"] = f"<m{i - 1}-{seed}@example.test>"
        message.set_content(f"Hello,\n\nwhen will order {i} arrive? Thanks.\n" * 3)
        if i % 10 == 0:
            message.add_attachment(
                b"%PDF-1.4 " + bytes(2000),
                maintype="application",
                subtype="pdf",
                filename=f"order-{i}.pdf",
            )
        mails.append(message.as_bytes())
    return mails


async def _fresh_db(folder: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    return db


async def run_contactd(mails: list[bytes]) -> tuple[float, float]:
    """(mails per second, CPU ms per mail: this process, all threads, so the SQLite driver
    thread counts too)."""
    with tempfile.TemporaryDirectory(prefix="contactd-bench-mail-") as tmp:
        folder = Path(tmp)
        async with await _fresh_db(folder) as db:
            contacts = ContactService(db, default_region="US")
            router = Router(db, contacts, TaskService(db))
            intake = MailIntake(db, router, DocumentService(db, folder), LIMITS, folder)
            async with intake:
                todo = iter(mails)

                async def session() -> None:
                    for raw in todo:
                        result = await intake.receive(raw, "bench")
                        if result.status != "stored":
                            raise RuntimeError(f"bench mail not stored: {result}")

                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(session() for _ in range(CONCURRENCY)))
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(mails) / elapsed, 1000 * cpu / len(mails)


async def run_bare(mails: list[bytes]) -> tuple[float, float]:
    """(mails per second, CPU ms per mail), as `run_contactd`."""
    with tempfile.TemporaryDirectory(prefix="contactd-bench-mail-") as tmp:
        async with await _fresh_db(Path(tmp)) as db:
            started, cpu = time.perf_counter(), time.process_time()
            rows = []
            for raw in mails:
                message = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                body = message.get_body(("plain",))
                rows.append(
                    {
                        "kind": InteractionKind.EMAIL,
                        "direction": Direction.INBOUND,
                        "channel": Channel.EMAIL,
                        "remote_address": str(message["From"]),
                        "subject": str(message["Subject"]),
                        "body": body.get_content() if isinstance(body, EmailMessage) else "",
                        "data": {"message_id": str(message["Message-ID"])},
                    }
                )
            async with db.transaction() as session:
                await session.execute(insert(Interaction), rows)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(mails) / elapsed, 1000 * cpu / len(mails)


def measure(quick: bool, *, mails: int | None = None, runs: int = 3) -> dict[str, float]:
    """Median and worst of `runs` interleaved runs of each side, in mails per second."""
    count = mails or (300 if quick else 2000)
    ours: list[float] = []
    cpu: list[float] = []
    bare: list[float] = []
    bare_cpu: list[float] = []
    loads: list[float] = []
    for run in range(runs):
        batch = make_mails(count, seed=run)
        rate, cpu_ms = asyncio.run(run_contactd(batch))
        ours.append(rate)
        cpu.append(cpu_ms)
        rate, cpu_ms = asyncio.run(run_bare(batch))
        bare.append(rate)
        bare_cpu.append(cpu_ms)
        loads.append(os.getloadavg()[0])
    median = statistics.median(ours)
    return {
        "mails": float(count),
        "mail_routed_per_s_median": round(median, 1),
        "mail_routed_per_s_worst": round(min(ours), 1),
        "mail_cpu_ms_per_mail_median": round(statistics.median(cpu), 2),
        "mail_cpu_ms_per_mail_worst": round(max(cpu), 2),
        "mail_bare_per_s_median": round(statistics.median(bare), 1),
        "mail_bare_per_s_worst": round(min(bare), 1),
        "mail_bare_cpu_ms_per_mail_median": round(statistics.median(bare_cpu), 2),
        "mail_bare_cpu_ms_per_mail_worst": round(max(bare_cpu), 2),
        "mail_share_of_bare_pct": round(100 * median / statistics.median(bare), 1),
        "mail_load_1min_max": round(max(loads), 2),  # the 1-minute load after each run
        "mail_target_per_s": TARGET_PER_S,
        "mail_sessions": float(CONCURRENCY),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 mails a run instead of 2000")
    parser.add_argument("--mails", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.quick, mails=args.mails, runs=args.runs)
    print(f"{'inbound e-mail, mails/s':32} {'median':>10} {'worst':>10}")
    print(
        f"{'contactd (parse, store, route)':32} {figures['mail_routed_per_s_median']:>10}"
        f" {figures['mail_routed_per_s_worst']:>10}"
    )
    print(
        f"{'contactd CPU ms per mail':32} {figures['mail_cpu_ms_per_mail_median']:>10}"
        f" {figures['mail_cpu_ms_per_mail_worst']:>10}"
    )
    print(
        f"{'bare parse + executemany':32} {figures['mail_bare_per_s_median']:>10}"
        f" {figures['mail_bare_per_s_worst']:>10}"
    )
    print(
        f"{'bare CPU ms per mail':32} {figures['mail_bare_cpu_ms_per_mail_median']:>10}"
        f" {figures['mail_bare_cpu_ms_per_mail_worst']:>10}"
    )
    print(f"load average (1, 5, 15 min): {[round(x, 2) for x in os.getloadavg()]}")
    verdict = "met" if figures["mail_routed_per_s_worst"] >= TARGET_PER_S else "NOT met"
    print(f"target >= {TARGET_PER_S:.0f}/s: {verdict}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
