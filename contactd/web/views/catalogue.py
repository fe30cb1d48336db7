"""Organisations (buyer, supplier, partner; their people and products) and the products and
services catalogue: lists, cards, create and edit. Agents keep organisations; supervisors
keep the catalogue. Every change is audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from contactd.auth import audit
from contactd.crm.catalogue import (
    list_organisations,
    list_products,
    organisation_card,
    parse_price,
    product_card,
    update_organisation,
    update_product,
)
from contactd.enums import PartyKind, ProductKind, ProductRelation, Role
from contactd.errors import ValidationError
from contactd.web.access import requires, visible_owners
from contactd.web.keys import CONTACTS, DATABASE
from contactd.web.render import page
from contactd.web.views.records import actor_of


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound()
    return int(raw)


def _text(form: MultiDictProxy[Any], name: str, limit: int, *, required: bool = False) -> str:
    value = str(form.get(name, "")).strip()
    if required and not value:
        raise ValidationError(f"{name} is required", field=name)
    if len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    return value


def _kind(raw: str, enum: Any, field: str) -> Any:
    try:
        return enum(raw)
    except ValueError:
        raise ValidationError(f"{field} has no choice {raw!r}", field=field) from None


def _org_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {"name": _text(form, "name", 200, required=True),
            "kind": _kind(str(form.get("kind", "")), PartyKind, "kind"),
            "vat_number": _text(form, "vat_number", 64) or None,
            "website": _text(form, "website", 300) or None,
            "notes": _text(form, "notes", 20_000)}


@requires(Role.AGENT)
async def organisations(request: web.Request) -> web.StreamResponse:
    name = request.query.get("q", "").strip()[:200]
    raw_kind = request.query.get("kind", "")
    kind = _kind(raw_kind, PartyKind, "kind") if raw_kind else None
    rows = await list_organisations(request.app[DATABASE], name=name, kind=kind)
    return page(request, "organisations.html", {"rows": rows, "q": name, "kind": raw_kind,
                                                "kinds": list(PartyKind)})


@requires(Role.AGENT)
async def organisation_create(request: web.Request) -> web.StreamResponse:
    values = _org_values(await request.post())
    org_id = await request.app[CONTACTS].create_organisation(**values)
    async with request.app[DATABASE].transaction() as session:
        audit.record(session, actor_of(request), "organisation.create", "organisation", org_id,
                     None, {"name": values["name"], "kind": values["kind"].value})
    raise web.HTTPSeeOther(f"/organisations/{org_id}")


@requires(Role.AGENT)
async def organisation(request: web.Request) -> web.StreamResponse:
    card = await organisation_card(request.app[DATABASE], _id(request, "organisation_id"),
                                   await visible_owners(request))
    return page(request, "organisation.html", {
        "card": card, "o": card.organisation, "kinds": list(PartyKind),
        "relations": list(ProductRelation),
        "catalogue": await list_products(request.app[DATABASE])})


@requires(Role.AGENT)
async def organisation_edit(request: web.Request) -> web.StreamResponse:
    org_id = _id(request, "organisation_id")
    await update_organisation(request.app[DATABASE], org_id, _org_values(await request.post()),
                              actor=actor_of(request))
    raise web.HTTPSeeOther(f"/organisations/{org_id}")


@requires(Role.AGENT)
async def organisation_link(request: web.Request) -> web.StreamResponse:
    org_id = _id(request, "organisation_id")
    form = await request.post()
    raw = str(form.get("product_id", ""))
    if not raw.isdigit():
        raise ValidationError("choose a product", field="product_id")
    relation = _kind(str(form.get("relation", "")), ProductRelation, "relation")
    await organisation_card(request.app[DATABASE], org_id)  # 404 for an unknown one
    await product_card(request.app[DATABASE], int(raw))
    link_id = await request.app[CONTACTS].link_product(int(raw), relation,
                                                       organisation_id=org_id)
    async with request.app[DATABASE].transaction() as session:
        audit.record(session, actor_of(request), "product.link", "organisation", org_id, None,
                     {"link_id": link_id, "product_id": int(raw), "relation": relation.value})
    raise web.HTTPSeeOther(f"/organisations/{org_id}")


def _product_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    currency = _text(form, "currency", 3).upper() or "EUR"
    if len(currency) != 3 or not currency.isalpha():
        raise ValidationError("a currency is three letters (EUR, GBP …)", field="currency")
    return {"name": _text(form, "name", 200, required=True),
            "kind": _kind(str(form.get("kind", "")), ProductKind, "kind"),
            "unit_price": parse_price(str(form.get("unit_price", ""))),
            "currency": currency, "description": _text(form, "description", 20_000)}


@requires(Role.AGENT)
async def products(request: web.Request) -> web.StreamResponse:
    text = request.query.get("q", "").strip()[:200]
    rows = await list_products(request.app[DATABASE], text=text)
    return page(request, "products.html", {"rows": rows, "q": text,
                                           "kinds": list(ProductKind)})


@requires(Role.SUPERVISOR)
async def product_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = _product_values(form)
    sku = _text(form, "sku", 64, required=True)
    product_id = await request.app[CONTACTS].create_product(
        sku, values["name"], values["kind"], values["unit_price"], currency=values["currency"],
        description=values["description"])
    async with request.app[DATABASE].transaction() as session:
        audit.record(session, actor_of(request), "product.create", "product", product_id, None,
                     {"sku": sku, "name": values["name"]})
    raise web.HTTPSeeOther(f"/products/{product_id}")


@requires(Role.AGENT)
async def product(request: web.Request) -> web.StreamResponse:
    card = await product_card(request.app[DATABASE], _id(request, "product_id"))
    return page(request, "product.html", {"card": card, "p": card.product,
                                          "kinds": list(ProductKind)})


@requires(Role.SUPERVISOR)
async def product_edit(request: web.Request) -> web.StreamResponse:
    product_id = _id(request, "product_id")
    form = await request.post()
    values = {**_product_values(form), "active": form.get("active") == "1"}
    await update_product(request.app[DATABASE], product_id, values, actor=actor_of(request))
    raise web.HTTPSeeOther(f"/products/{product_id}")


def setup(app: web.Application) -> None:
    app.router.add_get("/organisations", organisations)
    app.router.add_post("/organisations", organisation_create)
    app.router.add_get(r"/organisations/{organisation_id:\d+}", organisation)
    app.router.add_post(r"/organisations/{organisation_id:\d+}", organisation_edit)
    app.router.add_post(r"/organisations/{organisation_id:\d+}/products", organisation_link)
    app.router.add_get("/products", products)
    app.router.add_post("/products", product_create)
    app.router.add_get(r"/products/{product_id:\d+}", product)
    app.router.add_post(r"/products/{product_id:\d+}", product_edit)
