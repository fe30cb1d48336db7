"""Documents: generate a PDF from a template onto a contact (from the card), open it, and
let admins edit the templates (Jinja2, rendered sandboxed by contactd.crm.documents)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import select

from contactd.auth import audit
from contactd.crm.documents import check_template
from contactd.db.models import Document, DocumentTemplate
from contactd.enums import DocumentKind, Role
from contactd.errors import ContactdError, NotFoundError, ValidationError
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, DOCUMENTS, principal
from contactd.web.render import page, status_of
from contactd.web.views.records import actor_of, contact_id_of


async def install_default_templates(app: web.Application) -> AsyncIterator[None]:
    """The four built-in templates exist once the panel is up (kept if an admin edited them)."""
    await app[DOCUMENTS].install_defaults()
    yield


@requires(Role.AGENT)
async def document_create(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    form = await request.post()
    name = str(form.get("template", ""))
    if not name:
        raise ValidationError("choose a template", field="template")
    doc = await request.app[DOCUMENTS].generate(
        name, contact_id, created_by_id=principal(request).user.id,
        extra={"subject": str(form.get("subject", "")).strip()[:300],
               "body": str(form.get("body", "")).strip()[:20_000]})
    raise web.HTTPSeeOther(f"/contacts/{contact_id}?document={doc.id}#timeline")


@requires(Role.AGENT)
async def document_file(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["document_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound()
    async with request.app[DATABASE].session() as session:
        doc = await session.get(Document, int(raw))
    if doc is None:
        raise NotFoundError(f"no document {raw}")
    path = request.app[DOCUMENTS].path_of(doc)
    if not path.is_file():
        raise NotFoundError(f"the file of document {raw} is missing")
    return web.FileResponse(path, headers={
        "Content-Type": doc.mime_type, "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="{path.name}"'})


async def _templates_page(request: web.Request, *, message: str = "", error: str = "",
                          typed: dict[str, str] | None = None, status: int = 200) -> web.Response:
    async with request.app[DATABASE].session() as session:
        rows = list(await session.scalars(
            select(DocumentTemplate).order_by(DocumentTemplate.name, DocumentTemplate.language)))
    chosen = request.query.get("edit", "")
    editing = next((t for t in rows if str(t.id) == chosen), None)
    return page(request, "templates.html", {
        "templates": rows, "editing": editing, "kinds": list(DocumentKind),
        "message": message, "error": error, "typed": typed or {},
    }, status=status)


@requires(Role.ADMIN)
async def templates(request: web.Request) -> web.StreamResponse:
    return await _templates_page(request)


@requires(Role.ADMIN)
async def template_save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    typed = {k: str(form.get(k, "")) for k in ("name", "kind", "language", "body")}
    try:
        name, language = typed["name"].strip(), typed["language"].strip() or "en"
        if not name or len(name) > 100:
            raise ValidationError("a template name is 1 to 100 characters", field="name")
        try:
            kind = DocumentKind(typed["kind"])
        except ValueError:
            raise ValidationError(f"kind has no choice {typed['kind']!r}", field="kind") from None
        check_template(typed["body"])
        template_id = await request.app[DOCUMENTS].save_template(
            name, kind, typed["body"], language=language)
        async with request.app[DATABASE].transaction() as session:
            audit.record(session, actor_of(request), "template.save", "document_template",
                         template_id, None, {"name": name, "language": language})
    except ContactdError as exc:
        return await _templates_page(request, error=exc.message, typed=typed,
                                     status=status_of(exc))
    return await _templates_page(request, message=_("Template %(name)s saved.") % {"name": name})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(install_default_templates)
    app.router.add_post(r"/contacts/{contact_id:\d+}/documents", document_create)
    app.router.add_get(r"/documents/{document_id:\d+}", document_file)
    app.router.add_get("/templates", templates)
    app.router.add_post("/templates", template_save)
