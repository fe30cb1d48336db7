"""CallService: the one entry point the dialer, the IVR and the panel use for outbound calls.

Public API (what other capabilities code against)
-------------------------------------------------

Build it in the composition root BEFORE entering the AMI client (it subscribes to the raw
events at construction, and the client asks Asterisk for exactly the subscribed events)::

    ami = AmiClient(settings.ami)
    calls = CallService(db, bus, ami, settings.asterisk)
    async with ami, calls:
        attempt_id = await calls.originate(OriginateRequest(
            phone_e164="+15551230000",
            dial="Local/5551230000@sim-callees",   # or omit: settings.asterisk.trunk_dial_template
            context="contactd-outbound", exten="s", # where the answered call goes
            caller_id='"Acme" <+15550000000>',
            ring_timeout_s=25, detect_machine=True,
            campaign_id=1, lead_id=42, contact_id=7,
            variables={"CONTACTD_FLOW": "survey"},
        ))

`originate()` writes the CallAttempt row (state `dialing`) BEFORE the Originate leaves, then
sends it with ActionID = attempt id, ChannelId (Uniqueid/Linkedid of the call) = attempt id and
the channel variable CONTACTD_ATTEMPT = attempt id. It returns the attempt id once Asterisk
queued the Originate. Errors (contactd.calls.errors / contactd.ami.errors, each with a code):
  - AmiUnavailable ("ami_unavailable"): not connected; nothing was written, dial later.
  - OriginateRejected ("originate_rejected"): Asterisk refused the action, or the link fell
    between the write and the send (details["reason"] says which); the attempt is already
    ended (outcome FAILED) and CallEnded was published.
  - OriginateUncertain ("originate_uncertain"): the link dropped or the action timed out
    before Asterisk answered; the attempt stays open and reconciliation settles it (resumed
    if the channel exists, else ended LOST). Never re-dial it yourself.

Everything that follows is published on the EventBus (contactd.calls.events), per attempt in
this order, each at most once: CallDialing (row stored, Originate going out) → CallRinging →
CallAnswered(answered_by=human|machine|unknown, answered_at) → CallBridged(agent_channel,
agent_interface) → CallAbandoned(prompt_status) → CallEnded(outcome, cause, ring_s, talk_s,
answered_by, lost). CallAbandoned: the dialplan gave up connecting the person (UserEvent
ContactdAbandon from contactd-abandon); the call layer stores nothing for it (the dialer does).
CallAnswered waits for the AMD verdict (UserEvent ContactdAMD) when detect_machine=True;
detect_machine=False sets CONTACTD_AMD=no so the dialplan skips AMD.
CallEnded is guaranteed for every attempt that `originate()` returned or reported
uncertain: by the events, or by reconciliation.
The attempt row (contactd.db.models.calls.CallAttempt) follows the same state machine
(contactd.calls.machine) and is updated by the service's writer; read it with
`AttemptRepository(db).get(attempt_id)`.

Other members:
  - `calls.health` → AmiHealth (state connected|reconnecting|down, since) of the link;
    `calls.connected` → whether it is up now.
  - `calls.in_flight` → number of attempts not yet ended.
  - `calls.channel_of(attempt_id)` → the callee channel name (for Redirect/Hangup), or None.
  - `await calls.hangup(attempt_id)` → hang up an attempt's channel (no-op when gone).
  - `await calls.end_unanswered(attempt_id, why)` → hang up a call only while it still rings
    unanswered (True when sent); it ends NO_ANSWER with `detail` saying `why`.
  - `await calls.reconcile(only=None)` → settle open attempts against live channels now
    (the service does it by itself after every (re)connect, for attempts sent on an older
    link or by an earlier process); `await calls.wait_reconciled(after_epoch, timeout_s)`.
  - `await calls.drain()` → wait until every event so far is stored and published.
  - `calls.ami` → the AmiClient, for the channel/queue actions the IVR and agents need:
    `redirect(channel, context, exten, priority=1, extra_channel=None)`, `hangup(channel,
    cause=16)`, `setvar(channel, name, value)`, `getvar(channel, name)`,
    `queue_add(queue, interface, member_name=None, penalty=0, paused=False)`,
    `queue_remove(queue, interface)`, `queue_pause(interface, paused, queue=None, reason="")`,
    `command(text) -> str`, `core_show_channels() -> list[dict]`, `probe()` (for the
    HealthRegistry), and `events` (the EventDispatcher: `events.on("Name", handler)` for raw
    AMI events as plain dicts with Asterisk's header names; failures logged and counted).
    Subscribe before entering the client: its login filter asks Asterisk only for the
    subscribed event names (AmiSettings.filter_events; a "*" subscriber receives all).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

from contactd.ami.client import AmiClient, AmiHealth
from contactd.ami.dispatcher import RawEvent
from contactd.ami.errors import (
    AmiActionFailed,
    AmiDisconnected,
    AmiError,
    AmiTimeout,
    AmiUnavailable,
)
from contactd.calls.errors import OriginateRejected, OriginateUncertain
from contactd.calls.events import CallDialing, CallEnded, CallEvent
from contactd.calls.reconcile import ReconcileReport, channels_by_call, settle
from contactd.calls.repo import AttemptRepository, NewAttempt
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.calls.writer import AttemptWriter
from contactd.config import AsteriskSettings, DialerSettings
from contactd.db.models.calls import CallAttempt
from contactd.db.session import Database
from contactd.events import EventBus

log = logging.getLogger(__name__)

RECHECK_AFTER_TIMEOUT_S: Final = 5.0
# asterisk-config/extensions.conf keeps each message's status at
# DB(contactd-message-<UTC hour it was first written>/<attempt>), and prunes the hour of a day ago.
MESSAGE_DB_FAMILY: Final = "contactd-message"


def message_families(created_at: datetime) -> tuple[str, str]:
    """The AstDB families a call's message status may be in: the hour it was dialled, or the
    next one (answered across the hour)."""
    first = created_at.astimezone(UTC)
    second = first + timedelta(hours=1)
    return f"{MESSAGE_DB_FAMILY}-{first.hour:02d}", f"{MESSAGE_DB_FAMILY}-{second.hour:02d}"


SHUTDOWN_DRAIN_S: Final = 10.0
NO_ANSWER_CAUSE: Final = 19  # Q.850 "no answer": a call ended while it rang, unanswered


@dataclass(frozen=True, kw_only=True)
class OriginateRequest:
    phone_e164: str
    dial: str | None = None  # default: settings.asterisk.trunk_dial_template
    context: str | None = None  # default: settings.asterisk.outbound_context
    exten: str = "s"
    priority: int = 1
    caller_id: str = ""
    ring_timeout_s: float = DialerSettings().ring_timeout_s  # the one default, config.py's
    detect_machine: bool = True
    campaign_id: int | None = None
    lead_id: int | None = None
    contact_id: int | None = None
    agent_id: int | None = None
    interaction_id: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


class CallService:
    """Originates, follows and stores outbound call attempts; see the module docstring."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        ami: AmiClient,
        asterisk: AsteriskSettings | None = None,
        *,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ami = ami
        self.bus = bus
        self.asterisk = asterisk or AsteriskSettings()
        self.repo = AttemptRepository(db, node)
        self.writer = AttemptWriter(self.repo)
        self.tracker = CallTracker()
        self._clock = clock
        # The AMI link epoch each attempt of this process was (or is being) sent on: the
        # event stream of the current link is whole, so only attempts sent on an older link
        # (or by an earlier process) can have vanished unseen.
        self._epoch_of: dict[str, int] = {}
        self._outbox: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconcile_lock = asyncio.Lock()
        self.last_reconcile: ReconcileReport | None = None
        # Subscribed at construction, before the AmiClient is entered: its login-time event
        # filter is built from the dispatcher's subscriptions.
        self.subscribe()
        self.reconciled_epoch = 0  # the AMI link epoch whose reconciliation has finished
        self._reconciled = asyncio.Condition()

    async def __aenter__(self) -> CallService:
        await self.writer.__aenter__()
        self._spawn(self._publish_loop(), "calls-publisher")
        self.ami.on_connected(self._after_connect)
        if self.ami.connected:
            self._spawn(self._after_connect(self.ami.epoch), "calls-reconcile")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for name in TRACKED_EVENTS:
            self.ami.events.off(name, self._on_ami_event)
        try:
            await asyncio.wait_for(self._outbox.join(), SHUTDOWN_DRAIN_S)
        except TimeoutError:
            log.warning("call events still unpublished at shutdown",
                        extra={"events": self._outbox.qsize()})
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.writer.__aexit__(exc_type, exc, tb)

    def subscribe(self) -> None:
        """Every raw AMI event the call layer handles (the tracker's whole surface)."""
        for name in TRACKED_EVENTS:
            self.ami.events.on(name, self._on_ami_event)

    # ---- queries ---------------------------------------------------------------------
    @property
    def health(self) -> AmiHealth:
        return self.ami.health

    @property
    def connected(self) -> bool:
        """The AMI link is up: `originate()` can send (else it raises AmiUnavailable)."""
        return self.ami.connected

    @property
    def in_flight(self) -> int:
        return len(self.tracker.open_attempts)

    def channel_of(self, attempt_id: str) -> str | None:
        return self.tracker.channel_of(attempt_id)

    # ---- originate -------------------------------------------------------------------
    async def originate(self, request: OriginateRequest) -> str:
        if not self.ami.connected:
            raise AmiUnavailable("AMI is not connected; nothing dialed")
        attempt_id = str(uuid.uuid4())
        started = self._clock()
        self._epoch_of[attempt_id] = self.ami.epoch
        try:
            self.tracker.watch(attempt_id, started=started, expect_amd=request.detect_machine)
            await self._store(attempt_id, request)
            self._emit(
                [
                    CallDialing(
                        attempt_id=attempt_id,
                        phone_e164=request.phone_e164,
                        campaign_id=request.campaign_id,
                        lead_id=request.lead_id,
                    )
                ]
            )
            await self._send_originate(attempt_id, request)
            return attempt_id
        except BaseException:
            if not self.tracker.is_open(attempt_id):
                self._epoch_of.pop(attempt_id, None)
            raise

    async def _store(self, attempt_id: str, request: OriginateRequest) -> None:
        try:
            await self.writer.create(
                NewAttempt(
                    attempt_id=attempt_id,
                    phone_e164=request.phone_e164,
                    campaign_id=request.campaign_id,
                    lead_id=request.lead_id,
                    contact_id=request.contact_id,
                    agent_id=request.agent_id,
                    interaction_id=request.interaction_id,
                    detect_machine=request.detect_machine,
                )
            )
        except BaseException:
            self.tracker.unwatch(attempt_id)  # nothing stored, nothing sent: forget it
            raise

    async def _send_originate(self, attempt_id: str, request: OriginateRequest) -> None:
        variables = dict(request.variables)
        if not request.detect_machine:
            variables.setdefault("CONTACTD_AMD", "no")
        dial = request.dial or self.asterisk.trunk_dial_template.format(number=request.phone_e164)
        self._epoch_of[attempt_id] = self.ami.epoch  # the link it really goes out on
        try:
            await self.ami.originate(
                attempt_id,
                dial,
                context=request.context or self.asterisk.outbound_context,
                exten=request.exten,
                priority=request.priority,
                caller_id=request.caller_id,
                timeout_ms=int(request.ring_timeout_s * 1000),
                variables=variables,
            )
        except (AmiActionFailed, AmiUnavailable) as exc:
            # Certain: Asterisk refused it, or it never left (the link fell after the row was
            # written). Closed now as FAILED, CallEnded published; never retried here.
            self._emit(self.tracker.reject(attempt_id, self._clock()))
            raise OriginateRejected(
                f"Originate not placed: {exc}", attempt_id=attempt_id, reason=exc.code
            ) from exc
        except (AmiDisconnected, AmiTimeout) as exc:
            log.warning(
                "Originate fate unknown; reconciliation will settle it",
                extra={"attempt_id": attempt_id, "error": exc.code},
            )
            if isinstance(exc, AmiTimeout):
                self._spawn(self._recheck_later(attempt_id), "calls-recheck")
            raise OriginateUncertain(str(exc), attempt_id=attempt_id) from exc

    async def hangup(self, attempt_id: str, cause: int = 16) -> None:
        channel = self.tracker.channel_of(attempt_id)
        if channel is None:
            return
        try:
            await self.ami.hangup(channel, cause)
        except AmiActionFailed:
            log.info("hangup: channel already gone", extra={"attempt_id": attempt_id})

    async def end_unanswered(self, attempt_id: str, why: str) -> bool:
        """Hang up a call still ringing, unanswered: True once the hang-up is sent. False
        when it was answered (at the telephony level: with AMD that is before CallAnswered),
        has ended, or has no channel yet; AmiUnavailable when the link is down. Its CallEnded
        then says NO_ANSWER (Hangup cause 19), its `detail` telling `why`."""
        channel = self.tracker.end_unanswered(attempt_id, why, self._clock())
        if channel is None:
            return False
        try:
            # Measured on Asterisk 22: a ringing Originate hung up by AMI with cause 19 ends
            # with Hangup Cause 19 and OriginateResponse Reason 0; with 16, its outcome would
            # be FAILED.
            await self.ami.hangup(channel, NO_ANSWER_CAUSE)
        except AmiActionFailed:
            self.tracker.keep_ringing(attempt_id)  # gone already: it ends as it ended
            return False
        except AmiUnavailable:
            self.tracker.keep_ringing(attempt_id)  # never sent
            raise
        except (AmiDisconnected, AmiTimeout) as exc:
            # Perhaps done: it stays marked, so if it happened its end says why.
            log.warning("hang-up of a ringing call: fate unknown",
                        extra={"attempt_id": attempt_id, "error": exc.code})
        return True

    # ---- events ----------------------------------------------------------------------
    def _on_ami_event(self, event: RawEvent) -> None:
        produced = self.tracker.feed(event, self._clock())
        if produced:
            self._emit(produced)

    def _emit(self, events: Iterable[CallEvent]) -> None:
        for event in events:
            if isinstance(event, CallEnded):
                self._epoch_of.pop(event.attempt_id, None)
            if not isinstance(event, CallDialing):
                self.writer.apply(event)
            self._outbox.put_nowait(event)

    async def _publish_loop(self) -> None:
        # One consumer keeps the bus order equal to the tracker's order.
        while True:
            event = await self._outbox.get()
            try:
                await self.bus.publish(event)
            except Exception:
                log.exception("publishing a call event failed", extra={"event": repr(event)})
            finally:
                self._outbox.task_done()

    # ---- reconciliation --------------------------------------------------------------
    async def _after_connect(self, epoch: int) -> None:
        try:
            await self.reconcile()
        except AmiError as exc:
            # The link fell again mid-way; the next connect reconciles again.
            log.warning("reconciliation interrupted", extra={"epoch": epoch, "error": str(exc)})
            return
        async with self._reconciled:
            self.reconciled_epoch = max(self.reconciled_epoch, epoch)
            self._reconciled.notify_all()

    async def wait_reconciled(self, after_epoch: int, timeout_s: float) -> None:
        """Wait until a link newer than `after_epoch` is up and its reconciliation done."""
        async with asyncio.timeout(timeout_s), self._reconciled:
            await self._reconciled.wait_for(lambda: self.reconciled_epoch > after_epoch)

    async def _recheck_later(self, attempt_id: str) -> None:
        # The link stayed up but the Originate got no answer: look for its channel later.
        await asyncio.sleep(RECHECK_AFTER_TIMEOUT_S)
        if self.ami.connected and self.tracker.is_open(attempt_id):
            await self.reconcile(only={attempt_id})

    async def reconcile(self, *, only: Collection[str] | None = None) -> ReconcileReport:
        """Settle open attempts against the live channels; never re-dials.

        By default every open attempt not sent on the current link (an older link, or an
        earlier process); `only` names the attempts to settle whatever link they went on.
        """
        async with self._reconcile_lock:
            epoch = self.ami.epoch
            await self.writer.flush()
            rows = await self.repo.open_attempts()
            live = await self.ami.core_show_channels()
            if only is not None:
                wanted = set(only)
                skip = {row.id for row in rows if row.id not in wanted}
            else:
                # Read after the rows: an attempt created meanwhile carries the current epoch.
                skip = {a for a, sent_on in self._epoch_of.items() if sent_on >= epoch}
            gone = channels_by_call(live)
            messages = await self._kept_messages(
                [r for r in rows if r.id not in skip and r.id not in gone
                 and (r.linkedid is None or r.linkedid not in gone)])
            report, events = settle(self.tracker, rows, live, now=self._clock(), skip=skip,
                                    messages=messages)
            self._emit(events)
            await self.writer.flush()
            self.last_reconcile = report
            return report

    async def _kept_messages(self, rows: Sequence[CallAttempt]) -> dict[str, str]:
        """The message status the dialplan kept in AstDB for calls that ended while nobody
        listened (DBGet). The dialplan prunes old statuses itself: AMI's DBDel needs the
        `system` write class, which manager.conf leaves out."""
        kept: dict[str, str] = {}
        for row in rows:
            for family in message_families(row.created_at):
                try:
                    reply = await self.ami.action(
                        {"Action": "DBGet", "Family": family, "Key": row.id})
                except AmiActionFailed:
                    continue  # not in this family
                found = [m.get("Val") for m in (reply if isinstance(reply, list) else [reply])
                         if m.get("Event") == "DBGetResponse"]
                if found and found[0]:
                    kept[row.id] = str(found[0])
                    break
        return kept

    async def drain(self) -> None:
        """Wait until every event so far is stored and published (tests, shutdown)."""
        await self.writer.flush()
        await self._outbox.join()

    def _spawn(self, coro: Any, name: str) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call service task failed", extra={"task": name})

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
