"""The SMTP peer: aiosmtpd on loopback, one per test session, recording what it receives.

`smtp` resets it per test. `refuse(code, text, count)` makes the next `count` RCPT commands
answer with that reply (550 permanent, 451 temporary …) so tests can see both kinds of failure.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from contactd.config import EmailSettings


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class RecordingHandler:
    messages: list[Received] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    rcpt_count: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            self.rcpt_count += 1
            if self.refusals:
                return self.refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
            self.lock.notify_all()
        return "250 Message accepted for delivery"


@dataclass
class SmtpPeer:
    host: str
    port: int
    handler: RecordingHandler
    controller: Controller

    def settings(self, **overrides: Any) -> EmailSettings:
        values: dict[str, Any] = {
            "enabled": True,
            "host": self.host,
            "port": self.port,
            "from_address": "contactd@example.test",
            "timeout_s": 5.0,
        }
        values.update(overrides)
        return EmailSettings(**values)

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def refuse(self, code: int, text: str, count: int = 1) -> None:
        with self.handler.lock:
            self.handler.refusals.extend([f"{code} {text}"] * count)

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.refusals.clear()
            self.handler.rcpt_count = 0

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        def wait() -> bool:
            with self.handler.lock:
                return self.handler.lock.wait_for(
                    lambda: len(self.handler.messages) >= count, timeout_s
                )

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout_s} s")
        return self.messages


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_peer() -> Iterator[SmtpPeer]:
    handler = RecordingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpPeer("127.0.0.1", port, handler, controller)
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_peer: SmtpPeer) -> SmtpPeer:
    smtp_peer.reset()
    return smtp_peer
