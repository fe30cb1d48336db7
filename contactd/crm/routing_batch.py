"""Many finished interactions routed at once: the same result as `Router.record` for each, in
one transaction with a handful of statements instead of a dozen round trips per item.

Profiling `Router.record` on SQLite showed each item spending its time in ~12 driver hand-offs
(sender lookup, insert, re-read, name, owner, last assignee, agent snapshot, task insert), so a
burst (a campaign's outcomes, a backlog after a restart) is bounded by hand-offs, not by SQLite.
Here senders, names and owners are read with one IN query per kind, agents are snapshotted
once, assignment runs the same pure policy (`crm/assign.choose`) with open-task counts kept
current in memory, and interactions and tasks are inserted with executemany. Items that need
a decision the batch does not make (an unknown sender becoming a new lead, a sender shared by
several contacts) go through `Router.record` one by one, so their rules stay in one place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.crm.assign import Agent, AssignPolicy
from contactd.crm.custom_fields import FieldDef, validate
from contactd.crm.events import InteractionRecorded, TaskCreated
from contactd.crm.imports.validate import EMAIL
from contactd.crm.policy import InteractionFacts, TaskSpec, follow_ups
from contactd.crm.routing import NEW_LEAD_TAG, InboundContact, Routed, Router
from contactd.crm.searchtext import build_search_text, name_key
from contactd.crm.senders import address_key
from contactd.crm.service import tag_in
from contactd.crm.task_load import task_load
from contactd.crm.tasks import OPEN_STATES, agent_snapshot
from contactd.db.base import Base, utcnow
from contactd.db.models import (
    Contact,
    ContactEmail,
    ContactPhone,
    Document,
    Interaction,
    Organisation,
    Task,
    contact_tags,
)
from contactd.enums import CustomFieldEntity, CustomFieldType, Role, TaskStatus
from contactd.errors import ValidationError

CHUNK: Final = 500  # values per IN list (well under SQLite's variable limit)
_SQLITE_DATETIME: Final = "%Y-%m-%d %H:%M:%S.%f"  # how the SQLite dialect stores DateTime
T = TypeVar("T")


async def record_many(
    router: Router, items: Sequence[InboundContact], *, now: datetime | None = None
) -> list[Routed]:
    """Route `items` (finished interactions) and make their follow-up tasks; results in order.

    On SQLite the transaction is two hand-offs to the driver's thread (every read; every
    write), three when there are new leads: each statement through SQLAlchemy cost several,
    and under load each hand-off waits for the thread to be scheduled."""
    now = now or utcnow()
    keys = [
        address_key(i.remote_address, router.contacts.phones)
        if i.contact_id is None and i.remote_address
        else None
        for i in items
    ]
    results: list[Routed | None] = [None] * len(items)
    events: list[InteractionRecorded | TaskCreated] = []
    async with router.db.transaction() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        load = task_load(session)
        round_robin = router.tasks.policy is AssignPolicy.ROUND_ROBIN
        reads: BatchReads | None = None
        if sqlite:
            given = [(i.contact_id, k) for i, k in zip(items, keys, strict=True)]
            counts = load.current()
            reads = await in_driver(
                session,
                lambda db: batch_reads_sync(db, given, router.create_unknown, counts, round_robin),
            )
            if reads.counts_read is not None:
                load.read(reads.counts_read)
            candidates = reads.candidates
        else:
            candidates = await _candidates(session, keys)
        batch: list[tuple[int, InboundContact, int | None]] = []  # (index, item, contact)
        unknown: list[tuple[int, InboundContact, tuple[str, str]]] = []  # new leads to make
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            if item.contact_id is not None or not item.remote_address:
                batch.append((index, item, item.contact_id))
            elif key is not None and len(candidates.get(key, ())) == 1:
                (found,) = candidates[key]
                batch.append((index, item, found))
            elif key is not None and not candidates.get(key):
                unknown.append((index, item, key))
            # else: an ambiguous sender (or an unreadable one), routed one by one below
        addresses = {key: item.remote_address for _, item, key in unknown if item.remote_address}
        leads = await batch_leads(
            session, router, addresses, None, reads.lead_inputs if reads is not None else None,
            on_sqlite=reads is not None)
        batch += [(index, item, leads[key]) for index, item, key in unknown if key in leads]
        batch.sort(key=lambda entry: entry[0])
        if reads is not None:
            people = reads.people
            people.update((lead, ("", None)) for lead in leads.values())  # no name, no owner
            assigner = Assigner(router, reads.agents, {None: reads.last_assignee})
        else:
            people, agent_list = await assign_inputs(session, {c for _, _, c in batch if c})
            assigner = Assigner(router, agent_list, {})
        rows_in = [_interaction_row(item, contact_id, now) for _, item, contact_id in batch]
        tasks_in: list[dict[str, Any]] = []  # "interaction_id": the position in batch, first
        for position, (_, item, contact_id) in enumerate(batch):
            name, owner = people.get(contact_id or 0, ("", None))
            who = name or item.remote_address or "unknown caller"
            facts = InteractionFacts(
                kind=item.kind,
                direction=item.direction,
                outcome=item.outcome,
                campaign_id=item.campaign_id,
                subject=item.subject[:300],
            )
            for spec in follow_ups(facts, now, who):
                if assigner.round_robin and spec.team not in assigner.last_by_team:
                    assigner.last_by_team[spec.team] = await _last_assignee(session, spec.team)
                assignee = assigner.assign(spec.team, spec.skill, owner)
                tasks_in.append(
                    task_row(
                        spec, item.transcript or item.body, contact_id, position, assignee, now
                    )
                )
        if sqlite:
            ids, task_ids = await in_driver(session, lambda db: _write_sync(db, rows_in, tasks_in))
        else:
            ids = await _insert_ids(session, Interaction, rows_in)
            for row in tasks_in:
                row["interaction_id"] = ids[row["interaction_id"]]
            task_ids = await _insert_ids(session, Task, tasks_in)
        load.gave(row["assignee_id"] for row in tasks_in)
        by_id: dict[int, Routed] = {}
        for (index, item, contact_id), interaction_id in zip(batch, ids, strict=True):
            results[index] = by_id[interaction_id] = Routed(interaction_id, contact_id, [])
            events.append(
                InteractionRecorded(
                    interaction_id=interaction_id,
                    contact_id=contact_id,
                    kind=item.kind.value,
                    outcome=item.outcome,
                )
            )
        for row, task_id in zip(tasks_in, task_ids, strict=True):
            by_id[row["interaction_id"]].task_ids.append(task_id)
            events.append(
                TaskCreated(
                    task_id=task_id, assignee_id=row["assignee_id"], source=row["source"].value
                )
            )
    if router.bus is not None:
        for event in events:
            await router.bus.publish(event)
    for index, item in enumerate(items):
        if results[index] is None:
            results[index] = await router.record(item)
    return [r for r in results if r is not None]


def _write_sync(
    db: sqlite3.Connection, rows_in: list[dict[str, Any]], tasks_in: list[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """A `record_many` batch's inserts on SQLite's raw connection: the interactions, then
    their tasks, each given its interaction's id here (its "interaction_id" was the
    interaction's position in `rows_in`)."""
    ids = insert_ids_sync(db, _table(Interaction), rows_in)
    for row in tasks_in:
        row["interaction_id"] = ids[row["interaction_id"]]
    return ids, insert_ids_sync(db, _table(Task), tasks_in)


