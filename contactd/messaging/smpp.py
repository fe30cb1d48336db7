"""SMPP 3.4 client behind an async interface: submit text, get message ids, hear deliver_sm.

The blocking work happens in `smpp_io` threads; here each request is a future keyed by its
sequence number, a semaphore is the window, a sliding-second limiter is the account's cap,
and ESME_RTHROTTLED / ESME_RMSGQFUL pause every sender with a growing back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import smpplib.consts

from contactd.background import LoopState, TaskOwner, run_resilient
from contactd.config import SmppSettings
from contactd.health import ComponentHealth
from contactd.messaging.encoding import decode_payload, split_message
from contactd.messaging.errors import (
    SendFailedError,
    SmppBindError,
    SmppUnavailableError,
    TemporaryFailureError,
)
from contactd.messaging.pdu import RawDeliverSm, inbound_resp, submit_sm
from contactd.messaging.smpp_io import (
    BindRefused,
    Down,
    Endpoint,
    Inbound,
    Report,
    Response,
    SmppIo,
    Unreachable,
    Up,
)
from contactd.messaging.types import DeliveryReceipt, ReceiptOutcome

log = logging.getLogger(__name__)

ESME_ROK: Final = 0x00
ESME_RSYSERR: Final = 0x08
ESME_RMSGQFUL: Final = 0x14
ESME_RTHROTTLED: Final = 0x58
RETRYABLE: Final = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
ESM_RECEIPT_MASK: Final = 0x3C
ESM_SMSC_RECEIPT: Final = 0x04
# SMPP 3.4 appendix B `stat` values; ENROUTE, ACCEPTD and anything unknown are intermediate.
RECEIPT_STATS: Final = {
    "DELIVRD": ReceiptOutcome.DELIVERED,
    "EXPIRED": ReceiptOutcome.EXPIRED,
    "UNDELIV": ReceiptOutcome.FAILED,
    "REJECTD": ReceiptOutcome.FAILED,
    "DELETED": ReceiptOutcome.FAILED,
    "UNKNOWN": ReceiptOutcome.FAILED,
}
_RECEIPT_FIELD = re.compile(r"(\w+(?: date)?):(\S*)")


def describe_status(status: int) -> str:
    return f"0x{status:02X} {smpplib.consts.DESCRIPTIONS.get(status, 'unknown status')}"


@dataclass(frozen=True)
class DeliverSm:
    """An inbound deliver_sm: a delivery receipt (`receipt_id` set) or a mobile-originated text."""

    source_addr: str
    destination_addr: str
    text: str
    receipt_id: str | None = None
    stat: str | None = None  # DELIVRD, UNDELIV, EXPIRED, REJECTD …
    error: str | None = None
    source_ton: int = 0  # type of number: 1 international, 2 national, 0 unknown …
    source_npi: int = 0  # numbering plan: 1 E.164

    @functools.cached_property
    def receipt(self) -> DeliveryReceipt | None:
        """The receipt in the outbox's terms; None for a mobile-originated text. Worked out
        once: the handler asks whether there is one, then for it."""
        if self.receipt_id is None:
            return None
        stat = (self.stat or "").upper()
        outcome = RECEIPT_STATS.get(stat, ReceiptOutcome.PENDING)
        if outcome is ReceiptOutcome.FAILED:
            detail = f"SMSC receipt {stat} err:{self.error or '?'}"
        elif outcome is ReceiptOutcome.EXPIRED:
            detail = "SMSC: validity period expired"
        else:
            detail = stat
        return DeliveryReceipt(self.receipt_id, outcome, detail)


def parse_deliver(pdu: RawDeliverSm) -> DeliverSm:
    esm_class = pdu.esm_class
    payload = pdu.short_message
    source = pdu.source_addr.decode("latin-1")
    dest = pdu.destination_addr.decode("latin-1")
    ton, npi = pdu.source_addr_ton, pdu.source_addr_npi
    if esm_class & ESM_RECEIPT_MASK != ESM_SMSC_RECEIPT:
        text = decode_payload(payload, pdu.data_coding, esm_class)
        return DeliverSm(source, dest, text, source_ton=ton, source_npi=npi)
    text = payload.decode("latin-1")
    fields = dict(_RECEIPT_FIELD.findall(text))
    receipted = pdu.receipted_message_id
    receipt_id = receipted.decode("latin-1") if receipted else fields.get("id", "")
    return DeliverSm(
        source, dest, text, receipt_id, fields.get("stat"), fields.get("err"), ton, npi
    )


def _parsed(report: Inbound) -> DeliverSm | None:
    """The deliver_sm of `report`, parsed once; None when it does not parse."""
    try:
        return parse_deliver(report.pdu)
    except Exception:
        return None


class SlidingRateLimiter:
    """At most `rate` acquisitions inside any one-second window (a provider's hard cap)."""

    def __init__(self, rate: float, *, margin_s: float = 0.1) -> None:
        # The margin absorbs jitter between taking a token and the bytes reaching the SMSC,
        # which measures the cap on arrival.
        self.limit = max(1, int(rate))
        self._span = 1.0 + margin_s
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while len(self._times) >= self.limit:
                wait = self._times[0] + self._span - time.monotonic()
                if wait <= 0:
                    self._times.popleft()
                    continue
                await asyncio.sleep(wait)
            self._times.append(time.monotonic())


@dataclass
class SmppStats:
    submitted: int = 0
    throttled: int = 0
    connects: int = 0
    disconnects: int = 0
    receipts: int = 0
    mo: int = 0
    last_error: str = ""
    extra: dict[str, int] = field(default_factory=dict)


DeliverHandler = Callable[[DeliverSm], Awaitable[int]]
# Takes the receipts that arrived together; returns once they are stored, raises to have the
# SMSC deliver them all again.
ReceiptsHandler = Callable[[list[DeliveryReceipt]], Awaitable[None]]


class SmppClient:
    """One bound transceiver session to one SMSC account, kept up for the client's lifetime."""

    def __init__(
        self,
        settings: SmppSettings,
        on_deliver: DeliverHandler | None = None,
        *,
        on_receipts: ReceiptsHandler | None = None,
        connect_timeout_s: float = 5.0,
        response_timeout_s: float = 10.0,
        wait_connected_s: float = 10.0,
        throttle_backoff_s: tuple[float, float] = (0.05, 2.0),
        throttle_budget_s: float = 60.0,
        # Redial a lost SMSC at least every 2 s: a connect to a dead host costs nothing, and
        # a held outbox backlog starts draining within 2 s of the SMSC's return.
        reconnect_s: tuple[float, float] = (0.2, 2.0),
    ) -> None:
        self.settings = settings
        self._on_deliver = on_deliver
        # Receipts that arrive together are stored together when this is set (a task and a
        # commit wait per burst, not per receipt); mobile-originated texts go to on_deliver.
        self._on_receipts = on_receipts
        self._endpoint = Endpoint(
            settings.host,
            settings.port,
            settings.system_id,
            settings.password.get_secret_value(),
            settings.system_type,
            connect_timeout_s,
        )
        self._response_timeout_s = response_timeout_s
        self._wait_connected_s = wait_connected_s
        self._backoff = throttle_backoff_s
        self._throttle_budget_s = throttle_budget_s
        self._reconnect = reconnect_s
        self._window = asyncio.Semaphore(settings.window)
        self._limiter = (
            SlidingRateLimiter(settings.max_per_second) if settings.max_per_second > 0 else None
        )
        # sequence -> (answer, session generation, deadline on the monotonic clock, command)
        self._pending: dict[int, tuple[asyncio.Future[Response], int, float, str]] = {}
        # One sweep for every request's deadline, not a timer per request.
        self._sweep_s = max(0.01, min(1.0, response_timeout_s / 4))
        self._up = asyncio.Event()
        self._generation = 0
        self._unbinding = False
        self._paused_until = 0.0
        self._first: asyncio.Future[None] | None = None
        self._io: SmppIo | None = None
        self._keepalive = TaskOwner("smpp-keepalive", log)
        self._delivers = TaskOwner("smpp-deliver", log)
        self._since: datetime | None = None
        self.keepalive_state = LoopState("smpp enquire_link")
        self.stats = SmppStats()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def until_bound(self) -> None:
        """Returns once the link is bound (at once when it is): however long the SMSC is away."""
        await self._up.wait()

    def probe(self) -> ComponentHealth:
        """For the health registry: bound or not, and why not."""
        host, port = self._addr()
        if self._io is not None and not self._io.reader_alive:
            return ComponentHealth("down", "SMPP reader thread stopped", self._since)
        if self._up.is_set():
            if not self.keepalive_state.healthy:
                return self.keepalive_state.probe()
            return ComponentHealth("ok", f"bound to {host}:{port}", self._since)
        return ComponentHealth("down", self.stats.last_error or "connecting", self._since)

    async def __aenter__(self) -> SmppClient:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._io = SmppIo(
            self._endpoint,
            loop,
            self._on_reports,
            reconnect_min_s=self._reconnect[0],
            reconnect_max_s=self._reconnect[1],
        )
        self._io.start()
        self._keepalive.spawn(self._enquire_link_loop(), "enquire-link")
        self._keepalive.spawn(self._expire_requests(), "request-deadlines")
        try:
            # A refused bind fails start-up at once; an unreachable SMSC only delays sending.
            await asyncio.wait_for(asyncio.shield(self._first), self._wait_connected_s)
        except TimeoutError:
            host, port = self._addr()
            log.warning(
                "smpp: SMSC not reachable yet; retrying", extra={"host": host, "port": port}
            )
        except SmppBindError:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unbinding = True  # the session end that follows is ours, not a fault
        if self.connected:
            with contextlib.suppress(TemporaryFailureError):
                await self._request("unbind", timeout_s=2.0)
        await self._close()

    async def _close(self) -> None:
        await self._keepalive.close()
        # deliver_sm handlers write to the database: let them finish rather than cut them.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._response_timeout_s):
                await self._delivers.join()
        await self._delivers.close()
        if self._io is not None:
            self._io.stop()
            await asyncio.to_thread(self._io.join, 5.0)
        self._fail_pending(None, "client closed")

    def _addr(self) -> tuple[str, int]:
        return self._endpoint.host, self._endpoint.port

    # -- reports from the threads ---------------------------------------------------------
    def _on_reports(self, reports: list[Report]) -> None:
        receipts: list[tuple[Inbound, DeliverSm]] = []
        for report in reports:
            if isinstance(report, Response):
                entry = self._pending.pop(report.sequence, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_result(report)
            elif isinstance(report, Inbound):
                message = _parsed(report)
                if (self._on_receipts is not None and message is not None
                        and message.receipt is not None):
                    receipts.append((report, message))
                else:
                    self._delivers.spawn(
                        self._handle_inbound(report, message), f"deliver-{report.sequence}"
                    )
            elif isinstance(report, Up):
                self._generation = report.generation
                self.stats.connects += 1
                self._up.set()
                self._since = datetime.now(UTC)
                host, port = self._addr()
                log.info(
                    "smpp: bound",
                    extra={"host": host, "port": port, "system_id": self._endpoint.system_id},
                )
                if self._first is not None and not self._first.done():
                    self._first.set_result(None)
            elif isinstance(report, Down):
                self._up.clear()
                self._since = datetime.now(UTC)
                self.stats.disconnects += 1
                self.stats.last_error = report.reason
                log.log(
                    logging.INFO if self._unbinding else logging.WARNING,
                    "smpp: session closed",
                    extra={"reason": report.reason},
                )
                self._fail_pending(report.generation, report.reason)
            elif isinstance(report, Unreachable):
                self.stats.last_error = report.reason
                if self._first is not None and not self._first.done():
                    # Start-up goes on; the reader keeps trying and sends wait for it.
                    host, port = self._addr()
                    log.warning(
                        "smpp: SMSC unreachable; retrying",
                        extra={"host": host, "port": port, "error": report.reason},
                    )
                    self._first.set_result(None)
            elif isinstance(report, BindRefused):
                self.stats.last_error = f"bind refused: {describe_status(report.status)}"
                log.error("smpp: bind refused", extra={"error": self.stats.last_error})
                if self._first is not None and not self._first.done():
                    self._first.set_exception(self._bind_error(report))
        if receipts:
            self._delivers.spawn(
                self._handle_receipts(receipts), f"receipts-{receipts[0][0].sequence}"
            )

    def _bind_error(self, report: BindRefused) -> SmppBindError:
        host, port = self._addr()
        return SmppBindError(
            f"SMSC {host}:{port} refused bind_transceiver for system_id "
            f"{self._endpoint.system_id!r}: {describe_status(report.status)}",
            status=report.status,
        )

    def _fail_pending(self, generation: int | None, reason: str) -> None:
        for seq, (future, gen, _, _) in list(self._pending.items()):
            if generation is None or gen == generation:
                del self._pending[seq]
                if not future.done():
                    # The SMSC may have accepted it before the drop: callers retry (at least once).
                    future.set_exception(SmppUnavailableError(f"smpp {reason}", maybe_sent=True))

    async def _handle_receipts(self, batch: list[tuple[Inbound, DeliverSm]]) -> None:
        assert self._on_receipts is not None
        self.stats.receipts += len(batch)
        status = ESME_ROK
        try:
            await self._on_receipts([m.receipt for _, m in batch if m.receipt is not None])
        except Exception:
            log.exception(
                "smpp: receipt handler failed; asking the SMSC to redeliver",
                extra={"receipts": len(batch)},
            )
            status = ESME_RSYSERR
        for report, _ in batch:
            self._answer(report, status)

    async def _handle_inbound(self, report: Inbound, message: DeliverSm | None) -> None:
        """One deliver_sm the one-by-one way; `message` is None when it did not parse (parsed
        again here, so the failure is logged and the PDU refused)."""
        status = ESME_ROK
        try:
            if message is None:
                message = parse_deliver(report.pdu)
            if message.receipt_id is not None:
                self.stats.receipts += 1
            else:
                self.stats.mo += 1
            if self._on_deliver is not None:
                status = await self._on_deliver(message)
        except Exception:
            log.exception("smpp: deliver_sm handler failed; asking the SMSC to redeliver")
            status = ESME_RSYSERR
        self._answer(report, status)

    def _answer(self, report: Inbound, status: int) -> None:
        """The deliver_sm_resp, sent only after the handler stored what it got: a crash
        before this means the SMSC delivers it again."""
        if self._io is not None:
            self._io.send(
                report.generation, inbound_resp(report.pdu.command, report.sequence, status)
            )

    # -- requests -------------------------------------------------------------------------
    async def _request(
        self,
        command: str,
        *,
        timeout_s: float | None = None,
        packed: Callable[[int], bytes] | None = None,
        **fields: Any,
    ) -> Response:
        assert self._io is not None, "use SmppClient as an async context manager"
        if not self._up.is_set():
            try:
                await asyncio.wait_for(self._up.wait(), self._wait_connected_s)
            except TimeoutError:
                host, port = self._addr()
                raise SmppUnavailableError(
                    f"SMSC {host}:{port} not bound ({self.stats.last_error or 'connecting'})"
                ) from None
        sequence = self._io.sequences.next_sequence()
        if packed is not None:
            data = packed(sequence)
        else:
            data = self._io.encode(command, sequence, **fields)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + (timeout_s or self._response_timeout_s)
        self._pending[sequence] = (future, self._generation, deadline, command)
        self._io.send(self._generation, data)
        try:
            # No timer here: `_expire_requests` fails the answers that are overdue (a timer
            # per request cost a heap entry and a cancel per SMS).
            return await future
        finally:
            self._pending.pop(sequence, None)

    async def _expire_requests(self) -> None:
        """Fail requests unanswered past their deadline (at least once: the SMSC may have
        taken a submit whose answer was lost, so the caller retries it as maybe sent)."""
        while True:
            await asyncio.sleep(self._sweep_s)
            now = time.monotonic()
            for sequence, (future, _, deadline, command) in list(self._pending.items()):
                if deadline <= now:
                    del self._pending[sequence]
                    if not future.done():
                        future.set_exception(
                            SmppUnavailableError(f"no {command}_resp", maybe_sent=True)
                        )

    async def submit(
        self,
        destination: str,
        payload: bytes,
        *,
        data_coding: int,
        esm_class: int = 0,
        source: str | None = None,
        receipt: bool = True,
    ) -> str:
        """Submit one part; returns the SMSC's message id. Throttling is retried here."""
        sender = (source if source is not None else self.settings.source_addr).lstrip("+")
        delay = self._backoff[0]
        deadline = time.monotonic() + self._throttle_budget_s
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            async with self._window:
                # Inside the window: a token taken while waiting for a slot would let sends
                # bunch up later and break the cap as the SMSC measures it.
                if self._limiter is not None:
                    await self._limiter.acquire()
                response = await self._request(
                    "submit_sm",
                    packed=functools.partial(
                        submit_sm,
                        source_addr=sender,
                        source_addr_ton=1 if sender.isdigit() else 5,  # international / alpha
                        source_addr_npi=1 if sender.isdigit() else 0,
                        destination_addr=destination.lstrip("+"),
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        esm_class=esm_class,
                        data_coding=data_coding,
                        registered_delivery=1 if receipt else 0,
                        short_message=payload,
                    ),
                )
            if response.status == ESME_ROK:
                self.stats.submitted += 1
                return response.message_id
            if response.status not in RETRYABLE:
                raise SendFailedError(
                    f"SMSC refused submit_sm: {describe_status(response.status)}",
                    status=response.status,
                )
            self.stats.throttled += 1
            if time.monotonic() + delay > deadline:
                raise TemporaryFailureError(
                    f"SMSC still busy after {self._throttle_budget_s:.0f} s: "
                    f"{describe_status(response.status)}",
                    status=response.status,
                )
            # Every sender waits: the SMSC throttles the account, not one message.
            self._paused_until = max(self._paused_until, time.monotonic() + delay)
            delay = min(delay * 2, self._backoff[1])

    async def send_text(
        self, destination: str, text: str, *, reference: int, source: str | None = None
    ) -> list[str]:
        """Encode (GSM-7 or UCS-2), split with concatenation UDH, submit parts in order."""
        ids: list[str] = []
        for part in split_message(text, reference):
            ids.append(
                await self.submit(
                    destination,
                    part.payload,
                    data_coding=int(part.data_coding),
                    esm_class=part.esm_class,
                    source=source,
                )
            )
        return ids

    async def _enquire_link_loop(self) -> None:
        await run_resilient(self._enquire_link_step, self.keepalive_state, logger=log)

    async def _enquire_link_step(self) -> None:
        await asyncio.sleep(self.settings.enquire_link_s)
        if not self._up.is_set():
            return
        generation = self._generation
        try:
            await self._request("enquire_link", timeout_s=self._response_timeout_s)
        except TemporaryFailureError:
            log.warning("smpp: enquire_link unanswered; reconnecting")
            if self._io is not None:
                self._io.drop(generation)
