"""AMI injection and least rights, on the real Asterisk 22 sandbox.

A channel variable value full of the characters Asterisk's `Variable:` splitting treats
specially arrives whole; a value holding a line break never leaves contactd; and the shipped
manager.conf refuses what needs the `system` write class (Originate into Application System)
while every action contactd sends still works.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from contactd.ami import actions
from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiActionFailed, AmiUnsafeValue
from tests.peers.asterisk import AsteriskSandbox, human, world_channel

pytestmark = pytest.mark.asterisk

# Every character __ast_app_separate_args treats specially, and an `=` that would start a
# second variable if the comma before it split the header.
HOSTILE = 'a,CONTACTD_MODE=queue,b\\c"d(e)f[g]h, i=j'


Responses = dict[str, "asyncio.Future[Any]"]


@asynccontextmanager
async def client(sandbox: AsteriskSandbox) -> AsyncIterator[tuple[AmiClient, Responses]]:
    ami = AmiClient(sandbox.ami_settings())
    responses: Responses = {}

    def on_response(event: Any) -> None:
        future = responses.get(str(event.get("ActionID")))
        if future is not None and not future.done():
            future.set_result(event)

    ami.events.on("OriginateResponse", on_response)
    async with ami:
        await ami.wait_connected(20)
        yield ami, responses


async def originate_and_wait(ami: AmiClient, responses: Responses, **kwargs: Any) -> str:
    """Originate a person who answers and holds 10 s; return our channel once it is up."""
    attempt_id = str(uuid.uuid4())
    responses[attempt_id] = asyncio.get_running_loop().create_future()
    await ami.originate(attempt_id, world_channel(human(10)), timeout_ms=10_000, **kwargs)
    reply = await asyncio.wait_for(responses[attempt_id], 20)
    assert reply.get("Response") == "Success", dict(reply)
    return str(reply["Channel"])


async def test_a_variable_value_with_commas_arrives_whole(asterisk: AsteriskSandbox) -> None:
    async with client(asterisk) as (ami, responses):
        channel = await originate_and_wait(
            ami,
            responses,
            application="Wait",
            data="10",
            variables={"CONTACTD_NOTE": HOSTILE, "CONTACTD_AFTER": "x"},
        )
        try:
            assert await ami.getvar(channel, "CONTACTD_NOTE") == HOSTILE
            assert await ami.getvar(channel, "CONTACTD_AFTER") == "x"
            # Setvar's Value is taken whole, unescaped
            await ami.setvar(channel, "CONTACTD_SET", HOSTILE)
            assert await ami.getvar(channel, "CONTACTD_SET") == HOSTILE
            # the comma did not start variables of its own
            assert await ami.getvar(channel, "CONTACTD_MODE") is None
            assert await ami.getvar(channel, "i") is None
        finally:
            await ami.hangup(channel)


async def test_a_line_break_never_reaches_asterisk(asterisk: AsteriskSandbox) -> None:
    async with client(asterisk) as (ami, _responses):
        sent_before = ami.pending_actions
        with pytest.raises(AmiUnsafeValue):
            await ami.originate(
                "inj-1",
                world_channel(human(1)),
                application="Playback",
                data="beep\nAction: Originate\nChannel: Local/1@x\nApplication: System",
            )
        with pytest.raises(AmiUnsafeValue):
            await ami.action({"Action": "Ping", "X": "a\rb"})
        with pytest.raises(AmiUnsafeValue):
            await ami.setvar(None, "CONTACTD_X\nAction: Command", "1")
        assert ami.pending_actions == sent_before
        await ami.ping()  # the link is intact


async def test_manager_conf_refuses_system_and_allows_contactd(asterisk: AsteriskSandbox) -> None:
    async with client(asterisk) as (ami, responses):
        # An Originate into Application System needs the `system` write class: refused.
        with pytest.raises(AmiActionFailed, match=r"(?i)forbidden|permission"):
            await ami.action(
                actions.originate(
                    "sys-1", world_channel(human(1)), application="System", data="true"
                ),
                as_list=False,
            )
        with pytest.raises(AmiActionFailed, match=r"(?i)permission"):
            await ami.command("core show uptime")
        # Everything contactd itself sends still works (the login's event Filter too: we got
        # connected with a filter on OriginateResponse).
        assert ami.connected
        await ami.ping()
        assert isinstance(await ami.core_show_channels(), list)
        await ami.setvar(None, "CONTACTD_AGENT_WAIT_S", "2")  # a global
        assert await ami.getvar(None, "CONTACTD_AGENT_WAIT_S") == "2"
        channel = await originate_and_wait(ami, responses, application="Wait", data="10")
        await ami.setvar(channel, "CONTACTD_NOTE", "ok")
        await ami.redirect(channel, "contactd-abandon", "s")
        with pytest.raises(AmiActionFailed):
            await ami.hangup("PJSIP/no-such-channel-1")
        member = "Local/7001@contactd-test-world"
        await ami.queue_add("contactd", member, member_name="A1")
        await ami.queue_pause(member, True, queue="contactd", reason="lunch")
        await ami.queue_remove("contactd", member)
