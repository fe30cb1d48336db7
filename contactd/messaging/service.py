"""Messaging as one component: SMPP session, SMTP pool, outbox, inbound SMS and channel choice.

The daemon enters it once; the dialer, IVR and web panel call `send`, `send_template` and
`fallback`. Receipts go to the outbox, mobile-originated texts to `InboundSms`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import select

from contactd.config import Settings
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.models.crm import Contact, Organisation
from contactd.db.models.dialer import Campaign
from contactd.db.session import Database
from contactd.enums import CallOutcome, Channel
from contactd.errors import NotFoundError
from contactd.events import EventBus
from contactd.messaging.channels import ChannelService, WindowCheck, window_check
from contactd.messaging.email import EmailSender
from contactd.messaging.inbound import InboundSms
from contactd.messaging.outbox import OutboundMessage, Outbox
from contactd.messaging.policy import Decision
from contactd.messaging.smpp import ESME_ROK, DeliverSm, SmppClient
from contactd.messaging.sms import SmsSender
from contactd.messaging.templates import TemplateStore, campaign_fields, contact_fields
from contactd.messaging.types import DeliveryReceipt, Sender

DEFAULT_FALLBACK_TEMPLATE = "call_fallback"


@dataclass(frozen=True)
class FallbackResult:
    decision: Decision
    message_id: int | None  # the outbox row, when a message was queued


class MessagingService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        bus: EventBus | None = None,
        *,
        templates: TemplateStore | None = None,
        is_window_open: WindowCheck | None = None,
        smpp_options: dict[str, Any] | None = None,
        outbox_options: dict[str, Any] | None = None,
        router: Router | None = None,
    ) -> None:
        self._db = db
        self._stack = contextlib.AsyncExitStack()
        self.templates = templates or TemplateStore(settings.general.data_dir / "templates")
        region = settings.general.default_region
        # The daemon passes its router; alone (tests, tools) messaging makes its own.
        self._own_contacts: ContactService | None = None
        if router is None:
            self._own_contacts = ContactService(db, default_region=region)
            router = Router(db, self._own_contacts, TaskService(db, bus=bus), bus=bus)
        self.inbound = InboundSms(db, router, bus, default_region=region)
        self.channels = ChannelService(
            db,
            is_window_open or window_check(settings.dialer, settings.general.timezone),
            bus,
        )
        self.smpp = (
            SmppClient(
                settings.smpp,
                self._on_deliver,
                on_receipts=self._on_receipts,
                **(smpp_options or {}),
            )
            if settings.smpp.enabled
            else None
        )
        self.email = EmailSender(settings.email) if settings.email.enabled else None
        senders: dict[Channel, Sender] = {}
        if self.smpp is not None:
            senders[Channel.SMS] = SmsSender(self.smpp)
        if self.email is not None:
            senders[Channel.EMAIL] = self.email
        options: dict[str, Any] = {
            # Enough sends in flight to keep the SMPP window and the SMTP pool busy.
            "concurrency": {
                Channel.SMS: settings.smpp.window * 4,
                Channel.EMAIL: settings.email.pool_size * 2,
            }
        }
        options.update(outbox_options or {})
        self.outbox = Outbox(db, senders, bus, **options)

    async def __aenter__(self) -> MessagingService:
        async with contextlib.AsyncExitStack() as stack:
            if self._own_contacts is not None:
                await stack.enter_async_context(self._own_contacts)
            if self.email is not None:
                await stack.enter_async_context(self.email)
            if self.smpp is not None:
                await stack.enter_async_context(self.smpp)
            await stack.enter_async_context(self.outbox)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _on_deliver(self, message: DeliverSm) -> int:
        receipt = message.receipt
        if receipt is not None:
            await self.outbox.on_receipt(receipt)
        else:
            await self.inbound.handle(message)
        return ESME_ROK

    async def _on_receipts(self, receipts: list[DeliveryReceipt]) -> None:
        await self.outbox.on_receipts(receipts)

    async def send(self, message: OutboundMessage) -> int:
        """Queue one message durably; the same idempotency key never sends twice."""
        return await self.outbox.enqueue(message)

    async def send_template(
        self,
        *,
        idempotency_key: str,
        channel: Channel,
        to: str,
        template: str,
        contact_id: int,
        campaign_id: int | None = None,
        language: str | None = None,
    ) -> int:
        """Render a template for a contact (and campaign) and queue the result."""
        async with self._db.session() as session:
            contact = await session.get(Contact, contact_id)
            if contact is None:
                raise NotFoundError(f"no contact {contact_id}", contact_id=contact_id)
            organisation = ""
            if contact.organisation_id is not None:
                organisation = (
                    await session.scalar(
                        select(Organisation.name).where(Organisation.id == contact.organisation_id)
                    )
                    or ""
                )
            campaign = await session.get(Campaign, campaign_id) if campaign_id else None
        rendered = self.templates.render(
            template,
            language or contact.language,
            contact=contact_fields(contact, organisation),
            campaign=campaign_fields(campaign),
        )
        return await self.outbox.enqueue(
            OutboundMessage(
                idempotency_key=idempotency_key,
                channel=channel,
                to=to,
                body=(rendered.sms or rendered.text) if channel is Channel.SMS else rendered.text,
                subject=rendered.subject,
                html_body=rendered.html if channel is Channel.EMAIL else None,
                contact_id=contact_id,
                campaign_id=campaign_id,
                template=template,
                language=rendered.language,
            )
        )

    async def fallback(
        self,
        contact_id: int,
        *,
        idempotency_key: str,
        campaign_id: int | None = None,
        failed_call_attempts: int = 0,
        last_outcome: CallOutcome | None = None,
        template: str | None = None,
        now: datetime | None = None,
    ) -> FallbackResult:
        """Decide the channel for a contact; when it is SMS or email, queue the message."""
        decision = await self.channels.decide(
            contact_id,
            campaign_id=campaign_id,
            failed_call_attempts=failed_call_attempts,
            last_outcome=last_outcome,
            now=now or datetime.now(UTC),
        )
        if decision.channel not in (Channel.SMS, Channel.EMAIL) or decision.address is None:
            return FallbackResult(decision, None)
        if template is None and campaign_id is not None:
            async with self._db.session() as session:
                template = await session.scalar(
                    select(Campaign.fallback_template).where(Campaign.id == campaign_id)
                )
        message_id = await self.send_template(
            idempotency_key=idempotency_key,
            channel=decision.channel,
            to=decision.address,
            template=template or DEFAULT_FALLBACK_TEMPLATE,
            contact_id=contact_id,
            campaign_id=campaign_id,
        )
        return FallbackResult(decision, message_id)
