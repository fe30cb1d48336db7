"""The IVR's health for /healthz: the AudioSocket server, and the speech model with its threads.

A model that exists but failed to load leaves the IVR running on keys only: "degraded", with
the reason, rather than a daemon that refuses to start (a wrong path still refuses).
"""

from __future__ import annotations

from datetime import datetime

from contactd.health import ComponentHealth
from contactd.ivr.asr import SpeechModel
from contactd.ivr.audiosocket import AudioSocketServer


def audiosocket_probe(server: AudioSocketServer, since: datetime) -> ComponentHealth:
    if not server.listening:
        return ComponentHealth("down", f"not listening on {server.host}:{server.port}")
    return ComponentHealth(
        "ok", f"listening on {server.host}:{server.port}, {len(server.calls)} calls", since
    )


class SpeechHealth:
    """What became of the configured model: loaded, not configured, or failed to load."""

    def __init__(self, model: SpeechModel | None, *, failure: str = "", since: datetime) -> None:
        self.model = model
        self.failure = failure
        self.since = since

    def probe(self) -> ComponentHealth:
        if self.failure:
            return ComponentHealth(
                "degraded", f"{self.failure}; answering by keys only", self.since
            )
        if self.model is None:
            return ComponentHealth("ok", "no speech model configured: keys only", self.since)
        model = self.model
        if not model.loaded:
            return ComponentHealth("down", f"model {model.path} is not loaded", self.since)
        free = model.workers - model.busy
        return ComponentHealth(
            "ok",
            f"model {model.path.parent.name}/{model.path.name} loaded; {free} of "
            f"{model.workers} threads free, {model.waiting} jobs waiting",
            self.since,
        )
