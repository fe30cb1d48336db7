"""systemd's notify protocol: ready when every component is up, a status line, a watchdog.

With `Type=notify` systemd counts the service started only when it says READY=1, so units
ordered after contactd wait for a daemon that really serves. With `WatchdogSec=` it expects
WATCHDOG=1 at least that often; the pings come from a task on the event loop, so a loop
stuck in a blocking call stops them and systemd restarts the daemon. Outside systemd
(no NOTIFY_SOCKET) every method does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from types import TracebackType

from contactd.background import TaskOwner

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Datagrams to $NOTIFY_SOCKET; pings the watchdog at half the interval systemd set."""

    def __init__(self, status: Callable[[], str] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET", "")
        if self._address.startswith("@"):  # the abstract namespace
            self._address = "\0" + self._address[1:]
        self.watchdog_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._status = status
        self._sock: socket.socket | None = None
        self._tasks = TaskOwner("sdnotify", log)
        self._warned = False

    @property
    def active(self) -> bool:
        return bool(self._address)

    async def __aenter__(self) -> SystemdNotifier:
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
            if self.watchdog_s is not None:
                self._tasks.spawn(self._watchdog(self.watchdog_s / 2), "watchdog")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._tasks.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def send(self, *fields: str) -> None:
        """One datagram; a full or missing socket is logged once, never raised: the daemon's
        work does not depend on systemd hearing it."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("systemd notify failed", extra={"error": str(exc)})

    async def _watchdog(self, every_s: float) -> None:
        while True:
            fields = ["WATCHDOG=1"]
            if self._status is not None:
                fields.append(f"STATUS={self._status()}")
            self.send(*fields)
            await asyncio.sleep(every_s)
