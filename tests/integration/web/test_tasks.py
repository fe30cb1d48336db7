"""Tasks in the panel: the three lists, create from the list and from a card (by policy or
by hand), comment, assign, close and reopen, refused transitions and bad input, all audited."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select, update

from contactd.crm.service import ContactInput, ContactService
from contactd.db.base import utcnow
from contactd.db.models import AuditEntry, Task, User
from contactd.db.session import Database
from contactd.enums import TaskStatus
from tests.integration.web.conftest import Signed


async def _ids(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        rows = dict((await session.execute(select(User.username, User.id))).all())
        # alex and sam share a team; ada is elsewhere.
        await session.execute(update(User).where(User.username.in_(["alex", "sam"]))
                              .values(team="north"))
        await session.execute(update(User).where(User.username == "ada").values(team="south"))
    return {str(k): int(v) for k, v in rows.items()}


async def _new(agent: Signed, **form: str) -> str:
    response = await agent.client.post("/tasks", data={"csrf_token": agent.csrf, **form},
                                       allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def test_the_three_lists_show_the_right_tasks(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    ids = await _ids(db)
    agent = await signed_in("alex")
    supervisor = await signed_in("sam")
    await _new(agent, title="Mine soon", assignee_id="me")
    past = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await _new(supervisor, title="Sam late", assignee_id=str(ids["sam"]), due_at=past)
    admin = await signed_in("ada")
    await _new(admin, title="South late", assignee_id=str(ids["ada"]), due_at=past)
    mine = await (await agent.client.get("/tasks")).text()
    assert "Mine soon" in mine and "Sam late" not in mine
    team = await (await agent.client.get("/tasks", params={"view": "team"})).text()
    assert "Mine soon" in team and "Sam late" in team and "South late" not in team
    overdue = await (await agent.client.get("/tasks", params={"view": "overdue"})).text()
    assert "Sam late" in overdue and "Mine soon" not in overdue and "South late" not in overdue
    # A supervisor sees every overdue task.
    everyone = await (await supervisor.client.get("/tasks", params={"view": "overdue"})).text()
    assert "Sam late" in everyone and "South late" in everyone
    bad = await agent.client.get("/tasks", params={"view": "yesterday"})
    assert bad.status == 422 and "view must be one of" in await bad.text()


async def test_a_task_from_the_card_is_assigned_by_policy_to_the_contacts_owner(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    ids = await _ids(db)
    contact_id = await ContactService(db, default_region="GB").create_contact(
        ContactInput(first_name="Ada", last_name="Lovelace", owner_id=ids["sam"]))
    agent = await signed_in("alex")
    card = await (await agent.client.get(f"/contacts/{contact_id}")).text()
    assert 'action="/tasks"' in card and f'name="contact_id" value="{contact_id}"' in card
    back = await _new(agent, title="Send the contract", contact_id=str(contact_id), back="card")
    assert back == f"/contacts/{contact_id}"
    async with db.session() as session:
        task = await session.scalar(select(Task).where(Task.title == "Send the contract"))
    assert task is not None and task.assignee_id == ids["sam"]  # keep-owner policy
    after = await (await agent.client.get(back)).text()
    assert "Send the contract" in after  # on the timeline


async def test_comment_assign_close_and_reopen_are_audited(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    ids = await _ids(db)
    agent = await signed_in("alex")
    url = await _new(agent, title="Call back", assignee_id="me", priority="high")
    task_id = int(url.rsplit("/", 1)[1])
    csrf = {"csrf_token": agent.csrf}
    assert (await agent.client.post(f"{url}/comments", data={**csrf, "body": "Left a voicemail"},
                                    allow_redirects=False)).status == 303
    assert (await agent.client.post(f"{url}/assign", data={**csrf,
                                    "assignee_id": str(ids["sam"])},
                                    allow_redirects=False)).status == 303
    assert (await agent.client.post(f"{url}/status", data={**csrf, "status": "done"},
                                    allow_redirects=False)).status == 303
    text = await (await agent.client.get(url)).text()
    assert "Left a voicemail" in text and "Reopen" in text and "Close as done" not in text
    again = await agent.client.post(f"{url}/status", data={**csrf, "status": "done"})
    assert again.status == 409 and "cannot go from done to done" in await again.text()
    assert (await agent.client.post(f"{url}/status", data={**csrf, "status": "open"},
                                    allow_redirects=False)).status == 303
    async with db.session() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        assert (task.status, task.assignee_id) == (TaskStatus.OPEN, ids["sam"])
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "task").order_by(AuditEntry.id))).all()
    assert actions == ["task.create", "task.comment", "task.assign", "task.status",
                       "task.status"]
    for path, form, message in (
        (f"{url}/comments", {"body": " "}, "a comment is 1 to 10000 characters"),
        (f"{url}/assign", {"assignee_id": "9999"}, "no active user 9999"),
        (f"{url}/status", {"status": "lost"}, "status has no choice"),
        ("/tasks", {"title": ""}, "a task title is 1 to 300 characters"),
        ("/tasks", {"title": "x", "due_at": "soon"}, "is not a date and time"),
    ):
        response = await agent.client.post(path, data={**csrf, **form})
        assert response.status == 422, path
        assert message in await response.text(), path
    assert (await agent.client.get("/tasks/424242")).status == 404
    assert re.search(r"Call back", await (await agent.client.get("/tasks")).text()) is None


async def test_a_long_list_goes_on_page_after_page(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    ids = await _ids(db)
    soon = utcnow() + timedelta(hours=1)
    async with db.transaction() as session:
        session.add_all(
            Task(
                title=f"Call back #{n:03d}",
                assignee_id=ids["alex"],
                due_at=soon + timedelta(minutes=n) if n < 70 else None,
            )
            for n in range(80)
        )
    agent = await signed_in("alex")
    seen: list[str] = []
    html = await (await agent.client.get("/tasks")).text()
    while True:
        seen += re.findall(r"Call back #(\d{3})", html)
        link = re.search(r'href="(/tasks\?view=mine&amp;after=[^"]+)" rel="next"', html)
        if link is None:
            break
        html = await (await agent.client.get(link.group(1).replace("&amp;", "&"))).text()
        assert "First page" in html
    assert seen == [f"{n:03d}" for n in range(80)]  # soonest first, undated last, each once
    bad = await agent.client.get("/tasks", params={"after": "yesterday"})
    assert bad.status == 422 and "after is not a position" in await bad.text()
