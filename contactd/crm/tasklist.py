"""What the task pages show: a person's tasks, their team's, the overdue ones, and one task
with its comments; names of contacts and people joined in, one query per list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, bindparam, select, true, union_all
from sqlalchemy.orm import Session, aliased

from contactd.crm.tasks import OPEN_STATES
from contactd.db.models import Contact, Task, TaskComment, User
from contactd.db.session import Database
from contactd.errors import NotFoundError, ValidationError

LIST_LIMIT: Final = 50  # tasks a page shows; the next page starts after its last one
_MAX_MEMBER_ARMS: Final = 100


class TaskView(StrEnum):
    MINE = "mine"
    TEAM = "team"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class TaskCursor:
    """Where a page of a task list ended: its last task's due time (None: undated) and id.
    The next page holds what sorts after it, so tasks added or closed meanwhile neither
    repeat nor hide the ones still to come."""

    due_at: datetime | None
    task_id: int

    def encode(self) -> str:
        return f"{self.due_at.isoformat() if self.due_at else ''}_{self.task_id}"

    @classmethod
    def decode(cls, raw: str) -> TaskCursor:
        due, _sep, ident = raw.rpartition("_")
        try:
            at = datetime.fromisoformat(due) if due else None
            if at is not None and at.tzinfo is None:
                raise ValueError
            return cls(at, int(ident))
        except ValueError:
            raise ValidationError(
                "after is not a position in this task list", field="after"
            ) from None


@dataclass(frozen=True)
class TaskRow:
    task: Task
    contact_name: str | None
    assignee_name: str | None


@dataclass(frozen=True)
class TaskPage:
    rows: list[TaskRow]
    next: TaskCursor | None  # where the next page starts; None: this is the last


@dataclass(frozen=True)
class TaskDetail:
    row: TaskRow
    comments: list[tuple[TaskComment, str | None]]


def _rows() -> Select[Task, str, str, str, str]:
    assignee = aliased(User)
    return (
        select(
            Task, Contact.first_name, Contact.last_name, assignee.display_name, assignee.username
        )
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(assignee, assignee.id == Task.assignee_id)
    )


def _row(found: Any) -> TaskRow:
    task, first, last, display, login = found
    name = f"{first or ''} {last or ''}".strip() if (first or last) else None
    return TaskRow(task, name, display or login)


Arm = tuple[str, int]  # ("all" | "team" | "user" | "users", n): one part of a view


def _arms(
    view: TaskView, *, user_id: int, team: str | None, members: list[int], everyone: bool
) -> tuple[tuple[Arm, ...], dict[str, Any]]:
    """The view as a union of parts, each one an index prefix (assignee, team or none) that
    with one status walks an index in due order; and the values bound into them."""
    if view is TaskView.OVERDUE and everyone:
        return (("all", 0),), {}
    if view is TaskView.MINE or not team:
        return (("user", 0),), {"u0": user_id}
    ids = sorted({user_id, *members})
    if len(ids) > _MAX_MEMBER_ARMS:  # a compound select has its limits; sort this one
        return (("team", 0), ("users", 0)), {"team": team, "users": ids}
    arms = (("team", 0), *(("user", n) for n in range(len(ids))))
    return arms, {"team": team, **{f"u{n}": uid for n, uid in enumerate(ids)}}


def _condition(arm: Arm) -> ColumnElement[bool]:
    kind, n = arm
    if kind == "team":
        return Task.team == bindparam("team")
    if kind == "user":
        return Task.assignee_id == bindparam(f"u{n}")
    if kind == "users":
        return Task.assignee_id.in_(bindparam("users", expanding=True))
    return true()


@lru_cache(maxsize=256)
def _first_ids(
    arms: tuple[Arm, ...], *, overdue: bool, dated: bool, after: bool = False
) -> Select[Any]:
    """The page's task ids: each (part, open status) walked in its index, due order, stopped
    at the page; the union of those short runs sorted and cut again. Undated tasks come
    after every dated one, so they are asked for only when the dated ones do not fill it.
    Built once per shape (values are bound), as building it costs more than running it.
    `after`: only what sorts after the bound cursor (a_due, a_id) of the page before."""
    due = Task.due_at.is_not(None) if dated else Task.due_at.is_(None)
    extra = Task.due_at < bindparam("now") if overdue else true()
    if after and dated:  # a range on the index's due column, then the ties by id
        a_due = bindparam("a_due", type_=Task.due_at.type)
        extra = (
            extra & (Task.due_at >= a_due) & ((Task.due_at > a_due) | (Task.id > bindparam("a_id")))
        )
    elif after:
        extra = extra & (Task.id > bindparam("a_id"))
    order = (Task.due_at, Task.id) if dated else (Task.id,)
    runs = [
        select(Task.id, Task.due_at)
        .where(_condition(arm), Task.status == status, due, extra)
        .order_by(*order)
        .limit(LIST_LIMIT + 1)  # one more than a page tells whether a next one exists
        .subquery()
        for arm in arms
        for status in OPEN_STATES
    ]
    union = union_all(*(select(run.c.id, run.c.due_at) for run in runs)).subquery()
    return (
        select(union.c.id, union.c.due_at)
        .distinct()
        .order_by(union.c.due_at, union.c.id)
        .limit(bindparam("page"))
    )


async def list_tasks(
    db: Database,
    view: TaskView,
    *,
    user_id: int,
    team: str | None,
    everyone: bool,
    now: datetime,
    after: TaskCursor | None = None,
) -> TaskPage:
    """Open tasks, soonest due first, undated last, a page of LIST_LIMIT after `after`. MINE:
    assigned to the user; TEAM: assigned to anyone of the user's team or queued for it;
    OVERDUE: past due, the user's and team's (everyone's for a supervisor). Never sorts every
    open task: each part of the view is read from an index in due order up to the page (see
    `_first_ids`)."""
    return await db.read(
        lambda session: read_tasks(
            session, view, user_id=user_id, team=team, everyone=everyone, now=now, after=after
        )
    )


def read_tasks(
    session: Session,
    view: TaskView,
    *,
    user_id: int,
    team: str | None,
    everyone: bool,
    now: datetime,
    after: TaskCursor | None = None,
) -> TaskPage:
    """`list_tasks` inside a caller's read (see `Database.read`)."""
    overdue = view is TaskView.OVERDUE
    past_dated = after is not None and after.due_at is None  # the dated ones were shown
    wanted = LIST_LIMIT + 1
    members = (
        list(session.scalars(select(User.id).where(User.team == team)))
        if team and view is not TaskView.MINE
        else []
    )
    arms, values = _arms(view, user_id=user_id, team=team, members=members, everyone=everyone)
    values |= {"now": now} if overdue else {}
    ids: list[int] = []
    if not past_dated:
        dated_after = {"a_due": after.due_at, "a_id": after.task_id} if after else {}
        ids = list(
            session.scalars(
                _first_ids(arms, overdue=overdue, dated=True, after=after is not None),
                values | dated_after | {"page": wanted},
            )
        )
    if len(ids) < wanted and not overdue:
        undated_after = {"a_id": after.task_id} if past_dated and after else {}
        ids += list(
            session.scalars(
                _first_ids(arms, overdue=False, dated=False, after=past_dated),
                values | undated_after | {"page": wanted - len(ids)},
            )
        )
    shown = ids[:LIST_LIMIT]
    if not shown:
        return TaskPage([], None)
    rank = {task_id: n for n, task_id in enumerate(shown)}
    found = [_row(row) for row in session.execute(_rows().where(Task.id.in_(shown)))]
    rows = sorted(found, key=lambda row: rank[row.task.id])
    if not rows:  # every one deleted between the two reads
        return TaskPage([], None)
    last = rows[-1].task
    return TaskPage(rows, TaskCursor(last.due_at, last.id) if len(ids) > LIST_LIMIT else None)


async def task_detail(db: Database, task_id: int) -> TaskDetail:
    async with db.session() as session:
        found = (await session.execute(_rows().where(Task.id == task_id))).first()
        if found is None:
            raise NotFoundError(f"no task {task_id}", task_id=task_id)
        comments = await session.execute(
            select(TaskComment, User.display_name)
            .outerjoin(User, User.id == TaskComment.user_id)
            .where(TaskComment.task_id == task_id)
            .order_by(TaskComment.id)
        )
        return TaskDetail(_row(found), [(c, n) for c, n in comments])
