"""Component health, gathered for /healthz and the panel: each part reports itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["ok", "degraded", "down"]

# What /healthz answers, for monitors and load balancers (README "Monitoring"):
#   200  every component works ("ok"), or one is retrying a failed step ("degraded").
#   503  a component is down: it cannot do its job now (AMI not logged in, whether the link
#        dropped or never came up; SMPP not bound; ...). The body names it and says since when.
HTTP_STATUS: dict[Status, int] = {"ok": 200, "degraded": 200, "down": 503}


@dataclass(frozen=True)
class ComponentHealth:
    status: Status
    detail: str = ""
    since: datetime | None = None


Probe = Callable[[], ComponentHealth]


class HealthRegistry:
    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}
        self.started_at = datetime.now(UTC)

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def snapshot(self) -> dict[str, ComponentHealth]:
        out: dict[str, ComponentHealth] = {}
        for name, probe in self._probes.items():
            try:
                out[name] = probe()
            except Exception as exc:  # a broken probe is itself a health fact
                out[name] = ComponentHealth("down", f"probe failed: {exc}")
        return out

    def overall(self) -> Status:
        states = {h.status for h in self.snapshot().values()}
        if "down" in states:
            return "down"
        return "degraded" if "degraded" in states else "ok"

    def report(self, version: str) -> tuple[int, dict[str, Any]]:
        """The /healthz answer: (HTTP status, JSON body)."""
        snapshot = self.snapshot()
        components = {
            name: {
                "status": h.status,
                "detail": h.detail,
                "since": h.since.isoformat() if h.since else None,
            }
            for name, h in snapshot.items()
        }
        states = {h.status for h in snapshot.values()}
        overall: Status = (
            "down" if "down" in states else "degraded" if "degraded" in states else "ok"
        )
        body = {"status": overall, "version": version, "components": components}
        return HTTP_STATUS[overall], body

    def readiness(self, version: str) -> tuple[int, dict[str, Any]]:
        """The /readyz answer: 200 only when every component is ok; otherwise 503 naming the
        ones that are not (a degraded one is retrying: alive, but not one to send work to)."""
        snapshot = self.snapshot()
        waiting = {name: {"status": h.status, "detail": h.detail}
                   for name, h in snapshot.items() if h.status != "ok"}
        body = {"ready": not waiting, "version": version, "not_ready": waiting}
        return (503 if waiting else 200), body

