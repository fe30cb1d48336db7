"""Sign-in throttling on a fake clock: the window slides, success clears the account only."""

from __future__ import annotations

import pytest

from contactd.auth.errors import TooManyAttempts
from contactd.auth.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_locks_after_the_limit_and_opens_when_the_window_has_passed() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 60.0, clock)
    for _ in range(2):
        throttle.check("ann", "10.0.0.1")
        throttle.failed("ann", "10.0.0.1")
        clock.now += 10
    throttle.check("ann", "10.0.0.1")
    throttle.failed("ann", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("ann", "10.0.0.2")  # the account is locked from anywhere
    assert 0 < refused.value.retry_after_s <= 41
    with pytest.raises(TooManyAttempts):
        throttle.check("bob", "10.0.0.1")  # and the address for any account
    throttle.check("bob", "10.0.0.9")
    clock.now += 41  # the first failure leaves the window
    throttle.check("ann", "10.0.0.2")


def test_success_clears_the_account_but_not_the_address() -> None:
    throttle = LoginThrottle(2, 60.0, Clock())
    throttle.failed("ann", "10.0.0.1")
    throttle.failed("cid", "10.0.0.1")
    throttle.succeeded("ann")
    throttle.check("ann", "10.0.0.7")
    with pytest.raises(TooManyAttempts):
        throttle.check("ann", "10.0.0.1")
