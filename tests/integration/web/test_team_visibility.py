"""Teams: with `[web] team_visibility`, an agent reads only their team's records, on every
page and API route. The crawl walks the route table, so a new route naming a contact, task
or document by id cannot be forgotten."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import Settings, load_settings
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.migrate import upgrade
from contactd.db.models.crm import Document, Organisation, Task
from contactd.db.session import Database
from contactd.enums import DocumentKind, PartyKind, Role
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import csrf_of, sign_in

Client = TestClient[web.Request, web.Application]
ID_PARAMS = re.compile(r"\{(contact_id|task_id|document_id)\}")


@dataclass
class Teams:
    app: web.Application
    db: Database
    server: TestServer
    ours: dict[str, int]  # contact_id / task_id / document_id of alex's team
    theirs: dict[str, int]  # ... of the other team
    clients: list[Client]

    async def client(self, username: str) -> Client:
        client: Client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        response = await sign_in(client, username)
        assert response is not None and response.status == 303
        return client


async def _records(
    db: Database, contacts: ContactService, owner: int, name: str, phone: str
) -> dict[str, int]:
    contact_id = await contacts.create_contact(
        ContactInput(first_name=name, last_name="Teamcase", phones=[phone])
    )
    async with db.transaction() as session:
        org = await session.scalar(select(Organisation.id).where(Organisation.name == "Acme"))
        if org is None:
            acme = Organisation(name="Acme", kind=PartyKind.BUYER)
            session.add(acme)
            await session.flush()
            org = acme.id
    await contacts.update_contact(contact_id, owner_id=owner, organisation_id=org)
    async with db.transaction() as session:
        task = Task(title=f"Call {name}", contact_id=contact_id, assignee_id=owner)
        document = Document(
            contact_id=contact_id,
            kind=DocumentKind.LETTER,
            title=f"Letter to {name}",
            storage_path="nowhere.pdf",
        )
        session.add_all([task, document])
        await session.flush()
        return {"contact_id": contact_id, "task_id": task.id, "document_id": document.id}


@pytest.fixture
async def teams(tmp_path: Path) -> AsyncIterator[Teams]:
    settings = load_settings(
        None, {"CONTACTD_GENERAL__DATA_DIR": str(tmp_path), "CONTACTD_WEB__TEAM_VISIBILITY": "true"}
    )
    async with Database(settings.database_url) as db:
        await upgrade(db)  # search needs the full-text tables the migrations make
        async for found in _serve(db, settings):
            yield found


async def _serve(db: Database, settings: Settings) -> AsyncIterator[Teams]:
    users = UserService(db)
    await users.add("ada", "correct horse battery", Role.ADMIN)
    alex = await users.add("alex", "correct horse battery", Role.AGENT, team="north")
    bea = await users.add("bea", "correct horse battery", Role.AGENT, team="south")
    contacts = ContactService(db, default_region="GB")
    ours = await _records(db, contacts, alex.id, "Grace", "+44 20 7946 0101")
    theirs = await _records(db, contacts, bea.id, "Zelda", "+44 20 7946 0102")
    app = create_app(
        settings, db, HealthRegistry(), PanelServices(contacts=contacts, tasks=TaskService(db))
    )
    server = TestServer(app)
    await server.start_server()
    found = Teams(app, db, server, ours, theirs, [])
    try:
        yield found
    finally:
        for client in found.clients:
            await client.close()
        await server.close()


def _id_routes(app: web.Application) -> list[str]:
    paths = {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET"
        and route.resource is not None
        and ID_PARAMS.search(route.resource.canonical)
    }
    assert len(paths) >= 6, paths  # contacts, timeline, documents, tasks … on pages and API
    return sorted(paths)


async def test_an_agent_cannot_read_another_teams_records_on_any_page_or_api_route(
    teams: Teams,
) -> None:
    alex = await teams.client("alex")
    for path in _id_routes(teams.app):
        theirs = ID_PARAMS.sub(lambda m: str(teams.theirs[m.group(1)]), path)
        refused = await alex.get(theirs, allow_redirects=False)
        body = await refused.text()
        assert refused.status in (403, 404), f"{theirs}: {refused.status}"  # 403: role
        assert "Zelda" not in body, theirs
        if "document" in path:
            continue  # the stored file does not exist: the route may answer 404 for that
        ours = ID_PARAMS.sub(lambda m: str(teams.ours[m.group(1)]), path)
        own = (await alex.get(ours, allow_redirects=False)).status
        assert own in (200, 403), ours
        if own == 200:
            assert refused.status == 404, theirs

    # Lists and exports hold only the team's contacts.
    for path in (
        "/contacts",
        "/contacts?q=Teamcase",
        "/contacts/export.csv",
        "/api/v1/contacts",
        "/api/v1/contacts?q=Teamcase",
        "/tasks?view=team",
        "/api/v1/tasks",
    ):
        listed = await alex.get(path)
        body = await listed.text()
        assert listed.status == 200 and "Zelda" not in body, path
    assert "Grace" in await (await alex.get("/contacts?q=Teamcase")).text()
    async with teams.db.session() as session:
        acme = await session.scalar(select(Organisation.id))
    people = await (await alex.get(f"/organisations/{acme}")).text()
    assert "Grace" in people and "Zelda" not in people  # the organisation's people too

    # A change naming their contact is refused as unknown, and stores nothing.
    csrf = await csrf_of(alex)
    made = await alex.post(
        "/api/v1/tasks",
        headers={"X-CSRF-Token": csrf},
        json={"title": "Snoop", "contact_id": teams.theirs["contact_id"]},
    )
    assert made.status == 404 and (await made.json())["code"] == "not_found"

    # A supervisor or admin sees everyone's.
    ada = await teams.client("ada")
    page = await ada.get(f"/contacts/{teams.theirs['contact_id']}")
    assert page.status == 200 and "Zelda" in await page.text()
