"""SmppClient against the real SMPP server peer (scripts/smsc-peer)."""

from __future__ import annotations

import asyncio

import pytest

from contactd.messaging.encoding import DataCoding
from contactd.messaging.errors import SmppBindError, SmppUnavailableError
from contactd.messaging.smpp import DeliverSm, SmppClient
from contactd.messaging.types import DeliveryReceipt, ReceiptOutcome
from tests.peers.smsc import SmscPeer

pytestmark = pytest.mark.smsc


class Receipts:
    """Collects deliver_sm receipts and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: list[DeliverSm] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: DeliverSm) -> int:
        self.items.append(message)
        self._changed.set()
        return 0

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()


async def test_bind_with_wrong_password_fails_with_a_clear_error(smsc: SmscPeer) -> None:
    client = SmppClient(smsc.settings(password="wrong"))
    with pytest.raises(SmppBindError) as caught:
        await client.__aenter__()
    assert caught.value.code == "smpp_bind_failed"
    assert "contactd" in caught.value.message
    assert "Invalid Password" in caught.value.message
    assert caught.value.status == 0x0E


async def test_500_messages_in_a_window_of_10_are_acknowledged_and_receipted(
    smsc: SmscPeer,
) -> None:
    receipts = Receipts()
    async with SmppClient(smsc.settings(window=10), receipts) as client:
        ids = await asyncio.gather(
            *(client.send_text(f"+4915100{i:05d}", f"hello {i}", reference=i) for i in range(500))
        )
        await receipts.wait_for(500)
    flat = [part for parts in ids for part in parts]
    assert len(flat) == 500 and len(set(flat)) == 500
    assert {r.receipt_id for r in receipts.items} == set(flat)
    assert all(r.stat == "DELIVRD" for r in receipts.items)
    recorded = await smsc.submits()
    assert len(recorded) == 500
    by_id = {r["message_id"]: r for r in recorded}
    for i, parts in enumerate(ids):
        assert by_id[parts[0]]["text"] == f"hello {i}"
        assert by_id[parts[0]]["destination_addr"] == f"4915100{i:05d}"


async def test_long_ucs2_message_arrives_as_ordered_concatenated_parts(smsc: SmscPeer) -> None:
    text = "Привет, это длинное сообщение — проверка доставки по частям. " * 5
    async with SmppClient(smsc.settings()) as client:
        ids = await client.send_text("+491510000001", text, reference=77)
    recorded = await smsc.submits()
    assert [r["message_id"] for r in recorded] == ids
    assert len(ids) == -(-len(text) // 67)
    for index, record in enumerate(recorded, start=1):
        assert record["data_coding"] == DataCoding.UCS2
        assert record["esm_class"] & 0x40
        assert record["concat"] == {"ref": 77, "total": len(ids), "seq": index}
        assert len(bytes.fromhex(record["short_message_hex"])) <= 140
    assert "".join(r["text"] for r in recorded) == text


async def test_gsm7_text_is_sent_as_gsm7(smsc: SmscPeer) -> None:
    async with SmppClient(smsc.settings()) as client:
        await client.send_text("+491510000002", "Price: 10€ [ok] {ä}", reference=1)
    (record,) = await smsc.submits()
    assert record["data_coding"] == DataCoding.GSM7
    assert record["text"] == "Price: 10€ [ok] {ä}"


async def test_throttling_is_answered_with_back_off_and_nothing_is_lost(smsc: SmscPeer) -> None:
    await smsc.configure(throttle_next=25)
    async with SmppClient(smsc.settings(window=5)) as client:
        ids = await asyncio.gather(
            *(client.send_text("+491510000003", f"m{i}", reference=i) for i in range(40))
        )
        assert client.stats.throttled == 25
    recorded = await smsc.submits()
    assert sorted(r["text"] for r in recorded) == sorted(f"m{i}" for i in range(40))
    assert len({p for parts in ids for p in parts}) == 40
    state = await smsc.state()
    assert state["counts"]["throttled"] == 25


async def test_queue_full_is_retried_too(smsc: SmscPeer) -> None:
    await smsc.configure(queue_full_next=3)
    async with SmppClient(smsc.settings()) as client:
        await client.send_text("+491510000004", "after queue full", reference=1)
    assert [r["text"] for r in await smsc.submits()] == ["after queue full"]


async def test_per_account_cap_is_never_exceeded(smsc: SmscPeer) -> None:
    async with SmppClient(smsc.settings(max_per_second=20, window=10)) as client:
        await asyncio.gather(
            *(client.send_text("+491510000005", f"c{i}", reference=i) for i in range(50))
        )
    state = await smsc.state()
    assert state["counts"]["submits"] == 50
    assert state["max_per_second"]["contactd"] <= 20


async def test_reconnects_after_the_connection_is_dropped(smsc: SmscPeer) -> None:
    async with SmppClient(smsc.settings(), reconnect_s=(0.05, 0.5)) as client:
        assert client.probe().status == "ok"
        await client.send_text("+491510000006", "before", reference=1)
        await smsc.drop()
        try:
            await client.send_text("+491510000006", "after", reference=2)
        except SmppUnavailableError as exc:
            # Written before the reader saw the drop: the caller (the outbox) sends again.
            assert exc.details["maybe_sent"]
            await client.send_text("+491510000006", "after", reference=2)
        assert client.stats.connects == 2
    assert [r["text"] for r in await smsc.submits()] == ["before", "after"]


async def test_mobile_originated_message_reaches_the_handler(smsc: SmscPeer) -> None:
    received = Receipts()
    async with SmppClient(smsc.settings(), received):
        assert await smsc.inject_mo("491510000007", "STOP") == 1
        await received.wait_for(1)
    (message,) = received.items
    assert message.receipt_id is None
    assert (message.source_addr, message.text) == ("491510000007", "STOP")
    (mo,) = await smsc.mo()
    assert mo["status"] == 0


async def test_a_burst_of_receipts_whose_handler_fails_is_delivered_again(
    smsc: SmscPeer,
) -> None:
    """Receipts go to `on_receipts` in the bursts they arrive in, and a burst the handler
    could not store is refused as a whole, so the SMSC delivers every one of them again."""
    refused: list[str] = []
    stored: dict[str, ReceiptOutcome] = {}
    changed = asyncio.Event()

    async def on_receipts(burst: list[DeliveryReceipt]) -> None:
        if not refused:
            refused.extend(r.provider_id for r in burst)
            raise RuntimeError("database unavailable")
        stored.update((r.provider_id, r.outcome) for r in burst)
        changed.set()

    settings = smsc.settings(window=10)
    async with SmppClient(settings, on_receipts=on_receipts, reconnect_s=(0.05, 0.5)) as client:
        ids = await asyncio.gather(
            *(client.send_text(f"+4915100{i:05d}", f"burst {i}", reference=i) for i in range(40))
        )
        sent = {parts[0] for parts in ids}
        async with asyncio.timeout(20):
            while len(stored) < len(sent) - len(refused):
                changed.clear()
                await changed.wait()
            await smsc.drop()  # the refused burst comes back after the next bind
            while set(stored) != sent:
                changed.clear()
                await changed.wait()
    assert refused and set(refused) <= sent
    assert set(stored.values()) == {ReceiptOutcome.DELIVERED}
    assert client.stats.receipts >= len(sent) + len(refused)
