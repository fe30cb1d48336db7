"""The daemon's live services the panel calls (None when that part is not running: no AMI,
no dialer), handed to `create_app` by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from contactd.calls.service import CallService
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.dialer.inbound import InboundQueues
from contactd.dialer.service import DialerService
from contactd.errors import ContactdError
from contactd.events import EventBus
from contactd.ivr.tts import Tts
from contactd.messaging.campaigns import MessageCampaigns
from contactd.messaging.service import MessagingService
from contactd.web.live import FloorHub
from contactd.webrtc import WebRtcPhones


class Unavailable(ContactdError):
    """The part of the daemon this needs is not running (no AMI link configured, no dialer)."""

    code = "service_unavailable"


@dataclass
class PanelServices:
    bus: EventBus | None = None
    dialer: DialerService | None = None
    calls: CallService | None = None
    messaging: MessagingService | None = None
    contacts: ContactService | None = None
    tasks: TaskService | None = None
    inbound: InboundQueues | None = None  # contactd's inbound queues (blended agents)
    tts: Tts | None = None  # the IVR's text-to-speech (campaign message previews)
    floor: FloorHub | None = None  # the live floor, started early to hear events first
    message_campaigns: MessageCampaigns | None = None  # SMS/e-mail campaigns: start, pause
    webrtc: WebRtcPhones | None = None  # browser phones (webrtc.enabled)

    def need_dialer(self) -> DialerService:
        if self.dialer is None:
            raise Unavailable("the dialer is not running (it needs the AMI link to Asterisk)")
        return self.dialer

    def need_calls(self) -> CallService:
        if self.calls is None:
            raise Unavailable("calls need the AMI link to Asterisk, which is not configured")
        return self.calls

    def need_message_campaigns(self) -> MessageCampaigns:
        if self.message_campaigns is None:
            raise Unavailable("messaging is not running")
        return self.message_campaigns

    def need_messaging(self) -> MessagingService:
        if self.messaging is None:
            raise Unavailable("messaging is not running")
        return self.messaging


SERVICES = web.AppKey("services", PanelServices)
