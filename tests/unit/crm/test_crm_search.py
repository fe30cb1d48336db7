from __future__ import annotations

from sqlalchemy import text

from contactd.crm.routing import InboundContact, Router
from contactd.crm.search import ContactSearch, Filters, terms
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.session import Database
from contactd.enums import Channel, CustomFieldType, Direction, InteractionKind, PartyKind


def test_query_terms() -> None:
    assert terms("Müller  GmbH") == ["muller", "gmbh"]
    assert terms("+49 (30) 123-45") == ["493012345"]
    assert terms('a"b OR c*') == ["a", "b", "or", "c"]


async def seed(contacts: ContactService) -> dict[str, int]:
    await contacts.define_field("tier", "Tier", CustomFieldType.CHOICE, choices=["Gold"])
    org = await contacts.create_organisation("Schmidt Logistik", PartyKind.BUYER)
    ids = {
        "schmidt": await contacts.create_contact(ContactInput(
            first_name="Hans", last_name="Schmidt", phones=["030 1234567"], tags=["vip"])),
        "employee": await contacts.create_contact(ContactInput(
            first_name="Eva", last_name="Braun", organisation_id=org, owner_id=None)),
        "notes": await contacts.create_contact(ContactInput(
            first_name="Karl", last_name="Klein", notes="met Schmidt at the fair")),
        "muller": await contacts.create_contact(ContactInput(
            first_name="Jürgen", last_name="Müller", emails=["jm@example.org"],
            tags=["vip", "north"], custom={"tier": "Gold"})),
    }
    return ids


async def test_ranking_name_before_company_before_notes(
    crm_db: Database, contacts: ContactService
) -> None:
    ids = await seed(contacts)
    search = ContactSearch(crm_db)
    hits = (await search.search("schmidt")).hits
    assert [h.contact_id for h in hits][:1] == [ids["schmidt"]]
    assert {h.contact_id for h in hits} == {ids["schmidt"], ids["employee"], ids["notes"]}
    scores = [h.score for h in hits]
    assert scores == sorted(scores)
    by_number = (await search.search("030 123")).hits
    assert [h.contact_id for h in by_number] == [ids["schmidt"]]
    assert by_number[0].phone == "+49301234567"
    accents = (await search.search("muller")).hits
    assert [h.contact_id for h in accents] == [ids["muller"]]
    assert [h.contact_id for h in (await search.search("Müll")).hits] == [ids["muller"]]
    assert (await search.search("jm@example.org")).hits[0].email == "jm@example.org"
    assert (await search.search("nobody")).hits == []
    assert (await search.search('"')).hits == []


async def test_transcripts_are_searched_and_rank_below_records(
    crm_db: Database, contacts: ContactService
) -> None:
    ids = await seed(contacts)
    router = Router(crm_db, contacts, TaskService(crm_db))
    await router.record(InboundContact(
        kind=InteractionKind.IVR_SESSION, direction=Direction.INBOUND, channel=Channel.CALL,
        contact_id=ids["muller"], transcript="I want to cancel my schmidt subscription",
    ))
    hits = (await ContactSearch(crm_db).search("schmidt")).hits
    assert hits[0].contact_id == ids["schmidt"]
    assert ids["muller"] in {h.contact_id for h in hits}
    only_transcript = (await ContactSearch(crm_db).search("subscription")).hits
    assert [h.contact_id for h in only_transcript] == [ids["muller"]]


async def test_filters_and_segments(crm_db: Database, contacts: ContactService) -> None:
    ids = await seed(contacts)
    search = ContactSearch(crm_db)
    vip = (await search.search(Filters(tags=("vip",)))).hits
    assert [h.contact_id for h in vip] == [ids["muller"], ids["schmidt"]]  # by last name
    both = (await search.search(Filters(tags=("vip", "north")))).hits
    assert [h.contact_id for h in both] == [ids["muller"]]
    gold = (await search.search(Filters(custom=(("tier", "Gold"),)))).hits
    assert [h.contact_id for h in gold] == [ids["muller"]]
    await contacts.save_segment("vip-people", {"tags": ["vip"]})
    seg = (await search.search(Filters(query="hans", segment="vip-people"))).hits
    assert [h.contact_id for h in seg] == [ids["schmidt"]]


async def test_index_follows_updates_and_deletes(crm_db: Database,
                                                 contacts: ContactService) -> None:
    cid = await contacts.create_contact(ContactInput(last_name="Oldname"))
    await contacts.update_contact(cid, last_name="Newname")
    search = ContactSearch(crm_db)
    assert (await search.search("oldname")).hits == []
    assert [h.contact_id for h in (await search.search("newname")).hits] == [cid]
    async with crm_db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM contacts WHERE id = :id"), {"id": cid})
        check = await conn.execute(
            text("INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('integrity-check', 1)")
        )
        assert check is not None
    assert (await search.search("newname")).hits == []
