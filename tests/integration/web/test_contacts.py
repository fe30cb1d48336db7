"""The contacts table: search by part of a name, filters, the rows-only answer the page's
script asks for while the user types, and refused bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contactd.crm.fts import create_fts
from contactd.crm.service import ContactInput, ContactService
from contactd.db.session import Database
from tests.integration.web.conftest import Signed


async def _people(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)  # the shared fixture builds the tables, not the index
    service = ContactService(db, default_region="GB")
    await service.create_contact(ContactInput(first_name="Ada", last_name="Lovelace",
                                              phones=["+44 20 7946 0001"], tags=["vip"]))
    await service.create_contact(ContactInput(first_name="Grace", last_name="Hopper",
                                              emails=["grace@example.org"]))


async def test_half_a_surname_finds_the_contact(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _people(db)
    agent = await signed_in("alex")
    page = await agent.client.get("/contacts", params={"q": "Lovel"})
    text = await page.text()
    assert page.status == 200 and "Ada Lovelace" in text and "Hopper" not in text
    assert "<html" in text
    rows = await agent.client.get("/contacts", params={"q": "hop"},
                                  headers={"X-Partial": "rows"})
    rows_text = await rows.text()
    assert "Grace Hopper" in rows_text and "Lovelace" not in rows_text
    assert "<html" not in rows_text
    everyone = await (await agent.client.get("/contacts")).text()
    assert "Ada Lovelace" in everyone and "Grace Hopper" in everyone
    tagged = await (await agent.client.get("/contacts", params={"tag": "vip"})).text()
    assert "Ada Lovelace" in tagged and "Grace Hopper" not in tagged
    none = await (await agent.client.get("/contacts", params={"q": "zzyzx"})).text()
    assert "No contact matches." in none


async def test_bad_list_parameters_are_refused_by_name(
    signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    agent = await signed_in("alex")
    for params, message in (
        ({"after": "-3"}, "after is not a position in this list"),
        ({"sort": "shoe size"}, "sort must be one of"),
        ({"kind": "rival"}, "kind must be one of"),
        ({"owner": "bob"}, "owner must be me or a user id"),
        ({"value": "gold"}, "choose the custom field"),
    ):
        response = await agent.client.get("/contacts", params=params)
        assert response.status == 422, params
        assert message in await response.text(), params
