"""Tasks: my tasks, my team's and the overdue ones; create (here or from a contact's card),
assign by policy or by hand, comment, close or reopen. Every change is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from contactd.crm.tasklist import TaskCursor, TaskView, list_tasks, task_detail
from contactd.crm.tasks import TRANSITIONS, NewTask
from contactd.db.base import utcnow
from contactd.enums import Role, TaskPriority, TaskStatus
from contactd.errors import ValidationError
from contactd.web.access import RANK, requires
from contactd.web.keys import DATABASE, TASKS, USERS, principal
from contactd.web.render import page
from contactd.web.views.records import actor_of


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound()
    return int(raw)


def _due(raw: str) -> datetime | None:
    """A datetime-local field (the browser's wall clock, taken as UTC) or nothing."""
    if not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValidationError(f"{raw!r} is not a date and time", field="due_at") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _enum(raw: str, enum: type[TaskPriority] | type[TaskStatus], field: str) -> Any:
    try:
        return enum(raw)
    except ValueError:
        raise ValidationError(f"{field} has no choice {raw!r}", field=field) from None


def _user_id(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError("assignee must be a user id", field="assignee_id")
    return int(raw)


@requires(Role.AGENT)
async def tasks(request: web.Request) -> web.StreamResponse:
    me = principal(request).user
    raw_view = request.query.get("view", TaskView.MINE.value)
    try:
        view = TaskView(raw_view)
    except ValueError:
        raise ValidationError(f"view must be one of {', '.join(TaskView)}",
                              field="view") from None
    raw_after = request.query.get("after", "")
    after = TaskCursor.decode(raw_after) if raw_after else None
    found = await list_tasks(request.app[DATABASE], view, user_id=me.id, team=me.team,
                             everyone=RANK[me.role] >= RANK[Role.SUPERVISOR], now=utcnow(),
                             after=after)
    users = [u for u in await request.app[USERS].list_all() if u.active]
    return page(request, "tasks.html", {
        "rows": found.rows, "view": view, "views": list(TaskView), "users": users,
        "priorities": list(TaskPriority), "now": utcnow(), "paged": after is not None,
        "next_after": found.next.encode() if found.next else None,
    })


@requires(Role.AGENT)
async def task_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    title = str(form.get("title", "")).strip()
    if not title or len(title) > 300:
        raise ValidationError("a task title is 1 to 300 characters", field="title")
    contact = str(form.get("contact_id", ""))
    if contact and not contact.isdigit():
        raise ValidationError("contact_id must be a number", field="contact_id")
    raw_assignee = str(form.get("assignee_id", ""))
    me = principal(request).user
    # "me", a user id, or empty: the assignment policy chooses (crm/assign).
    assignee = me.id if raw_assignee == "me" else _user_id(raw_assignee)
    task_id = await request.app[TASKS].create(NewTask(
        title=title, description=str(form.get("description", "")).strip()[:20_000],
        contact_id=int(contact) if contact else None, due_at=_due(str(form.get("due_at", ""))),
        priority=_enum(str(form.get("priority", "normal")), TaskPriority, "priority"),
        assignee_id=assignee, team=me.team, created_by_id=me.id,
    ), actor=actor_of(request))
    target = f"/contacts/{contact}" if form.get("back") == "card" and contact else (
        f"/tasks/{task_id}")
    raise web.HTTPSeeOther(target)


async def _task_page(request: web.Request, task_id: int, *, status: int = 200) -> web.Response:
    detail = await task_detail(request.app[DATABASE], task_id)
    users = [u for u in await request.app[USERS].list_all() if u.active]
    return page(request, "task.html", {
        "d": detail, "t": detail.row.task, "users": users, "now": utcnow(),
        "next_states": sorted(TRANSITIONS[detail.row.task.status], key=list(TaskStatus).index),
    }, status=status)


@requires(Role.AGENT)
async def task(request: web.Request) -> web.StreamResponse:
    return await _task_page(request, _id(request, "task_id"))


@requires(Role.AGENT)
async def task_comment(request: web.Request) -> web.StreamResponse:
    task_id = _id(request, "task_id")
    form = await request.post()
    await request.app[TASKS].comment(task_id, str(form.get("body", "")), actor=actor_of(request))
    raise web.HTTPSeeOther(f"/tasks/{task_id}")


@requires(Role.AGENT)
async def task_status(request: web.Request) -> web.StreamResponse:
    task_id = _id(request, "task_id")
    form = await request.post()
    status = _enum(str(form.get("status", "")), TaskStatus, "status")
    await request.app[TASKS].set_status(task_id, status, actor=actor_of(request))
    raise web.HTTPSeeOther(f"/tasks/{task_id}")


@requires(Role.AGENT)
async def task_assign(request: web.Request) -> web.StreamResponse:
    task_id = _id(request, "task_id")
    form = await request.post()
    raw = str(form.get("assignee_id", ""))
    if raw == "policy":
        await request.app[TASKS].assign_by_policy(task_id, actor=actor_of(request))
    else:
        user_id = _user_id(raw)
        known = {u.id for u in await request.app[USERS].list_all() if u.active}
        if user_id is not None and user_id not in known:
            raise ValidationError(f"no active user {user_id}", field="assignee_id")
        await request.app[TASKS].assign(task_id, user_id, actor=actor_of(request))
    raise web.HTTPSeeOther(f"/tasks/{task_id}")


def setup(app: web.Application) -> None:
    app.router.add_get("/tasks", tasks)
    app.router.add_post("/tasks", task_create)
    app.router.add_get(r"/tasks/{task_id:\d+}", task)
    app.router.add_post(r"/tasks/{task_id:\d+}/comments", task_comment)
    app.router.add_post(r"/tasks/{task_id:\d+}/status", task_status)
    app.router.add_post(r"/tasks/{task_id:\d+}/assign", task_assign)
