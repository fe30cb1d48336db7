"""The database handle: one async engine per process, SQLite (WAL) or PostgreSQL by URL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from contactd.errors import StartupError, StorageUnavailableError

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web panel read while the dialer writes; NORMAL sync is durable in WAL mode
    # against process crashes, which is what the outbox and attempt rows need.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """Owns the engine; `session()` hands out short-lived sessions for one unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

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
