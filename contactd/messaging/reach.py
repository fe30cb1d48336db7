"""Reach a contact: choose call, SMS, e-mail or leave alone BEFORE anything is sent or dialled.

`ReachService.reach` gathers the facts (consent, preferred channel, calling window in the
contact's zone, DNC, call attempts so far, a mobile number) through `ChannelService.decide`,
which stores the decision (`channel_decisions`) and announces `ChannelChosen`. The decision and
its reason also go on the contact's timeline as an interaction, and then it is acted on: an SMS
or e-mail is queued in the outbox (the daemon's dispatcher sends it), a call is left to the
dialer when a campaign holds the contact or becomes a call task for a person otherwise, and
"leave alone" does nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import func, select

from contactd.crm.routing import InboundContact, Router
from contactd.crm.tasks import NewTask, TaskService
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.enums import (
    AttemptState,
    CallOutcome,
    Channel,
    Direction,
    InteractionKind,
    TaskPriority,
    TaskSource,
)
from contactd.errors import ValidationError
from contactd.messaging.policy import Decision
from contactd.messaging.service import DEFAULT_FALLBACK_TEMPLATE, MessagingService

log = logging.getLogger(__name__)

MAX_PURPOSE: Final = 80


class Action(StrEnum):
    QUEUED = "message_queued"  # SMS or e-mail in the outbox
    DIALER = "left_to_dialer"  # the campaign's dial loop calls within its window
    CALL_TASK = "call_task"  # no campaign: a person calls
    LEFT_ALONE = "left_alone"


@dataclass(frozen=True)
class ReachResult:
    decision: Decision
    action: Action
    interaction_id: int
    message_id: int | None = None
    task_id: int | None = None


class ReachService:
    def __init__(
        self, db: Database, messaging: MessagingService, router: Router, tasks: TaskService
    ) -> None:
        self.db = db
        self.messaging = messaging
        self.router = router
        self.tasks = tasks

    async def reach(
        self, contact_id: int, purpose: str, *, template: str = DEFAULT_FALLBACK_TEMPLATE,
        campaign_id: int | None = None, idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> ReachResult:
        """Decide, record why, then act; `idempotency_key` keeps a repeat from sending twice."""
        purpose = purpose.strip()
        if not purpose or len(purpose) > MAX_PURPOSE:
            raise ValidationError(f"purpose must be 1 to {MAX_PURPOSE} characters",
                                  field="purpose")
        now = now or datetime.now(UTC)
        failed, last = await self._attempts(contact_id, campaign_id)
        decision = await self.messaging.channels.decide(
            contact_id, campaign_id=campaign_id, failed_call_attempts=failed,
            last_outcome=last, now=now)
        message_id: int | None = None
        task_id: int | None = None
        if decision.channel in (Channel.SMS, Channel.EMAIL) and decision.address:
            action = Action.QUEUED
            key = idempotency_key or f"reach:{contact_id}:{purpose}:{now.isoformat()}"
            message_id = await self.messaging.send_template(
                idempotency_key=key,
                channel=decision.channel, to=decision.address, template=template,
                contact_id=contact_id, campaign_id=campaign_id)
        elif decision.channel is Channel.CALL and campaign_id is not None:
            action = Action.DIALER
        elif decision.channel is Channel.CALL:
            action = Action.CALL_TASK
            task_id = await self.tasks.create(NewTask(
                title=f"Call {decision.address}: {purpose}", source=TaskSource.CALLBACK,
                contact_id=contact_id, priority=TaskPriority.NORMAL, due_at=now))
        else:
            action = Action.LEFT_ALONE
        routed = await self.router.record(InboundContact(
            kind=InteractionKind.NOTE, direction=Direction.INTERNAL, channel=decision.channel,
            contact_id=contact_id, campaign_id=campaign_id, started_at=now,
            subject=f"{purpose}: {decision.channel.value} ({decision.reason.value})",
            outcome=action.value,
            data={"purpose": purpose, "reason": decision.reason.value,
                  "channel": decision.channel.value, "address": decision.address,
                  "details": decision.details, "failed_call_attempts": failed,
                  "message_id": message_id, "task_id": task_id},
        ))
        log.info("channel chosen before contact",
                 extra={"contact_id": contact_id, "campaign_id": campaign_id,
                        "channel": decision.channel.value, "reason": decision.reason.value,
                        "action": action.value, "message_id": message_id})
        return ReachResult(decision, action, routed.interaction_id, message_id, task_id)

    async def _attempts(
        self, contact_id: int, campaign_id: int | None
    ) -> tuple[int, CallOutcome | None]:
        """Ended call attempts without a person answering, and the last outcome."""
        scope = [CallAttempt.contact_id == contact_id, CallAttempt.state == AttemptState.ENDED]
        if campaign_id is not None:
            scope.append(CallAttempt.campaign_id == campaign_id)
        async with self.db.session() as session:
            failed = await session.scalar(select(func.count()).select_from(CallAttempt).where(
                *scope, CallAttempt.outcome != CallOutcome.HUMAN))
            last = await session.scalar(select(CallAttempt.outcome).where(*scope)
                                        .order_by(CallAttempt.created_at.desc()).limit(1))
        return int(failed or 0), last
