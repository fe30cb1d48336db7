"""What the SMSC sends that contactd did not ask for: unknown PDUs, broken deliver_sm, data_sm.

The SMSC peer writes the bytes as they are (`POST /raw`) and records the answer that carries
the same sequence number, so each test sees what contactd's reader answered on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactd.messaging.smpp import DeliverSm, SmppClient
from contactd.messaging.smpp_io import SMPPLIB_LOGGER
from tests.peers.smsc import ACCOUNTS, SmscPeer

pytestmark = pytest.mark.smsc

T = TypeVar("T")
ANSWER_TIMEOUT_S = 10.0
ANSWER_POLL_S = 0.02
DELIVER_SM = 0x00000005
DATA_SM = 0x00000103
ESME_RINVCMDID = 0x03
ESME_RX_P_APPN = 0x65
TAG_MESSAGE_PAYLOAD = 0x0424
_sequences = iter(range(0x70000000, 0x7FFFFFFF))


def pdu(command_id: int, sequence: int, body: bytes) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def deliver_sm_body(source: bytes, text: bytes, *, ton: int = 1, npi: int = 1) -> bytes:
    return (
        b"\0"  # service_type
        + bytes([ton, npi]) + source + b"\0"
        + b"\x00\x00" + b"CONTACTD\0"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + b"\x00\x00"  # registered_delivery, replace_if_present_flag
        + b"\x00\x00"  # data_coding (GSM 7-bit default), sm_default_msg_id
        + bytes([len(text)]) + text
    )


class Inbox:
    def __init__(self) -> None:
        self.items: list[DeliverSm] = []
        self.changed = asyncio.Event()

    async def __call__(self, message: DeliverSm) -> int:
        self.items.append(message)
        self.changed.set()
        return 0

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()


async def answer_to(smsc: SmscPeer, data: bytes, sequence: int) -> dict[str, Any]:
    """Write `data` to the bound session; the SMSC peer's record of the answer to `sequence`."""
    assert await smsc.send_raw(data, sequence) == 1
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = (await smsc.raw_answers()).get(sequence)
        if answer is not None:
            return answer
        await asyncio.sleep(ANSWER_POLL_S)  # polling the peer's record, not waiting blindly
    raise AssertionError(f"no answer to sequence {sequence:#x}")


async def test_unknown_request_gets_generic_nack_and_the_link_stays_bound(
    smsc: SmscPeer,
) -> None:
    async with SmppClient(smsc.settings()) as client:
        sequence = next(_sequences)
        answer = await answer_to(smsc, pdu(0x00000099, sequence, b"\x01\x02"), sequence)
        assert answer == {"command": "generic_nack", "status": ESME_RINVCMDID}
        assert client.connected and client.stats.disconnects == 0
        assert client.probe().status == "ok"
        assert await client.send_text("+491511234567", "still here", reference=1)


async def test_truncated_deliver_sm_is_refused_and_the_next_mo_arrives(smsc: SmscPeer) -> None:
    inbox = Inbox()
    async with SmppClient(smsc.settings(), inbox) as client:
        sequence = next(_sequences)
        whole = deliver_sm_body(b"491511234567", b"hello")
        cut = whole[: whole.index(b"CONTACTD")]  # ends inside destination_addr
        answer = await answer_to(smsc, pdu(DELIVER_SM, sequence, cut), sequence)
        assert answer == {"command": "deliver_sm_resp", "status": ESME_RX_P_APPN}
        assert await smsc.inject_mo("491511234567", "after the broken one") == 1
        await inbox.wait_for(1)
        assert inbox.items[0].text == "after the broken one"
        assert client.stats.disconnects == 0


async def test_data_sm_is_an_incoming_text(smsc: SmscPeer) -> None:
    inbox = Inbox()
    async with SmppClient(smsc.settings(), inbox):
        sequence = next(_sequences)
        text = b"STOP"
        body = (
            b"\0" + b"\x02\x01" + b"01511234567\0" + b"\x00\x00" + b"CONTACTD\0"
            + b"\x00\x00\x00"  # esm_class, registered_delivery, data_coding
            + struct.pack(">HH", TAG_MESSAGE_PAYLOAD, len(text)) + text
        )
        answer = await answer_to(smsc, pdu(DATA_SM, sequence, body), sequence)
        assert answer == {"command": "data_sm_resp", "status": 0}
        await inbox.wait_for(1)
        message = inbox.items[0]
        assert (message.text, message.source_addr) == ("STOP", "01511234567")
        assert (message.source_ton, message.source_npi) == (2, 1)


async def test_the_bind_password_never_reaches_the_logs(
    smsc: SmscPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SMPPLIB_LOGGER)
    async with SmppClient(smsc.settings()) as client:
        assert client.connected
        await client.send_text("+491511234567", "hi", reference=1)
    password = ACCOUNTS["contactd"].encode()
    assert caplog.records, "debug logging captured nothing: the test would prove nothing"
    for record in caplog.records:
        text = record.getMessage()
        assert password.decode() not in text and password.hex() not in text, text


# -- fuzz -----------------------------------------------------------------------------------


class LoopThread:
    """An event loop in a thread, so a hypothesis test (synchronous) drives the async client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(ANSWER_TIMEOUT_S * 2)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.close()


_addresses = st.binary(max_size=24).filter(lambda b: b"\0" not in b)
_bodies = st.one_of(
    st.binary(max_size=300),
    # Well-formed up to a point, then cut or followed by garbage (TLVs, stray bytes).
    st.builds(
        lambda source, text, cut, tail: (deliver_sm_body(source, text)[:cut] + tail),
        _addresses,
        st.binary(max_size=255),
        st.integers(min_value=0, max_value=400),
        st.binary(max_size=40),
    ),
)


def test_fuzzed_deliver_sm_bodies_are_all_answered_and_never_end_the_link(
    smsc_peer: SmscPeer, loop_thread: LoopThread
) -> None:
    smsc_peer.call("POST", "/reset", {})
    inbox = Inbox()
    client = SmppClient(smsc_peer.settings(), inbox)

    async def start() -> None:
        inbox.changed = asyncio.Event()  # bound to the thread's loop
        await client.__aenter__()

    loop_thread.run(start())

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=_bodies)
    def check(body: bytes) -> None:
        sequence = next(_sequences)
        answer = loop_thread.run(answer_to(smsc_peer, pdu(DELIVER_SM, sequence, body), sequence))
        assert answer["command"] == "deliver_sm_resp"
        assert answer["status"] in (0, ESME_RX_P_APPN)
        assert client.connected and client.stats.disconnects == 0

    try:
        check()
        assert client.probe().status == "ok"
    finally:
        loop_thread.run(client.__aexit__(None, None, None))
