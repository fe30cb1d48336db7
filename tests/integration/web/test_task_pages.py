"""The task lists read each part of a view from an index up to the page: page after page,
they are still exactly the view's open tasks, soonest due first, undated last, each once."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from contactd.crm.tasklist import LIST_LIMIT, TaskCursor, TaskView, list_tasks
from contactd.db.base import utcnow
from contactd.db.models import Task, User
from contactd.db.session import Database
from contactd.enums import Role, TaskStatus
from contactd.errors import ValidationError

OPEN = {TaskStatus.OPEN, TaskStatus.IN_PROGRESS}


async def test_each_view_is_the_same_page_as_sorting_every_task(db: Database) -> None:
    rng = random.Random(5)
    now = utcnow()
    async with db.transaction() as session:
        people = [
            User(
                username=f"u{n}",
                password_hash="x",
                role=Role.AGENT,
                team=["north", "south", None][n % 3],
            )
            for n in range(9)
        ]
        session.add_all(people)
        await session.flush()
        teams = {u.id: u.team for u in people}
        ids = list(teams)
        session.add_all(
            Task(
                title=f"t{n}",
                assignee_id=rng.choice([*ids, None]),
                team=rng.choice(["north", "south", None]),
                status=rng.choice(list(TaskStatus)),
                due_at=None
                if rng.random() < 0.2
                else now + timedelta(minutes=rng.randint(-3000, 3000)),
            )
            for n in range(1500)
        )
    async with db.session() as session:
        tasks = list(await session.scalars(select(Task)))

    def expected(view: TaskView, me: int, everyone: bool) -> list[int]:
        team = teams[me]
        members = {uid for uid, t in teams.items() if team and t == team}

        def in_view(t: Task) -> bool:
            mine_or_team = t.assignee_id == me or (
                bool(team) and (t.team == team or t.assignee_id in members)
            )
            if view is TaskView.MINE:
                return t.assignee_id == me
            if view is TaskView.TEAM:
                return mine_or_team
            return t.due_at is not None and t.due_at < now and (everyone or mine_or_team)

        chosen = sorted(
            (t for t in tasks if t.status in OPEN and in_view(t)),
            key=lambda t: (t.due_at is None, t.due_at or now, t.id),
        )
        return [t.id for t in chosen]

    crossed = 0
    for me in (ids[0], ids[2]):  # one in a team, one in none
        for view in TaskView:
            for everyone in (False, True):
                got: list[int] = []
                after: TaskCursor | None = None
                while True:
                    page = await list_tasks(
                        db,
                        view,
                        user_id=me,
                        team=teams[me],
                        everyone=everyone,
                        now=now,
                        after=after,
                    )
                    assert len(page.rows) <= LIST_LIMIT
                    got += [row.task.id for row in page.rows]
                    if page.next is None:
                        break
                    assert len(page.rows) == LIST_LIMIT
                    after = TaskCursor.decode(page.next.encode())  # as the link carries it
                    crossed += after.due_at is None or any(
                        row.task.due_at is None for row in page.rows
                    )
                assert got == expected(view, me, everyone), (view, teams[me], everyone)
    assert crossed >= 1  # a page boundary among the undated tasks was walked too


@pytest.mark.parametrize("raw", ["x", "2026-12-05T10:00:00_", "2026-12-05T10:00:00_7", "_"])
def test_a_broken_position_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValidationError, match="after is not a position"):
        TaskCursor.decode(raw)