async def _candidates(
    session: AsyncSession, keys: Sequence[tuple[str, str] | None]
) -> dict[tuple[str, str], set[int]]:
    """The live contacts holding each address key (through SQLAlchemy: PostgreSQL)."""
    candidates: dict[tuple[str, str], set[int]] = {}
    for kind, table, column in (
        ("phone", ContactPhone, ContactPhone.e164),
        ("email", ContactEmail, ContactEmail.address),
    ):
        wanted = sorted({k[1] for k in keys if k is not None and k[0] == kind})
        for start in range(0, len(wanted), CHUNK):
            rows = await session.execute(
                select(column, table.contact_id)
                .join(Contact, Contact.id == table.contact_id)
                .where(column.in_(wanted[start : start + CHUNK]), Contact.merged_into_id.is_(None))
            )
            for value, cid in rows:
                candidates.setdefault((kind, value), set()).add(cid)
    return candidates


_CANDIDATE_SQL: Final = {
    "phone": "SELECT p.e164, p.contact_id FROM contact_phones p JOIN contacts c ON "
    "c.id = p.contact_id WHERE p.e164 IN ({marks}) AND c.merged_into_id IS NULL",
    "email": "SELECT e.address, e.contact_id FROM contact_emails e JOIN contacts c ON "
    "c.id = e.contact_id WHERE e.address IN ({marks}) AND c.merged_into_id IS NULL",
}


