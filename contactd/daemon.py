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
from contactd.cluster import ClusterRelay, asyncpg_dsn
from contactd.cluster_agents import SharedAgentStates
from contactd.config import Settings
from contactd.crm.call_records import CallRecorder
from contactd.crm.intake import WebIntake
from contactd.crm.mail_setup import MailInbound, start_mail_inbound
from contactd.crm.message_records import InboundMessageRecorder
from contactd.crm.reminder_mail import ReminderMailer
from contactd.crm.report_mail import ReportMailer
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService, TaskWatcher
from contactd.db.bootstrap import open_database
from contactd.db.session import Database
from contactd.dialer.agents import AgentBoard
from contactd.dialer.announce import AnnouncingConnector
from contactd.dialer.connect import SetvarConnector
from contactd.dialer.floor_relay import AgentStateRelay
from contactd.dialer.inbound import InboundQueues
from contactd.dialer.service import DialerService
from contactd.dialer.wrap_log import WrapLog
from contactd.events import EventBus
from contactd.health import ComponentHealth, HealthRegistry
from contactd.ivr.identification import make_identification
from contactd.ivr.service import IvrService
from contactd.ivr.setup import start_ivr
from contactd.messaging.campaigns import MessageCampaigns
from contactd.messaging.service import MessagingService
from contactd.metrics import Metrics
from contactd.sdnotify import SystemdNotifier
from contactd.web import metrics_view
from contactd.web.app import WebServer, create_app
from contactd.web.live import FloorHub, queue_levels
from contactd.web.services import PanelServices
from contactd.webrtc import WebRtcPhones, active_agents

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
        self.mail_inbound: MailInbound | None = None
        self.calls: CallService | None = None
        self.messaging: MessagingService | None = None
        self.message_campaigns: MessageCampaigns | None = None
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
            notifier = await stack.enter_async_context(
                SystemdNotifier(status=lambda: f"health {health.overall()}"))
            bus = EventBus()
            db = await stack.enter_async_context(await open_database(settings))
            db_since = datetime.now(UTC)
            health.register("database", lambda: ComponentHealth("ok", db.dialect, db_since))
            if db.dialect == "postgresql":  # other daemons may share it: relay live events
                relay = await stack.enter_async_context(ClusterRelay(
                    asyncpg_dsn(settings.database_url), settings.general.node, bus))
                health.register("cluster-relay", relay.state.probe)
            components = Components(settings, db, bus, health)
            components.contacts = await stack.enter_async_context(
                ContactService(db, default_region=settings.general.default_region)
            )
            components.tasks = TaskService(db, bus=bus)
            watcher = await stack.enter_async_context(TaskWatcher(components.tasks))
            health.register("task-reminders", watcher.state.probe)
            components.router = Router(db, components.contacts, components.tasks, bus=bus)
            # The panel's live floor subscribes first: its pushes do not wait for the writers.
            floor = (await stack.enter_async_context(FloorHub(
                db, bus, health, None, service_level_s=settings.web.floor_service_level_s,
                queue_levels=queue_levels(settings)))
                if settings.web.enabled else None)
            # Agents' states in the shared database: each daemon writes its own, and its floor
            # (subscribed just above) shows the other daemons' live ones (docs/scale-out.md).
            agent_states = await stack.enter_async_context(SharedAgentStates(
                db, bus, settings.general.node, expiry_s=settings.general.agent_state_expiry_s))
            health.register("agent-state", agent_states.probe)
            # Subscribed before the AMI link starts, so calls that a start-up reconciliation
            # ends are recorded too; attempts that ended while down are swept on entry.
            await stack.enter_async_context(CallRecorder(db, components.router, bus))
            await stack.enter_async_context(InboundMessageRecorder(db, components.router, bus))
            # Inbound e-mail: the intake sweeps what a crash left unrouted, then SMTP/IMAP.
            components.mail_inbound = await start_mail_inbound(
                stack, settings, db, components.router, health)
            intake = await stack.enter_async_context(
                WebIntake(db, components.router, components.contacts))
            health.register("web-intake", intake.state.probe)
            # The abandoned-call message the dialplan plays, made before any call is placed.
            await make_identification(settings)
            metrics: Metrics | None = None
            if settings.metrics.enabled:
                # Subscribed before AMI starts, so a start-up reconciliation's calls count.
                metrics = await stack.enter_async_context(Metrics(
                    db, bus, health, pacers=lambda: () if components.dialer is None else (
                        (rt.campaign_id, rt.pacer) for rt in components.dialer.runtimes)))
            webrtc: WebRtcPhones | None = None
            if settings.ami.enabled:
                # CallService subscribes at construction: the client's login-time event
                # filter is built from those subscriptions, so build both before entering.
                ami = AmiClient(settings.ami)
                calls = CallService(db, bus, ami, settings.asterisk,
                                    node=settings.general.node)
                if settings.webrtc.enabled:  # subscribes to ContactStatus: before the login
                    webrtc = WebRtcPhones(settings.webrtc, ami)
                await stack.enter_async_context(ami)
                components.calls = await stack.enter_async_context(calls)
                health.register("ami", ami.probe)
                health.register("attempt-writer", calls.writer.probe)
            if settings.webrtc.enabled:
                # Browser phones: one PJSIP endpoint per active agent, written at every start;
                # res_pjsip is reloaded whenever AMI (re)connects (docs/webrtc.md).
                webrtc = await stack.enter_async_context(
                    webrtc or WebRtcPhones(settings.webrtc, None))
                await webrtc.provision(await active_agents(db))
                if components.calls is not None:
                    components.calls.ami.on_connected(webrtc.on_ami_connected)
            messaging = await stack.enter_async_context(
                MessagingService(settings, db, bus, router=components.router)
            )
            components.messaging = messaging
            if messaging.smpp is not None:
                health.register("smpp", messaging.smpp.probe)
            health.register("outbox", messaging.outbox.probe)
            # SMS/e-mail campaigns (the panel's; the CLI builds its own): the outbox sends them.
            components.message_campaigns = MessageCampaigns(
                settings, db, components.router, messaging.outbox, messaging.templates, bus)
            if settings.email.enabled:  # reminders and escalations e-mailed to the assignee
                await stack.enter_async_context(ReminderMailer(db, messaging.send, bus))
                # [reports.schedules.*]: each report's PDF mailed for its last period.
                report_mail = await stack.enter_async_context(
                    ReportMailer(settings, db, messaging.send))
                health.register("report-mail", report_mail.state.probe)
            if settings.audiosocket.enabled:
                ami_client = components.calls.ami if components.calls is not None else None
                components.ivr, _ = await start_ivr(
                    stack, settings, components.router, ami_client, health=health,
                    outbox=messaging,
                )
            inbound: InboundQueues | None = None
            if components.calls is not None:
                # Agents join campaigns in the panel's workspace; the connector says on the bus
                # which agent got which call, so that agent's card pops.
                board = AgentBoard(auto_ready_s=settings.dialer.agent_wrap_s)
                # The wrap log outlives the relay: what the relay still holds at a stop reaches it.
                await stack.enter_async_context(WrapLog(db, bus))  # wrap-ups, for reports
                await stack.enter_async_context(AgentStateRelay(board, bus))  # for the floor
                components.dialer = await stack.enter_async_context(
                    DialerService(
                        db, bus, settings, components.calls,
                        agents=board,
                        connector=AnnouncingConnector(SetvarConnector(components.calls),
                                                      board, bus),
                        fallback=messaging,
                    )
                )
                health.register("dialer", components.dialer.loop_state.probe)
                # Inbound queues: callers the dialplan holds in contactd-inqueue go to the
                # board's agents signed in to the queue (before campaign calls when blended).
                inbound = await stack.enter_async_context(InboundQueues(
                    settings.inbound, board, components.calls.ami, components.router, bus))
                components.calls.ami.events.on("UserEvent", inbound.on_user_event)
                if floor is not None:
                    floor.dialer = components.dialer
            if settings.web.enabled:
                app = create_app(settings, db, health, PanelServices(
                    bus=bus, dialer=components.dialer, calls=components.calls,
                    messaging=messaging, contacts=components.contacts, tasks=components.tasks,
                    inbound=inbound,
                    tts=components.ivr.tts if components.ivr is not None else None,
                    floor=floor, message_campaigns=components.message_campaigns,
                    webrtc=webrtc),
                    intake=intake)
                if metrics is not None:
                    metrics_view.setup(app, metrics, settings.metrics.token.get_secret_value())
                web = await stack.enter_async_context(
                    WebServer(app, settings.web.host, settings.web.port)
                )
                components.web_url = f"http://{web.host}:{web.port}/"
            log.info("contactd started", extra={"data_dir": str(settings.general.data_dir)})
            notifier.ready(f"serving; health {health.overall()}")
            if on_ready is not None:
                result = on_ready(components)
                if asyncio.iscoroutine(result):
                    await result
            await stop.wait()
            log.info("contactd stopping")
            notifier.stopping()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("contactd stopped")
