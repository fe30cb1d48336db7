"""CallTracker: raw AMI events in, typed call events out. Pure: no I/O, time is passed in.

A call is found by its attempt id, which the Originate made the Uniqueid of the callee
channel and so the Linkedid of every channel of the call (Local ;1/;2 halves, legs placed by
the dialplan, the agent leg a queue adds). A CONTACTD_ATTEMPT channel variable (VarSet or
ChanVariable) links channels too, for Asterisk set-ups where ChannelId is not honoured.
Events may come duplicated or out of order: state only moves forward (calls.machine), each
domain event is emitted at most once, and events of unknown or finished calls are ignored.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

from contactd.ami.actions import ATTEMPT_VARIABLE, OTHER_CHANNEL_SUFFIX
from contactd.calls import outcome
from contactd.calls.ami_values import RawEvent, integer, interface, stamp, text
from contactd.calls.callstate import CallState, ended_event
from contactd.calls.events import (
    AnsweredBy,
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEvent,
    CallRinging,
)
from contactd.calls.machine import can_move
from contactd.enums import AttemptState

log = logging.getLogger(__name__)

# The whole inbound surface of the tracker, in one place (STYLE.md §2).
TRACKED_EVENTS: Final = (
    "OriginateResponse",
    "Newchannel",
    "Newstate",
    "DialBegin",
    "DialEnd",
    "BridgeEnter",
    "BridgeLeave",
    "Hangup",
    "UserEvent",
    "VarSet",
)
# asterisk-config/extensions.conf: UserEvent(ContactdAMD,Attempt: …,Status: …,Cause: …)
AMD_USER_EVENT: Final = "ContactdAMD"
# contactd-abandon: UserEvent(ContactdAbandon,Attempt: …,Status: <PLAYBACKSTATUS>)
ABANDON_USER_EVENT: Final = "ContactdAbandon"
# The message or IVR flow's result: UserEvent(ContactdMessage,Attempt: …,Status: …,Reason: …)
MESSAGE_USER_EVENT: Final = "ContactdMessage"
# contactd-hangup: UserEvent(ContactdHangup,…,Amd: <AMDSTATUS>): AMD's HANGUP verdict
HANGUP_USER_EVENT: Final = "ContactdHangup"
STATE_RINGING: Final = "5"
STATE_UP: Final = "6"
FINISHED_MEMORY: Final = 20_000

S = AttemptState


class CallTracker:
    """Follows watched attempts; `feed()` returns the domain events one raw event produced."""

    def __init__(self, *, wall_clock: Callable[[float], datetime] | None = None) -> None:
        self._calls: dict[str, CallState] = {}
        self._by_link: dict[str, CallState] = {}
        self._by_uid: dict[str, CallState] = {}
        self._bridges: dict[str, dict[str, str]] = {}  # bridge id → {uniqueid: channel}
        self._bridge_of: dict[str, str] = {}  # uniqueid → bridge id
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._abandoned: set[str] = set()  # open attempts whose CallAbandoned went out
        self._to_datetime = wall_clock or (lambda ts: datetime.fromtimestamp(ts, UTC))
        self.malformed = 0
        self.handlers: Mapping[str, Callable[[RawEvent, float], list[CallEvent]]] = {
            "OriginateResponse": self._originate_response,
            "Newchannel": self._newchannel,
            "Newstate": self._newstate,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "Hangup": self._hangup,
            "UserEvent": self._user_event,
            "VarSet": self._varset,
        }
        assert set(self.handlers) == set(TRACKED_EVENTS)

    # ---- registration ----------------------------------------------------------------
    def watch(self, attempt_id: str, *, started: float, expect_amd: bool = False) -> None:
        """Follow an attempt; call before its Originate goes out."""
        if attempt_id in self._calls or attempt_id in self._finished:
            return
        call = CallState(attempt_id, started, expect_amd)
        self._calls[attempt_id] = call
        self._link(call, attempt_id)
        self._link_uid(call, attempt_id)
        self._link_uid(call, attempt_id + OTHER_CHANNEL_SUFFIX)

    def unwatch(self, attempt_id: str) -> None:
        """Forget an attempt that was never stored nor sent (no event is produced)."""
        call = self._calls.get(attempt_id)
        if call is not None:
            self._forget(call)
            self._finished.pop(attempt_id, None)

    def is_open(self, attempt_id: str) -> bool:
        return attempt_id in self._calls

    @property
    def open_attempts(self) -> list[str]:
        return list(self._calls)

    def channel_of(self, attempt_id: str) -> str | None:
        call = self._calls.get(attempt_id)
        return call.channel if call else None

    def end_unanswered(self, attempt_id: str, why: str, now: float) -> str | None:
        """The channel to hang up when the call still rings unanswered (then marked: its end
        tells `why`); None when it was answered, has ended or has no channel yet."""
        call = self._calls.get(attempt_id)
        if (call is None or call.channel is None or call.answered_at is not None
                or call.primary_gone or call.state not in (S.DIALING, S.RINGING)):
            return None
        call.ended_unanswered_at, call.ended_unanswered_why = now, why
        return call.channel

    def keep_ringing(self, attempt_id: str) -> None:
        """The hang-up `end_unanswered` allowed did not happen (the channel was gone)."""
        call = self._calls.get(attempt_id)
        if call is not None:
            call.ended_unanswered_at, call.ended_unanswered_why = None, ""

    def _link(self, call: CallState, linkedid: str) -> None:
        call.linkedids.add(linkedid)
        self._by_link[linkedid] = call

    def _link_uid(self, call: CallState, uniqueid: str) -> None:
        call.uniqueids.add(uniqueid)
        self._by_uid[uniqueid] = call

    # ---- the event entry point -------------------------------------------------------
    def feed(self, event: RawEvent, now: float) -> list[CallEvent]:
        """Apply one raw AMI event; a malformed one is logged and dropped, never raised."""
        try:
            name = event.get("Event")
            handler = self.handlers.get(name) if isinstance(name, str) else None
            if handler is None:
                return []
            # manager.conf timestampevents=yes: Asterisk's own clock makes durations exact.
            at = stamp(event.get("Timestamp"), now)
            call = self._find(event)
            if call is not None:
                call.last_seen = at
            return handler(event, at)
        except Exception:
            self.malformed += 1
            log.warning("malformed AMI event ignored by the call tracker", exc_info=True)
            return []

    def _find(self, event: RawEvent) -> CallState | None:
        linkedid = event.get("Linkedid")
        if isinstance(linkedid, str):
            call = self._by_link.get(linkedid)
            if call is not None:
                return call
        uniqueid = event.get("Uniqueid")
        if isinstance(uniqueid, str):
            return self._by_uid.get(uniqueid)
        return None

    def _is_primary(self, call: CallState, event: RawEvent) -> bool:
        return event.get("Uniqueid") == call.attempt_id

    # ---- handlers --------------------------------------------------------------------
    def _originate_response(self, event: RawEvent, now: float) -> list[CallEvent]:
        action_id = text(event, "ActionID")
        call = self._calls.get(action_id) if action_id else None
        if call is None:
            return []
        reason = integer(text(event, "Reason"))
        if reason is None:
            self.malformed += 1
            log.warning("OriginateResponse without a numeric Reason",
                        extra={"attempt_id": action_id})
            return []
        call.reason = reason
        if reason == outcome.REASON_ANSWERED:
            return self._answered(call, now)
        # A Uniqueid means a channel existed: its Hangup (which may come later, the event
        # paths inside Asterisk differ) brings the exact cause. "<null>": no channel at all.
        uniqueid = text(event, "Uniqueid")
        had_channel = call.primary_seen or uniqueid not in (None, "", "<null>")
        if call.primary_gone or not had_channel:
            return self._end(call, now)
        return []

    def _newchannel(self, event: RawEvent, now: float) -> list[CallEvent]:
        call = self._find(event)
        if call is not None and self._is_primary(call, event):
            call.primary_seen = True
            call.channel = text(event, "Channel") or call.channel
        return []

    def _newstate(self, event: RawEvent, now: float) -> list[CallEvent]:
        call = self._find(event)
        if call is None:
            return []
        state = event.get("ChannelState")
        primary = self._is_primary(call, event)
        if primary:
            call.primary_seen = True
            call.channel = text(event, "Channel") or call.channel
        if state == STATE_UP and primary:
            return self._answered(call, now)
        if state == STATE_RINGING and can_move(call.state, S.RINGING):
            call.state = S.RINGING
            return [CallRinging(attempt_id=call.attempt_id, channel=call.channel)]
        return []

    def _dial_begin(self, event: RawEvent, now: float) -> list[CallEvent]:
        call = self._find(event)
        dest = text(event, "DestUniqueid")
        if call is not None and dest:
            self._link_uid(call, dest)
        return []

    def _dial_end(self, event: RawEvent, now: float) -> list[CallEvent]:
        call = self._find(event)
        if call is None:
            return []
        cause = outcome.DIALSTATUS_CAUSE.get(text(event, "DialStatus") or "")
        if cause is not None:
            call.leg_cause = cause
        return []

    def _bridge_enter(self, event: RawEvent, now: float) -> list[CallEvent]:
        bridge = text(event, "BridgeUniqueid")
        uniqueid = text(event, "Uniqueid")
        channel = text(event, "Channel")
        if not bridge or not uniqueid or channel is None:
            return []
        self._leave_bridge(uniqueid)  # a channel is in one bridge at a time
        members = self._bridges.setdefault(bridge, {})
        members[uniqueid] = channel
        self._bridge_of[uniqueid] = bridge
        if len(members) < 2:
            return []
        for member_uid in members:
            call = self._calls.get(member_uid)
            if call is None or not can_move(call.state, S.BRIDGED):
                continue
            others = [(uid, ch) for uid, ch in members.items() if uid != member_uid]
            if not others:
                continue
            out = self._classify_if_needed(call, now)
            agent = others[-1][1]
            call.state = S.BRIDGED
            out.append(
                CallBridged(
                    attempt_id=call.attempt_id,
                    agent_channel=agent,
                    agent_interface=interface(agent),
                )
            )
            return out
        return []

    def _bridge_leave(self, event: RawEvent, now: float) -> list[CallEvent]:
        uniqueid = text(event, "Uniqueid")
        if uniqueid is not None and self._bridge_of.get(uniqueid) == text(event, "BridgeUniqueid"):
            self._leave_bridge(uniqueid)
        return []

    def _leave_bridge(self, uniqueid: str) -> None:
        bridge = self._bridge_of.pop(uniqueid, None)
        members = self._bridges.get(bridge) if bridge is not None else None
        if bridge is not None and members is not None:
            members.pop(uniqueid, None)
            if not members:
                del self._bridges[bridge]

    def _hangup(self, event: RawEvent, now: float) -> list[CallEvent]:
        uniqueid = text(event, "Uniqueid")
        if uniqueid is not None:
            self._leave_bridge(uniqueid)
        call = self._find(event)
        if call is None:
            return []
        cause = integer(text(event, "Cause"))
        if not self._is_primary(call, event):
            if outcome.is_specific(cause):
                call.leg_cause = cause
            return []
        call.primary_seen = True
        call.primary_gone = True
        call.cause = cause
        if not cause and call.state in (S.ANSWERED, S.BRIDGED):
            # Asterisk's "unknown" on a call a person answered: kept whole for a post-mortem
            # (seen once after an AMI reconnect, where 16 was expected; docs/operations.md).
            log.warning("answered call hung up without a cause", extra={
                "attempt_id": call.attempt_id, "event": {
                    k: text(event, k) for k in ("Channel", "Uniqueid", "Linkedid", "Cause",
                                                "Cause-txt", "ChannelState", "Context",
                                                "Exten", "Priority")}})
        call.channel = text(event, "Channel") or call.channel
        if call.state in (S.ANSWERED, S.BRIDGED) or call.reason is not None:
            return self._end(call, now)
        return []  # unanswered: wait for OriginateResponse, whose Reason makes the outcome exact

    def _user_event(self, event: RawEvent, now: float) -> list[CallEvent]:
        name = event.get("UserEvent")
        if name not in (AMD_USER_EVENT, ABANDON_USER_EVENT, MESSAGE_USER_EVENT,
                        HANGUP_USER_EVENT):
            return []
        call = self._find(event) or self._calls.get(text(event, "Attempt") or "")
        if call is None:
            return []
        call.last_seen = now
        if name == MESSAGE_USER_EVENT:
            if call.message_status in (None, "STARTED"):
                call.message_status = (text(event, "Status") or "FAILED").upper()
                call.message_reason = text(event, "Reason") or ""
            return []
        if name == HANGUP_USER_EVENT:
            amd = text(event, "Amd")
            if amd and call.answered_at is not None and call.amd_status is None:
                return self._amd(call, amd, None, now)  # AMD ended with the hang-up
            return []
        if name == ABANDON_USER_EVENT:
            return self._abandon(call, text(event, "Status"), now)
        return self._amd(call, text(event, "Status"), text(event, "Cause"), now)

    def _varset(self, event: RawEvent, now: float) -> list[CallEvent]:
        variable = text(event, "Variable")
        if variable == ATTEMPT_VARIABLE:
            call = self._calls.get(text(event, "Value") or "")
            uniqueid = text(event, "Uniqueid")
            linkedid = text(event, "Linkedid")
            if call is not None and uniqueid:
                self._link_uid(call, uniqueid)
                if linkedid:
                    self._link(call, linkedid)
            return []
        if variable == "AMDSTATUS":
            call = self._find(event)
            if call is not None:
                return self._amd(call, text(event, "Value"), None, now)
        return []

    # ---- transitions -----------------------------------------------------------------
    def _answered(self, call: CallState, now: float) -> list[CallEvent]:
        if not can_move(call.state, S.ANSWERED):
            return []
        call.state = S.ANSWERED
        call.answered_at = now
        if call.amd_status is not None or not call.expect_amd:
            return self._classify_if_needed(call, now)
        return []

    def _amd(
        self, call: CallState, status: str | None, cause: str | None, now: float
    ) -> list[CallEvent]:
        if call.amd_status is not None:
            return []
        call.amd_status = status or "NOTSURE"
        call.amd_cause = cause
        out = self._answered(call, now)  # an AMD verdict proves the answer, whatever came first
        return out or self._classify_if_needed(call, now)

    def _abandon(self, call: CallState, status: str | None, now: float) -> list[CallEvent]:
        if call.attempt_id in self._abandoned:
            return []
        self._abandoned.add(call.attempt_id)
        # Only an answered call reaches contactd-abandon: prove the answer (classified, even
        # without an AMD verdict) so CallAnswered always precedes CallAbandoned.
        out = self._answered(call, now)
        out += self._classify_if_needed(call, now)
        out.append(CallAbandoned(attempt_id=call.attempt_id, prompt_status=status or ""))
        return out

    def _classify_if_needed(self, call: CallState, now: float) -> list[CallEvent]:
        if call.classified or call.answered_at is None:
            return []
        call.classified = True
        call.answered_by = (
            outcome.amd_verdict(call.amd_status) if call.amd_status else AnsweredBy.UNKNOWN
        )
        return [
            CallAnswered(
                attempt_id=call.attempt_id,
                answered_by=call.answered_by,
                answered_at=self._to_datetime(call.answered_at),
                channel=call.channel,
                amd_status=call.amd_status,
                amd_cause=call.amd_cause,
            )
        ]

    def _end(self, call: CallState, now: float, *, lost: bool = False) -> list[CallEvent]:
        out: list[CallEvent] = [*self._classify_if_needed(call, now)]
        out.append(ended_event(call, now, lost=lost))
        call.state = S.ENDED
        self._forget(call)
        return out

    def _forget(self, call: CallState) -> None:
        self._calls.pop(call.attempt_id, None)
        self._abandoned.discard(call.attempt_id)
        for uniqueid in call.uniqueids:
            if self._by_uid.get(uniqueid) is call:
                del self._by_uid[uniqueid]
        for linkedid in call.linkedids:
            if self._by_link.get(linkedid) is call:
                del self._by_link[linkedid]
        self._finished[call.attempt_id] = None
        if len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)

    # ---- reconciliation --------------------------------------------------------------
    def resume(
        self,
        attempt_id: str,
        *,
        state: AttemptState,
        started: float,
        answered_at: float | None,
        expect_amd: bool,
        live: Iterable[Mapping[str, str]],
        now: float,
        amd_status: str | None = None,
        message_status: str | None = None,
    ) -> list[CallEvent]:
        """Follow again an attempt whose channels still live (after a restart or outage).

        What was stored before (the AMD verdict) and what Asterisk kept (the message's status,
        from AstDB) are restored, so an end never seen still ends with what was known."""
        call = self._calls.get(attempt_id)
        if call is None:
            if attempt_id in self._finished:
                return []
            self.watch(attempt_id, started=started, expect_amd=expect_amd)
            call = self._calls[attempt_id]
            call.state = state
            call.answered_at = answered_at
            # A stored ANSWERED/BRIDGED state means CallAnswered went out before the outage.
            call.classified = state in (S.ANSWERED, S.BRIDGED)
            if call.classified and answered_at is None:
                call.answered_at = started
            if amd_status:
                call.amd_status = amd_status
                call.answered_by = outcome.amd_verdict(amd_status)
        if message_status and call.message_status in (None, "STARTED"):
            call.message_status = message_status.upper()
            if call.answered_at is None:
                # The dialplan only plays a message to an answered call; when, nobody saw.
                call.answered_at = started
                call.state = S.ANSWERED
                call.amd_status = call.amd_status or "HUMAN"
                call.answered_by = outcome.amd_verdict(call.amd_status)
                call.classified = True
        out: list[CallEvent] = []
        for channel in live:
            if channel.get("Uniqueid") == attempt_id:
                call.primary_seen = True
                call.channel = channel.get("Channel") or call.channel
                if channel.get("ChannelState") == STATE_UP:
                    out += self._answered(call, now)
            elif channel.get("Uniqueid"):
                self._link_uid(call, channel["Uniqueid"])
        return out

    def reject(self, attempt_id: str, now: float) -> list[CallEvent]:
        """End an attempt whose Originate Asterisk refused or that was never sent: FAILED."""
        call = self._calls.get(attempt_id)
        if call is None:
            return []
        if call.reason is None:
            call.reason = 0
        return self._end(call, now)

    def settle_gone(self, attempt_id: str, now: float) -> list[CallEvent]:
        """End an attempt none of whose channels lives any more, its end unseen (`lost`): the
        outcome is what was seen before (an Originate failure Reason, an AMD verdict, a
        message heard), else LOST."""
        call = self._calls.get(attempt_id)
        if call is None:
            return []
        return self._end(call, now, lost=True)
