"""CRM fixtures: the per-test SQLite database with the full-text tables, and the services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from contactd.crm.fts import create_fts
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import User
from contactd.db.session import Database
from contactd.enums import Role


@pytest.fixture
async def crm_db(db: Database) -> AsyncIterator[Database]:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    yield db


@pytest.fixture
def contacts(crm_db: Database) -> ContactService:
    return ContactService(crm_db, default_region="DE")


@pytest.fixture
def tasks(crm_db: Database) -> TaskService:
    return TaskService(crm_db)


AddUser = Callable[..., Awaitable[int]]


@pytest.fixture
def add_user(crm_db: Database) -> AddUser:
    async def add(
        username: str, *, role: Role = Role.AGENT, team: str | None = None,
        skills: list[str] | None = None, active: bool = True,
    ) -> int:
        async with crm_db.transaction() as session:
            user = User(username=username, password_hash="x", role=role, team=team,
                        skills=skills or [], active=active)
            session.add(user)
            await session.flush()
            return user.id

    return add
