"""Browser phones (WebRTC): one PJSIP endpoint/auth/aor per agent in an include file.

contactd writes the file named by `webrtc.include_file` (asterisk-config/pjsip.conf includes
`contactd-webrtc.conf`) from the templates `webrtc-endpoint`, `webrtc-auth` and `webrtc-aor`,
then asks Asterisk to reload res_pjsip over AMI. The file stays on disk, so the phones survive
an Asterisk restart; the daemon rewrites it at every start (all active agents) and when an
admin adds an agent.

Each agent's SIP password is random and never shown in a page: the workspace's script asks
`POST /workspace/phone/credentials` (signed-in agent, CSRF token) and gets a fresh password,
minted for that panel session, which replaces the previous one (docs/webrtc.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiError
from contactd.auth.service import UserService
from contactd.background import TaskOwner
from contactd.config import WebRtcSettings
from contactd.db.session import Database
from contactd.enums import Role
from contactd.errors import ValidationError

log = logging.getLogger(__name__)

_NAME_RE: Final = re.compile(r"^[a-z0-9._-]{2,64}$")
HEADER: Final = (
    "; Written by contactd (webrtc.include_file): one browser phone per agent.\n"
    "; Do not edit: contactd rewrites this file at every start and when agents change.\n"
)


@dataclass(frozen=True)
class SipCredentials:
    """What the workspace's phone needs to register (never rendered into a page)."""

    ws_url: str
    uri: str
    username: str
    password: str
    display_name: str

    def as_json(self) -> dict[str, str]:
        return {
            "ws_url": self.ws_url,
            "uri": self.uri,
            "username": self.username,
            "password": self.password,
            "display_name": self.display_name,
        }


