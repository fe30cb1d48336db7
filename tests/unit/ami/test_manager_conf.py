"""The shipped manager.conf whitelists exactly the events contactd subscribes to.

The AMI user has no `system` write class (it would allow Originate into System()), so the
per-session Filter action is refused and manager.conf's `eventfilter` does that work: a
subscription added in code without updating the file would never receive its events.
"""

from __future__ import annotations

from pathlib import Path

from contactd.ami.client import AmiClient, event_filter
from contactd.calls.service import CallService
from contactd.config import AmiSettings, WebRtcSettings
from contactd.db.session import Database
from contactd.events import EventBus
from contactd.webrtc import WebRtcPhones

MANAGER_CONF = Path(__file__).parents[3] / "asterisk-config" / "manager.conf"


def conf_lines(key: str) -> list[str]:
    out = []
    for line in MANAGER_CONF.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            out.append(value.strip())
    return out


def test_eventfilter_matches_the_daemons_subscriptions(tmp_path: Path) -> None:
    ami = AmiClient(AmiSettings())
    CallService(Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), EventBus(), ami)
    WebRtcPhones(WebRtcSettings(enabled=True), ami)  # ContactStatus: a browser phone lost
    assert conf_lines("eventfilter") == [event_filter(ami.events.names)]


def test_no_system_or_command_write_class() -> None:
    (write,) = conf_lines("write")
    classes = {c.strip() for c in write.split(",")}
    # `config`: Reload of res_pjsip for the browser phones (contactd/webrtc.py).
    assert classes == {"originate", "call", "agent", "reporting", "config"}
