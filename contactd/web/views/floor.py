"""The live floor (/floor): calls, agents, campaigns and inbound queues as they change.

The page is a frame; web/static/floor.js opens /floor/events (server-sent events) and draws
the snapshot that comes first, then each delta. Every tab reads the one FloorHub (web/live.py),
so an open tab costs no database query. Supervisors pause a campaign or an agent from here
(plain forms that come back to /floor, so they work without script too).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import HttpVersion11, web
from yarl import URL

from contactd.auth.audit import Actor, record
from contactd.enums import Role
from contactd.errors import ContactdError, NotFoundError
from contactd.events import EventBus
from contactd.web.access import requires
from contactd.web.i18n import gettext as _
from contactd.web.keys import DATABASE, HEALTH, SETTINGS, principal
from contactd.web.live import FRAME_S, TAB_BUFFER, FloorHub, Frame, queue_levels
from contactd.web.render import page
from contactd.web.services import SERVICES

FLOOR = web.AppKey("floor_hub", FloorHub)
KEEPALIVE_S: Final = 20.0
SUPERVISOR_PAUSE: Final = "supervisor"  # the pause reason of an agent paused from the floor


def labels() -> dict[str, str]:
    """Every word floor.js writes, in the page's language."""
    return {
        "free": _("Ready"),
        "talking": _("On a call"),
        "wrapping": _("Wrap-up"),
        "paused": _("Paused"),
        "ringing": _("Ringing"),
        "running": _("running"),
        "draft": _("draft"),
        "stopped": _("stopped"),
        "finished": _("finished"),
        "ok": _("ok"),
        "degraded": _("degraded"),
        "down": _("down"),
        "pause": _("Pause"),
        # Why an agent is paused, after "Paused": the workspace's reasons and the automatic ones.
        "pause_break": _("Break"),
        "pause_lunch": _("Lunch"),
        "pause_training": _("Training"),
        "pause_meeting": _("Meeting"),
        "pause_after_call_work": _("After-call work"),
        "pause_no_answer": _("did not answer a caller"),
        "pause_tab_closed": _("workspace closed"),
        "pause_phone_lost": _("browser phone lost"),
        "pause_supervisor": _("by a supervisor"),
        "none": _("—"),
        "no_calls": _("No calls right now."),
        "no_agents": _("No agent is signed in to a campaign."),
        "no_campaigns": _("No campaign is running."),
        "no_queues": _("No caller has waited in a queue yet."),
        "link_down": _("Link down: {name} — {detail}"),
        "stream_lost": _("Live updates interrupted; reconnecting…"),
    }


def _back(message: str = "", error: str = "") -> web.HTTPSeeOther:
    query = {k: v for k, v in (("message", message), ("error", error)) if v}
    return web.HTTPSeeOther(str(URL("/floor").with_query(query)))


@requires(Role.SUPERVISOR)
async def floor(request: web.Request) -> web.StreamResponse:
    return page(
        request,
        "floor.html",
        {
            "labels": labels(),
            "running": request.app[SERVICES].dialer is not None,
            "message": request.query.get("message", ""),
            "error": request.query.get("error", ""),
        },
    )


class FloorStream:
    """One open /floor/events response, written to by the hub's frame task."""

    def __init__(
        self,
        response: web.StreamResponse,
        transport: asyncio.BaseTransport | None,
        chunked: bool,
    ):
        self._response, self._transport, self._chunked = response, transport, chunked
        self.wake = asyncio.Event()
        self.behind = self.ended = False
        self.allowance = 0  # the snapshot just written may still sit in the socket's buffer

    def gone(self) -> bool:
        transport = self._transport
        return not isinstance(transport, asyncio.WriteTransport) or transport.is_closing()

    def backlog(self) -> int:
        if self.gone():
            return TAB_BUFFER + 1  # the stream's own task finds out and ends
        assert isinstance(self._transport, asyncio.WriteTransport)
        return max(0, self._transport.get_write_buffer_size() - self.allowance)

    async def start(self, snapshot: bytes) -> None:
        self.allowance = len(snapshot)
        await self._response.write(snapshot)

    def send(self, frame: Frame) -> None:
        """The frame straight into the socket's buffer, as the response's writer would frame
        it (one HTTP/1.1 chunk): no coroutine or framing per tab. The stream's own writes
        (snapshot, keep-alive) go through the writer and leave whole, so the two never
        interleave within a chunk."""
        transport = self._transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise ConnectionResetError("the floor tab closed")
        transport.write(frame.chunk if self._chunked else frame.body)

    def fell_behind(self) -> None:
        self.behind = True
        self.wake.set()

    def stopping(self) -> None:
        self.ended = True
        self.wake.set()


