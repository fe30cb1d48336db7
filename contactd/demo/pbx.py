"""DemoPbx: an asyncio stand-in for Asterisk 22 that contactd reaches through its normal AMI
client. It answers the actions contactd sends and plays each originated call through the
shipped dialplan's steps (asterisk-config/extensions.conf: contactd-outbound, -abandon,
-track/-hangup), raising the same events and UserEvents in the same order per channel.

Who answers is decided by `World` (contactd/demo/world.py); how long things take comes from
`DemoSettings`. The conformance test (tests/integration/demo/test_conformance.py) holds the
sequences to the real sandbox's.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, TypeAlias

from contactd.background import TaskOwner
from contactd.config import DemoSettings
from contactd.demo.amiserver import AmiServer, AmiSession, frame
from contactd.demo.caller import CallerReport, Turn, call_ivr
from contactd.demo.channels import CAUSE_TXT, Channel, ChannelGone, Names, Redirected, event
from contactd.demo.world import UNANSWERED, Callee, Fate, World, split_dial

log = logging.getLogger(__name__)

INBOUND: Final = "contactd-inbound"
OUTBOUND: Final = "contactd-outbound"
ABANDON: Final = "contactd-abandon"
AGENT_RING_S: Final = 15.0  # extensions.conf CONTACTD_AGENT_RING_S
FALLBACK_QUEUE: Final = "contactd"
CALL: Final = "call,all"
USER: Final = "user,all"
AGENT: Final = "agent,all"

Action = dict[str, str | list[str]]
_Reply: TypeAlias = Callable[..., None]


@dataclass
class Member:
    interface: str
    paused: bool = False
    busy: bool = False


@dataclass
class Call:
    """One originated call: the callee channel(s) and what the dialplan has seen so far."""

    action_id: str
    dial: str
    primary: Channel
    other: Channel | None
    callee: Callee
    context: str = OUTBOUND
    tracked: bool = False
    dial_status: str = ""
    amd_status: str = ""
    agent_legs: list[Channel] = field(default_factory=list)


@dataclass
class PbxStats:
    originated: int = 0
    ended: int = 0
    events: int = 0

    @property
    def live(self) -> int:
        return self.originated - self.ended


def _text(action: Action, key: str, default: str = "") -> str:
    value = action.get(key, default)
    return value if isinstance(value, str) else value[-1]


def _variables(action: Action) -> dict[str, str]:
    raw = action.get("Variable", [])
    items = [raw] if isinstance(raw, str) else raw
    out: dict[str, str] = {}
    for item in items:
        for pair in item.split(","):
            name, sep, value = pair.partition("=")
            if sep:
                out[name.strip()] = value
    return out


class DemoPbx:
    """Async context manager: the AMI server plus every simulated call it is playing."""

    def __init__(
        self,
        settings: DemoSettings,
        *,
        secret: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        world: World | None = None,
    ) -> None:
        self.settings = settings
        self.world = world or World(settings)
        self._secret = secret
        self.server = AmiServer(self._handle, host, settings.ami_port if port is None else port)
        self.names = Names()
        self.channels: dict[str, Channel] = {}
        self.globals: dict[str, str] = {}
        self.queues: dict[str, dict[str, Member]] = {}
        self.stats = PbxStats()
        self._calls = TaskOwner("demo-pbx", log)
        self._started = time.monotonic()

    @property
    def port(self) -> int:
        return self.server.port

    async def __aenter__(self) -> DemoPbx:
        await self.server.__aenter__()
        log.info("demo PBX listening", extra={"port": self.server.port})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._calls.close()
        await self.server.__aexit__(exc_type, exc, tb)

    # ---- events ----------------------------------------------------------------------
    def emit(
        self, name: str, privilege: str, *parts: list[tuple[str, str]] | tuple[str, str]
    ) -> None:
        self.stats.events += 1
        self.server.broadcast(privilege, name, event(name, privilege, *parts))

    def _new(self, channel: Channel) -> None:
        self.channels[channel.name] = channel
        self.emit("Newchannel", CALL, channel.block())

    def _state(self, channel: Channel, state: int) -> None:
        channel.state = state
        self.emit("Newstate", CALL, channel.block())

    def _hangup(self, channel: Channel, cause: int) -> None:
        if self.channels.pop(channel.name, None) is None:
            return
        channel.end(cause)
        self.emit(
            "Hangup", CALL, channel.block(),
            ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")),
        )

    def _user_event(self, channel: Channel, name: str, *headers: tuple[str, str]) -> None:
        self.emit("UserEvent", USER, channel.block(), ("UserEvent", name), *headers)

    def _dial_begin(self, caller: Channel | None, dest: Channel, dial: str) -> None:
        parts = [caller.block()] if caller is not None else []
        self.emit("DialBegin", CALL, *parts, dest.block("Dest"), ("DialString", dial))

    def _dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        parts = [caller.block()] if caller is not None else []
        self.emit("DialEnd", CALL, *parts, dest.block("Dest"), ("DialStatus", status))

    def _originate_response(self, call: Call, reason: int, *, answered: bool) -> None:
        self.emit(
            "OriginateResponse", "call,all",
            ("ActionID", call.action_id),
            ("Response", "Success" if answered else "Failure"),
            # Asterisk names the channel only when one answered; else the dial string.
            ("Channel", call.primary.name if answered else call.dial),
            ("Context", call.context),
            ("Exten", "s"),
            ("Application", ""),
            ("Data", ""),
            ("Reason", str(reason)),
            ("Uniqueid", call.primary.uniqueid),
            ("CallerIDNum", call.primary.caller_num),
            ("CallerIDName", call.primary.caller_name),
        )

    # ---- actions ---------------------------------------------------------------------
    async def _handle(self, session: AmiSession, action: Action) -> None:
        name = _text(action, "Action").lower()
        action_id = _text(action, "ActionID")
        head = [("ActionID", action_id)] if action_id else []

        def reply(response: str, *lines: tuple[str, str | Sequence[str]]) -> None:
            session.send(frame(dict([("Response", response), *head, *lines])))

        if name == "login":
            user, secret = _text(action, "Username"), _text(action, "Secret")
            ok = hmac.compare_digest(user.encode(), self.settings.ami_username.encode())
            ok = hmac.compare_digest(secret.encode(), self._secret.encode()) and ok
            if not ok:
                reply("Error", ("Message", "Authentication failed"))
                session.closed = True
                return
            session.username = user
            session.set_classes(_text(action, "Events", "on"))
            reply("Success", ("Message", "Authentication accepted"))
            uptime = str(int(time.monotonic() - self._started))
            session.send(event("FullyBooted", "system,all", ("Uptime", uptime),
                               ("LastReload", uptime), ("Status", "Fully Booted")))
            return
        if name == "logoff":
            reply("Goodbye", ("Message", "Thanks for all the fish."))
            session.closed = True
            return
        if name == "ping":
            reply("Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
            return
        if not session.logged_in:
            reply("Error", ("Message", "Permission denied"))
            return
        handler = {
            "events": self._events,
            "filter": self._filter,
            "originate": self._originate,
            "setvar": self._setvar,
            "getvar": self._getvar,
            "redirect": self._redirect,
            "hangup": self._hangup_action,
            "coreshowchannels": self._core_show_channels,
            "queueadd": self._queue_add,
            "queueremove": self._queue_remove,
            "queuepause": self._queue_pause,
            "userevent": self._user_event_action,
            "command": self._command,
        }.get(name)
        if handler is None:
            reply("Error", ("Message", "Invalid/unknown command"))
            return
        handler(session, action, reply)

    def _events(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        session.set_classes(_text(action, "EventMask", "on"))
        reply("Success", ("Events", "On" if session.classes else "Off"))

    def _filter(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        if _text(action, "Operation", "Add").lower() != "add":
            reply("Error", ("Message", "Unknown operation"))
            return
        try:
            session.add_filter(_text(action, "Filter"))
        except Exception:
            reply("Error", ("Message", "Filter Not Added"))
            return
        reply("Success", ("Message", "Filter Added Successfully"))

    def _originate(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        dial = _text(action, "Channel")
        tech, number, _where = split_dial(dial)
        if not tech or not number:
            reply("Error", ("Message", "Channel not specified"))
            return
        uid = _text(action, "ChannelId") or self.names.uniqueid()
        if any(c.uniqueid == uid for c in self.channels.values()):
            reply("Error", ("Message", "Originate failed"))  # a live Uniqueid is refused
            return
        timeout_s = int(_text(action, "Timeout", "30000") or 30000) / 1000.0
        other_uid = _text(action, "OtherChannelId") or self.names.uniqueid()
        caller_name, caller_num = _caller_id(_text(action, "CallerID"))
        variables = _variables(action)
        if tech == "Local":
            where = dial.partition("@")[2] or "default"
            one, two = self.names.local(number, where)
            primary = Channel(one, uid, uid, where, number, variables=dict(variables))
            other: Channel | None = Channel(two, other_uid, uid, where, number, state=4,
                                            caller_num=caller_num, caller_name=caller_name)
        else:
            resource = dial.partition("@")[2] or number
            primary = Channel(self.names.device(tech, resource), uid, uid,
                              _text(action, "Context", "default"), number,
                              variables=dict(variables))
            other = None
        context = _text(action, "Context")
        call = Call(_text(action, "ActionID"), dial, primary, other,
                    self.world.callee(dial, timeout_s), context=context)
        reply("Success", ("Message", "Originate successfully queued"))
        self.stats.originated += 1
        self._calls.spawn(self._play(call, timeout_s, context, _text(action, "Exten", "s")),
                          f"call-{uid}")

    def _find(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def _setvar(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        name, value = _text(action, "Variable"), _text(action, "Value")
        channel_name = _text(action, "Channel")
        if not name:
            reply("Error", ("Message", "No variable specified"))
            return
        if channel_name:
            channel = self._find(channel_name)
            if channel is None:
                reply("Error", ("Message", "No such channel"))
                return
            channel.variables[name] = value
            channel.wake.set()  # a dialplan waiting for CONTACTD_AGENT looks again
            self.emit("VarSet", "dialplan,all", channel.block(), ("Variable", name),
                      ("Value", value))
        else:
            self.globals[name] = value
        reply("Success")

    def _getvar(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        name = _text(action, "Variable")
        channel_name = _text(action, "Channel")
        if channel_name:
            channel = self._find(channel_name)
            if channel is None:
                reply("Error", ("Message", "No such channel"))
                return
            value = channel.variables.get(name, "")
        else:
            value = self.globals.get(name, "")
        reply("Success", ("Variable", name), ("Value", value))

    def _redirect(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        channel = self._find(_text(action, "Channel"))
        if channel is None:
            reply("Error", ("Message", "Channel specified does not exist"))
            return
        channel.redirect = (_text(action, "Context"), _text(action, "Exten", "s"),
                            int(_text(action, "Priority", "1") or 1))
        channel.wake.set()
        reply("Success", ("Message", "Redirect successful"))

    def _hangup_action(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        channel = self._find(_text(action, "Channel"))
        if channel is None:
            reply("Error", ("Message", "No such channel"))
            return
        channel.end(int(_text(action, "Cause", "16") or 16))
        reply("Success", ("Message", "Channel Hungup"))

    def _core_show_channels(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        action_id = _text(action, "ActionID")
        reply("Success", ("EventList", "start"), ("Message", "Channels will follow"))
        now = time.monotonic()
        channels = list(self.channels.values())
        for channel in channels:
            seconds = int(now - channel.created)
            session.send(event(
                "CoreShowChannel", "call,all", ("ActionID", action_id), channel.block(),
                ("Application", channel.application), ("ApplicationData", ""),
                ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
                ("BridgeId", channel.bridge),
            ))
        session.send(event("CoreShowChannelsComplete", "call,all", ("ActionID", action_id),
                           ("EventList", "Complete"), ("ListItems", str(len(channels)))))

    def _queue_add(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        queue, interface = _text(action, "Queue"), _text(action, "Interface")
        members = self.queues.setdefault(queue, {})
        if interface in members:
            reply("Error", ("Message", "Unable to add interface: Already there"))
            return
        members[interface] = Member(interface, paused=_text(action, "Paused") == "true")
        self.emit("QueueMemberAdded", AGENT, ("Queue", queue), ("Interface", interface),
                  ("Paused", "1" if members[interface].paused else "0"))
        reply("Success", ("Message", "Added interface to queue"))

    def _queue_remove(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        queue, interface = _text(action, "Queue"), _text(action, "Interface")
        if self.queues.get(queue, {}).pop(interface, None) is None:
            reply("Error", ("Message", "Unable to remove interface: Not there"))
            return
        self.emit("QueueMemberRemoved", AGENT, ("Queue", queue), ("Interface", interface))
        reply("Success", ("Message", "Removed interface from queue"))

    def _queue_pause(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        interface, queue = _text(action, "Interface"), _text(action, "Queue")
        paused = _text(action, "Paused") == "true"
        found = [m for q, ms in self.queues.items() if not queue or q == queue
                 for i, m in ms.items() if i == interface]
        if not found:
            reply("Error", ("Message", "Interface not found"))
            return
        for member in found:
            member.paused = paused
        reply("Success", ("Message", "Interface paused successfully" if paused
                          else "Interface unpaused successfully"))

    def _user_event_action(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        headers = [(k, v) for k, v in action.items()
                   if k not in ("Action", "ActionID", "UserEvent") and isinstance(v, str)]
        self.emit("UserEvent", USER, ("UserEvent", _text(action, "UserEvent")), *headers)
        reply("Success")

    def _command(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        text = _text(action, "Command").strip()
        if text == "core show version":
            reply("Success", ("Message", "Command output follows"),
                  ("Output", "Asterisk 22 (contactd demo PBX)"))
            return
        if text == "core show channels count":
            live = len(self.channels)
            reply("Success", ("Message", "Command output follows"),
                  ("Output", [f"{live} active channels", f"{self.stats.live} active calls"]))
            return
        reply("Error", ("Message", "Command output follows"),
              ("Output", f"No such command '{text}' (the demo PBX knows only a few)"))

    # ---- inbound calls ---------------------------------------------------------------
    async def inbound_call(
        self, *, dnis: str, caller_num: str, turns: list[Turn], audiosocket: tuple[str, int],
        caller_name: str = "<unknown>", voice: str = "en",
    ) -> CallerReport:
        """A caller dials `dnis` on the trunk: [contactd-inbound] → [contactd-ivr] (the
        caller's turns streamed into contactd's AudioSocket server) → [contactd-route]."""
        session = uuid.uuid4()
        channel = Channel(self.names.device("PJSIP", "trunk"), self.names.uniqueid(), "",
                          INBOUND, dnis, state=4, caller_num=caller_num,
                          caller_name=caller_name)
        channel.linkedid = channel.uniqueid
        channel.variables.update(CONTACTD_DNIS=dnis, CONTACTD_SESSION=str(session))
        call = Call("", f"PJSIP/{dnis}@trunk", channel, None, Callee(Fate.HUMAN), tracked=True)
        self.stats.originated += 1
        report = CallerReport(session)
        cause = 16
        try:
            self._new(channel)
            self._state(channel, 6)
            ids = (("Attempt", ""), ("Session", str(session)))
            self._user_event(channel, "ContactdIvr", *ids, ("Dnis", dnis),
                             ("CallerNum", caller_num))
            channel.application = "AudioSocket"
            report = await call_ivr(*audiosocket, turns, voice=voice, session=session)
            if not report.hung_up_by_ivr:
                raise ChannelGone(channel.name)  # the caller hung up: the dialplan ends here
            route = channel.variables.get("CONTACTD_ROUTE", "")
            self._user_event(channel, "ContactdRoute", *ids, ("Route", route))
            if route == "agent" and channel.variables.get("CONTACTD_AGENT"):
                agent = channel.variables["CONTACTD_AGENT"]
                call.dial_status = await self._dial_agent(call, agent)
                self._user_event(channel, "ContactdAgentDial", *ids, ("Agent", agent),
                                 ("DialStatus", call.dial_status))
            elif route != "hangup":
                await self._queue(call, channel.variables.get("CONTACTD_QUEUE")
                                  or FALLBACK_QUEUE)
        except ChannelGone:
            cause = channel.cause
        except OSError:
            cause = 27  # contactd's AudioSocket server is down: TryExec goes on, we end
        finally:
            for leg in call.agent_legs:
                if leg.name in self.channels:
                    self._hangup(leg, cause)
            if channel.name in self.channels:
                self._user_event(channel, "ContactdHangup", ("Attempt", ""),
                                 ("Session", str(session)), ("Cause", str(cause)),
                                 ("Amd", ""), ("DialStatus", call.dial_status))
                self._hangup(channel, cause)
            self.stats.ended += 1
        return report

    # ---- the calls -------------------------------------------------------------------
    async def _play(self, call: Call, timeout_s: float, context: str, exten: str) -> None:
        try:
            answered = await self._ring(call, timeout_s)
            if answered:
                await self._run_answered(call, context, exten)
        finally:
            for channel in (call.primary, call.other, *call.agent_legs):
                if channel is not None and channel.name in self.channels:
                    self._hangup(channel, channel.cause if channel.hung_up else 16)
            self.stats.ended += 1

    async def _ring(self, call: Call, timeout_s: float) -> bool:
        """From Originate to answer (True) or to the callee's failure (False)."""
        primary, other, callee = call.primary, call.other, call.callee
        self._new(primary)
        if other is not None:
            self._new(other)
        if callee.fate in UNANSWERED and callee.fate is not Fate.NO_ANSWER:
            cause, reason, status = UNANSWERED[callee.fate]
            await asyncio.sleep(callee.ring_s)
            if callee.fate is Fate.FAILED:
                self._dial_begin(None, primary, call.dial)
                if other is not None:
                    self._hangup(other, cause)
                self._dial_end(None, primary, status)
                self._originate_response(call, reason, answered=False)
                self._hangup(primary, cause)
                return False
            if other is not None:
                self._state(other, 7)
            self._dial_begin(None, primary, call.dial)
            self._dial_end(None, primary, status)
            self._hangup(primary, 0 if other is not None else cause)
            self._originate_response(call, reason, answered=False)
            if other is not None:
                self._hangup(other, cause)
            return False
        if callee.ring_s > 0:
            self._state(primary, 5)
            self._dial_begin(None, primary, call.dial)
            self.emit("DialState", CALL, primary.block("Dest"), ("DialStatus", "RINGING"))
            try:
                await primary.hold(min(callee.ring_s, timeout_s))
            except (ChannelGone, Redirected):
                self._originate_response(call, 1, answered=False)
                return False
            if callee.ring_s >= timeout_s:
                self._originate_response(call, 3, answered=False)
                if other is not None:
                    self._hangup(other, 19)
                self._hangup(primary, 19)
                return False
            if other is not None:
                self._state(other, 6)
        else:
            if other is not None:
                self._state(other, 6)
            self._dial_begin(None, primary, call.dial)
        self._state(primary, 6)
        self._dial_end(None, primary, "ANSWER")
        self._originate_response(call, 4, answered=True)
        return True

    async def _run_answered(self, call: Call, context: str, exten: str) -> None:
        primary = call.primary
        loop = asyncio.get_running_loop()
        gone = loop.call_later(max(call.callee.hold_s, 0.0), self._callee_hangs_up, call)
        place = (context, exten, 1)
        try:
            while True:
                try:
                    if place[0] == OUTBOUND:
                        await self._outbound(call)
                    elif place[0] == ABANDON:
                        await self._abandon(call)
                    else:  # an application or another context: the line stays open a while
                        talk = self.world.scaled(self.settings.talk_max_s)
                        await primary.hold(min(call.callee.hold_s, talk))
                    cause = 16
                    break
                except Redirected:
                    place = primary.redirect or place
                    primary.redirect = None
                except ChannelGone:
                    cause = primary.cause
                    break
        finally:
            gone.cancel()
        for leg in call.agent_legs:
            if leg.name in self.channels:
                self._hangup(leg, cause)
        if call.tracked:
            self._user_event(
                primary, "ContactdHangup",
                ("Attempt", primary.variables.get("CONTACTD_ATTEMPT", "")),
                ("Session", primary.variables.get("CONTACTD_SESSION", "")),
                ("Cause", str(cause)), ("Amd", call.amd_status), ("DialStatus", call.dial_status),
            )
        self._hangup(primary, cause)
        if call.other is not None:
            self._hangup(call.other, cause)

    def _callee_hangs_up(self, call: Call) -> None:
        call.primary.end(16)

    def _track(self, call: Call) -> None:
        call.tracked = True

    async def _outbound(self, call: Call) -> None:
        """[contactd-outbound] of extensions.conf, step for step."""
        primary, s, w = call.primary, self.settings, self.world
        attempt = ("Attempt", primary.variables.get("CONTACTD_ATTEMPT", ""))
        self._track(call)
        primary.application = "AMD"
        self._user_event(primary, "ContactdAnswered", attempt)
        if primary.variables.get("CONTACTD_AMD") != "no":
            fate = call.callee.fate
            verdict = {
                Fate.MACHINE: (s.amd_machine_s, "MACHINE", "MAXWORDS-3-2"),
                Fate.SILENT: (5.0, "NOTSURE", "TOOLONG-5000"),  # amd.conf total_analysis_time
            }.get(fate, (s.amd_human_s, "HUMAN", "HUMAN-801-800"))
            try:
                await primary.hold(w.scaled(verdict[0]))
            except ChannelGone:
                call.amd_status = "HANGUP"  # AMD() saw the hang-up: ContactdHangup says so
                raise
            _seconds, status, cause = verdict
            call.amd_status = status
            self._user_event(primary, "ContactdAMD", attempt, ("Status", status),
                             ("Cause", cause))
            if status == "MACHINE":
                message = primary.variables.get("CONTACTD_MACHINE_MESSAGE", "")
                if message:
                    await self._playback(call, attempt)
                return
        mode = primary.variables.get("CONTACTD_MODE", "agent")
        if mode == "message":
            await self._playback(call, attempt)
            return
        if mode == "queue":
            queue = primary.variables.get("CONTACTD_QUEUE") or FALLBACK_QUEUE
            if await self._queue(call, queue):
                return
            await self._abandon(call)
            return
        # agent: wait up to CONTACTD_AGENT_WAIT_S for the daemon to Setvar CONTACTD_AGENT.
        await primary.hold(w.scaled(s.agent_wait_s),
                           until=lambda: bool(primary.variables.get("CONTACTD_AGENT")))
        agent = primary.variables.get("CONTACTD_AGENT", "")
        if not agent:
            await self._abandon(call)
            return
        self._user_event(primary, "ContactdConnect", attempt, ("Agent", agent))
        call.dial_status = await self._dial_agent(call, agent)
        self._user_event(primary, "ContactdAgentDial", attempt, ("Agent", agent),
                         ("DialStatus", call.dial_status))
        if call.dial_status != "ANSWER":
            await self._abandon(call)

    async def _playback(self, call: Call, attempt: tuple[str, str]) -> None:
        call.primary.application = "Playback"
        await call.primary.hold(self.world.scaled(self.settings.message_s))
        self._user_event(call.primary, "ContactdMessage", attempt, ("Status", "SUCCESS"))

    async def _abandon(self, call: Call) -> None:
        """[contactd-abandon]: identification prompt, UserEvent, Hangup(16)."""
        primary = call.primary
        self._track(call)
        primary.application = "Playback"
        await primary.hold(self.world.scaled(self.settings.abandon_prompt_s))
        self._user_event(primary, "ContactdAbandon",
                         ("Attempt", primary.variables.get("CONTACTD_ATTEMPT", "")),
                         ("Status", "SUCCESS"))

    async def _queue(self, call: Call, queue: str) -> bool:
        """Queue(queue,,,,CONTACTD_AGENT_WAIT_S): True when a member took the call."""
        primary = call.primary
        primary.application = "Queue"
        self.emit("QueueCallerJoin", AGENT, primary.block(), ("Queue", queue),
                  ("Position", "1"), ("Count", "1"))
        free = [m for m in self.queues.get(queue, {}).values() if not m.paused and not m.busy]
        if free:
            member = free[0]
            member.busy = True
            self.emit("QueueCallerLeave", AGENT, primary.block(), ("Queue", queue),
                      ("Position", "1"), ("Count", "0"))
            try:
                call.dial_status = await self._dial_agent(call, member.interface)
            finally:
                member.busy = False
            return call.dial_status == "ANSWER"
        await primary.hold(self.world.scaled(self.settings.agent_wait_s))
        self.emit("QueueCallerAbandon", AGENT, primary.block(), ("Queue", queue),
                  ("Position", "1"), ("OriginalPosition", "1"), ("HoldTime", "2"))
        self.emit("QueueCallerLeave", AGENT, primary.block(), ("Queue", queue),
                  ("Position", "1"), ("Count", "0"))
        return False

    async def _dial_agent(self, call: Call, dial: str) -> str:
        """Dial(agent,CONTACTD_AGENT_RING_S,g): the agent leg, its bridge, its DIALSTATUS."""
        primary = call.primary
        tech, number, where = split_dial(dial)
        phone = self.world.agent_phone(dial)
        linked = primary.linkedid
        if tech == "Local":
            one, two = self.names.local(number, where or "default")
            leg = Channel(one, self.names.uniqueid(), linked, where, number)
            far: Channel | None = Channel(two, self.names.uniqueid(), linked, where, number,
                                          state=4)
        else:
            leg = Channel(self.names.device(tech, number), self.names.uniqueid(), linked,
                          "contactd-agent", number)
            far = None
        call.agent_legs += [leg] + ([far] if far is not None else [])
        self._new(leg)
        if far is not None:
            self._new(far)
        primary.application = "Dial"
        self._dial_begin(primary, leg, dial)
        if phone.busy or not phone.answers:
            if phone.busy:
                if far is not None:
                    self._state(far, 7)
                status, cause = "BUSY", 17
            else:
                await primary.hold(self.world.scaled(AGENT_RING_S))
                status, cause = "NOANSWER", 19
            self._dial_end(primary, leg, status)
            self._hangup(leg, 0)
            if far is not None:
                self._hangup(far, cause)
            return status
        await primary.hold(phone.ring_s)
        if far is not None:
            self._state(far, 6)
        self._state(leg, 6)
        self._dial_end(primary, leg, "ANSWER")
        bridge = str(uuid.uuid4())
        for channel in (leg, primary):
            channel.bridge = bridge
            self.emit("BridgeEnter", CALL, *_bridge(bridge, 2), channel.block())
        try:
            await primary.hold(phone.talk_s)
        except ChannelGone:
            self._leave_bridge(bridge, primary, leg, far, first=primary)
            raise
        self._leave_bridge(bridge, primary, leg, far, first=leg)
        return "ANSWER"

    def _leave_bridge(self, bridge: str, primary: Channel, leg: Channel, far: Channel | None,
                      *, first: Channel) -> None:
        """The side that hung up leaves first; the agent's legs are hung up after it."""
        second = leg if first is primary else primary
        if first is leg and far is not None:
            self._hangup(far, 16)
        for count, channel in ((1, first), (0, second)):
            channel.bridge = ""
            self.emit("BridgeLeave", CALL, *_bridge(bridge, count), channel.block())
            if channel is leg:
                self._hangup(leg, 16)
        if far is not None:
            self._hangup(far, 16)


def _bridge(bridge: str, members: int) -> list[tuple[str, str]]:
    return [
        ("BridgeUniqueid", bridge),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(members)),
        ("BridgeVideoSourceMode", "none"),
    ]


def _caller_id(value: str) -> tuple[str, str]:
    """'"Name" <5550100>' → ('Name', '5550100'); absent parts read '<unknown>'."""
    if "<" in value and value.endswith(">"):
        name, _, number = value[:-1].partition("<")
        return name.strip().strip('"') or "<unknown>", number.strip() or "<unknown>"
    return "<unknown>", value.strip() or "<unknown>"
