"""What a page may reuse, for a moment, of what every page reads and hardly ever changes:
who is signed in, who the users are, the custom fields.

Reading them from the database on each request cost more than the page's own query. A writer
in this process bumps the shared `Generation`, so its change applies to the very next request;
a change made by another process (a second daemon, the `contactd user` command) is seen after
`ttl_s` at most. `ttl_s = 0` turns reuse off.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Generation:
    """Counts the changes this process made to what a `Recent` holds."""

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class Recent(Generic[K, V]):
    """A small map whose entries last `ttl_s` and none past the next `Generation` bump."""

    def __init__(
        self,
        ttl_s: float,
        generation: Generation,
        *,
        limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be 0 or more")
        self._ttl_s = ttl_s
        self._generation = generation
        self._limit = limit
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        until, generation, value = found
        if generation != self._generation.value or self._clock() >= until:
            del self._entries[key]
            return None
        return value

    @property
    def generation(self) -> int:
        """Take it before reading what will be `put`: a change made meanwhile then wins."""
        return self._generation.value

    def put(self, key: K, value: V, *, read_at: int) -> None:
        """Keeps `value`, read when the generation was `read_at`, unless it changed since."""
        if self._ttl_s == 0 or read_at != self._generation.value:
            return
        self._entries[key] = (self._clock() + self._ttl_s, self._generation.value, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
