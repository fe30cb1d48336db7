"""Open tasks per assignee, kept per process and database.

Assignment weighs every agent's open tasks, and counting them scans every open task: 72 ms at
200,000, paid by each routing batch and by each task made one at a time. The counts read are
kept for `MAX_AGE_S`; tasks this process gives out are added as they are given, and a status
or assignee changed here drops the counts so the next assignment reads them afresh. What other
daemons (or a hand-edited row) change shows after at most `MAX_AGE_S`: least-loaded is a
balance kept over the day, and a few seconds' lag does not move it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from typing import Final

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession

MAX_AGE_S: Final = 5.0


class TaskLoad:
    """The open-task count of each assignee, with the time it was read."""

    def __init__(self, *, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._counts: dict[int, int] | None = None
        self._read_at = 0.0
        self.reads = 0  # how often the counts were read from the database

    def current(self) -> dict[int, int] | None:
        """The counts (a copy), or None when they must be read again."""
        if self._counts is None or self.clock() - self._read_at > self.max_age_s:
            return None
        return dict(self._counts)

    def read(self, counts: dict[int, int]) -> None:
        """Counts just read from the database."""
        self._counts = dict(counts)
        self._read_at = self.clock()
        self.reads += 1

    def gave(self, assignees: Iterable[int | None]) -> None:
        """Open tasks this process has just given out (None: nobody)."""
        if self._counts is None:
            return
        for uid in assignees:
            if uid is not None:
                self._counts[uid] = self._counts.get(uid, 0) + 1

    def forget(self) -> None:
        """A task's status or assignee changed: the next assignment reads the counts."""
        self._counts = None


_LOADS: weakref.WeakKeyDictionary[Engine | Connection, TaskLoad] = weakref.WeakKeyDictionary()


def task_load(session: AsyncSession) -> TaskLoad:
    """The counts kept for the database `session` talks to (one per engine)."""
    bind = session.get_bind()
    load = _LOADS.get(bind)
    if load is None:
        load = _LOADS[bind] = TaskLoad()
    return load
