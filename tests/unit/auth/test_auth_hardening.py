"""User names are matched whole, and an unknown user costs a login as much as a known one."""

from __future__ import annotations

import pytest

from contactd.auth import service
from contactd.auth.service import UserService
from contactd.db.session import Database
from contactd.enums import Role
from contactd.errors import ValidationError

PASSWORD = "correct horse battery"


@pytest.mark.parametrize("name", ["alice\n", "alice\nbob", "\nalice", "al ice", "a"])
async def test_user_names_are_matched_whole(db: Database, name: str) -> None:
    with pytest.raises(ValidationError, match="user name"):
        await UserService(db).add(name, PASSWORD, Role.AGENT)


async def test_an_unknown_user_is_hashed_like_a_known_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = UserService(db)
    await users.add("alice", PASSWORD, Role.AGENT)
    verified: list[str] = []
    real = service.verify_password

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(service, "verify_password", spy)
    assert await users.authenticate("alice", "wrong password!") is None
    assert await users.authenticate("mallory", "wrong password!") is None
    assert await users.authenticate("mallory", PASSWORD) is None
    assert len(verified) == 3  # one argon2 verification each, known user or not
    assert all(h.startswith("$argon2id$") for h in verified)
    user = await users.authenticate("alice", PASSWORD)
    assert user is not None and user.username == "alice"


def test_the_dummy_hash_matches_nothing_usual() -> None:
    assert not service.verify_password(service._dummy_hash(), "")
    assert not service.verify_password(service._dummy_hash(), PASSWORD)
