"""`contactd demo` as a newcomer runs it: a fresh folder, a subprocess, Ctrl-C at the end.

It needs no peer: the demo starts its own simulated PBX, SMSC and mail server. Checked
through the written contactd.toml with the CLI (so "every other command works on the demo")
and in the database: a campaign has finished calls and an SMS is delivered within 60 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.peers.ports import free_port

REPO: Final = Path(__file__).resolve().parents[3]
READY_LINE: Final = "contactd demo is running."
START_LIMIT_S: Final = 20.0
ACTIVITY_LIMIT_S: Final = 60.0
STOP_LIMIT_S: Final = 20.0
POLL_S: Final = 0.5
CAMPAIGN: Final = "Spring renewals"  # the demo's live campaign (contactd/demo/data.py)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "contactd.cli", *args], env=_env(),
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, float]]:
    folder = tmp_path / "contactd-demo"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "contactd.cli", "demo", "--data-dir", str(folder),
         "--port", str(free_port())],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # blocks on the child's output, line by line
            if line.strip() == READY_LINE:
                break
        else:
            pytest.fail(f"contactd demo exited ({process.wait()}) before it was ready")
        yield process, folder, time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_demo_starts_dials_delivers_and_stops_on_ctrl_c(
    demo: tuple[subprocess.Popen[str], Path, float],
) -> None:
    process, folder, startup_s = demo
    assert startup_s < START_LIMIT_S
    config = folder / "contactd.toml"
    settings = tomllib.loads(config.read_text())
    db = folder / "contactd.db"
    assert _count(db, "SELECT count(*) FROM tasks WHERE escalated_at IS NOT NULL") == 0
    # Two weeks of history: the oldest interaction is 13 to 15 days old.
    oldest = _count(db, "SELECT julianday('now') - julianday(min(started_at)) FROM interactions")
    assert 13 <= oldest <= 15

    # Another process's progress: nothing to wait on but its database.
    deadline = time.monotonic() + ACTIVITY_LIMIT_S
    finished = delivered = documents = 0
    while time.monotonic() < deadline and not (finished and delivered and documents):
        finished = _count(db, "SELECT count(*) FROM call_attempts a JOIN campaigns c "
                              "ON c.id = a.campaign_id WHERE a.state = 'ended' "
                              f"AND c.name = '{CAMPAIGN}'")
        delivered = _count(db, "SELECT count(*) FROM outbox_messages WHERE channel = 'sms' "
                               "AND state = 'delivered' AND idempotency_key LIKE 'demo-reminder%'")
        documents = _count(db, "SELECT count(*) FROM documents")  # laid out after start-up
        time.sleep(POLL_S)
    assert finished > 0, "no campaign call finished within 60 s"
    assert documents > 0, "no seeded document within 60 s"
    assert delivered > 0, "no SMS delivered within 60 s"

    stats = _cli("dialer", "stats", "--json", "--config", str(config), CAMPAIGN)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["attempts"] >= finished

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_LIMIT_S) == 0
    for port in (settings["ami"]["port"], settings["smpp"]["port"], settings["email"]["port"]):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_demo_keeps_its_folder_and_reset_refuses_a_foreign_one(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = _cli("demo", "--data-dir", str(foreign), "--reset", "--port", str(free_port()))
    assert refused.returncode != 0
    assert "not made by `contactd demo`" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
