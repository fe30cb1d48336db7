"""Hands an answered outbound call to an agent the way the shipped dialplan expects.

contactd-outbound waits up to CONTACTD_AGENT_WAIT_S for the channel variable CONTACTD_AGENT
(asterisk-config/README.md); setting it on the callee channel makes the dialplan Dial it.
"""

from __future__ import annotations

from contactd.calls.service import CallService
from contactd.errors import NotFoundError

AGENT_VARIABLE = "CONTACTD_AGENT"


class SetvarConnector:
    def __init__(self, calls: CallService) -> None:
        self._calls = calls

    async def connect(self, attempt_id: str, agent_dial: str) -> None:
        channel = self._calls.channel_of(attempt_id)
        if channel is None:
            raise NotFoundError(f"call attempt {attempt_id} has no live channel", code="call_gone")
        await self._calls.ami.setvar(channel, AGENT_VARIABLE, agent_dial)
