"""Log lines written while an event is handled carry the event's ids, without the handler
naming them: a call's attempt id, a message's id, an interaction's id."""

from __future__ import annotations

import io
import json
import logging

from contactd.calls.events import CallEnded
from contactd.enums import CallOutcome
from contactd.events import EventBus
from contactd.logs import ContextIds, JsonFormatter, log_ids


def capture() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextIds())
    logger = logging.getLogger("contactd.test.logids")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_a_handler_logs_with_the_events_ids() -> None:
    logger, out = capture()
    bus = EventBus()

    async def on_end(event: CallEnded) -> None:
        logger.info("lead settled", extra={"lead_id": 7})

    bus.subscribe(CallEnded, on_end)
    await bus.publish(CallEnded(attempt_id="a-42", outcome=CallOutcome.BUSY, cause=17,
                                interaction_id=9))
    logger.info("after the event")
    first, after = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["attempt_id"] == "a-42" and first["interaction_id"] == 9
    assert first["lead_id"] == 7
    assert "attempt_id" not in after  # the ids end with the event's handling


def test_nested_ids_add_and_the_call_site_wins() -> None:
    logger, out = capture()
    with log_ids(campaign_id=3), log_ids(attempt_id="x", message_id=None):
        logger.info("inner", extra={"campaign_id": 4})
    line = json.loads(out.getvalue())
    assert line["attempt_id"] == "x" and line["campaign_id"] == 4
    assert "message_id" not in line
