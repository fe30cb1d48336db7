"""An SMS campaign on its panel page: a draft shows as such and has queued nothing; Start
decides and queues its messages, Pause cancels the ones not sent yet (the outbox rows and
the page say so), all without the dialer."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import Settings
from contactd.crm.fts import create_fts
from contactd.crm.routing import Router
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models import Consent, OutboxMessage
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.enums import CampaignMode, CampaignStatus, Channel, ConsentStatus, MessageState, Role
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.messaging.campaigns import CANCELLED, MessageCampaigns, MessageCampaignSpec
from contactd.messaging.service import MessagingService
from contactd.web.app import create_app
from contactd.web.services import PanelServices
from tests.integration.web.conftest import PASSWORD, csrf_of, sign_in


async def _post(client: TestClient[web.Request, web.Application], path: str) -> str:
    response = await client.post(
        path, data={"csrf_token": await csrf_of(client)}, allow_redirects=True
    )
    assert response.status == 200, await response.text()
    return await response.text()


async def test_an_sms_draft_is_started_then_paused_from_its_page(
    db: Database, panel_settings: Settings, tmp_path: Path
) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    await UserService(db).add("sam", PASSWORD, Role.SUPERVISOR)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "news.en.sms.j2").write_text("Hi {{ contact.first_name }}.")
    bus = EventBus()
    contacts = ContactService(db, default_region="GB")
    people = []
    for first, phone in (("Grace", "+44 7911 123456"), ("Alan", "+44 7911 123457")):
        contact_id = await contacts.create_contact(ContactInput(first_name=first, phones=[phone]))
        async with db.transaction() as session:
            session.add(
                Consent(
                    contact_id=contact_id,
                    channel=Channel.SMS,
                    status=ConsentStatus.GRANTED,
                    source="test",
                )
            )
        people.append(contact_id)
    router = Router(db, contacts, TaskService(db), bus=bus)
    messaging = MessagingService(panel_settings, db)  # not entered: stores, sends nothing
    campaigns = MessageCampaigns(
        panel_settings, db, router, messaging.outbox, messaging.templates, bus
    )
    drafted = await campaigns.draft(
        MessageCampaignSpec("news", CampaignMode.SMS, "news"), contacts=people
    )
    app = create_app(
        panel_settings,
        db,
        HealthRegistry(),
        PanelServices(bus=bus, contacts=contacts, message_campaigns=campaigns),
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await sign_in(client, "sam")).status == 303  # type: ignore[union-attr]
        page = f"/campaigns/{drafted.campaign_id}"
        shown = await (await client.get(page)).text()
        assert 'id="campaign-status">draft<' in shown
        async with db.session() as session:
            assert list(await session.scalars(select(OutboxMessage))) == []
        started = await _post(client, f"{page}/start")
        assert 'id="campaign-status">running<' in started and "Campaign started." in started
        async with db.session() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
        assert sorted(r.contact_id or 0 for r in rows) == sorted(people)
        assert {r.state for r in rows} == {MessageState.QUEUED}
        paused = await _post(client, f"{page}/pause")
        assert 'id="campaign-status">paused<' in paused and "Campaign paused." in paused
        async with db.session() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
            campaign = await session.get_one(Campaign, drafted.campaign_id)
        assert {(r.state, r.error) for r in rows} == {(MessageState.FAILED, CANCELLED)}
        assert campaign.status is CampaignStatus.PAUSED
    finally:
        await client.close()
