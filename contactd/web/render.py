"""Turning results and typed errors into pages or problem+json, in one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from contactd.ami.errors import AmiUnavailable
from contactd.auth.errors import CsrfRejected, Forbidden, NotSignedIn, TooManyAttempts
from contactd.crm.errors import StaleEditError
from contactd.errors import (
    ConflictError,
    ContactdError,
    NotFoundError,
    StorageUnavailableError,
    ValidationError,
)
from contactd.web.access import Handler, is_api
from contactd.web.api.spec import IfMatchRequired
from contactd.web.keys import LANGUAGE, PRINCIPAL, SETTINGS, THEME
from contactd.web.services import Unavailable

log = logging.getLogger(__name__)

STATUS: dict[type[ContactdError], int] = {
    NotSignedIn: 401,
    Forbidden: 403,
    CsrfRejected: 403,
    NotFoundError: 404,
    ConflictError: 409,
    StaleEditError: 412,
    ValidationError: 422,
    IfMatchRequired: 428,
    TooManyAttempts: 429,
    Unavailable: 503,
    StorageUnavailableError: 503,
    AmiUnavailable: 503,
}
# Error details an API client may read (which field, each validation error); others stay in logs.
PUBLIC_DETAILS = ("field", "errors")


def status_of(exc: ContactdError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def page(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None,
    *, status: int = 200,
) -> web.Response:
    principal = request.get(PRINCIPAL)
    ctx = {
        "principal": principal,
        "user": principal.user if principal else None,
        "csrf_token": principal.csrf_token if principal else "",
        "path": request.path,
        "lang": request.get(LANGUAGE, "en"),
        "theme": request.get(THEME, "system"),
        "languages": request.app[SETTINGS].web.languages,
        **(context or {}),
    }
    response = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def problem(status: int, code: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": f"about:blank#{code}", "title": code.replace("_", " "), "status": status,
            "code": code, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ContactdError as exc:
        status = status_of(exc)
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after_s)
        if is_api(request):
            response = problem(status, exc.code, exc.message, **{
                k: v for k, v in exc.details.items() if k in PUBLIC_DETAILS})
        else:
            response = page(request, "error.html",
                            {"status": status, "message": exc.message}, status=status)
        response.headers.update(headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or not is_api(request):
            raise
        return problem(exc.status, f"http_{exc.status}", exc.reason)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A strict CSP: the panel loads nothing from elsewhere and runs no inline script."""
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
