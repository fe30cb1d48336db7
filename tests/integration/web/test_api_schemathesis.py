"""schemathesis against the served OpenAPI document, with an admin's API token: no generated
request makes the server fail (5xx), and no response breaks its own documented schema,
status codes or content type. Bounded: a few examples per operation.

The panel runs in a thread of its own (schemathesis calls it with blocking requests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contactd.ami.client import AmiClient
from contactd.auth.audit import CLI
from contactd.auth.service import UserService
from contactd.auth.sessions import ApiTokens
from contactd.calls.service import CallService
from contactd.config import load_settings
from contactd.crm.service import ContactInput, ContactService
from contactd.crm.tasks import TaskService
from contactd.db.migrate import upgrade
from contactd.db.models import Campaign
from contactd.db.session import Database
from contactd.dialer.service import DialerService
from contactd.enums import CampaignMode, Role
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.messaging.service import MessagingService
from contactd.web.api.routes import OPENAPI_PATH
from contactd.web.app import WebServer, create_app
from contactd.web.services import PanelServices
from tests.peers.ports import free_port

EXAMPLES_PER_OPERATION = 8
START_TIMEOUT_S = 60.0


@dataclass
class Served:
    url: str
    token: str


async def _serve(data_dir: Path, port: int, ready: threading.Event, out: dict[str, Any],
                 stop: asyncio.Event) -> None:
    settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(data_dir),
                                    "CONTACTD_GENERAL__DEFAULT_REGION": "GB"})
    async with Database(settings.database_url) as db:
        await upgrade(db)
        admin = await UserService(db).add("ada", "correct horse battery", Role.ADMIN)
        out["token"] = await ApiTokens(db).create(admin.id, "schemathesis", CLI)
        contacts = ContactService(db, default_region="GB")
        await contacts.create_contact(ContactInput(first_name="Grace", last_name="Hopper",
                                                   phones=["+44 20 7946 0101"]))
        async with db.transaction() as session:
            session.add(Campaign(name="spring", mode=CampaignMode.PROGRESSIVE))
        bus = EventBus()
        # The dialer's commands and agent board, without an AMI link: nothing is dialled.
        calls = CallService(db, bus, AmiClient(settings.ami), settings.asterisk)
        dialer = DialerService(db, bus, settings, calls)
        async with MessagingService(settings, db, bus) as messaging:
            services = PanelServices(bus=bus, messaging=messaging, contacts=contacts,
                                     tasks=TaskService(db, bus=bus), dialer=dialer,
                                     calls=calls)
            app = create_app(settings, db, HealthRegistry(), services)
            async with WebServer(app, "127.0.0.1", port):
                ready.set()
                await stop.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    ready = threading.Event()
    out: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        try:
            loop.run_until_complete(_serve(tmp_path, port, ready, out, stop))
        except BaseException as exc:  # handed to the test thread below
            out["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="panel-under-test")
    thread.start()
    try:
        assert ready.wait(START_TIMEOUT_S), "the panel did not start"
        if "error" in out:
            raise out["error"]
        yield Served(f"http://127.0.0.1:{port}", out["token"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_S)
        loop.close()


def test_generated_requests_never_fail_the_server_or_break_the_schema(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.token}"}
    document = requests.get(served.url + OPENAPI_PATH, headers=auth, timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance,
              content_type_conformance]
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # our own document does not parse: that is the failure
        operation = result.ok()

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=served.url, headers=auth, timeout=10)
            case.validate_response(response, checks=checks, headers=auth)

        exercise()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) == sum(len(ops) for ops in document["paths"].values()) >= 15, tested
