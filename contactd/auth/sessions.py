"""Server-side sessions: the browser holds a random token, the database its SHA-256.

A session ends at logout, after `idle` without a request, or `absolute` after sign-in,
whichever comes first. Signing in always makes a new session (the id is rotated), so a
token planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from contactd.auth.audit import Actor, record
from contactd.db.base import utcnow
from contactd.db.models import ApiToken, User, WebSession
from contactd.db.session import Database
from contactd.recent import Generation, Recent

# last_seen_at is written at most this often: one write per request would serialise every
# page view on SQLite's single writer, and a minute is far below any idle timeout.
TOUCH_EVERY = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request, as the access layer sees it."""

    user: User
    csrf_token: str | None  # None for API-token requests: no ambient credential, no CSRF
    session_id: int | None


class SessionStore:
    """`recent_s`: how long a resolved session is reused without reading it again
    (contactd/recent.py); `generation` is bumped by whatever changes users here."""

    def __init__(
        self,
        db: Database,
        *,
        idle: timedelta,
        absolute: timedelta,
        recent_s: float = 0.0,
        generation: Generation | None = None,
    ) -> None:
        self._db = db
        self.idle = idle
        self.absolute = absolute
        self._generation = generation or Generation()
        self._recent: Recent[str, Principal] = Recent(recent_s, self._generation)

    async def create(self, user: User, remote_addr: str | None) -> tuple[str, str]:
        """A new session for `user`; returns (cookie token, CSRF token)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._db.transaction() as session:
            session.add(
                WebSession(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    remote_addr=remote_addr,
                )
            )
            await session.execute(update(User).where(User.id == user.id).values(last_login_at=now))
        return token, csrf

    async def resolve(self, token: str, now: datetime | None = None) -> Principal | None:
        """The signed-in, active user behind a cookie token, or None (expired sessions go).
        A session resolved a moment ago is reused, unless the caller says what time it is."""
        key = token_hash(token)
        reused = self._recent.get(key) if now is None else None
        if reused is not None:
            return reused
        read_at = self._recent.generation
        now = now or utcnow()
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(WebSession, User)
                    .join(User, User.id == WebSession.user_id)
                    .where(WebSession.token_hash == key)
                )
            ).one_or_none()
            if row is None:
                return None
            web_session, user = row
            expired = (
                now - web_session.last_seen_at > self.idle
                or now - web_session.created_at > self.absolute
            )
            if expired or not user.active:
                await session.delete(web_session)
                return None
            if now - web_session.last_seen_at > TOUCH_EVERY:
                web_session.last_seen_at = now
            principal = Principal(user=user, csrf_token=web_session.csrf_token,
                                  session_id=web_session.id)
        self._recent.put(key, principal, read_at=read_at)
        return principal

    async def end(self, token: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                delete(WebSession).where(WebSession.token_hash == token_hash(token))
            )
        self._generation.bump()

    async def end_all_for(self, user_id: int) -> int:
        """Signs a user out everywhere (password changed, account disabled)."""
        async with self._db.transaction() as session:
            result = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
        self._generation.bump()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ApiTokens:
    """Personal API tokens: shown once at creation, stored only as a hash."""

    PREFIX = "cd_"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, user_id: int, name: str, actor: Actor) -> str:
        token = self.PREFIX + secrets.token_urlsafe(32)
        async with self._db.transaction() as session:
            row = ApiToken(token_hash=token_hash(token), user_id=user_id, name=name)
            session.add(row)
            await session.flush()
            record(session, actor, "api_token.create", "api_token", row.id, None,
                   {"user_id": user_id, "name": name})
        return token

    async def resolve(self, token: str) -> Principal | None:
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(ApiToken, User)
                    .join(User, User.id == ApiToken.user_id)
                    .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked.is_(False))
                )
            ).one_or_none()
            if row is None:
                return None
            api_token, user = row
            if not user.active:
                return None
            api_token.last_used_at = utcnow()
            return Principal(user=user, csrf_token=None, session_id=None)
