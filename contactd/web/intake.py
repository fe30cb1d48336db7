"""Public web-form intake: `POST /intake/{form}` from a company's website.

Checks run cheapest first: the form exists, the browser origin is allowed (CORS), the source
address is under its rate limit, the body is under the cap, the signature (when the form has
a secret) is valid, and the fields are what the form declares. The answer is 202 only once
`WebIntake.store` has committed the submission; routing it to a contact and a task follows.
A filled honeypot gets the same 202 and is kept as spam, never routed. Errors are
problem+json naming the field. The source address is the TCP peer: behind a reverse proxy,
the proxy should do its own rate limiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from contactd.auth.errors import TooManyAttempts
from contactd.config import IntakeFormSettings, IntakeSettings
from contactd.crm.intake import Submission
from contactd.errors import ContactdError, NotFoundError, ValidationError
from contactd.phones import parse_phone
from contactd.web.access import public
from contactd.web.intake_guard import SIGNATURE_HEADER, BadSignature
from contactd.web.keys import INTAKE, INTAKE_LIMITER, INTAKE_SIGNATURES, SETTINGS
from contactd.web.render import problem

log = logging.getLogger(__name__)

BODY_TIMEOUT_S: Final = 10.0  # a client trickling its body holds a connection no longer
MAX_FIELDS: Final = 64
RETRY_AFTER_S: Final = 5  # after a storage failure (a database locked for longer than usual)
PREFLIGHT_MAX_AGE_S: Final = 600
_EMAIL_RE: Final = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class UnknownForm(NotFoundError):
    code = "unknown_form"


class OriginNotAllowed(ContactdError):
    code = "origin_not_allowed"


class BodyTooLarge(ContactdError):
    code = "body_too_large"


class UnsupportedBody(ContactdError):
    code = "unsupported_media_type"


class MalformedBody(ContactdError):
    code = "malformed_body"


class BodyTimeout(ContactdError):
    code = "body_timeout"


STATUS: Final[dict[type[ContactdError], int]] = {
    UnknownForm: 404, OriginNotAllowed: 403, BodyTooLarge: 413, UnsupportedBody: 415,
    MalformedBody: 400, BodyTimeout: 408, BadSignature: 401, ValidationError: 422,
    TooManyAttempts: 429,
}


def setup(app: web.Application) -> None:
    app.router.add_post("/intake/{form}", submit)
    app.router.add_route("OPTIONS", "/intake/{form}", preflight)


def _form(request: web.Request) -> tuple[str, IntakeFormSettings]:
    name = request.match_info["form"]
    found = request.app[SETTINGS].intake.forms.get(name)
    if found is None:
        raise UnknownForm(f"no form named {name[:40]!r}")
    return name, found


def _cors(request: web.Request, form: IntakeFormSettings) -> dict[str, str]:
    """The CORS headers for this request (none without an Origin); refuses other origins."""
    origin = request.headers.get("Origin")
    if origin is None:
        return {}  # not from a browser on another site: a server posting directly
    if origin not in form.origins:
        raise OriginNotAllowed(f"origin {origin[:100]!r} may not post to this form")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@public
async def preflight(request: web.Request) -> web.StreamResponse:
    """CORS preflight of a browser about to post from an allowed origin."""
    try:
        _, form = _form(request)
        headers = _cors(request, form)
        if not headers:
            raise OriginNotAllowed("a preflight request needs an Origin header")
    except ContactdError as exc:
        return _problem(exc, {})
    headers |= {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": f"Content-Type, {SIGNATURE_HEADER}",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
    }
    return web.Response(status=204, headers=headers)


@public
async def submit(request: web.Request) -> web.StreamResponse:
    cors: dict[str, str] = {}
    try:
        name, form = _form(request)
        cors = _cors(request, form)
        settings = request.app[SETTINGS].intake
        request.app[INTAKE_LIMITER].hit(request.remote or "unknown")
        body = await _read(request, settings)
        secret = form.secret.get_secret_value()
        if secret:
            request.app[INTAKE_SIGNATURES].verify(
                secret, request.headers.get(SIGNATURE_HEADER), body)
        raw = _parse(request.content_type, body)
        submission = _validate(name, form, raw, request.remote or "",
                               request.app[SETTINGS].general.default_region)
        interaction_id = await request.app[INTAKE].store(submission)
    except ContactdError as exc:
        return _problem(exc, cors)
    except SQLAlchemyError:
        # Not stored, so not accepted: the website may send it again.
        log.exception("web form not stored", extra={"form": request.match_info["form"]})
        response = problem(503, "storage_unavailable",
                           "the submission could not be stored; send it again shortly")
        response.headers.update(cors | {"Retry-After": str(RETRY_AFTER_S)})
        return response
    return web.json_response({"status": "accepted", "reference": interaction_id},
                             status=202, headers=cors)


def _problem(exc: ContactdError, headers: dict[str, str]) -> web.Response:
    status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
    extra: dict[str, Any] = {}
    if "field" in exc.details:
        extra["field"] = exc.details["field"]
    response = problem(status, exc.code, exc.message, **extra)
    response.headers.update(headers)
    if isinstance(exc, TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _read(request: web.Request, settings: IntakeSettings) -> bytes:
    cap = settings.max_body_bytes
    too_large = BodyTooLarge(f"the body is larger than {cap} bytes")
    if request.content_length is not None and request.content_length > cap:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > cap:
                    raise too_large
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
    return bytes(body)


def _parse(content_type: str, body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"the body is not UTF-8 (byte {exc.start})") from None
    if content_type == "application/json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedBody(f"the body is not valid JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(data, dict):
            raise MalformedBody("the JSON body must be an object of field names to text")
        if len(data) > MAX_FIELDS:
            raise MalformedBody(f"more than {MAX_FIELDS} fields")
        return data
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                              errors="strict", max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise MalformedBody("a form value is not UTF-8 once decoded") from None
        except ValueError:
            raise MalformedBody(f"more than {MAX_FIELDS} fields") from None
        fields: dict[str, Any] = {}
        for key, value in pairs:
            if key in fields:
                raise ValidationError(f"{key[:40]!r} is given twice", field=key[:40])
            fields[key] = value
        return fields
    raise UnsupportedBody(
        "send application/json or application/x-www-form-urlencoded, "
        f"not {content_type[:60]!r}")


def _validate(
    name: str, form: IntakeFormSettings, raw: dict[str, Any], source: str, region: str
) -> Submission:
    def submission(fields: dict[str, str], spam: bool = False) -> Submission:
        return Submission(form=name, title=form.title, fields=fields, source=source,
                          task=form.task, team=form.team, skill=form.skill, spam=spam)

    trap = raw.pop(form.honeypot, None) if form.honeypot else None
    if trap:
        # A bot filled the field people never see: the same answer, kept as spam only.
        kept = {k: str(v)[:form.max_length.get(k, form.default_max_length)]
                for k, v in raw.items() if k in form.fields and isinstance(v, str)}
        return submission(kept, spam=True)
    fields: dict[str, str] = {}
    for key, value in raw.items():
        label = key[:40]
        if key not in form.fields:
            raise ValidationError(f"{label!r} is not a field of this form", field=label)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationError(f"{key} must be text", field=key)
        text = value.strip()
        if _CONTROL_RE.search(text):
            raise ValidationError(f"{key} contains control characters", field=key)
        limit = form.max_length.get(key, form.default_max_length)
        if len(text) > limit:
            raise ValidationError(f"{key} is longer than {limit} characters", field=key)
        if text:
            fields[key] = text
    for key in form.required:
        if key not in fields:
            raise ValidationError(f"{key} is required", field=key)
    if "email" in fields:
        if not _EMAIL_RE.fullmatch(fields["email"]):
            raise ValidationError("email is not an e-mail address", field="email")
        fields["email"] = fields["email"].lower()
    if "phone" in fields:
        try:
            fields["phone"] = parse_phone(fields["phone"], region).e164
        except ValidationError as exc:
            raise ValidationError(f"phone: {exc.message}", field="phone") from None
    if "email" not in fields and "phone" not in fields:
        wanted = "email" if "email" in form.fields else "phone"
        raise ValidationError("give an e-mail address or a phone number to be answered",
                              field=wanted)
    return submission(fields)