@dataclass(frozen=True, slots=True)
class BatchReads:
    """What a routing batch reads before deciding, on SQLite in one hand-off."""

    candidates: dict[tuple[str, str], set[int]]  # address key -> live contacts holding it
    people: dict[int, tuple[str, int | None]]  # see `assign_inputs`
    agents: list[Agent]
    last_assignee: int | None  # of team-less tasks
    lead_inputs: tuple[int, list[FieldDef]] | None  # read when a sender is unknown
    counts_read: dict[int, int] | None  # open tasks per assignee, when read (see task_load)


def batch_reads_sync(
    db: sqlite3.Connection,
    given: Sequence[tuple[int | None, tuple[str, str] | None]],
    wants_leads: bool,
    counts: dict[int, int] | None,
    round_robin: bool,
) -> BatchReads:
    """For each (contact id, address key) of a batch: the contacts holding the keys, the
    names and owners of the contacts the batch lands on (a given id, or a key's only
    holder), the agents (with `counts`, the open tasks kept by `task_load`, or read here when
    None), the last assignee of team-less tasks when `round_robin` (the only policy that
    reads it), and the new-lead inputs when a key has no holder and `wants_leads`. On
    SQLite's raw connection, in the driver's thread."""
    candidates: dict[tuple[str, str], set[int]] = {}
    for kind, sql in _CANDIDATE_SQL.items():
        wanted = sorted({k[1] for _, k in given if k is not None and k[0] == kind})
        for start in range(0, len(wanted), CHUNK):
            values = wanted[start : start + CHUNK]
            for value, cid in db.execute(sql.format(marks=", ".join("?" * len(values))), values):
                candidates.setdefault((kind, value), set()).add(cid)
    contact_ids: set[int | None] = set()
    lead_inputs = None
    for contact_id, key in given:
        contact_ids.add(contact_id)
        held = candidates.get(key, set()) if key is not None else set()
        if len(held) == 1:
            contact_ids |= held
        elif contact_id is None and key is not None and not held and wants_leads:
            lead_inputs = lead_inputs or lead_inputs_sync(db)
    people, agents, last, read = assign_inputs_sync(db, contact_ids, counts, round_robin)
    return BatchReads(candidates, people, agents, last, lead_inputs, read)


async def batch_leads(
    session: AsyncSession,
    router: Router,
    addresses: dict[tuple[str, str], str],
    names: dict[tuple[str, str], tuple[str, str]] | None,
    lead_inputs: tuple[int, list[FieldDef]] | None,
    *,
    on_sqlite: bool,
) -> dict[tuple[str, str], int]:
    """`create_leads` for a batch: on SQLite in one hand-off to the driver with the inputs
    the batch's reads brought (`lead_inputs`: the new-lead tag and the custom fields)."""
    if not on_sqlite:
        return await create_leads(session, router, addresses, names)
    if not addresses or not router.create_unknown or lead_inputs is None:
        return {}
    tag_id, field_defs = lead_inputs
    plan = plan_leads(router, addresses, names, field_defs)
    if plan is None:
        return {}
    return await in_driver(session, lambda db: write_leads_sync(db, plan, tag_id))


