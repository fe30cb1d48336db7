"""SMS and e-mail from a template on the card: the preview shows the exact text and its
segment count, the send queues that very text in the outbox once (double submit included),
a stale preview and a revoked consent are refused."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import Consent, OutboxMessage
from contactd.db.session import Database
from contactd.enums import Channel, ConsentStatus
from contactd.messaging.encoding import split_message
from tests.integration.web.conftest import Signed

FIELD_RE = r'name="{}" value="([^"]*)"'


def _field(text: str, name: str) -> str:
    found = re.search(FIELD_RE.format(name), text)
    assert found, name
    return found.group(1)


async def _contact(db: Database) -> int:
    return await ContactService(db, default_region="GB").create_contact(ContactInput(
        first_name="Ada", last_name="Lovelace", phones=["+44 7911 123456"],
        emails=["ada@example.org"]))


async def test_the_previewed_sms_is_the_one_queued_and_only_once(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _contact(db)
    agent = await signed_in("alex")
    card = await (await agent.client.get(f"/contacts/{contact_id}")).text()
    assert f"/contacts/{contact_id}/message?channel=sms" in card
    preview = await agent.client.get(f"/contacts/{contact_id}/message",
                                     params={"channel": "sms", "template": "call_fallback"})
    text = await preview.text()
    assert preview.status == 200
    shown = re.search(r'<pre class="message-text">(.*?)</pre>', text, re.S)
    assert shown and "Ada" in shown.group(1)
    body = shown.group(1).replace("&#39;", "'").replace("&amp;", "&")
    segments = len(split_message(body, 0))
    assert f"{segments} SMS segment" in text and "+447911123456" in text
    form = {"csrf_token": agent.csrf, "channel": "sms", "template": "call_fallback",
            "digest": _field(text, "digest"), "nonce": _field(text, "nonce")}
    for _ in range(2):  # a double submit
        sent = await agent.client.post(f"/contacts/{contact_id}/message", data=form)
        assert sent.status == 200 and "Queued for +447911123456." in await sent.text()
    async with db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert len(rows) == 1
    assert (rows[0].channel, rows[0].to_address, rows[0].body, rows[0].contact_id) == (
        Channel.SMS, "+447911123456", body, contact_id)


async def test_a_stale_preview_and_a_revoked_consent_are_refused(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await _contact(db)
    agent = await signed_in("alex")
    text = await (await agent.client.get(f"/contacts/{contact_id}/message",
                                         params={"channel": "email"})).text()
    assert "Subject" in text and "ada@example.org" in text
    await ContactService(db, default_region="GB").update_contact(contact_id, first_name="Augusta")
    stale = await agent.client.post(f"/contacts/{contact_id}/message", data={
        "csrf_token": agent.csrf, "channel": "email", "template": _field(text, "template"),
        "digest": _field(text, "digest"), "nonce": _field(text, "nonce")})
    assert stale.status == 409 and "the text changed since the preview" in await stale.text()
    async with db.transaction() as session:
        session.add(Consent(contact_id=contact_id, channel=Channel.SMS,
                            status=ConsentStatus.REVOKED, source="sms STOP"))
    refused = await agent.client.get(f"/contacts/{contact_id}/message",
                                     params={"channel": "sms"})
    assert refused.status == 422 and "revoked consent for sms" in await refused.text()
    bad = await agent.client.get(f"/contacts/{contact_id}/message", params={"channel": "fax"})
    assert bad.status == 422 and "channel must be sms or email" in await bad.text()
    async with db.session() as session:
        assert (await session.scalars(select(OutboxMessage))).all() == []
