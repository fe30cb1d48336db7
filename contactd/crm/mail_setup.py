"""Inbound e-mail as the daemon starts it from `[email_inbound]`: the intake (whose entry
sweeps mail a crash left unrouted), and the SMTP endpoint and IMAP poller when enabled."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from contactd.config import Settings
from contactd.crm.documents import DocumentService
from contactd.crm.mail_records import MailIntake
from contactd.crm.routing import Router
from contactd.db.session import Database
from contactd.health import HealthRegistry
from contactd.messaging.imap_poll import ImapPoller
from contactd.messaging.mail_in import MailLimits
from contactd.messaging.smtp_server import SmtpReceiver


@dataclass
class MailInbound:
    intake: MailIntake
    smtp: SmtpReceiver | None = None
    imap: ImapPoller | None = None


async def start_mail_inbound(
    stack: AsyncExitStack, settings: Settings, db: Database, router: Router,
    health: HealthRegistry,
) -> MailInbound:
    conf = settings.email_inbound
    data_dir = settings.general.data_dir
    limits = MailLimits(conf.max_bytes, conf.max_depth, conf.max_parts)
    intake = await stack.enter_async_context(
        MailIntake(db, router, DocumentService(db, data_dir), limits, data_dir))
    started = MailInbound(intake)
    if conf.smtp_enabled:
        started.smtp = await stack.enter_async_context(SmtpReceiver(conf, intake.receive))
    if conf.imap_enabled:
        started.imap = await stack.enter_async_context(ImapPoller(conf, intake.receive))
        health.register("imap-poll", started.imap.state.probe)
    return started