async def create_leads(
    session: AsyncSession,
    router: Router,
    addresses: dict[tuple[str, str], str],
    names: dict[tuple[str, str], tuple[str, str]] | None = None,
) -> dict[tuple[str, str], int]:
    """New lead contacts for unknown senders, made in the caller's transaction: the same
    contact `Router._resolve` makes one at a time (the address, the new-lead tag, custom field
    defaults, indexed for search), one per address key. A key whose address is not one a
    contact can hold (`create_contact` would refuse it) is left out: the caller routes that
    item one by one, where it stays on the interaction only. `names`: the (first, last) name a
    key's lead gets (a web form's fields); else it has none."""
    if not addresses or not router.create_unknown:
        return {}
    tag = await tag_in(session, NEW_LEAD_TAG)
    plan = plan_leads(router, addresses, names, await router.contacts.field_defs_in(session))
    if plan is None:
        return {}
    ids = await _insert_ids(session, Contact, plan.contacts)
    made = dict(zip(plan.keys, ids, strict=True))
    for key, row in (*plan.emails, *plan.phones):
        row["contact_id"] = made[key]
    await _insert_plain(session, ContactEmail, [row for _, row in plan.emails])
    await _insert_plain(session, ContactPhone, [row for _, row in plan.phones])
    await _insert_plain(session, contact_tags, [{"contact_id": i, "tag_id": tag.id} for i in ids])
    return made


@dataclass(frozen=True, slots=True)
class LeadPlan:
    """The rows of a batch's new lead contacts, before their ids are known."""

    keys: list[tuple[str, str]]  # one per contact row, in order
    contacts: list[dict[str, Any]]
    emails: list[tuple[tuple[str, str], dict[str, Any]]]  # (key, row without contact_id)
    phones: list[tuple[tuple[str, str], dict[str, Any]]]


def plan_leads(
    router: Router,
    addresses: dict[tuple[str, str], str],
    names: dict[tuple[str, str], tuple[str, str]] | None,
    field_defs: list[FieldDef],
) -> LeadPlan | None:
    """`create_leads`'s rows (pure); None when no lead can be made (none of the addresses is
    one a contact can hold, or a required custom field: as one by one)."""
    try:
        defaults = validate(field_defs, {})
    except ValidationError:  # a required custom field: no lead can be made, as one by one
        return None
    now = utcnow()
    # Core rows, not ORM objects: one executemany per table for the whole batch.
    keys: list[tuple[str, str]] = []
    held: list[str] = []  # the one number or address each lead holds, for its search text
    emails: list[tuple[tuple[str, str], dict[str, Any]]] = []
    phones: list[tuple[tuple[str, str], dict[str, Any]]] = []
    for key, address in addresses.items():
        if key[0] == "email":
            if EMAIL.fullmatch(key[1]) is None:
                continue
            emails.append((key, full_row(ContactEmail, {"address": key[1], "is_primary": True})))
            held.append(key[1])
        else:
            info = router.contacts.phones.try_parse(address)
            if isinstance(info, str):
                continue
            phones.append(
                (
                    key,
                    full_row(
                        ContactPhone,
                        {
                            "e164": info.e164,
                            "type": info.type,
                            "region": info.region,
                            "time_zones": " ".join(info.time_zones),
                            "is_primary": True,
                        },
                    ),
                )
            )
            held.append(info.e164)
        keys.append(key)
    if not keys:
        return None
    rows: list[dict[str, Any]] = []
    for key, value in zip(keys, held, strict=True):
        # What `repo.refresh_search_text` would write for a contact holding only this (the
        # full-text index takes it from the insert): no query to re-read what is known here.
        first, last = (names or {}).get(key, ("", ""))
        name, text = build_search_text(
            first_name=first,
            last_name=last,
            phones=[value] if key[0] == "phone" else [],
            emails=[value] if key[0] == "email" else [],
        )
        rows.append(
            full_row(
                Contact,
                {
                    "first_name": first,
                    "last_name": last,
                    "custom": dict(defaults),
                    "search_name": name,
                    "search_text": text,
                    "name_key": name_key(first, last),
                    "created_at": now,
                    "updated_at": now,
                },
            )
        )
    return LeadPlan(keys, rows, emails, phones)


