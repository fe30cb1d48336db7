"""/healthz status codes: 200 while every component works (or retries), 503 when one is down."""

from __future__ import annotations

import pytest

from contactd.health import ComponentHealth, HealthRegistry, Status


@pytest.mark.parametrize(
    ("states", "code", "overall"),
    [
        ((), 200, "ok"),
        (("ok", "ok"), 200, "ok"),
        (("ok", "degraded"), 200, "degraded"),
        (("degraded", "down"), 503, "down"),
    ],
)
def test_report_maps_component_states_to_http(
    states: tuple[Status, ...], code: int, overall: str
) -> None:
    health = HealthRegistry()
    for i, state in enumerate(states):
        health.register(f"c{i}", lambda state=state: ComponentHealth(state, "why"))  # type: ignore[misc]
    status, body = health.report("1.0")
    assert (status, body["status"]) == (code, overall)
    assert [c["status"] for c in body["components"].values()] == list(states)


def test_a_broken_probe_reports_down() -> None:
    health = HealthRegistry()

    def broken() -> ComponentHealth:
        raise RuntimeError("boom")

    health.register("x", broken)
    status, body = health.report("1.0")
    assert status == 503 and "boom" in body["components"]["x"]["detail"]


def test_ready_only_when_every_component_is_ok() -> None:
    health = HealthRegistry()
    states: dict[str, Status] = {"ami": "ok", "outbox": "degraded"}
    for name in states:
        health.register(name, lambda name=name: ComponentHealth(states[name], "retrying"))  # type: ignore[misc]
    status, body = health.readiness("1.0")
    assert status == 503 and body["ready"] is False
    assert body["not_ready"] == {"outbox": {"status": "degraded", "detail": "retrying"}}
    assert health.report("1.0")[0] == 200  # alive all the same
    states["outbox"] = "ok"
    assert health.readiness("1.0") == (200, {"ready": True, "version": "1.0", "not_ready": {}})
