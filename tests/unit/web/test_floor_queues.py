"""Each inbound queue on the floor is held to its own service-level target."""

from __future__ import annotations

from contactd.config import Settings
from contactd.db.session import Database
from contactd.dialer.floor_events import InboundAbandoned, InboundAnswered, InboundQueued
from contactd.events import EventBus
from contactd.health import HealthRegistry
from contactd.web.live import FloorHub, queue_levels


def test_each_queue_counts_answers_within_its_own_target(db: Database) -> None:
    settings = Settings.model_validate(
        {"inbound": {"queues": {"sales": {"service_level_s": 10}, "support": {}}}}
    )
    assert queue_levels(settings) == {"sales": 10.0, "support": 20.0}
    hub = FloorHub(
        db,
        EventBus(),
        HealthRegistry(),
        None,
        service_level_s=30.0,
        queue_levels=queue_levels(settings),
    )
    # Configured queues are on the floor before their first caller.
    assert sorted(hub.queues) == ["sales", "support"]
    for queue in ("sales", "support", "billing"):  # billing: not configured here
        for call in ("a", "b"):
            hub._on_queued(InboundQueued(queue=queue, call_id=call, caller="+1"))
        hub._on_taken(InboundAnswered(queue=queue, call_id="a", agent="alex", waited_s=15.0))
        hub._on_taken(InboundAnswered(queue=queue, call_id="b", agent="alex", waited_s=5.0))
    shown = {name: q.as_json() for name, q in hub.queues.items()}
    # 15 s is outside sales' 10 s but inside support's 20 s and the default 30 s.
    assert {n: (s["service_level"], s["service_level_s"]) for n, s in shown.items()} == {
        "sales": (0.5, 10.0),
        "support": (1.0, 20.0),
        "billing": (1.0, 30.0),
    }
    hub._on_hung_up(InboundAbandoned(queue="sales", call_id="c", waited_s=40.0))
    assert hub.queues["sales"].as_json()["service_level"] == 1 / 3
