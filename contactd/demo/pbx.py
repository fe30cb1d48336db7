"""DemoPbx: an asyncio stand-in for Asterisk 22 that contactd reaches through its normal AMI
client. It answers the actions contactd sends and plays each originated call through the
shipped dialplan's steps (asterisk-config/extensions.conf: contactd-outbound, -abandon,
-track/-hangup), raising the same events and UserEvents in the same order per channel.

Who answers is decided by `World` (contactd/demo/world.py); how long things take comes from
`DemoSettings`. The conformance test (tests/integration/demo/test_conformance.py) holds the
sequences to the real sandbox's.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, TypeAlias

from contactd.background import TaskOwner
from contactd.config import DemoSettings
from contactd.demo.amiserver import AmiServer, AmiSession, frame
from contactd.demo.caller import CallerReport, Turn
from contactd.demo.channels import Call, Channel, Member, Names, PbxStats, event
from contactd.demo.dialplan import Dialplan
from contactd.demo.emitter import AGENT, USER, ChannelEvents
from contactd.demo.world import World, split_dial

log = logging.getLogger(__name__)


Action = dict[str, str | list[str]]
_Reply: TypeAlias = Callable[..., None]

# The shipped manager.conf's `write =` classes for contactd's user, and the class(es) Asterisk
# 22 registers each action under (any one suffices): DBDel needs `system`, which contactd's
# user deliberately lacks, so the demo refuses it as Asterisk does ("Permission denied").
WRITE_CLASSES: Final = frozenset({"originate", "call", "agent", "reporting"})
ACTION_CLASSES: Final[dict[str, frozenset[str]]] = {
    "originate": frozenset({"originate"}),
    "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}),
    "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "queueadd": frozenset({"agent"}),
    "queueremove": frozenset({"agent"}),
    "queuepause": frozenset({"agent"}),
    "dbget": frozenset({"system", "reporting"}),
    "dbdel": frozenset({"system"}),
    "dbput": frozenset({"system"}),
    "userevent": frozenset({"user"}),
    "command": frozenset({"command"}),
}


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
        self.events = ChannelEvents(self.server)
        self.globals: dict[str, str] = {}
        self.astdb: dict[tuple[str, str], str] = {}  # AstDB: (family, key) -> value
        self.write_classes: frozenset[str] = WRITE_CLASSES
        self.queues: dict[str, dict[str, Member]] = {}
        self.dialplan = Dialplan(self.events, self.world, self.names, self.queues, self.astdb,
                                 self.globals)
        self._calls = TaskOwner("demo-pbx", log)
        self._started = time.monotonic()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def channels(self) -> dict[str, Channel]:
        return self.events.channels

    @property
    def stats(self) -> PbxStats:
        return self.events.stats

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
            "dbget": self._db_get,
            "dbput": self._db_put,
            "dbdel": self._db_del,
        }.get(name)
        if handler is None:
            reply("Error", ("Message", "Invalid/unknown command"))
            return
        needed = ACTION_CLASSES.get(name)
        if needed and not needed & self.write_classes:
            reply("Error", ("Message", "Permission denied"))
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
        self._calls.spawn(self.dialplan.play(call, timeout_s, context,
                                             _text(action, "Exten", "s")),
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
            self.events.emit("VarSet", "dialplan,all", channel.block(), ("Variable", name),
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
            reply("Error", ("Message", f"Channel does not exist: {_text(action, 'Channel')}"))
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
        self.events.emit("QueueMemberAdded", AGENT, ("Queue", queue), ("Interface", interface),
                  ("Paused", "1" if members[interface].paused else "0"))
        reply("Success", ("Message", "Added interface to queue"))

    def _queue_remove(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        queue, interface = _text(action, "Queue"), _text(action, "Interface")
        if self.queues.get(queue, {}).pop(interface, None) is None:
            reply("Error", ("Message", "Unable to remove interface: Not there"))
            return
        self.events.emit("QueueMemberRemoved", AGENT, ("Queue", queue), ("Interface", interface))
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
        self.events.emit("UserEvent", USER, ("UserEvent", _text(action, "UserEvent")), *headers)
        reply("Success")

    def _db_get(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        family, key = _text(action, "Family"), _text(action, "Key")
        value = self.astdb.get((family, key))
        if value is None:
            reply("Error", ("Message", "Database entry not found"))
            return
        action_id = _text(action, "ActionID")
        reply("Success", ("EventList", "start"), ("Message", "Result will follow"))
        session.send(event("DBGetResponse", "system,all", ("ActionID", action_id),
                           ("Family", family), ("Key", key), ("Val", value)))
        session.send(event("DBGetComplete", "system,all", ("ActionID", action_id),
                           ("EventList", "Complete"), ("ListItems", "1")))

    def _db_put(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        self.astdb[(_text(action, "Family"), _text(action, "Key"))] = _text(action, "Val")
        reply("Success", ("Message", "Updated database successfully"))

    def _db_del(self, session: AmiSession, action: Action, reply: _Reply) -> None:
        if self.astdb.pop((_text(action, "Family"), _text(action, "Key")), None) is None:
            reply("Error", ("Message", "Database entry not found"))
            return
        reply("Success", ("Message", "Key deleted successfully"))

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

    # ---- calls -----------------------------------------------------------------------
    async def inbound_call(
        self, *, dnis: str, caller_num: str, turns: list[Turn], audiosocket: tuple[str, int],
        caller_name: str = "<unknown>", voice: str = "en",
    ) -> CallerReport:
        """A caller rings `dnis` and talks to contactd's IVR (see Dialplan.inbound_call)."""
        return await self.dialplan.inbound_call(
            dnis=dnis, caller_num=caller_num, turns=turns, audiosocket=audiosocket,
            caller_name=caller_name, voice=voice,
        )


def _caller_id(value: str) -> tuple[str, str]:
    """'"Name" <5550100>' → ('Name', '5550100'); absent parts read '<unknown>'."""
    if "<" in value and value.endswith(">"):
        name, _, number = value[:-1].partition("<")
        return name.strip().strip('"') or "<unknown>", number.strip() or "<unknown>"
    return "<unknown>", value.strip() or "<unknown>"
