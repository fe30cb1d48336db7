"""The shipped unit as systemd judges it, and the daemon speaking systemd's notify protocol:
ready once it serves, watchdog pings from its event loop, stopping on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.peers.ports import free_port

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "contactd.service"
CONTACTD = [sys.executable, "-m", "contactd.cli"]


def test_systemd_analyze_rates_the_unit_ok_or_better() -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                         capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for contactd\.service: ([\d.]+) (\w+)",
                      out.stdout)
    assert found, out.stdout + out.stderr
    exposure, rating = float(found.group(1)), found.group(2)
    assert rating in ("OK", "SAFE", "PERFECT"), out.stdout
    assert exposure <= 2.0, out.stdout
    unit = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "CapabilityBoundingSet=\n",
                 "SystemCallFilter=@system-service", "NoNewPrivileges=true"):
        assert line in unit


def datagrams(sock: socket.socket, until: float) -> list[str]:
    got = []
    sock.settimeout(0.2)
    while time.monotonic() < until:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return got


def test_the_daemon_says_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    address = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    port = free_port()
    config = tmp_path / "contactd.toml"
    config.write_text(
        f"[general]\ndata_dir = '{tmp_path / 'data'}'\n[web]\nport = {port}\n"
        f"[audiosocket]\nport = {free_port()}\n[ami]\nenabled = false\n", encoding="utf-8")
    proc = subprocess.Popen(
        [*CONTACTD, "run", "--config", str(config)], text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "1000000"})
    try:
        sock.settimeout(60)
        first = sock.recv(4096).decode()  # the first ping may come before READY
        messages = [first]
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        # READY means it serves: the panel's health answers at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=serving" in ready
        later = datagrams(sock, time.monotonic() + 2.5)
        pings = [m for m in later if "WATCHDOG=1" in m]
        assert len(pings) >= 3  # every half second: half the 1 s interval
        assert all("STATUS=health ok" in m for m in pings)
        proc.send_signal(signal.SIGTERM)
        tail = datagrams(sock, time.monotonic() + 5)
        assert any("STOPPING=1" in m for m in tail)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.close()
