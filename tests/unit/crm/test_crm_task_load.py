"""Open tasks per agent are counted once and kept (`crm/task_load`): routing batches and tasks
made one at a time still share the work out evenly, see a task closed in this process at
once, and see what another daemon did within `MAX_AGE_S`."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from contactd.crm.assign import AssignPolicy
from contactd.crm.routing import InboundContact, Router
from contactd.crm.routing_batch import record_many
from contactd.crm.service import ContactService
from contactd.crm.task_load import MAX_AGE_S, task_load
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.models import Task
from contactd.db.session import Database
from contactd.enums import Channel, Direction, InteractionKind, TaskStatus
from tests.unit.crm.conftest import AddUser


def missed(n: int) -> list[InboundContact]:
    return [InboundContact(kind=InteractionKind.CALL, direction=Direction.INBOUND,
                           channel=Channel.CALL, remote_address=f"+49301000{i:02d}",
                           outcome="missed") for i in range(n)]


async def open_tasks(db: Database) -> Counter[int | None]:
    async with db.session() as session:
        return Counter(await session.scalars(
            select(Task.assignee_id).where(Task.status == TaskStatus.OPEN)))


async def test_batches_share_tasks_out_evenly_reading_the_counts_once(
    crm_db: Database, contacts: ContactService, tasks: TaskService, add_user: AddUser,
) -> None:
    a = await add_user("a")
    await add_user("b")
    await add_user("c")
    for _ in range(4):
        await tasks.create(NewTask(title="earlier", assignee_id=a))
    router = Router(crm_db, contacts, tasks)
    for _ in range(3):
        await record_many(router, missed(5))
    # 4 + 15 tasks: b and c catch up with a, then all three take turns. Counts kept without
    # the tasks each batch gave would send every batch's tasks to b and c.
    assert sorted((await open_tasks(crm_db)).values()) == [6, 6, 7]
    async with crm_db.session() as session:
        assert task_load(session).reads == 1


async def test_a_task_closed_here_counts_at_once(
    crm_db: Database, contacts: ContactService, tasks: TaskService, add_user: AddUser,
) -> None:
    a, b = await add_user("a"), await add_user("b")
    mine = [await tasks.create(NewTask(title="earlier", assignee_id=a)) for _ in range(3)]
    router = Router(crm_db, contacts, tasks)
    await record_many(router, missed(1))
    assert await open_tasks(crm_db) == {a: 3, b: 1}
    for task_id in mine:
        await tasks.set_status(task_id, TaskStatus.DONE)
    made = await tasks.create(NewTask(title="by hand"))  # a has none open now, b one
    async with crm_db.session() as session:
        task = await session.get(Task, made)
        assert task is not None and task.assignee_id == a


async def test_another_daemons_tasks_show_after_max_age(
    crm_db: Database, contacts: ContactService, tasks: TaskService, add_user: AddUser,
) -> None:
    a, b = await add_user("a"), await add_user("b")
    router = Router(crm_db, contacts, tasks)
    now = [0.0]
    async with crm_db.session() as session:
        task_load(session).clock = lambda: now[0]
    await record_many(router, missed(2))
    assert await open_tasks(crm_db) == {a: 1, b: 1}
    async with crm_db.transaction() as session:  # another daemon gives a five tasks
        session.add_all(Task(title="elsewhere", assignee_id=a) for _ in range(5))
    now[0] = MAX_AGE_S / 2
    await record_many(router, missed(2))
    assert await open_tasks(crm_db) == {a: 7, b: 2}  # not seen yet: one each
    now[0] = MAX_AGE_S * 2
    await record_many(router, missed(2))
    assert await open_tasks(crm_db) == {a: 7, b: 4}  # read again: both to b


async def test_round_robin_takes_turns_across_batches(
    crm_db: Database, contacts: ContactService, add_user: AddUser,
) -> None:
    """Round robin starts after the last assignee stored (read only under this policy)."""
    a, b, c = await add_user("a"), await add_user("b"), await add_user("c")
    tasks = TaskService(crm_db, policy=AssignPolicy.ROUND_ROBIN, keep_owner=False)
    router = Router(crm_db, contacts, tasks)
    for _ in range(4):
        await record_many(router, missed(1))
    await tasks.create(NewTask(title="by hand"))
    async with crm_db.session() as session:
        order = list(await session.scalars(select(Task.assignee_id).order_by(Task.id)))
    assert order == [a, b, c, a, b]
