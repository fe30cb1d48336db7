"""A supervised AMI connection over panoramisk: login, keep-alive, reconnect, health.

panoramisk parses frames and matches responses to actions; everything around it is ours:
the connection is (re)opened by one supervisor task with capped exponential back-off and
jitter, a Ping with a timeout proves the link alive, every action has a timeout, an action
pending when the link drops fails with AmiDisconnected and is never re-sent (DESIGN.md §4
trap 1), and events go through contactd's EventDispatcher (trap 2).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import IO, Any, Final

from panoramisk import Manager
from panoramisk.actions import Action

from contactd.ami import actions
from contactd.ami.action_methods import AmiActionMethods
from contactd.ami.dispatcher import EventDispatcher
from contactd.ami.errors import (
    AmiActionFailed,
    AmiDisconnected,
    AmiLoginRefused,
    AmiTimeout,
    AmiUnavailable,
)
from contactd.ami.protocol import AmiProtocol
from contactd.config import AmiSettings
from contactd.health import ComponentHealth

log = logging.getLogger(__name__)

ENCODING: Final = "utf8"  # the protocol alone defaults to ASCII and drops non-ASCII names
FULLY_BOOTED_WAIT_S: Final = 5.0
ALWAYS_WANTED: Final = frozenset({"FullyBooted", "Shutdown"})

ConnectListener = Callable[[int], Awaitable[None]]


class LinkState(StrEnum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DOWN = "down"


@dataclass(frozen=True)
class AmiHealth:
    state: LinkState
    since: datetime
    connects: int
    detail: str = ""


def event_filter(names: frozenset[str]) -> str | None:
    """The AMI `Filter` whitelisting exactly these event names (None: receive everything)."""
    if not names or "*" in names:
        return None
    wanted = "|".join(sorted(names | ALWAYS_WANTED))
    # A regex on the event text; [[:space:]] keeps Hangup from matching HangupRequest.
    return f"Event: ({wanted})[[:space:]]"


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager with its own reconnect, pinger and fnmatch routing switched off."""

    def __init__(self, client: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self._client = client

    def dispatch(self, event: Any) -> list[str]:
        self._client._on_event(event)
        return []

    def connection_lost(self, exc: object) -> None:
        self._client._on_lost(exc)


class AmiClient(AmiActionMethods):
    """Async context manager owning the link; `events` is where raw AMI events arrive."""

    def __init__(
        self,
        settings: AmiSettings,
        *,
        dispatcher: EventDispatcher | None = None,
        rng: random.Random | None = None,
        record_stream: IO[bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.events = dispatcher or EventDispatcher()
        self._rng = rng or random.Random()
        self._manager = _Manager(
            self,
            host=settings.host,
            port=settings.port,
            encoding=ENCODING,
            forgetable_actions=actions.FORGETTABLE_ACTIONS,
            save_stream=record_stream,
        )
        self._state = LinkState.DOWN
        self._since = datetime.now(UTC)
        self._detail = "not started"
        self._connects = 0
        self._epoch = 0
        self._link_up = False
        self._lost: asyncio.Event | None = None
        self._booted: asyncio.Event | None = None
        self._connected = asyncio.Event()
        self._inflight: dict[str, Action] = {}
        self._listeners: list[ConnectListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    # ---- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> AmiClient:
        self._manager.loop = asyncio.get_running_loop()
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_link("client closed")
        await self.events.drain()
        self._set_state(LinkState.DOWN, "closed")

    def on_connected(self, listener: ConnectListener) -> None:
        """Run `listener(epoch)` after every successful login (reconciliation hooks here)."""
        self._listeners.append(listener)

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise AmiUnavailable(
                f"AMI not connected within {timeout_s:g} s", detail=self._detail
            ) from None

    def replay_protocol(self) -> AmiProtocol:
        """A protocol wired to this client's dispatcher and to no socket: feed it recorded
        AMI bytes with `data_received` (replay tests, the benchmark)."""
        protocol = AmiProtocol()
        protocol.connection_made(None)
        protocol.factory = self._manager
        protocol.log = log
        protocol.responses = {}
        return protocol

    # ---- health ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._state is LinkState.CONNECTED

    @property
    def epoch(self) -> int:
        """Increments at every new link; an action's fate is tied to the epoch it went out on."""
        return self._epoch

    @property
    def pending_actions(self) -> int:
        """Actions sent on the current link and still waiting for their response."""
        return len(self._inflight)

    @property
    def health(self) -> AmiHealth:
        return AmiHealth(self._state, self._since, self._connects, self._detail)

    def probe(self) -> ComponentHealth:
        # Not logged in means no call can be placed or followed: "down" whether the link
        # dropped (reconnecting) or never came up, so /healthz answers 503 in both cases.
        if self._state is LinkState.CONNECTED:
            return ComponentHealth("ok", self._detail, self._since)
        return ComponentHealth("down", f"{self._state.value}: {self._detail}", self._since)

    def _set_state(self, state: LinkState, detail: str) -> None:
        self._detail = detail
        if state is not self._state:
            self._state = state
            self._since = datetime.now(UTC)
            log.info("AMI link state changed", extra={"state": state.value, "detail": detail})
        if state is LinkState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()

    # ---- supervision -----------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.settings.reconnect_min_s
        while True:
            try:
                await self._open_link()
            except Exception as exc:  # any failure to connect means: back off and retry
                self._close_link(f"connect failed: {exc}")
                wait = self._backoff(delay)
                if isinstance(exc, AmiLoginRefused):
                    # Not a network fault: retrying will not help until someone fixes a file.
                    log.error(
                        "AMI login refused: ami.secret must equal the user's `secret` in "
                        "Asterisk's manager.conf (and its permit must allow this address)",
                        extra={"ami_user": self.settings.username, "retry_in_s": round(wait, 2)},
                    )
                else:
                    log.warning(
                        "AMI connect failed; retrying",
                        extra={"host": self.settings.host, "port": self.settings.port,
                               "error": str(exc), "retry_in_s": round(wait, 3)},
                    )
                state = LinkState.RECONNECTING if self._connects else LinkState.DOWN
                self._set_state(state, f"connect failed: {exc}")
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.settings.reconnect_max_s)
                continue
            delay = self.settings.reconnect_min_s
            self._connects += 1
            self._set_state(LinkState.CONNECTED, f"{self.settings.host}:{self.settings.port}")
            for listener in self._listeners:
                self._spawn(listener(self._epoch), "ami-on-connected")
            try:
                await self._keep_alive()
            except Exception:
                log.exception("AMI keep-alive failed; dropping the link")
                self._close_link("keep-alive failed")
            self._set_state(LinkState.RECONNECTING, "link lost")

    def _backoff(self, delay: float) -> float:
        # "Equal jitter": at least half the delay, so a restarting Asterisk is not hammered.
        return delay / 2 + self._rng.uniform(0, delay / 2)

    async def _open_link(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.settings.action_timeout_s
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(AmiProtocol, self.settings.host, self.settings.port),
            timeout,
        )
        manager = self._manager
        protocol.queue = deque()
        protocol.factory = manager
        protocol.log = manager.log
        protocol.config = manager.config
        protocol.encoding = manager.encoding = ENCODING
        manager.responses = protocol.responses = {}
        manager.protocol = protocol
        self._epoch += 1
        self._link_up = True
        self._lost = asyncio.Event()
        self._booted = asyncio.Event()
        login = {
            "Action": "Login",
            "Username": self.settings.username,
            "Secret": self.settings.secret.get_secret_value(),
            "Events": self.settings.events,
        }
        reply = await self._send(login, timeout)
        if not reply.success:
            # Never log the Login action itself: it carries the secret.
            raise AmiLoginRefused(
                f"AMI login refused for user {self.settings.username!r}: the secret "
                "(setting ami.secret) must equal `secret` in the user's section of Asterisk's "
                "manager.conf, and its permit/deny must allow this address",
                username=self.settings.username,
            )
        await self._filter_events(timeout)
        try:
            await asyncio.wait_for(self._booted.wait(), FULLY_BOOTED_WAIT_S)
        except TimeoutError:
            log.warning("no FullyBooted from Asterisk after login; going on")

    async def _filter_events(self, timeout_s: float) -> None:
        """Ask Asterisk for the subscribed events only (each costs parsing time here).

        The names come from the dispatcher at login, so subscribe before entering the client;
        a "*" subscriber (or filter_events=false) receives everything.
        """
        wanted = event_filter(self.events.names) if self.settings.filter_events else None
        if wanted is None:
            return
        reply = await self._send(
            {"Action": "Filter", "Operation": "Add", "Filter": wanted}, timeout_s, as_list=False
        )
        if not reply.success:
            # The shipped manager.conf grants no `system` write class, which Filter needs;
            # its `eventfilter` line whitelists the same events for the user instead.
            log.info(
                "AMI Filter action refused; relying on the user's eventfilter in manager.conf",
                extra={"detail": reply.message},
            )

    async def _keep_alive(self) -> None:
        lost = self._lost
        assert lost is not None
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self.settings.ping_interval_s)
                return
            except TimeoutError:
                pass
            try:
                await self._send({"Action": "Ping"}, self.settings.action_timeout_s)
            except AmiTimeout:
                log.warning("AMI Ping unanswered; dropping the link to reconnect")
                self._close_link("ping timeout")
            except (AmiDisconnected, AmiUnavailable):
                return  # the link fell meanwhile

    def _on_lost(self, exc: object) -> None:
        """Called by panoramisk when the transport closed (or Asterisk said Shutdown)."""
        if not self._link_up:
            return
        self._link_up = False
        reason = "Asterisk shut down" if isinstance(exc, Mapping) else f"{exc or 'closed'}"
        if self._closing:
            log.info("AMI link closed")
        else:
            log.warning("AMI link lost", extra={"reason": reason})
        self._fail_inflight(reason)
        if self._lost is not None:
            self._lost.set()
        if self._state is LinkState.CONNECTED:
            self._set_state(LinkState.RECONNECTING, f"link lost: {reason}")

    def _fail_inflight(self, reason: str) -> None:
        # panoramisk would queue these for re-sending after login; they fail here instead.
        self._manager.awaiting_actions.clear()
        pending, self._inflight = self._inflight, {}
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(
                        f"AMI link lost before the {action['Action']} response ({reason})",
                        action=str(action["Action"]),
                        action_id=action.id,
                    )
                )

    def _close_link(self, reason: str) -> None:
        protocol = getattr(self._manager, "protocol", None)
        if protocol is not None and getattr(protocol, "transport", None) is not None:
            protocol.transport.abort()
        self._on_lost(reason)

    def _on_event(self, event: Any) -> None:
        if self._booted is not None and event.get("Event") == "FullyBooted":
            self._booted.set()
        self.events.dispatch(event)

    def _spawn(self, awaitable: Awaitable[None], name: str) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("AMI background task failed", extra={"task": name})

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- actions ---------------------------------------------------------------------
    async def _send(
        self, fields: Mapping[str, Any], timeout_s: float, *, as_list: bool | None = None
    ) -> Any:
        # The one place actions are written: nothing that could frame another header or action
        # goes out, whoever built the fields (AmiUnsafeValue before anything is sent).
        actions.check_fields(fields)
        if not self._link_up:
            raise AmiUnavailable("AMI is not connected", action=str(fields.get("Action")))
        action = Action(dict(fields), as_list=as_list)
        self._inflight[action.id] = action
        try:
            future = self._manager.send_action(action, as_list=as_list)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            responses = self._manager.protocol.responses
            responses.pop(action.id, None)
            raise AmiTimeout(
                f"no response to {fields.get('Action')} within {timeout_s:g} s",
                action=str(fields.get("Action")),
                action_id=action.id,
            ) from None
        finally:
            self._inflight.pop(action.id, None)

    async def action(
        self,
        fields: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
        as_list: bool | None = None,
    ) -> Any:
        """Send one action once; `Response: Error` raises AmiActionFailed with its Message.

        `as_list=False` for single-response actions: panoramisk otherwise guesses from the
        message text (it waits for more after "Added interface to queue")."""
        if not self.connected:
            raise AmiUnavailable("AMI is not connected", action=str(fields.get("Action")))
        reply = await self._send(
            fields,
            self.settings.action_timeout_s if timeout_s is None else timeout_s,
            as_list=as_list,
        )
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response") in ("Error", "Failure", "Fail"):
            raise AmiActionFailed(
                f"{fields.get('Action')} refused: {first.get('Message', '')}",
                action=str(fields.get("Action")),
                reason=str(first.get("Message", "")),
            )
        return reply
