"""What the task pages show: a person's tasks, their team's, the overdue ones, and one task
with its comments; names of contacts and people joined in, one query per list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import aliased

from contactd.crm.tasks import OPEN_STATES
from contactd.db.models import Contact, Task, TaskComment, User
from contactd.db.session import Database
from contactd.errors import NotFoundError

LIST_LIMIT: Final = 200


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
        select(Task, Contact.first_name, Contact.last_name, assignee.display_name,
               assignee.username)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(assignee, assignee.id == Task.assignee_id)
    )


def _row(found: Any) -> TaskRow:
    task, first, last, display, login = found
    name = f"{first or ''} {last or ''}".strip() if (first or last) else None
    return TaskRow(task, name, display or login)


async def list_tasks(
    db: Database, view: TaskView, *, user_id: int, team: str | None, everyone: bool,
    now: datetime,
) -> list[TaskRow]:
    """Open tasks, soonest due first. MINE: assigned to the user; TEAM: assigned to anyone of
    the user's team or queued for it; OVERDUE: past due, the user's and team's (everyone's for
    a supervisor)."""
    stmt = _rows().where(Task.status.in_(OPEN_STATES))
    team_members = select(User.id).where(User.team == team)
    mine_or_team = or_(Task.assignee_id == user_id, Task.team == team,
                       Task.assignee_id.in_(team_members)) if team else (
        Task.assignee_id == user_id)
    if view is TaskView.MINE:
        stmt = stmt.where(Task.assignee_id == user_id)
    elif view is TaskView.TEAM:
        stmt = stmt.where(mine_or_team)
    else:
        stmt = stmt.where(Task.due_at < now)
        if not everyone:
            stmt = stmt.where(mine_or_team)
    stmt = stmt.order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(LIST_LIMIT)
    async with db.session() as session:
        return [_row(found) for found in await session.execute(stmt)]


async def task_detail(db: Database, task_id: int) -> TaskDetail:
    async with db.session() as session:
        found = (await session.execute(_rows().where(Task.id == task_id))).first()
        if found is None:
            raise NotFoundError(f"no task {task_id}", task_id=task_id)
        comments = await session.execute(
            select(TaskComment, User.display_name)
            .outerjoin(User, User.id == TaskComment.user_id)
            .where(TaskComment.task_id == task_id).order_by(TaskComment.id))
        return TaskDetail(_row(found), [(c, n) for c, n in comments])
