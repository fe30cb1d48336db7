"""The SMSC peer: scripts/smsc-peer (an SMPP 3.4 server on npm `smpp`), one per test session.

`smsc_peer` starts it (installing its npm dependencies first when they are missing);
`smsc` resets it for each test: records cleared, faults off, sessions dropped, listening.
Faults are asked for over its HTTP control API: throttle, drop, stop/start, inject an MO.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contactd.config import SmppSettings

PEER_DIR = Path(__file__).resolve().parents[2] / "scripts" / "smsc-peer"
START_TIMEOUT_S = 20.0
CONTROL_TIMEOUT_S = 10.0
ACCOUNTS = {"contactd": "secret", "second": "other-secret"}


@dataclass
class SmscPeer:
    host: str
    port: int
    control_port: int
    process: subprocess.Popen[bytes]

    def settings(self, **overrides: Any) -> SmppSettings:
        values: dict[str, Any] = {
            "enabled": True,
            "host": self.host,
            "port": self.port,
            "system_id": "contactd",
            "password": ACCOUNTS["contactd"],
            "source_addr": "CONTACTD",
        }
        values.update(overrides)
        return SmppSettings(**values)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One control request, blocking; use `acall` from async code."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{self.host}:{self.control_port}{path}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
            return json.loads(response.read())

    async def acall(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(self.call, method, path, body)

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.acall("GET", "/state")
        return result

    async def submits(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.acall("GET", "/submits"))["submits"]
        return result

    async def configure(self, **settings: Any) -> None:
        await self.acall("POST", "/config", settings)

    async def stop(self, *, abrupt: bool = False) -> None:
        await self.acall("POST", "/stop", {"abrupt": abrupt})

    async def start(self) -> None:
        await self.acall("POST", "/start", {})

    async def drop(self) -> None:
        await self.acall("POST", "/drop", {})

    async def inject_mo(
        self, source_addr: str, text: str, destination_addr: str = "", *, ton: int = 0, npi: int = 0
    ) -> int:
        body = {
            "source_addr": source_addr,
            "text": text,
            "destination_addr": destination_addr,
            "source_addr_ton": ton,
            "source_addr_npi": npi,
        }
        sent: int = (await self.acall("POST", "/mo", body))["sent"]
        return sent

    async def send_raw(self, data: bytes, sequence: int | None = None) -> int:
        """Write bytes as they are to every bound session; `sequence`'s answer is recorded."""
        body: dict[str, Any] = {"hex": data.hex()}
        if sequence is not None:
            body["sequence"] = sequence
        sent: int = (await self.acall("POST", "/raw", body))["sent"]
        return sent

    async def raw_answers(self) -> dict[int, dict[str, Any] | None]:
        """sequence -> {command, status} of the answer to a raw PDU (None: not answered yet)."""
        answers: dict[str, Any] = (await self.acall("GET", "/raw"))["answers"]
        return {int(seq): answer for seq, answer in answers.items()}

    async def mo(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.acall("GET", "/mo"))["mo"]
        return result


def ensure_installed() -> None:
    """Install the peer's pinned npm dependencies when node_modules is missing."""
    if (PEER_DIR / "node_modules" / "smpp").is_dir():
        return
    subprocess.run(["sh", str(PEER_DIR / "install")], check=True, timeout=300)


def start_peer(*, record: bool = True) -> SmscPeer:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the SMSC peer needs Node.js")
    ensure_installed()
    args = [node, str(PEER_DIR / "server.js"), "--port", "0", "--control-port", "0"]
    for system_id, password in ACCOUNTS.items():
        args += ["--account", f"{system_id}:{password}"]
    if not record:
        args.append("--no-record")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(b"READY") or process.poll() is not None:
            break
    if not line.startswith(b"READY"):
        process.kill()
        err = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"SMSC peer did not start: {line!r} {err}")
    fields = dict(part.split("=") for part in line.decode().split()[1:])
    return SmscPeer("127.0.0.1", int(fields["smpp"]), int(fields["control"]), process)


def stop_peer(peer: SmscPeer) -> None:
    peer.process.terminate()
    try:
        peer.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        peer.process.kill()
        peer.process.wait(timeout=5)
    for stream in (peer.process.stdout, peer.process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="session")
def smsc_peer() -> Iterator[SmscPeer]:
    peer = start_peer(record=os.environ.get("SMSC_PEER_RECORD", "1") == "1")
    try:
        yield peer
    finally:
        stop_peer(peer)


@pytest.fixture
async def smsc(smsc_peer: SmscPeer) -> AsyncIterator[SmscPeer]:
    """The session's SMSC, reset to a clean state for this test."""
    await smsc_peer.acall("POST", "/reset", {})
    yield smsc_peer
