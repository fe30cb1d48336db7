"""Sign-in throttling per account and per address (in memory: one daemon owns the panel).

Failures are counted in a sliding window; once either key reaches the limit, attempts are
refused (even with the right password, so guessing gains nothing) until the oldest failure
leaves the window. A success clears the account's count, not the address's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from contactd.auth.errors import TooManyAttempts

MAX_KEYS = 100_000


class LoginThrottle:
    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, username: str, address: str) -> None:
        """Raises TooManyAttempts when this account or this address is locked out."""
        now = self._clock()
        for key in (f"user:{username}", f"addr:{address}"):
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = int(self.window_s - (now - times[0])) + 1
                raise TooManyAttempts(
                    "too many failed sign-ins; try again later", retry_after_s=wait
                )

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        if len(self._failures) >= MAX_KEYS:
            # Guessing many names must not grow memory without bound: drop what has expired.
            for key in list(self._failures):
                self._recent(key, now)
        for key in (f"user:{username}", f"addr:{address}"):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            if len(times) > self.max_failures:
                times.popleft()  # only the newest max_failures decide a lock-out

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"user:{username}", None)
