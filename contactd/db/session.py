"""The database handle: one async engine per process, SQLite (WAL) or PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from contactd.errors import StartupError, StorageUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")
# Reader threads for SQLite: the panel's pages read in them while the loop serves others.
READ_THREADS = 2
# A PostgreSQL connection idle in the pool longer than this is pinged before it is used.
IDLE_PING_S = 1.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web panel read while the dialer writes; NORMAL sync is durable in WAL mode
    # against process crashes, which is what the outbox and attempt rows need.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The writers' connection set WAL (it is kept in the file); a reader only waits its turn.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection that sat idle may have been cut (a server restart, a
    pooler's or firewall's idle timeout): it is pinged before use, and a dead one is replaced
    (the pool retries with a new connection). One handed back less than `IDLE_PING_S` ago
    was just working, so it is not: a ping on every checkout cost a round trip and ~7 % of
    a busy daemon's CPU."""
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since < IDLE_PING_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection is dead: {exc}") from exc


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=10, max_overflow=10)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "checkin", _mark_idle)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


class Database:
    """Owns the engine; `session()` hands out short-lived sessions for one unit of work, and
    `read()` runs a page's worth of reads in one go."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader: Engine | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def __aenter__(self) -> Database:
        await self.check()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.dispose()
        self.close_reader()

    def close_reader(self) -> None:
        """Stop the reader threads and close their connections (at the end, with the engine)."""
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)
            self._read_pool = None
        if self._reader is not None:
            self._reader.dispose()
            self._reader = None

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` (plain synchronous SQLAlchemy) with a session of its own and return what
        it returns; for reads only. On an SQLite file it runs in a reader thread with its own
        connection, so a page's dozen statements cost one hand-off instead of a thread round
        trip each (aiosqlite's 0.4 ms of CPU per statement was most of a page's cost); WAL
        lets it read beside the writers. Elsewhere it runs in the async session's greenlet."""
        if self.dialect != "sqlite" or self.engine.url.database in (None, "", ":memory:"):
            async with self.sessionmaker() as session:
                return await session.run_sync(work)
        if self._reader is None or self._read_pool is None:
            self._reader = create_engine(
                self.engine.url.set(drivername="sqlite"), pool_size=READ_THREADS
            )
            event.listen(self._reader, "connect", _reader_pragmas)
            self._read_pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="db-read")
        reader = self._reader

        def run() -> T:
            with Session(reader, expire_on_commit=False) as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)

    async def check(self) -> None:
        """Fail start-up with a clear line when the database cannot be reached."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError, OSError) as exc:
            await self.engine.dispose()
            reason = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise StartupError(
                f"database {self.engine.url.render_as_string(hide_password=True)} "
                f"is not reachable: {reason}"
            ) from None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session


# SQLite's words for a write it cannot make now, and what to tell the person who asked.
_STORAGE_FAULTS = (
    ("database is locked", "the database is locked by another program"),
    ("database or disk is full", "the disk holding the database is full"),
    ("disk i/o error", "the disk holding the database failed to write"),
)


@asynccontextmanager
async def storage_errors(what: str) -> AsyncIterator[None]:
    """Turns a write the database cannot make now into StorageUnavailableError, saying what
    was not stored and why; any other error passes unchanged."""
    try:
        yield
    except OperationalError as exc:
        text_of = str(exc.orig).lower()
        for words, reason in _STORAGE_FAULTS:
            if words in text_of:
                raise StorageUnavailableError(
                    f"{what} not stored: {reason}; nothing was changed, try again later",
                    reason=words,
                ) from exc
        raise
