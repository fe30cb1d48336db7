"""One declaration per JSON API operation gives three things that therefore cannot drift: the
route, the request checks (pydantic models for the query and the body) and its entry in the
OpenAPI 3.1 document served at /api/v1/openapi.json.

    @api.operation("GET", "/contacts/{contact_id}", role=Role.AGENT, tag="contacts",
                   query=Empty, body=Empty, response=ContactOut, summary="One contact")
    async def get_contact(request: web.Request, query: Empty, body: Empty) -> ContactOut: ...

Errors leave as problem+json (contactd/web/render.py) with the stable codes of the typed
errors; every operation documents them with the Problem schema.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar

import pydantic
from aiohttp import web
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from contactd import __version__
from contactd.enums import Role
from contactd.errors import ContactdError, NotFoundError, ValidationError
from contactd.web.access import requires

PREFIX: Final = "/api/v1"
JSON: Final = "application/json"
PROBLEM: Final = "application/problem+json"
_PATH_PARAM: Final = re.compile(r"\{(\w+)\}")
# Every operation may answer these (the access layer, typed errors, a missing service).
COMMON_ERRORS: Final = (400, 401, 403, 422, 503)
ERROR_TEXT: Final = {
    400: "The request cannot be done as asked", 401: "Not signed in and no API token",
    403: "The role does not allow it, or the CSRF token is missing",
    404: "No such record", 409: "It conflicts with the stored state",
    412: "If-Match does not match: the record changed since it was read",
    422: "The request does not validate", 428: "If-Match is required",
    503: "The part of the daemon this needs is not running",
}


class IfMatchRequired(ContactdError):
    """An edit must say which version it read (If-Match), or it could overwrite another."""

    code = "if_match_required"


class Empty(BaseModel):
    """No query parameters, or no body."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is stable, `detail` is for people."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


Q = TypeVar("Q", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Reply(Generic[R]):
    """A response model with extra headers (an ETag)."""

    model: R
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below PREFIX
    handler: Handler
    role: Role
    tag: str
    summary: str
    query: type[BaseModel]
    body: type[BaseModel]
    response: type[BaseModel]
    status: int
    errors: tuple[int, ...]
    headers: tuple[str, ...]


def _pydantic_problem(exc: pydantic.ValidationError, where: str) -> ValidationError:
    errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
              for e in exc.errors(include_url=False, include_input=False)]
    first = errors[0]
    name = ".".join(first["loc"]) or where
    return ValidationError(f"{where} {name}: {first['msg']}", field=name, errors=errors)


def path_id(request: web.Request, name: str) -> int:
    """A record id from the path; anything but a positive whole number is no such record."""
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise NotFoundError(f"{name} {raw!r} is not a record id")
    return int(raw)


async def _body(request: web.Request, model: type[B]) -> B:
    if model is Empty:
        return model()
    if request.content_type != JSON:
        raise ValidationError(f"send the body as {JSON}", field="Content-Type")
    try:
        return model.model_validate_json(await request.read())
    except pydantic.ValidationError as exc:
        raise _pydantic_problem(exc, "body") from None


def _query(request: web.Request, model: type[Q]) -> Q:
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise _pydantic_problem(exc, "query") from None


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def operation(
        self, method: Literal["GET", "POST", "PATCH", "DELETE"], path: str, *, role: Role,
        tag: str, summary: str, query: type[Q], body: type[B], response: type[R],
        status: int = 200, errors: tuple[int, ...] = (), headers: tuple[str, ...] = (),
    ) -> Callable[[Callable[[web.Request, Q, B], Awaitable[R | Reply[R]]]], Handler]:
        def declare(fn: Callable[[web.Request, Q, B], Awaitable[R | Reply[R]]]) -> Handler:
            @requires(role)
            async def handler(request: web.Request) -> web.StreamResponse:
                parsed_query = _query(request, query)
                parsed_body = await _body(request, body)
                result = await fn(request, parsed_query, parsed_body)
                reply = result if isinstance(result, Reply) else Reply(result)
                return web.json_response(reply.model.model_dump(mode="json"), status=status,
                                         headers=reply.headers)

            handler.__name__ = handler.__qualname__ = fn.__name__
            handler.__doc__ = fn.__doc__
            self.operations.append(Operation(
                method, path, handler, role, tag, summary, query, body, response, status,
                tuple(sorted({*COMMON_ERRORS, *errors})), headers))
            return handler

        return declare

    def setup(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, PREFIX + op.path, op.handler)

    # ---- the document --------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        models: set[type[BaseModel]] = {Problem}
        for op in self.operations:
            models |= {op.query, op.body, op.response}
        models.discard(Empty)
        ordered = sorted(models, key=lambda m: m.__name__)
        keyed, defs = models_json_schema(
            [(m, "validation") for m in ordered] + [(m, "serialization") for m in ordered],
            ref_template="#/components/schemas/{model}",
        )
        refs: dict[tuple[type[BaseModel], str], dict[str, Any]] = {
            (model, mode): schema for (model, mode), schema in keyed.items()
            if isinstance(model, type) and issubclass(model, BaseModel)}
        schemas = defs.get("$defs", {})
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = self._entry(op, refs,
                                                                                     schemas)
        return {
            "openapi": "3.1.0",
            "info": {"title": "contactd API", "version": __version__,
                     "description": "Every change needs the CSRF header with a session cookie; "
                                    "an API token (Bearer) needs none."},
            "servers": [{"url": "/"}],
            "security": [{"bearerAuth": []}, {"sessionCookie": [], "csrfHeader": []}],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer",
                                   "description": "A personal API token (Account page)."},
                    "sessionCookie": {"type": "apiKey", "in": "cookie",
                                      "name": "contactd_session"},
                    "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                },
            },
        }

    @staticmethod
    def _entry(op: Operation, refs: dict[tuple[type[BaseModel], str], dict[str, Any]],
               schemas: dict[str, Any]) -> dict[str, Any]:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
            for name in _PATH_PARAM.findall(op.path)
        ]
        if op.query is not Empty:
            schema = schemas[refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[-1]]
            required = set(schema.get("required", ()))
            params += [{"name": name, "in": "query", "required": name in required,
                        "schema": prop} for name, prop in schema["properties"].items()]
        params += [{"name": name, "in": "header", "required": True,
                    "schema": {"type": "string"}} for name in op.headers]
        problem = {"content": {PROBLEM: {"schema": refs[(Problem, "serialization")]}}}
        responses: dict[str, Any] = {
            str(op.status): {"description": op.summary,
                             "content": {JSON: {"schema": refs[(op.response,
                                                                "serialization")]}}},
            **{str(code): {"description": ERROR_TEXT[code], **problem} for code in op.errors},
        }
        entry: dict[str, Any] = {
            "operationId": op.handler.__name__, "summary": op.summary, "tags": [op.tag],
            "description": f"Needs the {op.role.value} role or higher.",
            "parameters": params, "responses": responses,
        }
        if op.body is not Empty:
            entry["requestBody"] = {"required": True,
                                    "content": {JSON: {"schema": refs[(op.body,
                                                                       "validation")]}}}
        return entry
