"""contactd's own Messaging (smpplib session, outbox) against the demo SMSC: a submitted SMS
is receipted DELIVRD and stored delivered, and the recipient's reply (here always STOP)
arrives as a mobile-originated text that opts the number out."""

from __future__ import annotations

import asyncio

from contactd.config import Settings, SmppSettings
from contactd.db.session import Database
from contactd.demo.smsc import DemoSmsc
from contactd.enums import Channel, MessageState
from contactd.events import EventBus
from contactd.messaging.events import InboundSmsReceived, MessageDelivered
from contactd.messaging.outbox_store import OutboundMessage
from contactd.messaging.service import MessagingService

PASSWORD = "demopass"  # SMPP passwords are at most 8 characters


async def test_demo_smsc_receipts_and_the_recipient_replies_stop(
    settings: Settings, db: Database,
) -> None:
    bus = EventBus()
    delivered: asyncio.Queue[MessageDelivered] = asyncio.Queue()
    inbound: asyncio.Queue[InboundSmsReceived] = asyncio.Queue()
    bus.subscribe(MessageDelivered, delivered.put)
    bus.subscribe(InboundSmsReceived, inbound.put)
    async with DemoSmsc(system_id="contactd", password=PASSWORD, reply_pct=100.0,
                        stop_pct=100.0, receipt_delay_s=(0.05, 0.1),
                        reply_delay_s=(0.1, 0.2)) as smsc:
        smpp = SmppSettings(enabled=True, port=smsc.port, system_id="contactd",
                            password=PASSWORD, source_addr="15550100100")
        configured = settings.model_copy(update={"smpp": smpp})
        always_open = lambda *_: True  # noqa: E731
        async with MessagingService(configured, db, bus, is_window_open=always_open) as messaging:
            message_id = await messaging.send(OutboundMessage(
                "demo-sms-1", Channel.SMS, "+4915200000001", "See you tomorrow at 10"))
            receipt = await asyncio.wait_for(delivered.get(), 10)
            reply = await asyncio.wait_for(inbound.get(), 10)
    assert receipt.message_id == message_id and receipt.state is MessageState.DELIVERED
    assert reply.from_number == "+4915200000001" and reply.text == "STOP"
    assert reply.opted_out
    assert (smsc.stats.submitted, smsc.stats.receipts, smsc.stats.stops) == (1, 1, 1)


async def test_demo_smsc_refuses_a_wrong_password() -> None:
    async with DemoSmsc(system_id="contactd", password=PASSWORD) as smsc:
        reader, writer = await asyncio.open_connection("127.0.0.1", smsc.port)
        body = b"contactd\0wrong\0\0\x34\x00\x00\0"
        writer.write((16 + len(body)).to_bytes(4, "big") + (9).to_bytes(4, "big")
                     + bytes(4) + (1).to_bytes(4, "big") + body)
        head = await asyncio.wait_for(reader.readexactly(16), 5)
        writer.close()
    assert int.from_bytes(head[4:8], "big") == 0x80000009  # bind_transceiver_resp
    assert int.from_bytes(head[8:12], "big") == 0x0D  # ESME_RBINDFAIL
