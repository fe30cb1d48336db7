"""`record_many` gives what `Router.record` gives item by item: the same contacts, tasks,
assignees and events, in one transaction (new leads and shared senders via the router)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from contactd.crm.assign import Agent, AssignPolicy, AssignRequest, choose
from contactd.crm.events import InteractionRecorded, TaskCreated
from contactd.crm.fts import create_fts
from contactd.crm.routing import InboundContact, Router
from contactd.crm.routing_batch import Assigner, _insert_ids, _insert_plain, record_many
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.models import Base, InboundEmail, Interaction, Task, User
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, Role
from contactd.events import EventBus


def items() -> list[InboundContact]:
    def sms(sender: str, outcome: str = "received") -> InboundContact:
        return InboundContact(kind=InteractionKind.SMS, direction=Direction.INBOUND,
                              channel=Channel.SMS, remote_address=sender, body="hi",
                              outcome=outcome)

    missed = InboundContact(kind=InteractionKind.CALL, direction=Direction.INBOUND,
                            channel=Channel.CALL, remote_address="+4930100001",
                            outcome="missed")
    return [sms("+4930100001"), sms("030 100002"), sms("+4930999999"), missed,
            sms("+4930100003"), sms("+4930100002", "opted_out"), sms("ann@example.org")]


async def _world(path: Path) -> tuple[Database, Router, list[Any]]:
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(create_fts)
    await db.__aenter__()
    contacts = ContactService(db, default_region="DE")
    async with db.transaction() as session:
        for name in ("a", "b", "c"):
            session.add(User(username=name, password_hash="x", role=Role.AGENT, skills=[]))
    owner = 3
    await contacts.create_contact(ContactInput(first_name="Ann", phones=["+4930100001"],
                                               emails=["ann@example.org"]))
    await contacts.create_contact(ContactInput(organisation_id=None, last_name="Berg",
                                               phones=["+4930100002"], owner_id=owner))
    for first in ("Cem", "Dora"):  # one number, two people: flagged, via the router
        await contacts.create_contact(ContactInput(first_name=first, phones=["+4930100003"]),
                                      allow_duplicate=True)
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(InteractionRecorded, seen.append)
    bus.subscribe(TaskCreated, seen.append)
    tasks = TaskService(db, bus=bus)
    await tasks.create(NewTask(title="existing", assignee_id=1))
    return db, Router(db, contacts, tasks, bus=bus), seen


async def _state(db: Database) -> tuple[list[Any], list[Any]]:
    async with db.session() as session:
        rows = [(r.contact_id, r.kind, r.outcome, r.remote_address, "review" in r.data)
                for r in await session.scalars(select(Interaction).order_by(Interaction.id))]
        # Assignees depend on the order tasks are made in (least-loaded): checked apart.
        tasks = [(t.title, t.contact_id, t.source, t.priority)
                 for t in await session.scalars(select(Task).order_by(Task.id))]
    return sorted(rows, key=repr), sorted(tasks, key=repr)


async def test_a_batch_routes_like_the_router_item_by_item(tmp_path: Path) -> None:
    one_db, one_router, one_seen = await _world(tmp_path / "one.db")
    many_db, many_router, many_seen = await _world(tmp_path / "many.db")
    try:
        singles = [await one_router.record(item) for item in items()]
        batch = await record_many(many_router, items())
        assert [r.contact_id for r in batch] == [r.contact_id for r in singles]
        assert [len(r.task_ids) for r in batch] == [len(r.task_ids) for r in singles]
        assert await _state(many_db) == await _state(one_db)
        assert sorted(type(e).__name__ for e in many_seen) == sorted(
            type(e).__name__ for e in one_seen)
        async with many_db.session() as session:
            assigned = {t.title: t.assignee_id for t in await session.scalars(select(Task))}
        assert assigned["Reply to sms from Berg"] == 3  # the contact's owner keeps it
        assert None not in assigned.values()
        async with many_db.session() as session:  # rows written past the ORM read back whole
            for task in await session.scalars(select(Task).where(Task.due_at.is_not(None))):
                assert task.due_at is not None and task.due_at.tzinfo is not None
                assert task.remind_at is not None and task.remind_at < task.due_at
                assert task.created_at is not None and task.status.value == "open"
            for row in await session.scalars(select(Interaction)):
                assert row.started_at.tzinfo is not None and isinstance(row.data, dict)
    finally:
        for db in (one_db, many_db):
            await db.__aexit__(None, None, None)


async def test_driver_hand_off_writes_in_the_transaction_and_maps_errors(tmp_path: Path) -> None:
    """Rows written in one driver hand-off belong to the session's transaction: a unique
    key inserted twice comes back as SQLAlchemy's IntegrityError (what the mail store
    catches for a re-delivery) and the rolled-back transaction leaves none of its rows."""
    db, _, _ = await _world(tmp_path / "t.db")
    row = {
        "contact_id": 1,
        "kind": InteractionKind.EMAIL,
        "direction": Direction.INBOUND,
        "channel": Channel.EMAIL,
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "ended_at": None,
        "outcome": "received",
        "subject": "s",
        "body": "b",
        "transcript": "",
        "recording_ref": None,
        "remote_address": "ann@example.org",
        "campaign_id": None,
        "user_id": None,
        "data": {"route": "x"},
    }
    async with db.session() as session:
        before = len((await session.scalars(select(Interaction.id))).all())
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            ids = await _insert_ids(session, Interaction, [row, dict(row, subject="t")])
            assert ids[1] == ids[0] + 1
            mail = {
                "dedup_key": "k",
                "message_id": None,
                "thread_id": "t",
                "interaction_id": ids[0],
                "source": "smtp",
                "received_at": row["started_at"],
            }
            await _insert_plain(session, InboundEmail, [mail, dict(mail, interaction_id=ids[1])])
    async with db.session() as session:
        assert len((await session.scalars(select(Interaction.id))).all()) == before
    async with db.transaction() as session:
        [one] = await _insert_ids(session, Interaction, [row])
    async with db.session() as session:
        stored = await session.get(Interaction, one)
        assert stored is not None and stored.data == {"route": "x"}
        assert stored.started_at == row["started_at"] and stored.kind is InteractionKind.EMAIL
    await db.__aexit__(None, None, None)


_AGENTS = st.lists(
    st.builds(
        Agent,
        user_id=st.integers(1, 12),
        team=st.sampled_from([None, "sales", "care"]),
        skills=st.frozensets(st.sampled_from(["de", "en"])),
        open_tasks=st.integers(0, 4),
        available=st.booleans(),
        capacity=st.one_of(st.none(), st.integers(0, 5)),
    ),
    max_size=8,
    unique_by=lambda a: a.user_id,
)
_REQUESTS = st.lists(
    st.tuples(
        st.sampled_from([None, "sales", "care"]),
        st.sampled_from([None, "de", "en"]),
        st.one_of(st.none(), st.integers(1, 12)),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    agents=_AGENTS,
    requests=_REQUESTS,
    policy=st.sampled_from(list(AssignPolicy)),
    keep_owner=st.booleans(),
    last=st.one_of(st.none(), st.integers(1, 12)),
)
def test_the_batch_assigner_answers_as_choose_with_the_counts_kept_current(
    agents: list[Agent],
    requests: list[tuple[str | None, str | None, int | None]],
    policy: AssignPolicy,
    keep_owner: bool,
    last: int | None,
) -> None:
    router = SimpleNamespace(tasks=SimpleNamespace(policy=policy, keep_owner=keep_owner))
    teams: dict[str | None, int | None] = {None: last, "sales": last, "care": None}
    assigner = Assigner(router, agents, dict(teams))  # type: ignore[arg-type]
    snapshot = {a.user_id: a for a in agents}
    for team, skill, owner in requests:
        expected = choose(
            list(snapshot.values()),
            AssignRequest(team, skill, owner, keep_owner, policy, teams[team]),
        )
        assert assigner.assign(team, skill, owner) == expected
        if expected is not None:  # what the task now counts for, as the next choose sees it
            snapshot[expected] = replace(
                snapshot[expected], open_tasks=snapshot[expected].open_tasks + 1
            )
            teams[team] = expected
