"""Public web-form intake on a real aiohttp server: a submission is stored before the 202,
becomes a lead (or lands on its contact) with a task assigned by policy, exactly once across
a restart; abuse is answered with 429/401/403 and bad input with problem+json naming the field.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from contactd.config import Settings, load_settings
from contactd.crm.events import InteractionRecorded
from contactd.crm.fts import create_fts
from contactd.crm.intake import WebIntake
from contactd.crm.routing import NEW_LEAD_TAG, Router
from contactd.crm.search import ContactSearch, Filters
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Contact, Interaction, Task, User
from contactd.db.session import Database
from contactd.enums import Role, TaskPriority, TaskSource
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.app import create_app
from contactd.web.intake_guard import SIGNATURE_HEADER, sign

SECRET = "s3cret-for-the-website"
FORMS = f"""
[general]
default_region = "DE"

[intake]
rate_limit = 8
rate_window_s = 60
max_body_bytes = 1024

[intake.forms.callback]
title = "Call-back request"
fields = ["name", "phone", "email", "preferred_time"]
required = ["phone"]
task = "callback"
team = "sales"
origins = ["https://www.example.net"]
honeypot = "website"

[intake.forms.question]
title = "Question"
fields = ["first_name", "last_name", "email", "message"]
required = ["email", "message"]
max_length = {{ message = 50 }}

