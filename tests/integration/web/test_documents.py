"""Documents from the card: the default templates are installed, a PDF is generated onto the
contact and opens from its timeline; admins edit templates (a broken one is refused by line,
the sandbox refuses unsafe attribute access), agents cannot."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from contactd.crm.service import ContactInput, ContactService
from contactd.db.models import AuditEntry, Document, DocumentTemplate
from contactd.db.session import Database
from tests.integration.web.conftest import Signed


async def test_a_pdf_is_generated_from_the_card_and_opens_from_the_timeline(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await ContactService(db, default_region="GB").create_contact(
        ContactInput(first_name="Ada", last_name="Lovelace"))
    agent = await signed_in("alex")
    card = await (await agent.client.get(f"/contacts/{contact_id}")).text()
    for kind in ("contract", "invoice", "offer", "letter"):
        assert f'<option value="{kind}">' in card  # the defaults were installed at start-up
    response = await agent.client.post(f"/contacts/{contact_id}/documents", data={
        "csrf_token": agent.csrf, "template": "letter", "subject": "Your renewal",
        "body": "Thank you, Ada."}, allow_redirects=False)
    assert response.status == 303
    after = await (await agent.client.get(response.headers["Location"])).text()
    link = re.search(r'<a href="(/documents/\d+)">(Letter [^<]+)</a>', after)
    assert link and "Ada Lovelace" in link.group(2)
    pdf = await agent.client.get(link.group(1))
    body = await pdf.read()
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert body.startswith(b"%PDF-")
    async with db.session() as session:
        doc = await session.scalar(select(Document))
    assert doc is not None and doc.contact_id == contact_id and doc.size_bytes == len(body)
    missing = await agent.client.post(f"/contacts/{contact_id}/documents", data={
        "csrf_token": agent.csrf, "template": "nonesuch"})
    assert missing.status == 404 and "no document template" in await missing.text()


async def test_admins_edit_templates_and_broken_or_unsafe_ones_are_refused(
    db: Database, signed_in: Callable[[str], Awaitable[Signed]]
) -> None:
    contact_id = await ContactService(db, default_region="GB").create_contact(
        ContactInput(first_name="Ada", last_name="Lovelace"))
    agent = await signed_in("alex")
    assert (await agent.client.get("/templates")).status == 403
    admin = await signed_in("ada")
    listing = await (await admin.client.get("/templates")).text()
    assert "contract" in listing and "invoice" in listing
    saved = await admin.client.post("/templates", data={
        "csrf_token": admin.csrf, "name": "thanks", "kind": "letter", "language": "en",
        "body": "# Thanks {{ contact.first_name }}\n{{ contact.__class__ }}\n"})
    assert saved.status == 200 and "Template thanks saved." in await saved.text()
    broken = await admin.client.post("/templates", data={
        "csrf_token": admin.csrf, "name": "bad", "kind": "letter", "body": "line\n{% if %}"})
    text = await broken.text()
    assert broken.status == 422 and "template line 2" in text
    assert "{% if %}" in text  # what was typed stays in the editor
    # The sandbox refuses what a user-edited template must not reach.
    unsafe = await admin.client.post("/templates", data={
        "csrf_token": admin.csrf, "name": "unsafe", "kind": "letter",
        "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    assert unsafe.status == 200
    made = await admin.client.post(f"/contacts/{contact_id}/documents", data={
        "csrf_token": admin.csrf, "template": "unsafe"})
    assert made.status == 422 and "template cannot be filled" in await made.text()
    async with db.session() as session:
        names = set((await session.scalars(select(DocumentTemplate.name))).all())
        audits = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "document_template"))).all()
    assert "thanks" in names and "bad" not in names
    assert audits == ["template.save", "template.save"]
