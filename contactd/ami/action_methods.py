"""The AMI actions the rest of contactd uses, as typed methods over `AmiClient.action()`.

Each is sent once with the client's timeout; `Response: Error` raises AmiActionFailed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from contactd.ami import actions


class _Sender(Protocol):
    async def action(
        self,
        fields: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
        as_list: bool | None = None,
    ) -> Any: ...


class AmiActionMethods:
    """Mixed into AmiClient: the vocabulary, apart from the connection that carries it."""

    async def originate(self: _Sender, attempt_id: str, dial: str, **kwargs: Any) -> None:
        """Send an async Originate (see actions.originate); returns once Asterisk queued it."""
        await self.action(actions.originate(attempt_id, dial, **kwargs), as_list=False)

    async def redirect(
        self: _Sender,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        *,
        extra_channel: str | None = None,
    ) -> None:
        await self.action(
            actions.redirect(channel, context, exten, priority, extra_channel=extra_channel),
            as_list=False,
        )

    async def hangup(self: _Sender, channel: str, cause: int = 16) -> None:
        await self.action(actions.hangup(channel, cause), as_list=False)

    async def setvar(self: _Sender, channel: str | None, name: str, value: str) -> None:
        await self.action(actions.setvar(channel, name, value), as_list=False)

    async def getvar(self: _Sender, channel: str | None, name: str) -> str | None:
        reply = await self.action(actions.getvar(channel, name), as_list=False)
        value = reply.get("Value")
        return None if value in (None, "(null)") else str(value)

    async def queue_add(self: _Sender, queue: str, interface: str, **kwargs: Any) -> None:
        await self.action(actions.queue_add(queue, interface, **kwargs), as_list=False)

    async def queue_remove(self: _Sender, queue: str, interface: str) -> None:
        await self.action(actions.queue_remove(queue, interface), as_list=False)

    async def queue_pause(
        self: _Sender, interface: str, paused: bool, *, queue: str | None = None, reason: str = ""
    ) -> None:
        await self.action(
            actions.queue_pause(interface, paused, queue=queue, reason=reason), as_list=False
        )

    async def command(self: _Sender, text: str) -> str:
        """Run a CLI command (diagnostics only) and return its output."""
        reply = await self.action(actions.command(text), as_list=False)
        output = reply.get("Output", reply.content or "")
        return "\n".join(output) if isinstance(output, list) else str(output)

    async def core_show_channels(self: _Sender) -> list[dict[str, str]]:
        """Every live channel (Channel, Uniqueid, Linkedid, ChannelState, …) as plain dicts."""
        reply = await self.action(actions.core_show_channels(), as_list=True)
        messages = reply if isinstance(reply, list) else [reply]
        return [
            {str(k): str(v) for k, v in message.items()}
            for message in messages
            if message.get("Event") == "CoreShowChannel"
        ]

    async def ping(self: _Sender) -> None:
        await self.action({"Action": "Ping"}, as_list=False)
