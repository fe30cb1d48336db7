"""The SMS sender the outbox uses: one outbox row becomes one (possibly multi-part) SMPP text."""

from __future__ import annotations

from contactd.messaging.smpp import SmppClient
from contactd.messaging.types import ClaimedMessage, SendResult


class SmsSender:
    def __init__(self, client: SmppClient) -> None:
        self._client = client

    async def until_ready(self) -> None:
        """The outbox holds the channel's messages while the SMSC link is down, instead of
        spending their attempts on a link that is not there."""
        await self._client.until_bound()

    async def send(self, message: ClaimedMessage) -> SendResult:
        source = message.meta.get("source_addr")
        ids = await self._client.send_text(
            message.to,
            message.body,
            # The concatenation reference only has to differ between a handset's recent texts.
            reference=message.id & 0xFF,
            source=str(source) if source else None,
        )
        return SendResult(ids, awaits_receipt=True)
