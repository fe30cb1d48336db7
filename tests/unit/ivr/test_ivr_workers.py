"""The ASR thread pool runs a waiting caller's final result before queued audio feeds."""

from __future__ import annotations

import threading

import pytest

from contactd.ivr.workers import NORMAL, URGENT, PriorityPool


def test_urgent_jobs_overtake_queued_ones_and_equal_ones_keep_their_order() -> None:
    pool = PriorityPool(1, name="test")
    gate = threading.Event()
    ran: list[str] = []
    try:
        blocker = pool.submit(NORMAL, gate.wait)
        jobs = [pool.submit(NORMAL, ran.append, name) for name in ("feed-a", "feed-b")]
        jobs.append(pool.submit(URGENT, ran.append, "final"))
        gate.set()
        for job in [blocker, *jobs]:
            job.result(timeout=10)
    finally:
        pool.shutdown()
    assert ran == ["final", "feed-a", "feed-b"]


def test_errors_reach_the_waiter_and_shutdown_cancels_what_has_not_started() -> None:
    pool = PriorityPool(1, name="test")
    gate = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait()

    failing = pool.submit(URGENT, int, "not a number")
    with pytest.raises(ValueError):
        failing.result(timeout=10)
    running = pool.submit(NORMAL, hold)
    started.wait(10)
    queued = pool.submit(NORMAL, int, "1")
    threading.Timer(0.05, gate.set).start()  # lets shutdown find the queue first
    pool.shutdown()
    assert queued.cancelled()
    assert running.done() and not running.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(NORMAL, int, "1")
