"""What the task pages show: a person's tasks, their team's, the overdue ones, and one task
with its comments; names of contacts and people joined in, one query per list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, bindparam, select, true, union_all
from sqlalchemy.orm import aliased

from contactd.crm.tasks import OPEN_STATES
from contactd.db.models import Contact, Task, TaskComment, User
from contactd.db.session import Database
from contactd.errors import NotFoundError

LIST_LIMIT: Final = 200
_MAX_MEMBER_ARMS: Final = 100


class TaskView(StrEnum):
    MINE = "mine"
    TEAM = "team"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class TaskRow:
    task: Task
    contact_name: str | None
    assignee_name: str | None


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
def _first_ids(arms: tuple[Arm, ...], *, overdue: bool, dated: bool) -> Select[Any]:
    """The page's task ids: each (part, open status) walked in its index, due order, stopped
    at the page; the union of those short runs sorted and cut again. Undated tasks come
    after every dated one, so they are asked for only when the dated ones do not fill it.
    Built once per shape (values are bound), as building it costs more than running it."""
    due = Task.due_at.is_not(None) if dated else Task.due_at.is_(None)
    extra = Task.due_at < bindparam("now") if overdue else true()
    order = (Task.due_at, Task.id) if dated else (Task.id,)
    runs = [
        select(Task.id, Task.due_at)
        .where(_condition(arm), Task.status == status, due, extra)
        .order_by(*order)
        .limit(LIST_LIMIT)
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
) -> list[TaskRow]:
    """Open tasks, soonest due first, undated last. MINE: assigned to the user; TEAM:
    assigned to anyone of the user's team or queued for it; OVERDUE: past due, the user's and
    team's (everyone's for a supervisor). Never sorts every open task: each part of the view
    is read from an index in due order up to the page (see `_first_ids`)."""
    overdue = view is TaskView.OVERDUE
    async with db.session() as session:
        members = (
            list(await session.scalars(select(User.id).where(User.team == team)))
            if team and view is not TaskView.MINE
            else []
        )
        arms, values = _arms(view, user_id=user_id, team=team, members=members, everyone=everyone)
        values |= {"now": now} if overdue else {}
        ids = list(
            await session.scalars(
                _first_ids(arms, overdue=overdue, dated=True), values | {"page": LIST_LIMIT}
            )
        )
        if len(ids) < LIST_LIMIT and not overdue:
            ids += list(
                await session.scalars(
                    _first_ids(arms, overdue=False, dated=False),
                    values | {"page": LIST_LIMIT - len(ids)},
                )
            )
        if not ids:
            return []
        rank = {task_id: n for n, task_id in enumerate(ids)}
        found = [_row(row) for row in await session.execute(_rows().where(Task.id.in_(ids)))]
    return sorted(found, key=lambda row: rank[row.task.id])


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
