"""The AMI events of the demo PBX's channels, written as Asterisk 22 writes them, and the
registry of live channels they describe."""

from __future__ import annotations

from typing import Final

from contactd.demo.amiserver import AmiServer
from contactd.demo.channels import CAUSE_TXT, Call, Channel, PbxStats, event

CALL: Final = "call,all"
USER: Final = "user,all"
AGENT: Final = "agent,all"


class ChannelEvents:
    """Live channels by name, and one method per event the PBX raises about them."""

    def __init__(self, server: AmiServer) -> None:
        self.server = server
        self.channels: dict[str, Channel] = {}
        self.stats = PbxStats()

    def emit(
        self, name: str, privilege: str, *parts: list[tuple[str, str]] | tuple[str, str]
    ) -> None:
        self.stats.events += 1
        self.server.broadcast(privilege, name, event(name, privilege, *parts))

    def new(self, channel: Channel) -> None:
        self.channels[channel.name] = channel
        self.emit("Newchannel", CALL, channel.block())

    def state(self, channel: Channel, state: int) -> None:
        channel.state = state
        self.emit("Newstate", CALL, channel.block())

    def hangup(self, channel: Channel, cause: int) -> None:
        if self.channels.pop(channel.name, None) is None:
            return
        channel.end(cause)
        self.emit(
            "Hangup", CALL, channel.block(),
            ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")),
        )

    def user_event(self, channel: Channel, name: str, *headers: tuple[str, str]) -> None:
        self.emit("UserEvent", USER, channel.block(), ("UserEvent", name), *headers)

    def dial_begin(self, caller: Channel | None, dest: Channel, dial: str) -> None:
        parts = [caller.block()] if caller is not None else []
        self.emit("DialBegin", CALL, *parts, dest.block("Dest"), ("DialString", dial))

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        parts = [caller.block()] if caller is not None else []
        self.emit("DialEnd", CALL, *parts, dest.block("Dest"), ("DialStatus", status))

    def originate_response(self, call: Call, reason: int, *, answered: bool) -> None:
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

    def bridge_event(self, name: str, bridge: str, members: int, channel: Channel) -> None:
        self.emit(name, CALL, *_bridge(bridge, members), channel.block())


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
