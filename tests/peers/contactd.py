"""contactd itself, run the way an operator runs it: every command a real subprocess
(``sys.executable -m contactd.cli``, PYTHONPATH = this checkout), the daemon
``contactd run --config FILE`` included, so that a test can ``kill -9`` it.

    config = write_config(tmp_path, sip_asterisk, dialer={"max_attempts": 2})
    made = await contactd_cli(config, "campaign", "create", "spring", ...)
    async with daemon_process(config, tmp_path / "daemon-1.log") as daemon:
        await daemon.wait_ready()          # /healthz: AMI logged in
        daemon.kill9()                     # SIGKILL, nothing flushed, nothing cleaned up

The daemon's log (JSON lines, stdout and stderr) goes to a file, shown in assertion messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.peers.asterisk import AsteriskSandbox
from tests.peers.ports import free_port

ROOT: Final = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S: Final = 120.0
READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
HEALTH_POLL_S: Final = 0.1


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    folder: Path, asterisk: AsteriskSandbox, /, **sections: Mapping[str, object]
) -> Path:
    """A contactd.toml for `asterisk` with a data folder, web and AudioSocket ports of its own;
    `sections` add or override keys (e.g. ``dialer={"max_attempts": 2}``)."""
    base: dict[str, dict[str, object]] = {
        "general": {"data_dir": str(folder / "data"), "default_region": "GB",
                    "log_format": "json", "log_level": "info"},
        "web": {"port": free_port(), "secret_key": "crash-test-secret-key-0123456789"},
        "ami": {"host": asterisk.host, "port": asterisk.ami_port,
                "username": asterisk.ami_username, "secret": asterisk.ami_secret,
                "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "audiosocket": {"port": free_port()},
        "dialer": {"window_start": "00:00:00", "window_end": "23:59:59",
                   "pacing_tick_s": 0.2, "ring_timeout_s": 15},
    }
    for name, keys in sections.items():
        base.setdefault(name, {}).update(keys)
    text = "".join(
        f"[{name}]\n" + "".join(f"{key} = {_toml(v)}\n" for key, v in keys.items()) + "\n"
        for name, keys in base.items()
    )
    path = folder / "contactd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    # CONTACTD_* variables of the test runner's own environment would override the file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    return {**env, "PYTHONPATH": str(ROOT)}


async def contactd_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`contactd ARGS --config FILE` as a subprocess (its output captured, never raising)."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "contactd.cli", *args, "--config", str(config)],
            capture_output=True, text=True, env=_env(), timeout=CLI_TIMEOUT_S, check=False,
        )

    return await asyncio.to_thread(run)


def web_port(config: Path) -> int:
    for line in config.read_text(encoding="utf-8").split("[web]", 1)[1].splitlines():
        if line.startswith("port = "):
            return int(line.split("=", 1)[1])
    raise ValueError(f"{config}: no [web] port")


@dataclass
class DaemonProcess:
    """One `contactd run` subprocess."""

    proc: asyncio.subprocess.Process
    log_path: Path
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """The tail of the daemon's log, for assertion messages."""
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line the daemon wrote."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
        return out

    async def health(self) -> dict[str, Any] | None:
        def fetch() -> dict[str, Any] | None:
            url = f"http://127.0.0.1:{self.port}/healthz"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return dict(json.load(resp))
            except urllib.error.HTTPError as exc:  # 503 still carries the body
                return dict(json.load(exc))
            except OSError:
                return None

        return await asyncio.to_thread(fetch)

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until /healthz says the AMI link is up (the daemon has reconciled and dials)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    if self.proc.returncode is not None:
                        raise AssertionError(f"contactd exited {self.proc.returncode}\n"
                                             f"{self.log()}")
                    body = await self.health()
                    ami = (body or {}).get("components", {}).get("ami", {})
                    if ami.get("status") == "ok":
                        return
                    # Polling a condition (no event reaches the test from another process).
                    await asyncio.sleep(HEALTH_POLL_S)
        except TimeoutError:
            raise AssertionError(f"contactd not ready in {timeout_s} s\n{self.log()}") from None

    async def kill9(self) -> None:
        """SIGKILL: the daemon stops where it is, like a crash or an OOM kill."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM and wait (SIGKILL if it does not end in time); its exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                await self.kill9()
        return self.proc.returncode if self.proc.returncode is not None else -1


@contextlib.asynccontextmanager
async def daemon_process(config: Path, log_path: Path) -> AsyncIterator[DaemonProcess]:
    """`contactd run --config FILE` as a subprocess; stopped (or reaped) on the way out."""
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "contactd.cli", "run", "--config", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_env(), cwd=config.parent,
        )
    daemon = DaemonProcess(proc, log_path, web_port(config))
    try:
        yield daemon
    finally:
        await daemon.stop()
