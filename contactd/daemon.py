"""The one composition root: builds every component, starts them in order, stops them in reverse.

Each long-lived part is an async context manager entered into one AsyncExitStack, so a failure
while starting part N tears down parts N-1..1 and a stop request unwinds everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from contactd.ami.client import AmiClient
from contactd.calls.service import CallService
from contactd.config import Settings
from contactd.crm.call_records import CallRecorder
from contactd.crm.message_records import InboundMessageRecorder
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService, TaskWatcher
from contactd.db.bootstrap import open_database
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.connect import SetvarConnector
from contactd.dialer.service import DialerService
from contactd.events import EventBus
from contactd.health import ComponentHealth, HealthRegistry
from contactd.ivr.service import IvrService
from contactd.ivr.setup import start_ivr
from contactd.messaging.service import MessagingService
from contactd.web.app import WebServer, create_app

log = logging.getLogger(__name__)

# Called once the daemon is up, with the live components (the demo prints its login here).
ReadyHook = Callable[["Components"], Awaitable[None] | None]


class Components:
    """What the composition root built; handed to hooks and tests, never imported as a global."""

    def __init__(self, settings: Settings, db: Database, bus: EventBus, health: HealthRegistry):
        self.settings = settings
        self.db = db
        self.bus = bus
        self.health = health
        self.contacts: ContactService | None = None
        self.tasks: TaskService | None = None
        self.router: Router | None = None
        self.calls: CallService | None = None
        self.messaging: MessagingService | None = None
        self.dialer: DialerService | None = None
        self.ivr: IvrService | None = None
        self.web_url: str | None = None


async def run_daemon(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: ReadyHook | None = None,
) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; StartupError propagates unchanged."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with AsyncExitStack() as stack:
            health = HealthRegistry()
            bus = EventBus()
            db = await stack.enter_async_context(await open_database(settings))
            db_since = datetime.now(UTC)
            health.register("database", lambda: ComponentHealth("ok", db.dialect, db_since))
            components = Components(settings, db, bus, health)
            components.contacts = await stack.enter_async_context(
                ContactService(db, default_region=settings.general.default_region)
            )
            components.tasks = TaskService(db, bus=bus)
            watcher = await stack.enter_async_context(TaskWatcher(components.tasks))
            health.register("task-reminders", watcher.state.probe)
            components.router = Router(db, components.contacts, components.tasks, bus=bus)
            # Subscribed before the AMI link starts, so calls that a start-up reconciliation
            # ends are recorded too; attempts that ended while down are swept on entry.
            await stack.enter_async_context(CallRecorder(db, components.router, bus))
            await stack.enter_async_context(InboundMessageRecorder(db, components.router, bus))
            if settings.ami.enabled:
                # CallService subscribes at construction: the client's login-time event
                # filter is built from those subscriptions, so build both before entering.
                ami = AmiClient(settings.ami)
                calls = CallService(db, bus, ami, settings.asterisk)
                await stack.enter_async_context(ami)
                components.calls = await stack.enter_async_context(calls)
                health.register("ami", ami.probe)
                health.register("attempt-writer", calls.writer.probe)
            messaging = await stack.enter_async_context(MessagingService(settings, db, bus))
            components.messaging = messaging
            if messaging.smpp is not None:
                health.register("smpp", messaging.smpp.probe)
            health.register("outbox", messaging.outbox.probe)
            if settings.audiosocket.enabled:
                ami_client = components.calls.ami if components.calls is not None else None
                components.ivr, _ = await start_ivr(
                    stack, settings, components.router, ami_client, health=health,
                    outbox=messaging,
                )
            if components.calls is not None:
                # Agents log in through the panel (next wave); until then the board is empty
                # and only automated campaigns, which need no agent, place calls.
                components.dialer = await stack.enter_async_context(
                    DialerService(
                        db, bus, settings, components.calls,
                        agents=AgentBoard(auto_ready_s=settings.dialer.agent_wrap_s),
                        connector=SetvarConnector(components.calls),
                        fallback=messaging,
                    )
                )
                health.register("dialer", components.dialer.loop_state.probe)
            if settings.web.enabled:
                app = create_app(settings, db, health)
                web = await stack.enter_async_context(
                    WebServer(app, settings.web.host, settings.web.port)
                )
                components.web_url = f"http://{web.host}:{web.port}/"
            log.info("contactd started", extra={"data_dir": str(settings.general.data_dir)})
            if on_ready is not None:
                result = on_ready(components)
                if asyncio.iscoroutine(result):
                    await result
            await stop.wait()
            log.info("contactd stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("contactd stopped")