def render(endpoints: dict[str, tuple[str, str]], settings: WebRtcSettings) -> str:
    """The include file: {endpoint name: (password, display name)} -> pjsip.conf sections."""
    parts = [HEADER]
    for name in sorted(endpoints):
        password, display = endpoints[name]
        caller = display.replace('"', "'").replace("\n", " ")
        parts.append(
            f"\n[{name}]({settings.endpoint_template})\n"
            f'auth = {name}\naors = {name}\ncallerid = "{caller}" <{name}>\n'
            f"[{name}]({settings.auth_template})\nusername = {name}\npassword = {password}\n"
            f"[{name}]({settings.aor_template})\n"
        )
    return "".join(parts)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".contactd-webrtc.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o640)  # SIP passwords: not world-readable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class WebRtcPhones:
    """Provisions browser phones and mints their SIP passwords. An async context manager."""

    def __init__(self, settings: WebRtcSettings, ami: AmiClient | None) -> None:
        self.settings = settings
        self._ami = ami
        self._lock = asyncio.Lock()
        # endpoint name -> (password, display name)
        self._endpoints: dict[str, tuple[str, str]] = {}
        # Runs with the agent's user name when their phone's registration is gone (the desk
        # pauses them). Subscribed here, before the client logs in (the event filter).
        self.on_lost: Callable[[str], Awaitable[None]] | None = None
        self._live: dict[str, set[str]] = {}  # endpoint -> its registered contact URIs
        self._tasks = TaskOwner("webrtc-phones", log)
        if ami is not None:
            ami.events.on("ContactStatus", self._on_contact_status)

    def registered(self, username: str) -> bool:
        return bool(self._live.get(self.endpoint(username)))

    def _on_contact_status(self, event: Any) -> None:
        """AMI ContactStatus: Removed (unregistered, expired, WebSocket closed) or
        Unreachable (qualify failed) for one of our endpoints means the agent cannot be rung,
        unless the phone registers again within `lost_grace_s` (every workspace action
        reloads the page, and the reloaded page registers anew)."""
        status = str(event.get("ContactStatus", ""))
        aor = str(event.get("AOR", ""))
        uri = str(event.get("URI", ""))
        if aor not in self._endpoints:
            return
        live = self._live.setdefault(aor, set())
        if status in ("Created", "Reachable", "Updated", "NonQualified"):
            live.add(uri)
        elif status in ("Removed", "Unreachable"):
            live.discard(uri)
            if not live:
                self._tasks.spawn(self._lost_unless_back(aor, status), f"lost {aor}")

    async def _lost_unless_back(self, aor: str, status: str) -> None:
        await asyncio.sleep(self.settings.lost_grace_s)
        if self._live.get(aor):
            return
        log.warning(
            "webrtc phone lost its registration", extra={"endpoint": aor, "contact_status": status}
        )
        if self.on_lost is not None:
            await self.on_lost(aor.removeprefix(self.settings.endpoint_prefix))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._tasks.close()

    def endpoint(self, username: str) -> str:
        """The agent's PJSIP endpoint (and SIP user) name, e.g. webrtc-alice."""
        if not _NAME_RE.fullmatch(username):
            raise ValidationError(
                f"user name {username!r} cannot name a SIP endpoint", field="username"
            )
        return f"{self.settings.endpoint_prefix}{username}"

    def dial_string(self, username: str) -> str:
        """How Asterisk dials the agent's browser phone: PJSIP/<endpoint>."""
        return f"PJSIP/{self.endpoint(username)}"

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(sorted(self._endpoints))

    async def provision(self, agents: Iterable[tuple[str, str]]) -> None:
        """Make the file hold exactly these agents [(username, display name)]; keeps the
        passwords already minted for agents that stay. Then reload res_pjsip."""
        async with self._lock:
            wanted = {self.endpoint(u): d for u, d in agents}
            self._endpoints = {
                name: (self._endpoints.get(name, (secrets.token_urlsafe(24), ""))[0], display)
                for name, display in wanted.items()
            }
            await self._commit()
        log.info("webrtc phones provisioned", extra={"phones": len(self._endpoints)})

    async def add(self, username: str, display_name: str) -> None:
        """One more agent (an admin created them): add the endpoint and reload."""
        async with self._lock:
            name = self.endpoint(username)
            old = self._endpoints.get(name, (secrets.token_urlsafe(24), ""))
            self._endpoints[name] = (old[0], display_name or username)
            await self._commit()
        log.info("webrtc phone added", extra={"endpoint": name})

    async def mint(self, username: str, display_name: str) -> SipCredentials:
        """A fresh SIP password for this agent's phone (the previous one stops working)."""
        async with self._lock:
            name = self.endpoint(username)
            password = secrets.token_urlsafe(24)
            self._endpoints[name] = (password, display_name or username)
            await self._commit()
        log.info("webrtc credentials minted", extra={"endpoint": name})
        return SipCredentials(
            ws_url=self.settings.ws_url,
            uri=f"sip:{name}@{self.settings.sip_domain}",
            username=name,
            password=password,
            display_name=display_name or username,
        )

    async def _commit(self) -> None:
        text = render(self._endpoints, self.settings)
        await asyncio.to_thread(_write_atomic, self.settings.include_file, text)
        await self.reload()

    async def on_ami_connected(self, epoch: int) -> None:
        """AMI (re)connected: Asterisk may have started after the file changed; reload."""
        await self.reload()

    async def reload(self) -> bool:
        """Ask Asterisk to reread pjsip.conf; False when AMI is down (Asterisk reads the file
        when it starts, so nothing is lost)."""
        if self._ami is None or not self._ami.connected:
            log.warning(
                "webrtc phones written; AMI down, res_pjsip not reloaded",
                extra={"path": str(self.settings.include_file)},
            )
            return False
        try:
            await self._ami.action({"Action": "Reload", "Module": "res_pjsip.so"}, as_list=False)
        except AmiError as exc:
            log.warning("res_pjsip reload refused", extra={"error": str(exc)})
            return False
        return True


async def active_agents(db: Database) -> list[tuple[str, str]]:
    """(user name, display name) of every active agent: whose browser phones to provision."""
    users = await UserService(db).list_all()
    return [(u.username, u.display_name) for u in users if u.role is Role.AGENT and u.active]
