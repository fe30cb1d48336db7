"""The task lists read each part of a view from an index up to the page: the page is still
exactly the view's open tasks, soonest due first, undated last, cut at the page size."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from contactd.crm.tasklist import LIST_LIMIT, TaskView, list_tasks
from contactd.db.base import utcnow
from contactd.db.models import Task, User
from contactd.db.session import Database
from contactd.enums import Role, TaskStatus

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
        return [t.id for t in chosen[:LIST_LIMIT]]

    checked = 0
    for me in (ids[0], ids[2]):  # one in a team, one in none
        for view in TaskView:
            for everyone in (False, True):
                got = await list_tasks(
                    db, view, user_id=me, team=teams[me], everyone=everyone, now=now
                )
                want = expected(view, me, everyone)
                assert [row.task.id for row in got] == want, (view, teams[me], everyone)
                checked += len(want) == LIST_LIMIT
    assert checked >= 4  # the cut at the page size was exercised, not only short lists
