"""Users and passwords: argon2id hashes, role checks; the web panel's login builds on this."""

from __future__ import annotations

import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contactd.auth.audit import CLI, Actor, record
from contactd.db.models import User, WebSession
from contactd.db.session import Database
from contactd.dialer.dialvalues import check_agent_dial
from contactd.enums import Role
from contactd.errors import ConflictError, NotFoundError, ValidationError
from contactd.recent import Generation, Recent

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")  # always fullmatch: `$` lets "\n" in
MIN_PASSWORD_LEN = 10

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash no password matches, verified for unknown users so that a login takes as long
    whether the name exists or not (no user enumeration by timing)."""
    return _hasher.hash("contactd: no such user")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(
            f"password too short: at least {MIN_PASSWORD_LEN} characters", field="password"
        )


class UserService:
    """`recent_s`: how long the list of users is reused without reading it again; every
    change made here bumps `generation`, which a SessionStore sharing it obeys too."""

    def __init__(
        self, db: Database, *, recent_s: float = 0.0, generation: Generation | None = None
    ) -> None:
        self._db = db
        self.generation = generation or Generation()
        self._everyone: Recent[None, list[User]] = Recent(recent_s, self.generation, limit=1)

    async def add(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        display_name: str = "",
        email: str | None = None,
        team: str | None = None,
        skills: list[str] | None = None,
        extension: str | None = None,
        actor: Actor = CLI,
    ) -> User:
        if not USERNAME_RE.fullmatch(username):
            raise ValidationError(
                f"user name {username!r} must be 2-64 lower-case letters, digits, '.', '_' or '-'",
                field="username",
            )
        check_password_strength(password)
        async with self._db.transaction() as session:
            exists = await session.scalar(select(User.id).where(User.username == username))
            if exists is not None:
                raise ConflictError(f"user {username!r} already exists", field="username")
            user = User(
                username=username,
                password_hash=hash_password(password),
                role=role,
                display_name=display_name or username,
                email=email,
                team=team,
                skills=skills or [],
                extension=_extension(extension),
            )
            session.add(user)
            await session.flush()
            record(session, actor, "user.add", "user", user.id, None, _public(user))
        self.generation.bump()
        return user

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self._db.session() as session:
            user = await session.scalar(
                select(User).where(User.username == username, User.active.is_(True))
            )
        if user is None:
            # Same work as a wrong password, so timing does not tell which names exist.
            verify_password(_dummy_hash(), password)
            return None
        if not verify_password(user.password_hash, password):
            return None
        return user

    async def list_all(self) -> list[User]:
        reused = self._everyone.get(None)
        if reused is not None:
            return list(reused)
        read_at = self._everyone.generation
        async with self._db.session() as session:
            users = list(await session.scalars(select(User).order_by(User.username)))
        self._everyone.put(None, users, read_at=read_at)
        return list(users)

    async def get(self, username: str) -> User:
        async with self._db.session() as session:
            return await _by_name(session, username)

    async def set_password(self, username: str, password: str, *, actor: Actor = CLI) -> None:
        """New password; every session of that user ends (a stolen one stops working)."""
        check_password_strength(password)
        async with self._db.transaction() as session:
            user = await _by_name(session, username)
            user.password_hash = hash_password(password)
            await _end_sessions(session, user.id)
            # The hash itself is never written to the audit log, only that it changed.
            record(session, actor, "user.passwd", "user", user.id, None, {"password": "changed"})
        self.generation.bump()

    async def update(
        self,
        username: str,
        *,
        actor: Actor = CLI,
        active: bool | None = None,
        role: Role | None = None,
        display_name: str | None = None,
        extension: str | None = None,
    ) -> User:
        """Changes what is given ("" clears the extension); disabling an account ends its
        sessions."""
        async with self._db.transaction() as session:
            user = await _by_name(session, username)
            before = _public(user)
            if active is not None:
                user.active = active
                if not active:
                    await _end_sessions(session, user.id)
            if role is not None:
                user.role = role
            if display_name is not None:
                user.display_name = display_name.strip() or user.username
            if extension is not None:
                user.extension = _extension(extension)
            after = _public(user)
            changed_before = {k: v for k, v in before.items() if after[k] != v}
            if changed_before:
                changed_after = {k: after[k] for k in changed_before}
                record(session, actor, "user.update", "user", user.id, changed_before,
                       changed_after)
        self.generation.bump()
        return user

    async def set_preferences(
        self, username: str, *, language: str | None = None, theme: str | None = None,
        actor: Actor = CLI,
    ) -> User:
        """The panel language and theme a user chose (callers check they are offered)."""
        async with self._db.transaction() as session:
            user = await _by_name(session, username)
            before = {"language": user.language, "theme": user.theme}
            if language is not None:
                user.language = language
            if theme is not None:
                user.theme = theme
            after = {"language": user.language, "theme": user.theme}
            if after != before:
                record(session, actor, "user.preferences", "user", user.id, before, after)
        self.generation.bump()
        return user


def _public(user: User) -> dict[str, object]:
    """What of a user the audit log shows (never the password hash)."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "active": user.active,
        "extension": user.extension,
    }


def _extension(value: str | None) -> str | None:
    """The agent's phone as the dialplan dials it (PJSIP/1001); None or "" for none."""
    value = (value or "").strip()
    return check_agent_dial(value) if value else None


async def _by_name(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}", field="username")
    return user


async def _end_sessions(session: AsyncSession, user_id: int) -> None:
    for web_session in await session.scalars(
        select(WebSession).where(WebSession.user_id == user_id)
    ):
        await session.delete(web_session)
