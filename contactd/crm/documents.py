"""Documents from templates: a contract, invoice, offer or letter filled from contact and
product data (Jinja2, sandboxed: templates are edited by users), laid out as PDF (fpdf2),
stored under the data folder and listed on the contact's timeline."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from contactd.crm.errors import TemplateError
from contactd.crm.events import DocumentCreated
from contactd.db.models import Address, Contact, Document, DocumentTemplate, Product
from contactd.db.session import Database
from contactd.enums import DocumentKind
from contactd.errors import NotFoundError
from contactd.events import EventBus
from contactd.pdf_page import start_pdf

# A Unicode font when the system has one (names in any script); else fpdf2's core font.
_ENV: Final = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False,
                                   keep_trailing_newline=True)


@dataclass(frozen=True)
class LineItem:
    product_id: int
    quantity: Decimal = Decimal(1)


def default_template(kind: DocumentKind) -> str:
    return resources.files("contactd.crm").joinpath(f"templates/{kind.value}.j2").read_text(
        encoding="utf-8"
    )


def check_template(body: str) -> None:
    try:
        _ENV.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}") from None


def render_text(body: str, context: dict[str, Any]) -> str:
    try:
        return _ENV.from_string(body).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template cannot be filled: {exc}") from None


def render_pdf(text: str, title: str) -> bytes:
    """Lay out the filled text: '# ' lines as a title, '## ' as headings, the rest as prose."""
    page = start_pdf(title, margin_mm=15)
    pdf, family, safe = page.pdf, page.family, page.safe

    for line in text.splitlines():
        if line.startswith("# "):
            pdf.set_font(family, size=18)
            pdf.multi_cell(0, 10, safe(line[2:]), new_x="LMARGIN", new_y="NEXT")
        elif line.startswith("## "):
            pdf.set_font(family, size=14)
            pdf.multi_cell(0, 9, safe(line[3:]), new_x="LMARGIN", new_y="NEXT")
        elif not line.strip():
            pdf.ln(4)
        else:
            pdf.set_font(family, size=11)
            pdf.multi_cell(0, 6, safe(line), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


class DocumentService:
    def __init__(
        self, db: Database, data_dir: Path, *, sender: str = "", bus: EventBus | None = None
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.sender = sender
        self.bus = bus

    async def save_template(
        self, name: str, kind: DocumentKind, body: str, *, language: str = "en"
    ) -> int:
        check_template(body)
        async with self.db.transaction() as session:
            row = await session.scalar(select(DocumentTemplate).where(
                DocumentTemplate.name == name, DocumentTemplate.language == language))
            if row is None:
                row = DocumentTemplate(name=name, kind=kind, language=language, body=body)
                session.add(row)
            else:
                row.kind, row.body = kind, body
            await session.flush()
            return row.id

    async def install_defaults(self) -> None:
        """The four built-in templates, named after their kind, unless already present."""
        for kind in DocumentKind:
            if kind is DocumentKind.ATTACHMENT:  # received, never made from a template
                continue
            async with self.db.session() as session:
                exists = await session.scalar(
                    select(DocumentTemplate.id).where(DocumentTemplate.name == kind.value)
                )
            if exists is None:
                # Another daemon sharing the database may install it at the same moment.
                with contextlib.suppress(IntegrityError):
                    await self.save_template(kind.value, kind, default_template(kind))

    async def generate(
        self, template: str, contact_id: int, *, items: list[LineItem] | None = None,
        extra: dict[str, Any] | None = None, created_by_id: int | None = None,
        language: str | None = None,
    ) -> Document:
        """Fill, lay out, store the PDF and its row; the file is complete before the row.
        Without `language`: the template in the contact's language, else the English one."""
        async with self.db.session() as session:
            contact = await session.scalar(
                select(Contact).where(Contact.id == contact_id).options(
                    selectinload(Contact.organisation), selectinload(Contact.emails),
                    selectinload(Contact.phones))
            )
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}")
            wanted = [language] if language else list(dict.fromkeys([contact.language, "en"]))
            tpl = None
            for candidate in wanted:
                tpl = await session.scalar(select(DocumentTemplate).where(
                    DocumentTemplate.name == template, DocumentTemplate.language == candidate))
                if tpl is not None:
                    break
            if tpl is None:
                raise NotFoundError(f"no document template {template!r} ({wanted[0]})")
            address = await session.scalar(
                select(Address).where(Address.contact_id == contact_id).limit(1))
            context = await self._context(session, contact, address, items or [])
        number = f"{tpl.kind.value[:3].upper()}-{date.today():%Y%m%d}-{uuid.uuid4().hex[:6]}"
        context.update(number=number, sender=self.sender, today=date.today().isoformat(),
                       **(extra or {}))
        title = f"{tpl.kind.value.capitalize()} {number} - {contact.display_name}".strip()
        text = render_text(tpl.body, context)
        relative = Path("documents") / str(contact_id) / f"{number}.pdf"
        data = await asyncio.to_thread(self._write, text, title, relative)
        async with self.db.transaction() as session:
            doc = Document(
                template_id=tpl.id, contact_id=contact_id,
                organisation_id=contact.organisation_id, kind=tpl.kind, title=title[:300],
                storage_path=relative.as_posix(), size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), created_by_id=created_by_id,
            )
            session.add(doc)
            await session.flush()
        if self.bus is not None:
            await self.bus.publish(DocumentCreated(document_id=doc.id, contact_id=contact_id))
        return doc

    def write_file(self, relative: Path, data: bytes) -> None:
        """A received file (an e-mail attachment) under the data folder, complete before any
        row names it; owner-only, since it is a customer's."""
        target = self.data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = target.with_name(target.name + ".part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)

    @staticmethod
    def add_received(
        session: Any, *, relative: Path, data: bytes, title: str, mime_type: str,
        contact_id: int | None = None,
    ) -> Document:
        """The row for a file `write_file` stored, inside the caller's transaction."""
        doc = Document(
            contact_id=contact_id, kind=DocumentKind.ATTACHMENT, title=title[:300],
            storage_path=relative.as_posix(), mime_type=mime_type[:100], size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        session.add(doc)
        return doc

    def path_of(self, document: Document) -> Path:
        return self.data_dir / document.storage_path

    def _write(self, text: str, title: str, relative: Path) -> bytes:
        data = render_pdf(text, title)
        target = self.data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        with partial.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
        return data

    async def _context(
        self, session: Any, contact: Contact, address: Address | None, items: list[LineItem]
    ) -> dict[str, Any]:
        org = contact.organisation
        lines: list[dict[str, Any]] = []
        currency = "EUR"
        total = Decimal(0)
        if items:
            products = {
                p.id: p for p in await session.scalars(
                    select(Product).where(Product.id.in_([i.product_id for i in items])))
            }
            for item in items:
                product = products.get(item.product_id)
                if product is None:
                    raise NotFoundError(f"no product {item.product_id}")
                line_total = (product.unit_price * item.quantity).quantize(Decimal("0.01"))
                total += line_total
                currency = product.currency
                lines.append({"name": product.name, "sku": product.sku,
                              "kind": product.kind.value, "quantity": item.quantity,
                              "unit_price": product.unit_price, "currency": product.currency,
                              "total": line_total})
        address_text = ""
        if address is not None:
            address_text = ", ".join(p for p in (address.street, f"{address.postal_code} "
                                                 f"{address.city}".strip(), address.country) if p)
        return {
            "contact": {
                "display_name": contact.display_name, "first_name": contact.first_name,
                "last_name": contact.last_name, "job_title": contact.job_title,
                "email": contact.emails[0].address if contact.emails else "",
                "phone": contact.phones[0].e164 if contact.phones else "",
                "address": address_text, "custom": contact.custom,
            },
            "organisation": None if org is None else {
                "name": org.name, "vat_number": org.vat_number or "", "website": org.website or "",
            },
            "items": lines, "total": total.quantize(Decimal("0.01")), "currency": currency,
        }
