"""Organisations and the products catalogue: create, list by kind and name, card with people
and linked products, edit (audited), roles, and refused bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import AuditEntry, Organisation, Product
from contactd.db.session import Database
from tests.integration.web.conftest import Signed


async def test_organisations_and_products_from_create_to_card(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    agent = await signed_in("alex")
    made = await agent.client.post("/organisations", data={
        "csrf_token": agent.csrf, "name": "Acme Supplies", "kind": "supplier",
        "website": "acme.example"}, allow_redirects=False)
    assert made.status == 303
    org_url = made.headers["Location"]
    org_id = int(org_url.rsplit("/", 1)[1])
    await ContactService(db, default_region="GB").create_contact(ContactInput(
        first_name="Wile", last_name="Coyote", organisation_id=org_id))
    await agent.client.post("/organisations", data={
        "csrf_token": agent.csrf, "name": "Buyers Ltd", "kind": "buyer"})
    suppliers = await (await agent.client.get("/organisations",
                                              params={"kind": "supplier"})).text()
    assert "Acme Supplies" in suppliers and "Buyers Ltd" not in suppliers
    by_name = await (await agent.client.get("/organisations", params={"q": "buy"})).text()
    assert "Buyers Ltd" in by_name and "Acme Supplies" not in by_name

    # The catalogue is kept by supervisors.
    assert (await agent.client.post("/products", data={
        "csrf_token": agent.csrf, "sku": "X", "name": "x", "kind": "product",
        "unit_price": "1"})).status == 403
    supervisor = await signed_in("sam")
    product = await supervisor.client.post("/products", data={
        "csrf_token": supervisor.csrf, "sku": "ANV-1", "name": "Anvil", "kind": "product",
        "unit_price": "49,90", "currency": "eur"}, allow_redirects=False)
    assert product.status == 303
    product_url = product.headers["Location"]
    linked = await agent.client.post(f"{org_url}/products", data={
        "csrf_token": agent.csrf, "product_id": product_url.rsplit("/", 1)[1],
        "relation": "supplies"}, allow_redirects=False)
    assert linked.status == 303
    card = await (await agent.client.get(org_url)).text()
    assert "Wile Coyote" in card and "Anvil" in card and "supplies" in card
    product_card = await (await agent.client.get(product_url)).text()
    assert "Acme Supplies" in product_card and "€49.90" in product_card  # Babel's format

    edited = await agent.client.post(org_url, data={
        "csrf_token": agent.csrf, "name": "Acme Supplies", "kind": "partner",
        "notes": "since 1949"}, allow_redirects=False)
    assert edited.status == 303
    await supervisor.client.post(product_url, data={
        "csrf_token": supervisor.csrf, "name": "Anvil", "kind": "product",
        "unit_price": "59.90", "currency": "EUR"})
    async with db.session() as session:
        org = await session.get(Organisation, org_id)
        anvil = await session.scalar(select(Product))
        actions = sorted((await session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity.in_(["organisation", "product"])))).all())
    assert org is not None and (org.kind.value, org.notes, org.website) == (
        "partner", "since 1949", None)
    assert anvil is not None and (str(anvil.unit_price), anvil.active) == ("59.90", False)
    assert actions == ["organisation.create", "organisation.create", "organisation.update",
                       "product.create", "product.link", "product.update"]


async def test_bad_catalogue_input_is_refused_by_name(
    signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    supervisor = await signed_in("sam")
    csrf = {"csrf_token": supervisor.csrf}
    for path, form, message in (
        ("/organisations", {"name": "", "kind": "buyer"}, "name is required"),
        ("/organisations", {"name": "X", "kind": "rival"}, "kind has no choice"),
        ("/products", {"sku": "A", "name": "A", "kind": "product", "unit_price": "cheap"},
         "is not a price"),
        ("/products", {"sku": "A", "name": "A", "kind": "product", "unit_price": "-1"},
         "a price is a number from 0"),
        ("/products", {"sku": "A", "name": "A", "kind": "product", "unit_price": "1",
                       "currency": "eu1"}, "a currency is three letters"),
    ):
        response = await supervisor.client.post(path, data={**csrf, **form})
        assert response.status == 422, form
        assert message in await response.text(), form
    assert (await supervisor.client.get("/organisations/999")).status == 404
    assert (await supervisor.client.get("/products/999")).status == 404