def lead_inputs_sync(db: sqlite3.Connection) -> tuple[int, list[FieldDef]]:
    """What making leads reads, on SQLite's raw connection (in the driver's thread): the
    new-lead tag's id (the tag made when missing, as `tag_in`) and the contacts' custom
    field definitions (as `ContactService.field_defs_in`)."""
    found = db.execute("SELECT id FROM tags WHERE name = ?", (NEW_LEAD_TAG,)).fetchone()
    if found is not None:
        tag_id = int(found[0])
    else:
        made = db.execute(
            "INSERT INTO tags (name, color) VALUES (?, '')", (NEW_LEAD_TAG,)
        ).lastrowid
        assert made is not None
        tag_id = made
    defs = [
        FieldDef(key, label, CustomFieldType(kind), tuple(json.loads(choices or "[]")), bool(req))
        for key, label, kind, choices, req in db.execute(
            "SELECT key, label, type, choices, required FROM custom_field_defs WHERE entity = ?",
            (CustomFieldEntity.CONTACT.value,),
        )
    ]
    return tag_id, defs


def write_leads_sync(
    db: sqlite3.Connection, plan: LeadPlan, tag_id: int
) -> dict[tuple[str, str], int]:
    """`create_leads`'s writes on SQLite's raw connection (in the driver's thread)."""
    ids = insert_ids_sync(db, _table(Contact), plan.contacts)
    made = dict(zip(plan.keys, ids, strict=True))
    for key, row in (*plan.emails, *plan.phones):
        row["contact_id"] = made[key]
    for model, rows in ((ContactEmail, plan.emails), (ContactPhone, plan.phones)):
        if rows:
            names = list(rows[0][1])
            db.executemany(
                _insert_sql(_table(model), names),
                plain_rows([r for _, r in rows], names),
            )
    db.executemany(
        "INSERT INTO contact_tags (contact_id, tag_id) VALUES (?, ?)", [(i, tag_id) for i in ids]
    )
    return made


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Assigner:
    """`crm/assign.choose` for the tasks of one batch, in order, with each agent's open-task
    count and each team's round-robin cursor kept current in memory as tasks are given out.
    `last_by_team`: the last assignee of each team's tasks before the batch (a team missing
    from it is read by the caller first).

    The same answers as calling `choose` with the updated snapshot for each task (a test
    checks), without its per-call work: the pool of a team and skill (who is available and
    fits) is found once per batch, by user id, and only the counts change between tasks."""

    def __init__(
        self, router: Router, agents: Sequence[Agent], last_by_team: dict[str | None, int | None]
    ) -> None:
        self._agents = sorted(agents, key=lambda a: a.user_id)
        self._ids = [a.user_id for a in self._agents]
        self._open = [a.open_tasks for a in self._agents]
        self._capacity = [a.capacity for a in self._agents]
        self._pools: dict[tuple[str | None, str | None], list[int]] = {}
        self.last_by_team = last_by_team
        self._keep_owner = router.tasks.keep_owner
        self._policy = router.tasks.policy
        self.round_robin = self._policy is AssignPolicy.ROUND_ROBIN  # reads `last_by_team`

    def _pool(self, team: str | None, skill: str | None) -> list[int]:
        """Indexes of the agents `eligible` keeps, capacity aside, by user id."""
        found = self._pools.get((team, skill))
        if found is None:
            found = self._pools[(team, skill)] = [
                i
                for i, a in enumerate(self._agents)
                if a.available
                and (team is None or a.team == team)
                and (skill is None or skill in a.skills)
            ]
        return found

    def assign(self, team: str | None, skill: str | None, owner: int | None) -> int | None:
        opened, capacity, ids = self._open, self._capacity, self._ids
        pool = [
            i
            for i in self._pool(team, skill)
            if (limit := capacity[i]) is None or opened[i] < limit
        ]
        if not pool:
            return None
        chosen = -1
        if self._keep_owner and owner is not None:
            chosen = next((i for i in pool if ids[i] == owner), -1)
        if chosen < 0 and self._policy is AssignPolicy.ROUND_ROBIN:
            last = self.last_by_team[team]
            chosen = pool[0]
            if last is not None:
                chosen = next((i for i in pool if ids[i] > last), pool[0])
        elif chosen < 0:  # least loaded; ties to the lowest user id (the pool is by id)
            chosen = pool[0]
            for i in pool:
                if opened[i] < opened[chosen]:
                    chosen = i
        opened[chosen] += 1
        self.last_by_team[team] = ids[chosen]
        return ids[chosen]


