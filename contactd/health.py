"""Component health, gathered for /healthz and the panel: each part reports itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Status = Literal["ok", "degraded", "down"]


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
