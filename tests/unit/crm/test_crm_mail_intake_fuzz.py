"""Fuzz of the whole mail intake: whatever bytes arrive, `receive` never raises; each mail
ends as a stored interaction or a refusal whose raw copy is on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from contactd.crm.documents import DocumentService
from contactd.crm.fts import create_fts
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Base, InboundEmail, Interaction
from contactd.db.session import Database
from contactd.messaging.mail_in import MailLimits

LIMITS = MailLimits(max_bytes=8192, max_depth=5, max_parts=30)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("mail-fuzz")

    async def create() -> None:
        async with (Database(f"sqlite+aiosqlite:///{path / 'fuzz.db'}") as db,
                    db.engine.begin() as conn):
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(create_fts)

    asyncio.run(create())
    yield path


async def _receive(folder: Path, raw: bytes) -> None:
    async with Database(f"sqlite+aiosqlite:///{folder / 'fuzz.db'}") as db:
        router = Router(db, ContactService(db, default_region="US"), TaskService(db))
        intake = MailIntake(db, router, DocumentService(db, folder), LIMITS, folder)
        got = await intake.receive(raw, "fuzz")
        if got.status == "refused":
            assert got.kept_at is not None and got.kept_at.read_bytes() == raw
            return
        async with db.session() as session:
            row = await session.get(Interaction, got.interaction_id)
            assert row is not None
            assert got.status == "duplicate" or row.data["route"] == "done"
            assert await session.scalar(select(InboundEmail.id).where(
                InboundEmail.interaction_id == got.interaction_id)) is not None


_headers = st.lists(st.sampled_from([
    b"From: a@example.com", b"From: =?utf-8?b?w6k=?= <b@example.org>", b"From: <>",
    b"From: \"x\" <c@example.net>, d@example.net", b"Message-ID: <same@x>",
    b"In-Reply-To: <same@x>", b"References: <" + b"r" * 300 + b">",
    b"Content-Type: multipart/mixed; boundary=\"b\"", b"Content-Type: text/plain; charset=zz",
    b"Content-Transfer-Encoding: base64", b"Subject: =?utf-8?q?=ff=fe?=",
    b"Content-Disposition: attachment; filename=\"../../x\"",
]), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_headers, st.binary(max_size=600))
def test_any_mail_is_stored_or_refused_never_raised(
    folder: Path, headers: list[bytes], body: bytes
) -> None:
    raw = b"\r\n".join(headers) + b"\r\n\r\n" + body
    asyncio.run(_receive(folder, raw))
