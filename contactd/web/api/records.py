"""API: contacts (search, keyset pages, read, create, edit with If-Match), organisations,
products, a contact's timeline (interactions, tasks, documents…) and documents."""

from __future__ import annotations

from typing import Any, Final, TypeVar

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from contactd.crm.search import Filters
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.timeline import timeline
from contactd.db.base import Base
from contactd.db.models import Contact, Document, Organisation, Product, Tag, User
from contactd.db.session import Database
from contactd.enums import Role
from contactd.errors import ConflictError, NotFoundError, ValidationError
from contactd.web.access import visible_owners
from contactd.web.api.models import (
    ContactCreate,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactQuery,
    ContactSummary,
    DocumentOut,
    Documents,
    EmailOut,
    OrganisationCreate,
    OrganisationOut,
    OrganisationPage,
    OrganisationQuery,
    Page,
    PhoneOut,
    ProductCreate,
    ProductOut,
    ProductPage,
    Timeline,
    TimelineItem,
    TimelineQuery,
)
from contactd.web.api.spec import Api, Empty, IfMatchRequired, Reply, path_id
from contactd.web.keys import DATABASE, SEARCH
from contactd.web.services import SERVICES, Unavailable

api = Api()
MAX_SEARCH_OFFSET: Final = 10_000  # search pages by rank; past this, narrow the query


M = TypeVar("M", bound=Base)


def _contacts(request: web.Request) -> ContactService:
    found = request.app[SERVICES].contacts
    if found is None:
        raise Unavailable("the contact service is not running")
    return found


def etag(version: int) -> str:
    """The record's version (as the body's `version` says it), quoted: the pages' forms
    carry the same number, so both refuse a stale edit the same way."""
    return f'"{version}"'


def _if_match(request: web.Request) -> int:
    raw = request.headers.get("If-Match", "").strip()
    if not raw:
        raise IfMatchRequired("send If-Match with the ETag (version) you read")
    raw = raw.removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise ValidationError(f"If-Match {raw!r} is not an ETag of this API",
                              field="If-Match")
    return int(raw)


async def must_exist(db: Database, model: type[M], record_id: int | None, name: str) -> None:
    """A reference in a request names a stored record (else a 422 naming the field)."""
    if record_id is None:
        return
    async with db.session() as session:
        if await session.get(model, record_id) is None:
            raise ValidationError(f"{name} {record_id} does not exist", field=name)


def _keyset(stmt: Select[Any], column: Any, page: Page) -> Select[Any]:
    if page.cursor is not None:
        if not page.cursor.startswith("i"):
            raise ValidationError("this list pages by id: use the `next` it gave",
                                  field="cursor")
        stmt = stmt.where(column > int(page.cursor[1:]))
    return stmt.order_by(column).limit(page.limit + 1)


def _next(ids: list[int], limit: int) -> str | None:
    return f"i{ids[limit - 1]}" if len(ids) > limit else None


# ---- contacts --------------------------------------------------------------------------------
def _contact_out(contact: Contact) -> ContactOut:
    return ContactOut(
        id=contact.id, first_name=contact.first_name, last_name=contact.last_name,
        organisation_id=contact.organisation_id, kind=contact.kind,
        job_title=contact.job_title, language=contact.language, owner_id=contact.owner_id,
        notes=contact.notes, custom=contact.custom or {},
        phones=[PhoneOut(e164=p.e164, type=p.type, label=p.label, is_primary=p.is_primary)
                for p in contact.phones],
        emails=[EmailOut(address=e.address, label=e.label, is_primary=e.is_primary)
                for e in contact.emails],
        tags=sorted(t.name for t in contact.tags),
        created_at=contact.created_at, updated_at=contact.updated_at,
        version=contact.version,
    )


async def _load_contact(db: Database, contact_id: int) -> Contact:
    async with db.session() as session:
        contact = await session.scalar(select(Contact).where(
            Contact.id == contact_id, Contact.merged_into_id.is_(None)).options(
            selectinload(Contact.phones), selectinload(Contact.emails),
            selectinload(Contact.tags)))
    if contact is None:
        raise NotFoundError(f"no contact {contact_id}", code="contact_not_found")
    return contact


@api.operation("GET", "/contacts", role=Role.AGENT, tag="contacts", query=ContactQuery,
               body=Empty, response=ContactPage,
               summary="Contacts: search as you type (ranked), or every contact by id")
