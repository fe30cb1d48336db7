"""contactd's dispatcher: a failing handler is logged and counted, the others still run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from contactd.ami.dispatcher import EventDispatcher, RawEvent


async def test_failures_are_logged_counted_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = EventDispatcher()
    seen: list[str] = []

    def broken(event: RawEvent) -> None:
        raise RuntimeError("boom")

    async def broken_async(event: RawEvent) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    dispatcher.on("Hangup", broken)
    dispatcher.on("Hangup", broken_async)
    dispatcher.on("Hangup", lambda e: seen.append(str(e["Uniqueid"])))
    dispatcher.on("*", lambda e: seen.append("any"))
    with caplog.at_level(logging.ERROR, logger="contactd.ami.dispatcher"):
        dispatcher.dispatch({"Event": "Hangup", "Uniqueid": "u1"})
        await dispatcher.drain()
    assert seen == ["u1", "any"]
    assert dispatcher.failures["Hangup"] == 2
    assert sum("AMI event handler failed" in r.getMessage() for r in caplog.records) == 2


def test_events_without_a_name_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = EventDispatcher()
    dispatcher.on("*", lambda e: pytest.fail("must not be called"))
    with caplog.at_level(logging.WARNING):
        dispatcher.dispatch({"Event": ["Hangup", "Hangup"]})
        dispatcher.dispatch({})
    assert dispatcher.failures["<malformed>"] == 2
    assert "without a usable Event" in caplog.text


def test_unsubscribed_handler_no_longer_called() -> None:
    dispatcher = EventDispatcher()
    calls: list[RawEvent] = []
    dispatcher.on("Newstate", calls.append)
    dispatcher.off("Newstate", calls.append)
    dispatcher.dispatch({"Event": "Newstate"})
    assert calls == [] and dispatcher.dispatched == 1
    assert "Newstate" in dispatcher.names
