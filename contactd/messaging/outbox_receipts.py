"""Delivery receipts, already translated by their adapter, become outbox state changes.

A receipt names one part (the provider's id for it). The message it belongs to is found among
the messages in flight, or else in the database (sent before a restart). A long SMS counts as
delivered once every part is; one failed or expired part decides for the whole message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from contactd.db.session import Database
from contactd.enums import MessageState
from contactd.messaging import outbox_store as store
from contactd.messaging.outbox_stats import OutboxStats
from contactd.messaging.outbox_tracking import InFlight, Tracked
from contactd.messaging.outbox_types import Outcome
from contactd.messaging.types import DeliveryReceipt, ReceiptOutcome

log = logging.getLogger(__name__)

S = MessageState


class ReceiptMatcher:
    def __init__(self, db: Database, inflight: InFlight, stats: OutboxStats) -> None:
        self._db = db
        self._inflight = inflight
        self._stats = stats

    async def outcome(self, receipt: DeliveryReceipt) -> Outcome | None:
        """The state change `receipt` calls for; None when it calls for none (an intermediate
        report, one part of several, or a message nobody here knows)."""
        part = receipt.provider_id
        if receipt.outcome is ReceiptOutcome.PENDING:
            return None
        message_id = await self._inflight.match(part)
        if message_id is None:
            row = await store.sent_sms_by_provider_id(self._db, part)
            if row is None:
                self._stats.receipts_unmatched += 1
                log.warning("outbox: receipt for an unknown message", extra={"provider_id": part})
                return None
            message_id = int(row.id)
            self._inflight.known(message_id, Tracked(
                row.channel, row.contact_id, row.campaign_id, row.interaction_id
            ))
        if receipt.outcome is ReceiptOutcome.DELIVERED:
            if not self._inflight.part_delivered(message_id, part):
                return None  # the other parts' receipts decide
            return Outcome(S.DELIVERED, message_id, {"delivered_at": datetime.now(UTC)})
        if receipt.outcome is ReceiptOutcome.EXPIRED:
            return Outcome(S.EXPIRED, message_id, {"error": receipt.detail})
        return Outcome(S.FAILED, message_id, {"error": receipt.detail})
