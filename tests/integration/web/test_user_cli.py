"""`contactd user passwd|disable|enable|list` as an operator runs them: changes are audited
and a disabled user, or one whose password changed, is signed out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from contactd.auth.service import UserService
from contactd.config import load_settings
from contactd.db.bootstrap import open_database
from contactd.db.models import AuditEntry

CONTACTD = [sys.executable, "-m", "contactd.cli"]
REPO = Path(__file__).resolve().parents[3]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*CONTACTD, *args], capture_output=True, text=True, input=stdin,
                          env=env, timeout=60, check=False)


def test_user_commands(tmp_path: Path) -> None:
    config = tmp_path / "contactd.toml"
    config.write_text(f"[general]\ndata_dir = '{tmp_path / 'data'}'\n[ami]\nenabled = false\n",
                      encoding="utf-8")
    c = ["--config", str(config)]
    assert run("user", "add", "sofia", "--role", "agent", "--password-stdin", *c,
               "--extension", "PJSIP/1001", stdin="first password\n").returncode == 0
    bad_phone = run("user", "add", "omar", "--role", "agent", "--password-stdin", *c,
                    "--extension", "1001,x", stdin="first password\n")
    assert bad_phone.returncode != 0 and "agent_dial '1001,x' contains a comma" in bad_phone.stderr
    listed = run("user", "list", *c)
    assert listed.returncode == 0 and "sofia" in listed.stdout and "agent" in listed.stdout
    changed = run("user", "passwd", "sofia", "--password-stdin", *c, stdin="second password\n")
    assert changed.returncode == 0, changed.stderr
    missing = run("user", "disable", "nobody", *c)
    assert missing.returncode != 0 and "no user 'nobody'" in missing.stderr
    assert run("user", "disable", "sofia", *c).returncode == 0
    assert " no " in run("user", "list", *c).stdout

    async def check() -> None:
        settings = load_settings(config, {})
        async with await open_database(settings) as db:
            users = UserService(db)
            assert await users.authenticate("sofia", "second password") is None  # disabled
            await users.update("sofia", active=True)
            assert await users.authenticate("sofia", "first password") is None
            assert await users.authenticate("sofia", "second password") is not None
            assert (await users.get("sofia")).extension == "PJSIP/1001"
            async with db.session() as session:
                actions = list(await session.scalars(
                    select(AuditEntry.action).order_by(AuditEntry.id)))
                addrs = set(await session.scalars(select(AuditEntry.remote_addr)))
        assert actions == ["user.add", "user.passwd", "user.update", "user.update"]
        assert addrs == {"cli"}

    asyncio.run(check())
