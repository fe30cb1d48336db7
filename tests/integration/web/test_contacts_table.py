"""The contacts table completed: filters by owner, kind and custom field, sorts, pages by key
(nothing repeated or skipped), bulk tag and assign with their roles and audit rows, and an
export holding exactly the rows, order and columns of the view, spreadsheet-safe."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable

from openpyxl import load_workbook
from sqlalchemy import select

from contactd.crm.fts import create_fts
from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import AuditEntry, Contact, User
from contactd.db.session import Database
from contactd.enums import CustomFieldType, PartyKind
from tests.integration.web.conftest import Signed

NAME_RE = re.compile(r'<a href="/contacts/(\d+)">([^<]+)</a>')


async def _book(db: Database, n: int = 0) -> ContactService:
    async with db.engine.begin() as conn:
        await conn.run_sync(create_fts)
    service = ContactService(db, default_region="GB")
    await service.define_field("tier", "Tier", CustomFieldType.CHOICE, choices=["gold", "silver"])
    org = await service.create_organisation("Acme Supplies", PartyKind.SUPPLIER)
    await service.create_contact(ContactInput(first_name="Ada", last_name="Lovelace",
                                              custom={"tier": "gold"}, kind=PartyKind.BUYER))
    await service.create_contact(ContactInput(first_name="Grace", last_name="Hopper",
                                              organisation_id=org))
    await service.create_contact(ContactInput(first_name="=cmd|' /C calc'!A0",
                                              last_name="Zed", custom={"tier": "silver"}))
    for i in range(n):
        await service.create_contact(ContactInput(first_name=f"P{i:03d}", last_name="Same"))
    return service


async def _names(agent: Signed, **params: str) -> list[str]:
    response = await agent.client.get("/contacts", params=params)
    assert response.status == 200, await response.text()
    return [name for _id, name in NAME_RE.findall(await response.text())]


async def test_filters_by_kind_owner_and_custom_field_and_sorts(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _book(db)
    agent = await signed_in("alex")
    # A person's own kind, else their company's.
    assert await _names(agent, kind="buyer") == ["Ada Lovelace"]
    assert await _names(agent, kind="supplier") == ["Grace Hopper"]
    assert await _names(agent, field="tier", value="gold") == ["Ada Lovelace"]
    by_name = await _names(agent, sort="name")
    assert by_name[:2] == ["Grace Hopper", "Ada Lovelace"]
    newest = await _names(agent, sort="newest")
    assert newest[0].endswith("Zed") and newest[-1] == "Ada Lovelace"
    async with db.transaction() as session:
        alex = await session.scalar(select(User.id).where(User.username == "alex"))
        ada = await session.scalar(select(Contact).where(Contact.first_name == "Ada"))
        assert ada is not None
        ada.owner_id = alex
    assert await _names(agent, owner="me") == ["Ada Lovelace"]
    assert await _names(agent, sort="updated") == ["Ada Lovelace", *newest[:-1]]


async def test_pages_follow_the_key_and_never_repeat_or_skip(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _book(db, n=117)  # 120 contacts, 117 with the same last name
    agent = await signed_in("alex")
    for sort in ("name", "newest", "updated"):
        seen: list[str] = []
        url: str | None = f"/contacts?sort={sort}"
        while url is not None:
            text = await (await agent.client.get(url)).text()
            seen.extend(cid for cid, _name in NAME_RE.findall(text))
            found = re.search(r'href="(/contacts\?[^"]*after=[^"]+)" rel="next"', text)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert len(seen) == 120 and len(set(seen)) == 120, sort


async def test_bulk_tag_by_an_agent_and_bulk_assign_by_a_supervisor_are_audited(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _book(db)
    async with db.session() as session:
        ids = [str(i) for i in (await session.scalars(select(Contact.id))).all()]
        sam = await session.scalar(select(User.id).where(User.username == "sam"))
    agent = await signed_in("alex")
    tagged = await agent.client.post("/contacts/bulk/tag", data=[
        ("csrf_token", agent.csrf), ("tag", "spring"), ("back", "/contacts?sort=name"),
        *(("id", i) for i in ids[:2])], allow_redirects=False)
    assert tagged.status == 303 and tagged.headers["Location"] == "/contacts?sort=name&done=2"
    back = await agent.client.get(tagged.headers["Location"])
    assert "2 contacts changed." in await back.text()
    assert len(await _names(agent, tag="spring")) == 2
    refused = await agent.client.post("/contacts/bulk/assign", data=[
        ("csrf_token", agent.csrf), ("owner_id", str(sam)), ("id", ids[0])])
    assert refused.status == 403
    supervisor = await signed_in("sam")
    assigned = await supervisor.client.post("/contacts/bulk/assign", data=[
        ("csrf_token", supervisor.csrf), ("owner_id", str(sam)), ("back", "//evil.example"),
        *(("id", i) for i in ids)], allow_redirects=False)
    assert assigned.status == 303 and assigned.headers["Location"] == "/contacts?done=3"
    async with db.session() as session:
        owners = set((await session.scalars(select(Contact.owner_id))).all())
        actions = sorted((await session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "contact"))).all())
    assert owners == {sam}
    assert actions == ["contact.tag"] * 2 + ["contact.update"] * 3
    empty = await supervisor.client.post("/contacts/bulk/tag", data={
        "csrf_token": supervisor.csrf, "tag": "x"})
    assert empty.status == 422 and "select at least one contact" in await empty.text()


async def test_the_export_holds_exactly_the_view_and_is_spreadsheet_safe(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    await _book(db)
    agent = await signed_in("alex")
    shown = await _names(agent, sort="newest", field="tier", value="silver")
    response = await agent.client.get("/contacts/export.csv",
                                      params={"sort": "newest", "field": "tier",
                                              "value": "silver"})
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert rows[0] == ["Name", "Organisation", "Phone", "E-mail", "Owner"]
    assert len(rows) - 1 == len(shown) == 1
    assert rows[1][0] == "'=cmd|' /C calc'!A0 Zed"  # neutralised, not a formula
    everything = await _names(agent, sort="name")
    xlsx = await agent.client.get("/contacts/export.xlsx", params={"sort": "name"})
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None
    names = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert names == [n.replace("&#39;", "'") for n in everything]
    cell = sheet.cell(row=names.index("=cmd|' /C calc'!A0 Zed") + 2, column=1)
    assert cell.data_type == "s"
