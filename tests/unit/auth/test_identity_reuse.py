"""Pages reuse who is signed in and the user list for a moment, but never past a change made
here: a sign-out, a disabled account or a new language shows on the very next request. A
change made by another process shows once the reuse time is over."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contactd.auth.service import UserService
from contactd.auth.sessions import SessionStore
from contactd.db.session import Database
from contactd.enums import Role
from contactd.recent import Generation, Recent

PASSWORD = "correct horse battery"


def _pair(db: Database, reuse_s: float) -> tuple[UserService, SessionStore]:
    users = UserService(db, recent_s=reuse_s)
    store = SessionStore(
        db,
        idle=timedelta(minutes=30),
        absolute=timedelta(hours=12),
        recent_s=reuse_s,
        generation=users.generation,
    )
    return users, store


async def test_a_sign_out_here_ends_the_reused_session_at_once(db: Database) -> None:
    users, store = _pair(db, 60)
    alice = await users.add("alice", PASSWORD, Role.AGENT)
    token, _csrf = await store.create(alice, None)
    assert await store.resolve(token) is not None
    assert await store.resolve(token) is not None  # reused
    await store.end(token)
    assert await store.resolve(token) is None


async def test_disabling_an_account_here_signs_it_out_at_once(db: Database) -> None:
    users, store = _pair(db, 60)
    alice = await users.add("alice", PASSWORD, Role.AGENT)
    token, _csrf = await store.create(alice, None)
    assert await store.resolve(token) is not None
    await users.update("alice", active=False)
    assert await store.resolve(token) is None


async def test_a_new_language_shows_on_the_next_request(db: Database) -> None:
    users, store = _pair(db, 60)
    alice = await users.add("alice", PASSWORD, Role.AGENT)
    token, _csrf = await store.create(alice, None)
    first = await store.resolve(token)
    assert first is not None and first.user.language != "ru"
    await users.set_preferences("alice", language="ru")
    again = await store.resolve(token)
    assert again is not None and again.user.language == "ru"


async def test_a_user_added_here_is_listed_at_once(db: Database) -> None:
    users, _store = _pair(db, 60)
    await users.add("alice", PASSWORD, Role.AGENT)
    assert [u.username for u in await users.list_all()] == ["alice"]
    await users.add("bob", PASSWORD, Role.AGENT)
    assert [u.username for u in await users.list_all()] == ["alice", "bob"]


async def test_another_process_sign_out_shows_after_the_reuse_time(db: Database) -> None:
    users, here = _pair(db, 60)
    _other_users, elsewhere = _pair(db, 0)  # another daemon on the same database
    alice = await users.add("alice", PASSWORD, Role.AGENT)
    token, _csrf = await here.create(alice, None)
    assert await here.resolve(token) is not None
    await elsewhere.end(token)
    assert await here.resolve(token) is not None  # still reused: at most the reuse time
    _users, unreused = _pair(db, 0)
    assert await unreused.resolve(token) is None  # without reuse it shows at once


def test_an_entry_lasts_its_time_and_no_change_longer() -> None:
    now = [100.0]
    generation = Generation()
    recent: Recent[str, int] = Recent(2.0, generation, clock=lambda: now[0])
    recent.put("a", 1, read_at=recent.generation)
    assert recent.get("a") == 1
    now[0] += 1.9
    assert recent.get("a") == 1
    now[0] += 0.2
    assert recent.get("a") is None
    recent.put("a", 2, read_at=recent.generation)
    generation.bump()
    assert recent.get("a") is None


def test_a_read_overtaken_by_a_change_is_not_kept() -> None:
    generation = Generation()
    recent: Recent[str, int] = Recent(60.0, generation)
    read_at = recent.generation
    generation.bump()  # a change committed while the read was under way
    recent.put("a", 1, read_at=read_at)
    assert recent.get("a") is None


def test_the_oldest_entries_go_past_the_limit() -> None:
    recent: Recent[int, int] = Recent(60.0, Generation(), limit=3)
    for n in range(5):
        recent.put(n, n, read_at=recent.generation)
    assert [recent.get(n) for n in range(5)] == [None, None, 2, 3, 4]


def test_zero_keeps_nothing_and_a_negative_time_is_refused() -> None:
    recent: Recent[str, int] = Recent(0.0, Generation())
    recent.put("a", 1, read_at=recent.generation)
    assert recent.get("a") is None
    with pytest.raises(ValueError, match="ttl_s"):
        Recent(-1.0, Generation())
