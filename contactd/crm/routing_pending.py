"""Stored-but-not-routed interactions (inbound SMS, e-mail) routed in batches.

Each channel stores an interaction first, marked pending in `data[key]`, then routes it. One
at a time that costs ~12 round trips per item (`Router.attach_sender` + `Router.finish`).
`route_pending_many` routes many in one transaction instead: it re-reads which are still
pending (so a batch never routes one twice), matches senders with one IN query per kind, makes
the follow-up tasks by the same rules (`crm/policy.follow_ups`, `crm/assign.choose`) and flips
the mark in that same transaction, so route-exactly-once and the crash sweep keep working.
Unknown senders become new lead contacts in the same transaction (`routing_batch.create_leads`);
rows that need a decision the batch does not make (an address several contacts share) are
handed back for the one-by-one path.

`PendingBatcher` feeds it: callers `await route(id)`; a single owned worker takes everything
queued (bounded: a full queue makes callers wait) and routes it as one batch, so N concurrent
deliveries cost one transaction, not N.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.crm.assign import Agent, AssignPolicy
from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.crm.custom_fields import FieldDef
from contactd.crm.events import InteractionRecorded, TaskCreated
from contactd.crm.policy import InteractionFacts, follow_ups
from contactd.crm.routing import Router
from contactd.crm.routing_batch import (
    CHUNK,
    Assigner,
    _candidates,
    _insert_ids,
    _last_assignee,
    _plain,
    assign_inputs,
    batch_leads,
    batch_reads_sync,
    in_driver,
    insert_ids_sync,
    last_assignee_sync,
    task_row,
)
from contactd.crm.senders import address_key
from contactd.crm.task_load import task_load
from contactd.db.base import utcnow
from contactd.db.models import Document, Interaction, Task
from contactd.enums import Direction, InteractionKind

log = logging.getLogger(__name__)

INTERACTIONS = cast(Table, Interaction.__table__)
MAX_BATCH: Final = 500
QUEUE_BOUND: Final = 5000
COLUMNS: Final = (
    Interaction.id,
    Interaction.contact_id,
    Interaction.remote_address,
    Interaction.kind,
    Interaction.direction,
    Interaction.outcome,
    Interaction.campaign_id,
    Interaction.subject,
    Interaction.transcript,
    Interaction.body,
    Interaction.data,
    Interaction.ended_at,
)


@dataclass(frozen=True)
class PendingBatch:
    routed: dict[int, list[int]]  # interaction id -> its new task ids
    one_by_one: list[int]  # still pending: a new lead or a shared address to decide


@dataclass(frozen=True, slots=True)
class PendingRow:
    """One stored interaction as a routing batch reads it (the `COLUMNS`)."""

    id: int
    contact_id: int | None
    remote_address: str | None
    kind: InteractionKind
    direction: Direction
    outcome: str
    campaign_id: int | None
    subject: str
    transcript: str
    body: str
    data: dict[str, Any]
    ended_at: datetime | None


@dataclass
class _Reads:
    """What a batch reads before it decides: the rows still pending, their senders' address
    keys and the live contacts holding each key; on SQLite also (read in the same hand-off)
    the assignment inputs and, when a sender is unknown, what making leads needs."""

    rows: list[PendingRow]
    keys: dict[int, tuple[str, str] | None]
    candidates: dict[tuple[str, str], set[int]]
    people: dict[int, tuple[str, int | None]] | None = None
    agents: list[Agent] | None = None
    last_by_team: dict[str | None, int | None] = field(default_factory=dict)
    lead_inputs: tuple[int, list[FieldDef]] | None = None
    counts_read: dict[int, int] | None = None  # open tasks per assignee, when read


async def route_pending_many(
    router: Router,
    ids: Sequence[int],
    key: str,
    mark: str,
    done: str,
    *,
    now: datetime | None = None,
    make_leads: bool = False,
    ended: dict[int, datetime] | None = None,
    lead_names: Callable[[Any], tuple[str, str] | None] | None = None,
    unknown_stays: bool = False,
) -> PendingBatch:
    """Route the interactions of `ids` whose `data[key]` is still `mark`, in one transaction.

    `make_leads`: an unknown sender becomes a plain new lead here (as `Router.attach_sender`
    makes it); off, such rows go back to the channel's own one-by-one rule (web forms make
    the lead from the form's fields). `ended`: the end time of an interaction that has one of
    its own (a call's); else it keeps its own, or ends now. `lead_names`: with `make_leads` off,
    the (first, last) name of the new lead a row's unknown sender becomes here, or None to
    leave that row to the channel's one-by-one rule (it is given a `PendingRow`).
    `unknown_stays`: the channel's rule for an unknown sender is to stay on no contact (a
    dialled number nobody holds): such rows are routed in the batch as they are.

    On SQLite the transaction is three hand-offs to the driver's thread (reads; new leads,
    when there are any; writes), each a group of plain statements: through SQLAlchemy each
    statement cost several hand-offs, the fixed cost that dominated small batches."""
    now = now or utcnow()
    routed: dict[int, list[int]] = {}
    later: list[int] = []
    events: list[InteractionRecorded | TaskCreated] = []
    phones = router.contacts.phones
    async with router.db.transaction() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        load = task_load(session)
        if sqlite:
            wants_leads = make_leads or lead_names is not None
            counts = load.current()
            reads = await in_driver(
                session,
                lambda db: _read_sqlite(
                    db, ids, key, mark, phones, wants_leads, counts,
                    router.tasks.policy is AssignPolicy.ROUND_ROBIN),
            )
            if reads.counts_read is not None:
                load.read(reads.counts_read)
        else:
            reads = await _read_async(session, ids, key, mark, phones)
        batch: list[tuple[PendingRow, int | None]] = []
        unknown: list[tuple[PendingRow, tuple[str, str]]] = []
        names: dict[tuple[str, str], tuple[str, str]] = {}
        for row in reads.rows:
            addr = reads.keys.get(row.id)
            held = reads.candidates.get(addr, set()) if addr is not None else set()
            if len(held) > 1:
                later.append(row.id)  # shared address (review): one by one
            elif row.contact_id is None and addr is not None and not held and unknown_stays:
                batch.append((row, None))
            elif row.contact_id is None and addr is not None and not held:
                named = lead_names(row) if lead_names is not None else None
                if not make_leads and named is None:
                    later.append(row.id)  # the channel makes its own leads
                    continue
                if named is not None:
                    names.setdefault(addr, named)
                unknown.append((row, addr))  # a new lead, made below for the whole batch
            elif row.contact_id is None and held:
                (only,) = held
                batch.append((row, only))
            else:
                batch.append((row, row.contact_id))
        addresses = {addr: row.remote_address or "" for row, addr in unknown}
        leads = await batch_leads(
            session, router, addresses, names, reads.lead_inputs, on_sqlite=sqlite)
        for row, addr in unknown:
            if addr in leads:
                batch.append((row, leads[addr]))
            else:
                later.append(row.id)  # no lead made here: the one-by-one rule decides
        if reads.people is not None and reads.agents is not None:
            people = reads.people
            for addr, lead in leads.items():  # a new lead: its name as made, no owner
                first, last = names.get(addr, ("", ""))
                people[lead] = (f"{first} {last}".strip(), None)
            assigner = Assigner(router, reads.agents, reads.last_by_team)
        else:
            people, agent_list = await assign_inputs(session, {c for _, c in batch if c})
            assigner = Assigner(router, agent_list, {})
        updates: list[dict[str, Any]] = []
        documents: list[dict[str, Any]] = []
        tasks_in: list[dict[str, Any]] = []
        for row, contact_id in batch:
            updates.append(
                {
                    "b_id": row.id,
                    "b_contact": contact_id,
                    "b_ended": (ended or {}).get(row.id) or row.ended_at or now,
                    "b_data": {**row.data, key: done},
                }
            )
            if contact_id is not None:
                documents += [
                    {"b_doc": int(d), "b_contact": contact_id}
                    for d in row.data.get("documents", [])
                ]
            name, owner = people.get(contact_id or 0, ("", None))
            facts = InteractionFacts(
                kind=row.kind,
                direction=row.direction,
                outcome=row.outcome,
                campaign_id=row.campaign_id,
                subject=row.subject,
                team=row.data.get("team"),
                skill=row.data.get("skill"),
            )
            for spec in follow_ups(facts, now, name or row.remote_address or "unknown caller"):
                if assigner.round_robin and spec.team not in assigner.last_by_team:
                    assigner.last_by_team[spec.team] = await _last_assignee(session, spec.team)
                assignee = assigner.assign(spec.team, spec.skill, owner)
                tasks_in.append(
                    task_row(spec, row.transcript or row.body, contact_id, row.id, assignee, now)
                )
            routed[row.id] = []
            events.append(
                InteractionRecorded(
                    interaction_id=row.id,
                    contact_id=contact_id,
                    kind=row.kind.value,
                    outcome=row.outcome,
                )
            )
        task_ids = await _write_routed(session, updates, documents, tasks_in)
        load.gave(row_in["assignee_id"] for row_in in tasks_in)
        if tasks_in:
            for row_in, task_id in zip(tasks_in, task_ids, strict=True):
                routed[row_in["interaction_id"]].append(task_id)
                events.append(
                    TaskCreated(
                        task_id=task_id,
                        assignee_id=row_in["assignee_id"],
                        source=row_in["source"].value,
                    )
                )
    if router.bus is not None:
        for event in events:
            await router.bus.publish(event)
    return PendingBatch(routed, later)


def _pending(
    row: Any, key: str, mark: str, data: dict[str, Any], ended_at: datetime | None
) -> PendingRow | None:
    if data.get(key) != mark:
        return None
    return PendingRow(
        id=row[0],
        contact_id=row[1],
        remote_address=row[2],
        kind=InteractionKind(row[3]),
        direction=Direction(row[4]),
        outcome=row[5],
        campaign_id=row[6],
        subject=row[7] or "",
        transcript=row[8] or "",
        body=row[9] or "",
        data=data,
        ended_at=ended_at,
    )


async def _read_async(
    session: AsyncSession, ids: Sequence[int], key: str, mark: str, phones: PhoneNormaliser
) -> _Reads:
    """`_Reads` through SQLAlchemy (PostgreSQL): the rows, their keys and candidates."""
    rows: list[PendingRow] = []
    for start in range(0, len(ids), CHUNK):
        for r in await session.execute(
            select(*COLUMNS).where(Interaction.id.in_(ids[start : start + CHUNK]))
        ):
            found = _pending(r, key, mark, r.data, r.ended_at)
            if found is not None:
                rows.append(found)
    keys = {r.id: address_key(r.remote_address, phones) for r in rows if r.remote_address}
    return _Reads(rows, keys, await _candidates(session, list(keys.values())))


_READ_SQL: Final = (
    "SELECT id, contact_id, remote_address, kind, direction, outcome, campaign_id, subject, "
    "transcript, body, data, ended_at FROM interactions WHERE id IN ({marks})"
)


def _read_sqlite(
    db: sqlite3.Connection,
    ids: Sequence[int],
    key: str,
    mark: str,
    phones: PhoneNormaliser,
    wants_leads: bool,
    counts: dict[int, int] | None,
    round_robin: bool,
) -> _Reads:
    """Every read of a batch on SQLite's raw connection, in the driver's thread, inside a
    write transaction begun here (so what is read as pending stays so until the commit)."""
    if not db.in_transaction:
        db.execute("BEGIN IMMEDIATE")
    rows: list[PendingRow] = []
    for start in range(0, len(ids), CHUNK):
        part = list(ids[start : start + CHUNK])
        for r in db.execute(_READ_SQL.format(marks=", ".join("?" * len(part))), part):
            data = json.loads(r[10]) if r[10] else {}
            ended_at = None if r[11] is None else datetime.fromisoformat(r[11]).replace(tzinfo=UTC)
            found = _pending(r, key, mark, data if isinstance(data, dict) else {}, ended_at)
            if found is not None:
                rows.append(found)
    keys = {r.id: address_key(r.remote_address, phones) for r in rows if r.remote_address}
    reads = batch_reads_sync(
        db, [(r.contact_id, keys.get(r.id)) for r in rows], wants_leads, counts, round_robin)
    last_by_team: dict[str | None, int | None] = {None: reads.last_assignee}
    if round_robin:  # the only policy that reads them
        for team in {r.data.get("team") for r in rows} - {None}:
            last_by_team[team] = last_assignee_sync(db, team)
    return _Reads(
        rows,
        keys,
        reads.candidates,
        reads.people,
        reads.agents,
        last_by_team,
        reads.lead_inputs,
        reads.counts_read,
    )


async def _write_routed(
    session: AsyncSession,
    updates: list[dict[str, Any]],
    documents: list[dict[str, Any]],
    tasks_in: list[dict[str, Any]],
) -> list[int]:
    """A batch's writes: interactions marked routed, their documents given the contact, the
    follow-up tasks inserted (their ids in order). On SQLite in one hand-off to the driver."""
    docs = cast(Table, Document.__table__)
    if session.get_bind().dialect.name == "sqlite":
        tasks = cast(Table, Task.__table__)
        interaction_rows = [
            (u["b_contact"], _plain(u["b_ended"]), _plain(u["b_data"]), u["b_id"]) for u in updates
        ]
        document_rows = [(d["b_contact"], d["b_doc"]) for d in documents]

        def write(db: sqlite3.Connection) -> list[int]:
            if interaction_rows:
                db.executemany(
                    "UPDATE interactions SET contact_id = ?, ended_at = ?, data = ? WHERE id = ?",
                    interaction_rows,
                )
            if document_rows:
                db.executemany("UPDATE documents SET contact_id = ? WHERE id = ?", document_rows)
            return insert_ids_sync(db, tasks, tasks_in)

        return await in_driver(session, write)
    if updates:
        await session.execute(
            update(INTERACTIONS)
            .where(INTERACTIONS.c.id == bindparam("b_id"))
            .values(
                contact_id=bindparam("b_contact"),
                ended_at=bindparam("b_ended"),
                data=bindparam("b_data"),
            ),
            updates,
        )
    if documents:
        await session.execute(
            update(docs)
            .where(docs.c.id == bindparam("b_doc"))
            .values(contact_id=bindparam("b_contact")),
            documents,
        )
    return await _insert_ids(session, Task, tasks_in)


RouteOne = Callable[[int], Awaitable[bool]]


class PendingBatcher:
    """Routes pending interactions of one channel in batches; `route(id)` waits for its own.

    `lock` is the channel's routing lock (shared with its sweep and its one-by-one route), so
    nothing routes a row while a batch holds it. Rows the batch hands back go to `one`."""

    def __init__(
        self,
        router: Router,
        *,
        key: str,
        mark: str,
        done: str,
        one: RouteOne,
        lock: asyncio.Lock,
        name: str,
        make_leads: bool = False,
        max_batch: int = MAX_BATCH,
        bound: int = QUEUE_BOUND,
    ) -> None:
        self._router = router
        self._key, self._mark, self._done = key, mark, done
        self._one = one
        self._make_leads = make_leads
        self._lock = lock
        self._max = max_batch
        self._queue: asyncio.Queue[tuple[int, asyncio.Future[bool]]] = asyncio.Queue(bound)
        self._owner = TaskOwner(name, log)
        self.state = LoopState(name)
        self.batches = 0

    async def __aenter__(self) -> PendingBatcher:
        self._owner.spawn(run_resilient(self._step, self.state, logger=log), "route")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner.close()

    async def route(self, interaction_id: int) -> bool:
        """Queue one stored interaction and wait until it is routed (False: it was not
        pending any more); what stays queued at a stop is routed by the next start's sweep."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((interaction_id, done))
        return await done

    async def _step(self) -> None:
        batch = [await self._queue.get()]
        while len(batch) < self._max and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        waiting = {i: f for i, f in batch}
        try:
            async with self._lock:
                result = await route_pending_many(
                    self._router,
                    list(waiting),
                    self._key,
                    self._mark,
                    self._done,
                    make_leads=self._make_leads,
                )
        except Exception:
            log.exception(
                "batch routing failed; routing one by one", extra={"interactions": len(waiting)}
            )
            result = PendingBatch({}, list(waiting))
        self.batches += 1
        for interaction_id, tasks in result.routed.items():
            log.info("inbound routed", extra={"interaction_id": interaction_id, "task_ids": tasks})
        for interaction_id, future in waiting.items():
            if interaction_id in result.routed:
                _settle(future, True)
            elif interaction_id not in result.one_by_one:
                _settle(future, False)  # routed before: not pending any more
        for interaction_id in result.one_by_one:
            future = waiting[interaction_id]
            try:
                _settle(future, await self._one(interaction_id))
            except Exception as exc:  # stored: the next start's sweep routes it
                if not future.done():
                    future.set_exception(exc)


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