async def list_contacts(request: web.Request, query: ContactQuery, body: Empty) -> ContactPage:
    if query.q.strip():
        return await _search(request, query)
    stmt = select(Contact).where(Contact.merged_into_id.is_(None))
    if query.tag:
        stmt = stmt.where(Contact.tags.any(Tag.name == query.tag))
    if query.owner_id is not None:
        stmt = stmt.where(Contact.owner_id == query.owner_id)
    owners = await visible_owners(request)
    if owners is not None:  # teams: only contacts of the agent's team
        stmt = stmt.where(Contact.owner_id.in_(owners))
    stmt = _keyset(stmt, Contact.id, query).options(
        selectinload(Contact.phones), selectinload(Contact.emails),
        selectinload(Contact.organisation))
    async with request.app[DATABASE].session() as session:
        rows = list(await session.scalars(stmt))
    items = [ContactSummary(
        id=c.id, name=f"{c.first_name} {c.last_name}".strip(),
        organisation=c.organisation.name if c.organisation else None,
        phone=next((p.e164 for p in c.phones if p.is_primary), None),
        email=next((e.address for e in c.emails if e.is_primary), None),
        owner_id=c.owner_id) for c in rows[:query.limit]]
    return ContactPage(items=items, next=_next([c.id for c in rows], query.limit))


async def _search(request: web.Request, query: ContactQuery) -> ContactPage:
    """Ranked hits page by offset (a rank has no stable key); the cursor says which."""
    offset = 0
    if query.cursor is not None:
        if not query.cursor.startswith("o"):
            raise ValidationError("a search pages by rank: use the `next` it gave",
                                  field="cursor")
        offset = int(query.cursor[1:])
    if offset > MAX_SEARCH_OFFSET:
        raise ValidationError("too far into a search: narrow the query", field="cursor")
    owners = await visible_owners(request)
    filters = Filters(query=query.q.strip(), tags=(query.tag,) if query.tag else (),
                      owner_id=query.owner_id,
                      owners=None if owners is None else tuple(owners))
    result = await request.app[SEARCH].search(filters, limit=query.limit + 1, offset=offset,
                                              as_you_type=True)
    items = [ContactSummary(id=h.contact_id, name=f"{h.first_name} {h.last_name}".strip(),
                            organisation=h.organisation, phone=h.phone, email=h.email,
                            owner_id=h.owner_id) for h in result.hits[:query.limit]]
    more = len(result.hits) > query.limit
    return ContactPage(items=items, next=f"o{offset + query.limit}" if more else None)


@api.operation("GET", "/contacts/{contact_id}", role=Role.AGENT, tag="contacts", query=Empty,
               body=Empty, response=ContactOut, errors=(404,),
               summary="One contact; its ETag is the version to send back as If-Match")
async def get_contact(request: web.Request, query: Empty, body: Empty) -> Reply[ContactOut]:
    contact = await _load_contact(request.app[DATABASE], path_id(request, "contact_id"))
    return Reply(_contact_out(contact), {"ETag": etag(contact.version)})


@api.operation("POST", "/contacts", role=Role.AGENT, tag="contacts", query=Empty,
               body=ContactCreate, response=ContactOut, status=201, errors=(409,),
               summary="Create a contact (refused when its number or e-mail exists)")
async def create_contact(request: web.Request, query: Empty,
                         body: ContactCreate) -> Reply[ContactOut]:
    db = request.app[DATABASE]
    await must_exist(db, Organisation, body.organisation_id, "organisation_id")
    await must_exist(db, User, body.owner_id, "owner_id")
    contact_id = await _contacts(request).create_contact(ContactInput(**body.model_dump()))
    contact = await _load_contact(db, contact_id)
    return Reply(_contact_out(contact), {"ETag": etag(contact.version),
                                         "Location": f"/api/v1/contacts/{contact_id}"})


@api.operation("PATCH", "/contacts/{contact_id}", role=Role.AGENT, tag="contacts", query=Empty,
               body=ContactPatch, response=ContactOut, errors=(404, 409, 412, 428),
               headers=("If-Match",),
               summary="Edit a contact; a stale If-Match is refused (412), never overwritten")
async def patch_contact(request: web.Request, query: Empty,
                        body: ContactPatch) -> Reply[ContactOut]:
    db = request.app[DATABASE]
    contact_id = path_id(request, "contact_id")
    expected = _if_match(request)
    changes = body.model_dump(exclude_unset=True)
    await must_exist(db, Organisation, changes.get("organisation_id"), "organisation_id")
    await must_exist(db, User, changes.get("owner_id"), "owner_id")
    for name in ("first_name", "last_name", "job_title", "notes", "language"):
        if name in changes and changes[name] is None:
            raise ValidationError(f"{name} cannot be null; send \"\" to clear it", field=name)
    await _contacts(request).update_contact(contact_id, expected_version=expected, **changes)
    contact = await _load_contact(db, contact_id)
    return Reply(_contact_out(contact), {"ETag": etag(contact.version)})


@api.operation("GET", "/contacts/{contact_id}/timeline", role=Role.AGENT, tag="interactions",
               query=TimelineQuery, body=Empty, response=Timeline, errors=(404,),
               summary="A contact's interactions, tasks, documents and channel decisions")
