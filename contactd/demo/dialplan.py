"""The shipped dialplan (asterisk-config/extensions.conf), played step by step on the demo
PBX's simulated channels: contactd-outbound (AMD, agent / queue / message), contactd-abandon,
the agent leg and its bridge, contactd-inbound → -ivr (AudioSocket) → -route, and the
contactd-track hang-up handler. Who answers and how long things take: `World`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Final

from contactd.config import DemoSettings
from contactd.demo.caller import CallerReport, Turn, call_ivr
from contactd.demo.channels import Call, Channel, ChannelGone, Member, Names, Redirected
from contactd.demo.emitter import AGENT, CALL, ChannelEvents
from contactd.demo.world import UNANSWERED, Callee, Fate, World, split_dial

INBOUND: Final = "contactd-inbound"
OUTBOUND: Final = "contactd-outbound"
ABANDON: Final = "contactd-abandon"
AGENT_RING_S: Final = 15.0  # extensions.conf CONTACTD_AGENT_RING_S
FALLBACK_QUEUE: Final = "contactd"
AUDIOSOCKET: Final = "127.0.0.1:9092"  # extensions.conf [globals] CONTACTD_AUDIOSOCKET
# An outbound IVR's callee: listens to each prompt, then presses 1 (yes, the first choice).
CALLEE_TURNS: Final = tuple(Turn(dtmf="1", after_prompt=True) for _ in range(4))
MESSAGE_DB: Final = "contactd-message"  # AstDB family of the message status (DB()), per hour


def message_db() -> str:
    """The AstDB family the dialplan writes a message status to now: one per UTC hour."""
    return f"{MESSAGE_DB}-{datetime.now(UTC).hour:02d}"


class Dialplan:
    def __init__(self, events: ChannelEvents, world: World, names: Names,
                 queues: dict[str, dict[str, Member]],
                 astdb: dict[tuple[str, str], str] | None = None,
                 globals_: dict[str, str] | None = None) -> None:
        self.astdb = {} if astdb is None else astdb
        self.globals = {} if globals_ is None else globals_  # [globals], AMI Setvar
        self.ev = events
        self.world = world
        self.settings: DemoSettings = world.settings
        self.names = names
        self.queues = queues

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
        self.ev.stats.originated += 1
        report = CallerReport(session)
        cause = 16
        try:
            self.ev.new(channel)
            self.ev.state(channel, 6)
            ids = (("Attempt", ""), ("Session", str(session)))
            self.ev.user_event(channel, "ContactdIvr", *ids, ("Dnis", dnis),
                             ("CallerNum", caller_num))
            channel.application = "AudioSocket"
            report = await call_ivr(*audiosocket, turns, voice=voice, session=session)
            if not report.hung_up_by_ivr:
                raise ChannelGone(channel.name)  # the caller hung up: the dialplan ends here
            await self._route(call, ids)
        except ChannelGone:
            cause = channel.cause
        except OSError:
            cause = 27  # contactd's AudioSocket server is down: TryExec goes on, we end
        finally:
            for leg in call.agent_legs:
                if leg.name in self.ev.channels:
                    self.ev.hangup(leg, cause)
            if channel.name in self.ev.channels:
                self.ev.user_event(channel, "ContactdHangup", ("Attempt", ""),
                                 ("Session", str(session)), ("Cause", str(cause)),
                                 ("Amd", ""), ("DialStatus", call.dial_status))
                self.ev.hangup(channel, cause)
            self.ev.stats.ended += 1
        return report

    async def _route(self, call: Call, ids: tuple[tuple[str, str], ...]) -> None:
        """[contactd-route]: where the IVR sent the caller (agent, queue, or hang up)."""
        channel = call.primary
        route = channel.variables.get("CONTACTD_ROUTE", "")
        self.ev.user_event(channel, "ContactdRoute", *ids, ("Route", route))
        if route == "agent" and channel.variables.get("CONTACTD_AGENT"):
            agent = channel.variables["CONTACTD_AGENT"]
            call.dial_status = await self._dial_agent(call, agent)
            self.ev.user_event(channel, "ContactdAgentDial", *ids, ("Agent", agent),
                               ("DialStatus", call.dial_status))
        elif route != "hangup":
            await self._queue(call, channel.variables.get("CONTACTD_QUEUE") or FALLBACK_QUEUE)

    async def _outbound_ivr(self, call: Call, attempt: tuple[str, str]) -> None:
        """[contactd-ivr] for an outbound ivr campaign: the answered callee talks to
        contactd's IVR over AudioSocket (pressing 1 after each prompt); whether the flow ran
        is the attempt's result (ContactdMessage, AstDB), then [contactd-route]."""
        primary = call.primary
        session = primary.variables.get("CONTACTD_SESSION") or str(uuid.uuid4())
        primary.variables["CONTACTD_SESSION"] = session
        ids = (attempt, ("Session", session))
        self.ev.user_event(primary, "ContactdIvr", *ids,
                           ("Dnis", primary.variables.get("CONTACTD_DNIS", "")),
                           ("CallerNum", primary.caller_num), ("Amd", call.amd_status))
        key = (message_db(), attempt[1])
        self.astdb[key] = "STARTED"
        primary.application = "AudioSocket"
        host, _, port = self.globals.get("CONTACTD_AUDIOSOCKET", AUDIOSOCKET).rpartition(":")
        ran = False
        try:
            report = await call_ivr(host, int(port), list(CALLEE_TURNS),
                                    session=uuid.UUID(session))
            ran = report.hung_up_by_ivr
        except (OSError, ValueError):
            pass  # TryExec: contactd's AudioSocket server is down; the dialplan goes on
        primary.check()
        status = "SUCCESS" if ran or primary.variables.get("CONTACTD_ROUTE") else "FAILED"
        self.astdb[key] = status
        reason = [] if ran else [("Reason", "ivr flow did not run over AudioSocket")]
        self.ev.user_event(primary, "ContactdMessage", attempt, ("Status", status), *reason)
        if status == "SUCCESS":
            await self._route(call, ids)

    # ---- the calls -------------------------------------------------------------------
    async def play(self, call: Call, timeout_s: float, context: str, exten: str) -> None:
        try:
            answered = await self._ring(call, timeout_s)
            if answered:
                await self._run_answered(call, context, exten)
        finally:
            for channel in (call.primary, call.other, *call.agent_legs):
                if channel is not None and channel.name in self.ev.channels:
                    self.ev.hangup(channel, channel.cause if channel.hung_up else 16)
            self.ev.stats.ended += 1

    async def _ring(self, call: Call, timeout_s: float) -> bool:
        """From Originate to answer (True) or to the callee's failure (False)."""
        primary, other, callee = call.primary, call.other, call.callee
        self.ev.new(primary)
        if other is not None:
            self.ev.new(other)
        if callee.fate in UNANSWERED and callee.fate is not Fate.NO_ANSWER:
            cause, reason, status = UNANSWERED[callee.fate]
            await asyncio.sleep(callee.ring_s)
            if callee.fate is Fate.FAILED:
                self.ev.dial_begin(None, primary, call.dial)
                if other is not None:
                    self.ev.hangup(other, cause)
                self.ev.dial_end(None, primary, status)
                self.ev.originate_response(call, reason, answered=False)
                self.ev.hangup(primary, cause)
                return False
            if other is not None:
                self.ev.state(other, 7)
            self.ev.dial_begin(None, primary, call.dial)
            self.ev.dial_end(None, primary, status)
            self.ev.hangup(primary, 0 if other is not None else cause)
            self.ev.originate_response(call, reason, answered=False)
            if other is not None:
                self.ev.hangup(other, cause)
            return False
        if callee.ring_s > 0:
            self.ev.state(primary, 5)
            self.ev.dial_begin(None, primary, call.dial)
            self.ev.emit("DialState", CALL, primary.block("Dest"), ("DialStatus", "RINGING"))
            try:
                await primary.hold(min(callee.ring_s, timeout_s))
            except (ChannelGone, Redirected):
                self.ev.originate_response(call, 1, answered=False)
                return False
            if callee.ring_s >= timeout_s:
                self.ev.originate_response(call, 3, answered=False)
                if other is not None:
                    self.ev.hangup(other, 19)
                self.ev.hangup(primary, 19)
                return False
            if other is not None:
                self.ev.state(other, 6)
        else:
            if other is not None:
                self.ev.state(other, 6)
            self.ev.dial_begin(None, primary, call.dial)
        self.ev.state(primary, 6)
        self.ev.dial_end(None, primary, "ANSWER")
        self.ev.originate_response(call, 4, answered=True)
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
            if leg.name in self.ev.channels:
                self.ev.hangup(leg, cause)
        if call.tracked:
            self.ev.user_event(
                primary, "ContactdHangup",
                ("Attempt", primary.variables.get("CONTACTD_ATTEMPT", "")),
                ("Session", primary.variables.get("CONTACTD_SESSION", "")),
                ("Cause", str(cause)), ("Amd", call.amd_status), ("DialStatus", call.dial_status),
            )
        self.ev.hangup(primary, cause)
        if call.other is not None:
            self.ev.hangup(call.other, cause)

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
        self.ev.user_event(primary, "ContactdAnswered", attempt)
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
            self.ev.user_event(primary, "ContactdAMD", attempt, ("Status", status),
                             ("Cause", cause))
            if status == "MACHINE":
                if primary.variables.get("CONTACTD_MACHINE_IVR") == "1":
                    await self._outbound_ivr(call, attempt)  # a spoken message campaign
                    return
                message = primary.variables.get("CONTACTD_MACHINE_MESSAGE", "")
                if message:
                    await self._playback(call, attempt)
                return
        mode = primary.variables.get("CONTACTD_MODE", "agent")
        if mode == "message":
            # The message's fate is kept in AstDB too (STARTED, then the status).
            key = (message_db(), attempt[1])
            self.astdb[key] = "STARTED"
            if not primary.variables.get("CONTACTD_MESSAGE"):
                self.astdb[key] = "FAILED"
                self.ev.user_event(primary, "ContactdMessage", attempt, ("Status", "FAILED"),
                                   ("Reason", "no message set"))
                return
            await self._playback(call, attempt)
            self.astdb[key] = "SUCCESS"
            return
        if mode == "ivr":
            await self._outbound_ivr(call, attempt)
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
        self.ev.user_event(primary, "ContactdConnect", attempt, ("Agent", agent))
        call.dial_status = await self._dial_agent(call, agent)
        self.ev.user_event(primary, "ContactdAgentDial", attempt, ("Agent", agent),
                         ("DialStatus", call.dial_status))
        if call.dial_status != "ANSWER":
            await self._abandon(call)

    async def _playback(self, call: Call, attempt: tuple[str, str]) -> None:
        call.primary.application = "Playback"
        await call.primary.hold(self.world.scaled(self.settings.message_s))
        # An empty `Reason:` (the message played) is left out by UserEvent(), as Asterisk does.
        self.ev.user_event(call.primary, "ContactdMessage", attempt, ("Status", "SUCCESS"))

    async def _abandon(self, call: Call) -> None:
        """[contactd-abandon]: identification prompt, UserEvent, Hangup(16)."""
        primary = call.primary
        self._track(call)
        primary.application = "Playback"
        await primary.hold(self.world.scaled(self.settings.abandon_prompt_s))
        self.ev.user_event(primary, "ContactdAbandon",
                         ("Attempt", primary.variables.get("CONTACTD_ATTEMPT", "")),
                         ("Status", "SUCCESS"))

    async def _queue(self, call: Call, queue: str) -> bool:
        """Queue(queue,,,,CONTACTD_AGENT_WAIT_S): True when a member took the call."""
        primary = call.primary
        primary.application = "Queue"
        self.ev.emit("QueueCallerJoin", AGENT, primary.block(), ("Queue", queue),
                  ("Position", "1"), ("Count", "1"))
        free = [m for m in self.queues.get(queue, {}).values() if not m.paused and not m.busy]
        if free:
            member = free[0]
            member.busy = True
            self.ev.emit("QueueCallerLeave", AGENT, primary.block(), ("Queue", queue),
                      ("Position", "1"), ("Count", "0"))
            try:
                call.dial_status = await self._dial_agent(call, member.interface)
            finally:
                member.busy = False
            return call.dial_status == "ANSWER"
        await primary.hold(self.world.scaled(self.settings.agent_wait_s))
        self.ev.emit("QueueCallerAbandon", AGENT, primary.block(), ("Queue", queue),
                  ("Position", "1"), ("OriginalPosition", "1"), ("HoldTime", "2"))
        self.ev.emit("QueueCallerLeave", AGENT, primary.block(), ("Queue", queue),
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
        self.ev.new(leg)
        if far is not None:
            self.ev.new(far)
        primary.application = "Dial"
        self.ev.dial_begin(primary, leg, dial)
        if phone.busy or not phone.answers:
            if phone.busy:
                if far is not None:
                    self.ev.state(far, 7)
                status, cause = "BUSY", 17
            else:
                await primary.hold(self.world.scaled(AGENT_RING_S))
                status, cause = "NOANSWER", 19
            self.ev.dial_end(primary, leg, status)
            self.ev.hangup(leg, 0)
            if far is not None:
                self.ev.hangup(far, cause)
            return status
        await primary.hold(phone.ring_s)
        if far is not None:
            self.ev.state(far, 6)
        self.ev.state(leg, 6)
        self.ev.dial_end(primary, leg, "ANSWER")
        bridge = str(uuid.uuid4())
        for channel in (leg, primary):
            channel.bridge = bridge
            self.ev.bridge_event("BridgeEnter", bridge, 2, channel)
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
            self.ev.hangup(far, 16)
        for count, channel in ((1, first), (0, second)):
            channel.bridge = ""
            self.ev.bridge_event("BridgeLeave", bridge, count, channel)
            if channel is leg:
                self.ev.hangup(leg, 16)
        if far is not None:
            self.ev.hangup(far, 16)
