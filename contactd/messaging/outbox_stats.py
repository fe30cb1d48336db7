"""What the outbox has done since it started: counted once per committed outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from contactd.enums import MessageState

S = MessageState
_COUNTER: Final = {S.SENT: "sent", S.DELIVERED: "delivered", S.FAILED: "failed",
                   S.EXPIRED: "expired"}


@dataclass
class OutboxStats:
    enqueued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    retried: int = 0
    resumed: int = 0
    maybe_sent: int = 0  # attempts that failed after the provider may have taken the message
    receipts_unmatched: int = 0
    batches: int = 0

    def committed(self, state: MessageState) -> None:
        """Count one outcome whose commit succeeded (a retry is counted when decided)."""
        name = _COUNTER.get(state)
        if name is not None:
            setattr(self, name, getattr(self, name) + 1)
