"""Users and passwords: argon2id hashes, role checks; the web panel's login builds on this."""

from __future__ import annotations

import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from contactd.db.models import User
from contactd.db.session import Database
from contactd.enums import Role
from contactd.errors import ConflictError, ValidationError

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
    def __init__(self, db: Database) -> None:
        self._db = db

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
            )
            session.add(user)
        return user

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self._db.session() as session:
            user = await session.scalar(
                select(User).where(User.username == username, User.active.is_(True))
            )
        if user is None:
            verify_password(_dummy_hash(), password)  # same cost as a wrong password
            return None
        if not verify_password(user.password_hash, password):
            return None
        return user
