"""Polling an IMAP mailbox (aioimaplib): each unseen mail goes to the mail intake, and is
marked \\Seen only after the intake has it durably (stored, already stored, or refused with
its raw copy kept). A crash in between leaves it unseen: fetched again, the intake's dedup key
makes it a no-op, so nothing is lost and nothing doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import aioimaplib

from contactd.background import LoopState, run_resilient
from contactd.config import EmailInboundSettings
from contactd.messaging.errors import ImapError
from contactd.messaging.mail_in import Intake

log = logging.getLogger(__name__)

Receive = Callable[[bytes, str], Coroutine[Any, Any, Intake]]


def _check(response: Any, what: str) -> list[Any]:
    if response.result != "OK":
        text = b" ".join(x for x in response.lines if isinstance(x, bytes))
        raise ImapError(f"IMAP {what}: {response.result} {text.decode(errors='replace')[:200]}")
    return list(response.lines)


class ImapPoller:
    """Polls every `imap_poll_s`; `state` feeds the health probe, `polls` counts passes."""

    def __init__(self, settings: EmailInboundSettings, receive: Receive) -> None:
        self.settings = settings
        self.receive = receive
        self.state = LoopState("imap poll")
        self.polls = 0
        self._polled = asyncio.Condition()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ImapPoller:
        self._runner = asyncio.create_task(
            run_resilient(self._step, self.state, logger=log, until=self._stop),
            name="imap-poller",
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._runner is not None:
            self._runner.cancel()  # a pass cut mid-way is safe: unseen mail is fetched again
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def wait_polls(self, count: int) -> None:
        """Until `count` passes have completed (tests and the CLI wait on this)."""
        async with self._polled:
            await self._polled.wait_for(lambda: self.polls >= count)

    async def _step(self) -> None:
        await self.poll_once()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=self.settings.imap_poll_s)

    async def poll_once(self) -> int:
        """One pass over the unseen mail; returns how many were taken in."""
        s = self.settings
        client: aioimaplib.IMAP4
        if s.imap_security == "tls":
            client = aioimaplib.IMAP4_SSL(host=s.imap_host, port=s.imap_port, timeout=s.timeout_s)
        else:
            client = aioimaplib.IMAP4(host=s.imap_host, port=s.imap_port, timeout=s.timeout_s)
        taken = 0
        try:
            await asyncio.wait_for(client.wait_hello_from_server(), s.timeout_s)
            _check(await client.login(s.imap_username, s.imap_password.get_secret_value()),
                   "login")
            _check(await client.select(s.imap_mailbox), f"select {s.imap_mailbox}")
            found = _check(await client.uid_search("UNSEEN"), "search")
            uids = found[0].split() if found and isinstance(found[0], bytes) else []
            for uid in uids:
                taken += await self._take(client, uid.decode())
            with contextlib.suppress(Exception):  # the mail is marked already
                await client.logout()
        except (TimeoutError, OSError, aioimaplib.Abort, aioimaplib.CommandTimeout) as exc:
            raise ImapError(f"IMAP {s.imap_host}:{s.imap_port}: {type(exc).__name__} {exc}"
                            ) from None
        finally:
            if client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()
        async with self._polled:
            self.polls += 1
            self._polled.notify_all()
        if taken:
            log.info("imap mail taken in", extra={"count": taken})
        return taken

    async def _take(self, client: aioimaplib.IMAP4, uid: str) -> int:
        # At most one byte past the limit: enough for the intake to refuse it as too large
        # while keeping a bounded copy, never the whole of a huge mail in memory.
        limit = self.settings.max_bytes + 1
        lines = _check(await client.uid("fetch", uid, f"(BODY.PEEK[]<0.{limit}>)"),
                       f"fetch {uid}")
        raw = next((bytes(x) for x in lines if isinstance(x, bytearray)), None)
        if raw is None:
            return 0  # expunged by someone else meanwhile
        intake = await self.receive(raw, "imap")  # raises: left unseen, fetched next pass
        _check(await client.uid("store", uid, "+FLAGS.SILENT", "(\\Seen)"), f"store {uid}")
        log.info("imap mail marked seen",
                 extra={"imap_uid": uid, "interaction_id": intake.interaction_id,
                        "status": intake.status})
        return 1