async def contact_timeline(request: web.Request, query: TimelineQuery, body: Empty) -> Timeline:
    db = request.app[DATABASE]
    contact = await _load_contact(db, path_id(request, "contact_id"))
    entries = await timeline(db, contact.id, limit=query.limit, before=query.before)
    return Timeline(items=[TimelineItem(at=e.at, kind=e.kind.value, id=e.id, title=e.title,
                                        detail=e.detail) for e in entries])


@api.operation("GET", "/contacts/{contact_id}/documents", role=Role.AGENT, tag="documents",
               query=Empty, body=Empty, response=Documents, errors=(404,),
               summary="Documents generated for a contact, newest first")
async def contact_documents(request: web.Request, query: Empty, body: Empty) -> Documents:
    db = request.app[DATABASE]
    contact = await _load_contact(db, path_id(request, "contact_id"))
    async with db.session() as session:
        rows = await session.scalars(select(Document).where(Document.contact_id == contact.id)
                                     .order_by(Document.created_at.desc()).limit(500))
        return Documents(items=[DocumentOut(id=d.id, kind=d.kind, title=d.title,
                                            mime_type=d.mime_type, size_bytes=d.size_bytes,
                                            created_at=d.created_at) for d in rows])


# ---- organisations and products ----------------------------------------------------------------
def _org_out(org: Organisation) -> OrganisationOut:
    return OrganisationOut(id=org.id, name=org.name, kind=org.kind, vat_number=org.vat_number,
                           website=org.website, owner_id=org.owner_id, notes=org.notes)


@api.operation("GET", "/organisations", role=Role.AGENT, tag="organisations",
               query=OrganisationQuery, body=Empty, response=OrganisationPage,
               summary="Organisations (buyers, suppliers, partners) by id")
async def list_organisations(request: web.Request, query: OrganisationQuery,
                             body: Empty) -> OrganisationPage:
    stmt = select(Organisation)
    if query.kind is not None:
        stmt = stmt.where(Organisation.kind == query.kind)
    async with request.app[DATABASE].session() as session:
        rows = list(await session.scalars(_keyset(stmt, Organisation.id, query)))
    return OrganisationPage(items=[_org_out(o) for o in rows[:query.limit]],
                            next=_next([o.id for o in rows], query.limit))


@api.operation("GET", "/organisations/{organisation_id}", role=Role.AGENT,
               tag="organisations", query=Empty, body=Empty, response=OrganisationOut,
               errors=(404,), summary="One organisation")
async def get_organisation(request: web.Request, query: Empty, body: Empty) -> OrganisationOut:
    organisation_id = path_id(request, "organisation_id")
    async with request.app[DATABASE].session() as session:
        org = await session.get(Organisation, organisation_id)
    if org is None:
        raise NotFoundError(f"no organisation {organisation_id}")
    return _org_out(org)


@api.operation("POST", "/organisations", role=Role.AGENT, tag="organisations", query=Empty,
               body=OrganisationCreate, response=OrganisationOut, status=201,
               summary="Create an organisation")
async def create_organisation(request: web.Request, query: Empty,
                              body: OrganisationCreate) -> OrganisationOut:
    org_id = await _contacts(request).create_organisation(
        body.name.strip(), body.kind, vat_number=body.vat_number, website=body.website,
        notes=body.notes)
    async with request.app[DATABASE].session() as session:
        org = await session.get(Organisation, org_id)
    assert org is not None  # committed just above
    return _org_out(org)


def _product_out(p: Product) -> ProductOut:
    return ProductOut(id=p.id, sku=p.sku, name=p.name, kind=p.kind, description=p.description,
                      unit_price=p.unit_price, currency=p.currency, active=p.active)


@api.operation("GET", "/products", role=Role.AGENT, tag="products", query=Page, body=Empty,
               response=ProductPage, summary="The products and services catalogue")
async def list_products(request: web.Request, query: Page, body: Empty) -> ProductPage:
    async with request.app[DATABASE].session() as session:
        rows = list(await session.scalars(_keyset(select(Product), Product.id, query)))
    return ProductPage(items=[_product_out(p) for p in rows[:query.limit]],
                       next=_next([p.id for p in rows], query.limit))


@api.operation("POST", "/products", role=Role.SUPERVISOR, tag="products", query=Empty,
               body=ProductCreate, response=ProductOut, status=201, errors=(409,),
               summary="Add a product or service (the SKU is unique)")
async def create_product(request: web.Request, query: Empty, body: ProductCreate) -> ProductOut:
    db = request.app[DATABASE]
    async with db.session() as session:
        if await session.scalar(select(Product.id).where(Product.sku == body.sku)) is not None:
            raise ConflictError(f"SKU {body.sku!r} exists already", field="sku",
                                code="sku_taken")
    product_id = await _contacts(request).create_product(
        body.sku, body.name, body.kind, body.unit_price, currency=body.currency,
        description=body.description)
    async with db.session() as session:
        product = await session.get(Product, product_id)
    assert product is not None
    return _product_out(product)
