"""The `contactd` command as a user runs it: clear one-line errors with exit code 2,
a daemon that starts, serves /healthz and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.peers.ports import free_port

CONTACTD = [sys.executable, "-m", "contactd.cli"]


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONTACTD, *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


def config(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "contactd.toml"
    path.write_text(
        f"[general]\ndata_dir = '{tmp_path / 'data'}'\n[web]\nport = {free_port()}\n"
        f"[audiosocket]\nport = {free_port()}\n"
        f"[ami]\nenabled = false\n{body}",
        encoding="utf-8",
    )
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("contactd: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_everywhere() -> None:
    for args in ([], ["run"], ["db"], ["db", "upgrade"], ["user", "add"], ["demo"],
                 ["check-config"]):
        result = run(*args, "--help")
        assert result.returncode == 0, (args, result.stderr)
        assert "usage: contactd" in result.stdout


def test_check_config_accepts_a_good_file_and_names_the_bad_key(tmp_path: Path) -> None:
    good = run("check-config", str(config(tmp_path)))
    assert good.returncode == 0 and "configuration is valid" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nport = 'http'\n", encoding="utf-8")
    assert_one_line_error(run("check-config", str(bad)), "web.port")
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("[web\n", encoding="utf-8")
    assert_one_line_error(run("check-config", str(garbage)), "not valid TOML")


def test_unwritable_data_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = config(tmp_path)
    result = run("db", "upgrade", "--config", str(path),
                 env={"CONTACTD_GENERAL__DATA_DIR": str(blocker / "data")})
    assert_one_line_error(result, "data folder")


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://nobody:secretpw@127.0.0.1:{free_port()}/x"
    result = run("db", "upgrade", "--config", str(config(tmp_path)),
                 env={"CONTACTD_DATABASE__URL": url})
    assert_one_line_error(result, "not reachable")
    assert "secretpw" not in result.stderr


def test_port_in_use(tmp_path: Path) -> None:
    path = config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("run", "--config", str(path), env={"CONTACTD_WEB__PORT": str(port)})
    assert_one_line_error(result, "port already in use", str(port))


def test_db_upgrade_then_user_add(tmp_path: Path) -> None:
    path = config(tmp_path)
    first = run("db", "upgrade", "--config", str(path))
    assert first.returncode == 0 and "upgraded" in first.stdout
    assert "already at revision" in run("db", "upgrade", "--config", str(path)).stdout
    added = run("user", "add", "sofia", "--role", "supervisor", "--password-stdin",
                "--config", str(path), stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    assert "sofia added with role supervisor" in added.stdout
    again = run("user", "add", "sofia", "--role", "agent", "--password-stdin",
                "--config", str(path), stdin="correct horse battery\n")
    assert_one_line_error(again, "already exists")
    short = run("user", "add", "tom", "--role", "agent", "--password-stdin",
                "--config", str(path), stdin="short\n")
    assert_one_line_error(short, "password too short")


def _wait_for_health(
    port: int, proc: subprocess.Popen[str], timeout: float = 30
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"daemon exited early: {err}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return dict(json.load(resp))
        except OSError:
            time.sleep(0.2)
    raise AssertionError("daemon did not serve /healthz in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_health_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    path = config(tmp_path)
    port = free_port()
    proc = subprocess.Popen([*CONTACTD, "run", "--config", str(path)], text=True,
                            env={**os.environ, "CONTACTD_WEB__PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        health = _wait_for_health(port, proc)
        assert health["status"] == "ok"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "contactd stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_demo_creates_data_once_and_prints_the_login(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    for round_ in range(2):
        proc = subprocess.Popen(
            [*CONTACTD, "demo", "--data-dir", str(data), "--port", str(port)], text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert _wait_for_health(port, proc, timeout=90)["status"] == "ok"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        password = (data / "demo-admin-password").read_text().strip()
        assert f"admin / {password}" in out
        created = "Creating the demo database" in err
        assert created is (round_ == 0)
