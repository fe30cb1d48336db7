"""Hypothesis against the real intake endpoint: whatever arrives gets a 202 or a 4xx
problem+json (never a 500), a 4xx stores nothing, and every 202 is routed exactly once."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from contactd.config import load_settings
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.intake import WebIntake
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.base import Base
from contactd.db.models import Interaction
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app

T = TypeVar("T")
TIMEOUT_S = 30
FORM = """
[general]
default_region = "DE"
[intake]
rate_limit = 100000
max_body_bytes = 2048
[intake.forms.contact]
fields = ["name", "phone", "email", "message"]
max_length = { message = 500 }
honeypot = "website"
"""
FIELDS = ["name", "phone", "email", "message", "website", "other"]


class Harness:
    """The server, its database and a client, all on one loop in a thread (hypothesis is
    synchronous)."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        (tmp / "c.toml").write_text(FORM)
        self.settings = load_settings(tmp / "c.toml", {})
        self.db = Database(f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}")
        self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    async def _start(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(create_fts)
        await self.db.__aenter__()
        bus = EventBus()
        self.routed: asyncio.Queue[int] = asyncio.Queue()

        async def on_routed(event: InteractionRecorded) -> None:
            await self.routed.put(event.interaction_id)

        bus.subscribe(InteractionRecorded, on_routed)
        contacts = ContactService(self.db, default_region="DE")
        self.intake = WebIntake(self.db, Router(self.db, contacts, TaskService(self.db, bus=bus),
                                                bus=bus), contacts)
        await self.intake.__aenter__()
        app = create_app(self.settings, self.db, HealthRegistry(), intake=self.intake)
        self.client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await self.client.start_server()

    async def stored(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(
                select(func.count()).select_from(Interaction)) or 0)

    async def post(self, body: bytes, content_type: str) -> tuple[int, dict[str, Any], int]:
        before = await self.stored()
        response = await self.client.post("/intake/contact", data=body,
                                          headers={"Content-Type": content_type})
        answer = await response.json(content_type=None)
        return response.status, answer, await self.stored() - before

    async def wait_routed(self, references: set[int]) -> set[int]:
        seen: set[int] = set()
        while not references <= seen:
            seen.add(await asyncio.wait_for(self.routed.get(), TIMEOUT_S))
        return seen

    async def _stop(self) -> None:
        await self.client.close()
        await self.intake.__aexit__(None, None, None)
        await self.db.__aexit__(None, None, None)

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    running = Harness(tmp_path)
    try:
        yield running
    finally:
        running.close()


_values = st.one_of(st.text(max_size=600), st.none(), st.integers(), st.booleans(),
                    st.lists(st.text(max_size=5), max_size=2),
                    st.sampled_from(["+49 30 1234567", "a@example.org", "0301234567"]))
_objects = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)),
                           _values, max_size=6)
# Mostly right: a reachable sender plus fuzzed other fields, so the 202 path is fuzzed too.
_near_valid = st.builds(
    lambda sender, rest: {**rest, **sender},
    st.one_of(st.fixed_dictionaries({"email": st.sampled_from(["a@example.org", "b@x.de"])}),
              st.fixed_dictionaries({"phone": st.sampled_from(["+49 30 1234567", "030 7654321"])})),
    st.dictionaries(st.sampled_from(["name", "message", "website"]), st.text(max_size=600),
                    max_size=3),
)
_bodies = st.one_of(
    st.tuples(_near_valid.map(lambda o: json.dumps(o).encode()), st.just("application/json")),
    st.tuples(_objects.map(lambda o: json.dumps(o).encode()), st.just("application/json")),
    st.tuples(st.binary(max_size=3000),
              st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                               "text/plain", "multipart/form-data"])),
    st.tuples(st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=80)), max_size=6)
              .map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode()),
              st.just("application/x-www-form-urlencoded")),
)


def test_fuzzed_submissions_get_202_or_a_problem_and_every_202_is_routed_once(
    harness: Harness,
) -> None:
    accepted: set[int] = set()

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=_bodies)
    def check(case: tuple[bytes, str]) -> None:
        body, content_type = case
        status, answer, stored = harness.run(harness.post(body, content_type))
        if status == 202:
            assert stored == 1 and isinstance(answer["reference"], int)
            accepted.add(answer["reference"])
        else:
            assert status in (400, 413, 415, 422), (status, answer)
            assert answer["status"] == status and answer["code"] and answer["detail"]
            assert stored == 0

    check()
    assert accepted, "hypothesis sent nothing acceptable: the 202 path went untested"

    async def routed_once() -> None:
        async with harness.db.session() as session:
            rows = list(await session.scalars(
                select(Interaction).where(Interaction.id.in_(accepted))))
        real = {r.id for r in rows if r.data["intake"] != "spam"}
        await harness.wait_routed(real)
        assert await harness.intake.sweep() == 0  # nothing left waiting, nothing routed twice
        async with harness.db.session() as session:
            for row in await session.scalars(select(Interaction)):
                assert row.data["intake"] in ("done", "spam")

    harness.run(routed_once())