@requires(Role.SUPERVISOR)
async def events(request: web.Request) -> web.StreamResponse:
    """The snapshot, then frames of deltas: call, agent, campaign, queue, health."""
    hub = request.app[FLOOR]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    chunked = request.version == HttpVersion11  # HTTP/1.0: the body ends at close
    if chunked:
        response.enable_chunked_encoding()
    await response.prepare(request)
    stream = FloorStream(response, request.transport, chunked)
    try:
        with contextlib.suppress(ConnectionResetError):
            await stream.start(hub.join(stream))
            while True:
                try:
                    await asyncio.wait_for(stream.wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                stream.wake.clear()
                if stream.ended:
                    break
                if stream.behind:  # a slow link: once it has drained, the whole state again
                    deadline = asyncio.get_running_loop().time() + KEEPALIVE_S
                    while stream.backlog() > TAB_BUFFER // 4 and not stream.gone():
                        if asyncio.get_running_loop().time() > deadline:
                            break
                        await asyncio.sleep(FRAME_S)  # polls the socket's send buffer
                    if stream.gone() or stream.backlog() > TAB_BUFFER // 4:
                        break  # closed, or not reading at all
                    stream.behind = False
                    await stream.start(hub.join(stream))
    finally:
        hub.leave(stream)
    return response


def _actor(request: web.Request) -> Actor:
    return Actor(user_id=principal(request).user.id, remote_addr=request.remote)


@requires(Role.SUPERVISOR)
async def pause_campaign(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("campaign", "")).strip()
    try:
        dialer = request.app[SERVICES].need_dialer()
        await dialer.pause(name)
    except ContactdError as exc:
        raise _back(error=exc.message) from None
    async with request.app[DATABASE].transaction() as session:
        record(
            session, _actor(request), "campaign.pause", "campaign", name, None, {"status": "paused"}
        )
    request.app[FLOOR].refresh_campaigns()
    raise _back(message=_("Campaign {name} paused.").format(name=name))


@requires(Role.SUPERVISOR)
async def pause_agent(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("agent", "")).strip()
    try:
        board = request.app[SERVICES].need_dialer().agents
        agent = board.agents.get(name)
        node = request.app[FLOOR].agents.get(name, {}).get("node")
        if agent is None and node is not None:  # another daemon's (docs/scale-out.md)
            raise NotFoundError(
                f"agent {name} is signed in on daemon {node}: pause them from that daemon's floor"
            )
        if agent is None:
            raise NotFoundError(f"agent {name} is not signed in to a campaign")
        campaign_id, before = agent.campaign_id, agent.state.value
        board.pause(name, time.time(), SUPERVISOR_PAUSE)
    except ContactdError as exc:
        raise _back(error=exc.message) from None
    async with request.app[DATABASE].transaction() as session:
        record(
            session,
            _actor(request),
            "agent.pause",
            "campaign",
            campaign_id,
            {"state": before, "agent": name},
            {"state": "paused", "by": "supervisor"},
        )
    raise _back(message=_("Agent {name} paused.").format(name=name))


def setup(app: web.Application) -> None:
    services = app[SERVICES]
    own = services.floor is None  # the daemon starts its own before the services that write
    hub = services.floor or FloorHub(
        app[DATABASE],
        services.bus or EventBus(),
        app[HEALTH],
        services.dialer,
        service_level_s=app[SETTINGS].web.floor_service_level_s,
        queue_levels=queue_levels(app[SETTINGS]),
    )
    app[FLOOR] = hub

    async def live(_app: web.Application) -> AsyncIterator[None]:
        async with hub:
            yield

    async def end_streams(_app: web.Application) -> None:
        hub.close_tabs()

    if own:
        app.cleanup_ctx.append(live)
    app.on_shutdown.append(end_streams)
    app.router.add_get("/floor", floor)
    app.router.add_get("/floor/events", events)
    app.router.add_post("/floor/pause-campaign", pause_campaign)
    app.router.add_post("/floor/pause-agent", pause_agent)
