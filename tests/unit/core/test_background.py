"""The background helpers: owned tasks are cancelled on close, and a failing loop step recovers."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from contactd.background import LoopState, TaskOwner, run_resilient


async def test_close_cancels_and_awaits_every_task() -> None:
    owner = TaskOwner("test")
    started = asyncio.Event()
    cancelled: list[str] = []

    async def forever(name: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    owner.spawn(forever("a"), "a")
    owner.spawn(forever("b"), "b")
    await started.wait()
    await asyncio.sleep(0)
    assert len(owner) == 2
    await owner.close()
    assert sorted(cancelled) == ["a", "b"]
    assert len(owner) == 0


async def test_failed_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("unit")

    async def boom() -> None:
        raise RuntimeError("kaput")

    task = owner.spawn(boom(), "boom")
    with caplog.at_level(logging.ERROR):
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    assert owner.failures == 1
    record = next(r for r in caplog.records if r.getMessage() == "background task failed")
    assert record.__dict__["task"] == "unit:boom"


async def test_resilient_loop_survives_failures_and_reports_degraded_then_ok() -> None:
    state = LoopState("dispatch")
    calls = 0
    done = asyncio.Event()
    seen: list[str] = []

    async def step() -> None:
        nonlocal calls
        calls += 1
        seen.append(state.probe().status)
        if calls <= 3:
            raise OSError("database is locked")
        if calls == 5:
            done.set()
            await asyncio.Event().wait()  # nothing more to do

    loop = asyncio.create_task(run_resilient(step, state, backoff_min_s=0.001))
    await asyncio.wait_for(done.wait(), 5)
    # degraded from the first failure until a step succeeds (step 4), ok again at step 5
    assert seen == ["ok", "degraded", "degraded", "degraded", "ok"]
    assert state.healthy
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert state.total_failures == 3
    assert "database is locked" in state.last_error


async def test_resilient_loop_backs_off_between_failures() -> None:
    state = LoopState("backoff")
    times: list[float] = []
    fourth = asyncio.Event()

    async def step() -> None:
        times.append(asyncio.get_running_loop().time())
        if len(times) >= 4:
            fourth.set()
            await asyncio.Event().wait()
        raise RuntimeError("down")

    loop = asyncio.create_task(run_resilient(step, state, backoff_min_s=0.02, backoff_max_s=0.05))
    await asyncio.wait_for(fourth.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.05
    assert state.probe().status == "degraded"


async def test_resilient_loop_ends_between_steps_once_until_is_set() -> None:
    stop = asyncio.Event()
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            stop.set()  # the step in progress finishes; no further step starts

    await asyncio.wait_for(run_resilient(step, LoopState("t"), until=stop), 5)
    assert steps == 3


async def test_until_cuts_a_back_off_short() -> None:
    stop = asyncio.Event()

    async def failing() -> None:
        stop.set()
        raise RuntimeError("down")

    # A 60 s back-off would outlast the timeout unless `until` ends it.
    await asyncio.wait_for(
        run_resilient(failing, LoopState("t"), backoff_min_s=60, until=stop), 5
    )