[intake.forms.signed]
fields = ["email", "message"]
secret = "{SECRET}"
"""

Client = TestClient[web.Request, web.Application]


@dataclass
class Intake:
    client: Client
    db: Database
    routed: asyncio.Queue[InteractionRecorded]

    async def wait_routed(self) -> InteractionRecorded:
        return await asyncio.wait_for(self.routed.get(), 10)


@pytest.fixture
def intake_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "contactd.toml"
    path.write_text(FORMS)
    return load_settings(path, {})


@pytest.fixture
async def crm_db(db: Database) -> Database:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    return db


def _intake(db: Database, bus: EventBus) -> WebIntake:
    contacts = ContactService(db, default_region="DE")
    router = Router(db, contacts, TaskService(db, bus=bus), bus=bus)
    return WebIntake(db, router, contacts)


@pytest.fixture
async def site(crm_db: Database, intake_settings: Settings) -> AsyncIterator[Intake]:
    bus = EventBus()
    routed: asyncio.Queue[InteractionRecorded] = asyncio.Queue()
    bus.subscribe(InteractionRecorded, routed.put)
    async with _intake(crm_db, bus) as intake:
        app = create_app(intake_settings, crm_db, HealthRegistry(), intake=intake)
        async with TestClient(TestServer(app)) as client:
            yield Intake(client, crm_db, routed)


async def _count(db: Database, model: type[Interaction] | type[Task] | type[Contact]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _add_agent(db: Database, username: str, team: str) -> int:
    async with db.transaction() as session:
        user = User(username=username, password_hash="x", role=Role.AGENT, team=team, skills=[])
        session.add(user)
        await session.flush()
        return user.id


async def test_a_callback_request_becomes_a_new_lead_with_a_call_back_task_for_the_team(
    site: Intake,
) -> None:
    await _add_agent(site.db, "sol", "support")
    seller = await _add_agent(site.db, "sam", "sales")
    response = await site.client.post(
        "/intake/callback",
        json={
            "name": "Ada Lovelace",
            "phone": "030 1234567",
            "email": "Ada@Example.org",
            "preferred_time": "mornings",
        },
    )
    assert response.status == 202
    reference = (await response.json())["reference"]
    async with site.db.session() as session:  # stored before the answer, routed or not
        assert await session.get(Interaction, reference) is not None
    routed = await site.wait_routed()
    assert routed.interaction_id == reference
    async with site.db.session() as session:
        row = await session.get(Interaction, reference)
        assert row is not None and row.contact_id is not None
        assert row.data["intake"] == "done" and row.body == "preferred_time: mornings"
        lead = await session.scalar(
            select(Contact)
            .where(Contact.id == row.contact_id)
            .options(
                selectinload(Contact.tags),
                selectinload(Contact.phones),
                selectinload(Contact.emails),
            )
        )
        assert lead is not None
        assert (lead.first_name, lead.last_name) == ("Ada", "Lovelace")
        assert [p.e164 for p in lead.phones] == ["+49301234567"]
        assert [e.address for e in lead.emails] == ["ada@example.org"]
        assert [t.name for t in lead.tags] == [NEW_LEAD_TAG]
        [task] = list(await session.scalars(select(Task)))
    assert task.source is TaskSource.CALLBACK and task.priority is TaskPriority.HIGH
    assert task.title == "Call back Ada Lovelace" and task.team == "sales"
    assert task.assignee_id == seller and task.interaction_id == reference


async def test_a_phone_only_request_makes_its_named_lead_in_the_routing_batch(
    site: Intake,
) -> None:
    """One address only: the lead is made with the batch (named, tagged, its number parsed,
    found by its name in search), as the one-by-one path would make it."""
    response = await site.client.post(
        "/intake/callback", json={"name": "Mary Somerville", "phone": "030 7654321"}
    )
    assert response.status == 202
    reference = (await response.json())["reference"]
    await site.wait_routed()
    async with site.db.session() as session:
        row = await session.get(Interaction, reference)
        assert row is not None and row.contact_id is not None and row.data["intake"] == "done"
        lead = await session.scalar(
            select(Contact)
            .where(Contact.id == row.contact_id)
            .options(selectinload(Contact.tags), selectinload(Contact.phones))
        )
        assert lead is not None
        assert (lead.first_name, lead.last_name) == ("Mary", "Somerville")
        assert [(p.e164, p.is_primary) for p in lead.phones] == [("+49307654321", True)]
        assert [t.name for t in lead.tags] == [NEW_LEAD_TAG]
        [task] = list(await session.scalars(select(Task)))
    assert task.title == "Call back Mary Somerville" and task.contact_id == lead.id
    hits = (await ContactSearch(site.db).search(Filters(query="Somerville"))).hits
    assert [h.contact_id for h in hits] == [lead.id]


async def test_a_form_encoded_question_from_a_known_address_lands_on_that_contact(
    site: Intake,
) -> None:
    contacts = ContactService(site.db, default_region="DE")
    known = await contacts.create_contact(
        ContactInput(first_name="Grace", last_name="Hopper", emails=["grace@example.org"])
    )
    response = await site.client.post(
        "/intake/question", data={"email": "GRACE@example.org", "message": "Do you ship to Malawi?"}
    )
    assert response.status == 202
    routed = await site.wait_routed()
    assert routed.contact_id == known
    assert await _count(site.db, Contact) == 1
    async with site.db.session() as session:
        [task] = list(await session.scalars(select(Task)))
    assert task.title == "Reply to web lead from Grace Hopper"
    assert task.description == "message: Do you ship to Malawi?"


async def test_the_ninth_submission_from_one_address_gets_429_with_retry_after(
    site: Intake,
) -> None:
    for _ in range(8):
        response = await site.client.post("/intake/question", json={"email": "x"})
        assert response.status == 422  # refused input counts too: probing costs the same
    refused = await site.client.post(
        "/intake/question", json={"email": "a@example.org", "message": "hi"}
    )
    assert refused.status == 429
    assert refused.content_type == "application/problem+json"
    assert (await refused.json())["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert await _count(site.db, Interaction) == 0


async def test_a_filled_honeypot_gets_the_same_answer_and_is_kept_as_spam_only(
    site: Intake,
) -> None:
    bot = await site.client.post(
        "/intake/callback", json={"phone": "+49301234567", "website": "http://spam.example"}
    )
    assert bot.status == 202
    spam_id = (await bot.json())["reference"]
    person = await site.client.post("/intake/callback", json={"phone": "+49301234568"})
    assert person.status == 202
    routed = await site.wait_routed()  # the worker routes in order: the spam was skipped
    assert routed.interaction_id == (await person.json())["reference"]
    async with site.db.session() as session:
        spam = await session.get(Interaction, spam_id)
        assert spam is not None and spam.contact_id is None
        assert spam.data["intake"] == "spam" and spam.outcome == "spam"
    assert await _count(site.db, Task) == 1 and await _count(site.db, Contact) == 1


@pytest.mark.parametrize(
    ("form", "body", "status", "code", "field"),
    [
        ("callback", {"name": "No Number"}, 422, "invalid_input", "phone"),
        ("callback", {"phone": "12"}, 422, "invalid_input", "phone"),
        ("callback", {"phone": "+49301234567", "fax": "1"}, 422, "invalid_input", "fax"),
        ("callback", {"phone": "+49301234567", "name": 7}, 422, "invalid_input", "name"),
        ("callback", {"phone": "+49301234567", "name": "a\x00b"}, 422, "invalid_input", "name"),
        (
            "question",
            {"email": "a@example.org", "message": "x" * 51},
            422,
            "invalid_input",
            "message",
        ),
        ("question", {"email": "not-an-address", "message": "hi"}, 422, "invalid_input", "email"),
        ("question", {"email": "a@example.org"}, 422, "invalid_input", "message"),
        ("nosuchform", {"email": "a@example.org"}, 404, "unknown_form", None),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    site: Intake,
    form: str,
    body: dict[str, object],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = await site.client.post(f"/intake/{form}", json=body)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["code"] == code and problem.get("field") == field
    assert await _count(site.db, Interaction) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_body"),
        (b'["a list"]', "application/json", 400, "malformed_body"),
        (b"\xff\xfe", "application/json", 400, "malformed_body"),
        (
            b"email=a%40example.org&email=b%40example.org",
            "application/x-www-form-urlencoded",
            422,
            "invalid_input",
        ),
        (b"email=%ff", "application/x-www-form-urlencoded", 400, "malformed_body"),
        (b"<xml/>", "text/xml", 415, "unsupported_media_type"),
        (b"message=" + b"x" * 2000, "application/x-www-form-urlencoded", 413, "body_too_large"),
    ],
)
async def test_unreadable_bodies_are_refused_with_problem_json(
    site: Intake, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = await site.client.post(
        "/intake/question", data=body, headers={"Content-Type": content_type}
    )
    assert response.status == status
    assert (await response.json())["code"] == code
    assert await _count(site.db, Interaction) == 0


async def test_cors_preflight_and_posts_are_allowed_only_for_configured_origins(
    site: Intake,
) -> None:
    allowed = {"Origin": "https://www.example.net", "Access-Control-Request-Method": "POST"}
    preflight = await site.client.options("/intake/callback", headers=allowed)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://www.example.net"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert SIGNATURE_HEADER in preflight.headers["Access-Control-Allow-Headers"]
    other = await site.client.options(
        "/intake/callback",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers
    posted = await site.client.post(
        "/intake/callback",
        json={"phone": "+49301234567"},
        headers={"Origin": "https://www.example.net"},
    )
    assert posted.status == 202
    assert posted.headers["Access-Control-Allow-Origin"] == "https://www.example.net"
    refused = await site.client.post(
        "/intake/callback",
        json={"phone": "+49301234567"},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status == 403 and (await refused.json())["code"] == "origin_not_allowed"
    assert await _count(site.db, Interaction) == 1


async def test_a_signed_form_needs_a_fresh_valid_signature_used_once(site: Intake) -> None:
    body = json.dumps({"email": "a@example.org", "message": "signed"}).encode()
    headers = {"Content-Type": "application/json"}

    async def post(signature: str | None, payload: bytes = body) -> tuple[int, str]:
        extra = {SIGNATURE_HEADER: signature} if signature is not None else {}
        response = await site.client.post("/intake/signed", data=payload, headers=headers | extra)
        return response.status, (await response.json()).get("code", "")

    now = int(time.time())
    good = sign(SECRET, body, now)
    assert await post(None) == (401, "signature_required")
    assert await post("t=1,v1=zz") == (401, "signature_malformed")
    assert await post(sign(SECRET, body, now - 3600)) == (401, "signature_expired")
    assert await post(sign("wrong", body, now)) == (401, "bad_signature")
    assert await post(good, body.replace(b"signed", b"forged")) == (401, "bad_signature")
    assert (await post(good))[0] == 202
    assert await post(good) == (401, "signature_replayed")
    assert await _count(site.db, Interaction) == 1


async def test_a_submission_stored_before_a_crash_is_routed_exactly_once_after_restart(
    crm_db: Database, intake_settings: Settings
) -> None:
    # The daemon died after the 202 and before routing: a store-only intake stands for it.
    app = create_app(intake_settings, crm_db, HealthRegistry())
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/intake/callback", json={"phone": "+49301234567"})
        assert response.status == 202
        reference = (await response.json())["reference"]
    assert await _count(crm_db, Task) == 0
    async with _intake(crm_db, EventBus()) as intake:  # the restart: swept on entry
        assert await intake.route(reference) is False
    assert await _count(crm_db, Task) == 1 and await _count(crm_db, Contact) == 1
    async with _intake(crm_db, EventBus()) as intake:  # a second restart adds nothing
        assert await intake.sweep() == 0
    assert await _count(crm_db, Task) == 1 and await _count(crm_db, Contact) == 1