def task_row(
    spec: TaskSpec,
    description: str,
    contact_id: int | None,
    interaction_id: int,
    assignee: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The `tasks` row of one follow-up (every column an ORM insert would write)."""
    return {
        "title": spec.title[:300],
        "description": description,
        "contact_id": contact_id,
        "interaction_id": interaction_id,
        "assignee_id": assignee,
        "team": spec.team,
        "skill": spec.skill,
        "status": TaskStatus.OPEN,
        "priority": spec.priority,
        "source": spec.source,
        "due_at": spec.due_at,
        "remind_at": spec.remind_at,
        "created_at": now,
        "updated_at": now,
    }


def full_row(model: type[Base] | Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every other column of `model`'s table (but an autoincrement id) set as
    an ORM insert would: its Python default, else NULL; a column with only a server default
    is left to the database. Rows built so share one key order (one executemany)."""
    table = model if isinstance(model, Table) else model.__table__
    assert isinstance(table, Table)
    row: dict[str, Any] = {}
    for column in table.columns:
        name = column.key
        if name in values:
            row[name] = values[name]
        elif column.primary_key and column.autoincrement in (True, "auto"):
            continue
        elif column.default is not None and getattr(column.default, "is_scalar", False):
            row[name] = getattr(column.default, "arg", None)
        elif column.default is not None and getattr(column.default, "is_callable", False):
            row[name] = column.default.arg(None)
        elif column.server_default is None:
            row[name] = None
    return row


async def in_driver(session: AsyncSession, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the session's SQLite connection, inside its transaction, in ONE hand-off
    to the driver's thread (through SQLAlchemy each statement costs three or four: cursor,
    execute, fetch, close). A driver error comes back as SQLAlchemy's own exception class
    (IntegrityError, OperationalError), as callers catch it."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # aiosqlite.Connection

    def call() -> T:
        try:
            return work(driver._conn)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    result: T = await driver._execute(call)
    return result


def _insert_sql(table: Table, names: list[str]) -> str:
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


async def _insert_plain(
    session: AsyncSession, model: type[Base] | Table, rows: list[dict[str, Any]]
) -> None:
    """Insert rows (every row with the same keys) in one executemany, ids not needed: on
    SQLite straight to the driver in one hand-off."""
    if not rows:
        return
    table = model if isinstance(model, Table) else model.__table__
    assert isinstance(table, Table)
    if session.get_bind().dialect.name != "sqlite":
        await session.execute(insert(table), rows)
        return
    names = list(rows[0])
    sql = _insert_sql(table, names)
    values = plain_rows(rows, names)

    def write(db: sqlite3.Connection) -> None:
        db.executemany(sql, values)

    await in_driver(session, write)


async def _insert_ids(
    session: AsyncSession,
    model: type[Interaction] | type[Task] | type[Document] | type[Contact],
    rows: list[dict[str, Any]],
) -> list[int]:
    """Insert rows (every row with every column it needs, the same keys) and return their ids
    in order.

    On SQLite, RETURNING with ordered ids costs one statement per row. The first row's insert
    takes the database's single write lock for this transaction, so the rest, sent as one
    executemany, get the next rowids in order: checked, not assumed. The three statements
    go to the driver in one hand-off, with values made plain here (SQLAlchemy's per-value
    bind processing was a sixth of a batch's time). Elsewhere (PostgreSQL) ordered RETURNING
    is batched by the driver."""
    if not rows:
        return []
    if session.get_bind().dialect.name != "sqlite":
        return list(
            (
                await session.scalars(
                    insert(model).returning(model.id, sort_by_parameter_order=True), rows
                )
            ).all()
        )
    table = model.__table__  # Core: the ORM's per-row bookkeeping is not needed here
    assert isinstance(table, Table)
    return await in_driver(session, lambda db: insert_ids_sync(db, table, rows))


def insert_ids_sync(db: sqlite3.Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """`_insert_ids` on SQLite, on the raw connection (in the driver's thread)."""
    if not rows:
        return []
    names = list(rows[0])
    sql = _insert_sql(table, names)
    values = plain_rows(rows, names)
    first = db.execute(sql, values[0]).lastrowid
    if len(values) > 1:
        db.executemany(sql, values[1:])
    last = db.execute(f"SELECT max(id) FROM {table.name}").fetchone()[0]
    if first is None or last != first + len(rows) - 1:
        raise RuntimeError(f"{table.name}: ids not contiguous ({first}..{last})")
    return list(range(first, first + len(rows)))


def _plain(value: Any) -> Any:
    """A value as SQLAlchemy's SQLite dialect stores it (UTCDateTime, str enums, JSON)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # as UTCDateTime refuses it
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC).strftime(_SQLITE_DATETIME)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def plain_rows(rows: Sequence[Mapping[str, Any]], names: list[str]) -> list[tuple[Any, ...]]:
    """`rows` as tuples of `names`' values made `_plain`, for an executemany: each value's
    conversion found once per type (not three isinstance checks a value), and a time the
    batch repeats (now, a due time) formatted once. Same values as `_plain` gives."""
    stamps: dict[datetime, str] = {}

    def stamp(value: datetime) -> str:
        found = stamps.get(value)
        if found is None or value.tzinfo is None:
            found = stamps[value] = _plain(value)
        return found

    converters: dict[type, Callable[[Any], Any] | None] = {}
    out: list[tuple[Any, ...]] = []
    for row in rows:
        values = []
        for name in names:
            value = row[name]
            kind = type(value)
            if kind in converters:
                convert = converters[kind]
            else:
                convert = converters[kind] = _converter(kind, stamp)
            values.append(value if convert is None else convert(value))
        out.append(tuple(values))
    return out


def _converter(kind: type, stamp: Callable[[datetime], str]) -> Callable[[Any], Any] | None:
    if issubclass(kind, datetime):
        return stamp
    if issubclass(kind, StrEnum):
        return _enum_value
    if issubclass(kind, dict | list):
        return json.dumps
    return None


def _enum_value(value: StrEnum) -> str:
    return value.value


def _interaction_row(item: InboundContact, contact_id: int | None, now: datetime) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "kind": item.kind,
        "direction": item.direction,
        "channel": item.channel,
        "started_at": item.started_at or now,
        "ended_at": now,
        "outcome": item.outcome,
        "subject": item.subject[:300],
        "body": item.body,
        "transcript": item.transcript,
        "recording_ref": item.recording_ref,
        "remote_address": item.remote_address,
        "campaign_id": item.campaign_id,
        "user_id": item.user_id,
        "data": item.data,
    }


async def _people(session: AsyncSession, ids: set[int | None]) -> dict[int, tuple[str, int | None]]:
    """contact id -> (the name a task shows, as Router._who; the owner)."""
    out: dict[int, tuple[str, int | None]] = {}
    wanted = sorted(i for i in ids if i)
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(
                Contact.id,
                Contact.first_name,
                Contact.last_name,
                Organisation.name,
                Contact.owner_id,
            )
            .select_from(Contact)
            .outerjoin(Organisation, Organisation.id == Contact.organisation_id)
            .where(Contact.id.in_(wanted[start : start + CHUNK]))
        )
        for cid, first, last, org, owner in rows:
            out[cid] = (f"{first} {last}".strip() or (org or ""), owner)
    return out


async def assign_inputs(
    session: AsyncSession, ids: set[int | None]
) -> tuple[dict[int, tuple[str, int | None]], list[Agent]]:
    """What a routing batch's task assignment reads on PostgreSQL: the contacts' names and
    owners (`_people`) and the agents with their open-task counts (`agent_snapshot`). On
    SQLite the batch reads the same in its one hand-off (`batch_reads_sync`); a team's last
    assignee is read when round-robin first meets the team."""
    return await _people(session, ids), await agent_snapshot(session)


_OPEN_STATES: Final = [s.value for s in OPEN_STATES]
_AGENTS_SQL: Final = "SELECT id, team, skills FROM users WHERE active = 1 AND role IN (?, ?)"
_COUNTS_SQL: Final = (
    "SELECT assignee_id, count(*) FROM tasks WHERE status IN "
    f"({', '.join('?' * len(_OPEN_STATES))}) AND assignee_id IS NOT NULL GROUP BY assignee_id"
)


def assign_inputs_sync(
    db: sqlite3.Connection, ids: set[int | None], counts: dict[int, int] | None,
    round_robin: bool,
) -> tuple[dict[int, tuple[str, int | None]], list[Agent], int | None, dict[int, int] | None]:
    """What `assign_inputs` reads, on SQLite's raw connection (in the driver's thread); the
    last assignee of team-less tasks as the third value (None unless `round_robin`: when no
    task has an assignee, finding that out reads every task). The open tasks per assignee
    are `counts` (kept by `task_load`), or read here when None and returned fourth."""
    wanted = sorted(i for i in ids if i)
    people: dict[int, tuple[str, int | None]] = {}
    for start in range(0, len(wanted), CHUNK):
        part = wanted[start : start + CHUNK]
        for cid, first, last, org, owner in db.execute(
            "SELECT c.id, c.first_name, c.last_name, o.name, c.owner_id FROM contacts c "
            "LEFT JOIN organisations o ON o.id = c.organisation_id "
            f"WHERE c.id IN ({', '.join('?' * len(part))})",
            part,
        ):
            people[cid] = (f"{first} {last}".strip() or (org or ""), owner)
    read = None
    if counts is None:
        counts = read = {int(uid): int(n) for uid, n in db.execute(_COUNTS_SQL, _OPEN_STATES)}
    agents = [
        Agent(uid, team, frozenset(json.loads(skills) if skills else ()), counts.get(uid, 0))
        for uid, team, skills in db.execute(
            _AGENTS_SQL, [Role.AGENT.value, Role.SUPERVISOR.value]
        )
    ]
    return people, agents, last_assignee_sync(db, None) if round_robin else None, read


def last_assignee_sync(db: sqlite3.Connection, team: str | None) -> int | None:
    """`_last_assignee` on SQLite's raw connection (in the driver's thread)."""
    if team is None:
        found = db.execute(
            "SELECT assignee_id FROM tasks WHERE assignee_id IS NOT NULL AND team IS NULL "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    else:
        found = db.execute(
            "SELECT assignee_id FROM tasks WHERE assignee_id IS NOT NULL AND team = ? "
            "ORDER BY id DESC LIMIT 1",
            (team,),
        ).fetchone()
    return None if found is None else int(found[0])


async def _last_assignee(session: AsyncSession, team: str | None) -> int | None:
    found: int | None = await session.scalar(
        select(Task.assignee_id)
        .where(
            Task.assignee_id.is_not(None),
            Task.team.is_(None) if team is None else Task.team == team,
        )
        .order_by(Task.id.desc())
        .limit(1)
    )
    return found
