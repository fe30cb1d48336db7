"""SIPp (Debian `sip-tester`) as a real SIP caller into the Asterisk sandbox's trunk.

``await run_sipp(asterisk, dnis=..., calls=20)`` places calls with the scenario
tests/integration/sipp/uac.xml from 127.0.0.1 (so the trunk endpoint identifies them) and
returns the summary; it raises when SIPp reports a failed call. SIPp is installed with apt
when missing (scripts/test does the same).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.peers.asterisk import AsteriskSandbox
from tests.peers.ports import free_port

SCENARIO: Final = Path(__file__).resolve().parents[1] / "integration/sipp/uac.xml"
SIPP_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True)
class SippResult:
    successful: int
    failed: int
    output: str


def sipp_binary() -> str:
    """The sipp executable, installing Debian's sip-tester if it is missing."""
    found = shutil.which("sipp")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "sip-tester"]
    if subprocess.run(install, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("sipp")
    if not found:
        raise RuntimeError("sip-tester installed but no sipp on PATH")
    return found


async def run_sipp(
    asterisk: AsteriskSandbox,
    *,
    dnis: str,
    caller: str = "5557000",
    calls: int = 20,
    rate_per_s: int = 10,
    hold_ms: int = 2000,
    work_dir: Path,
) -> SippResult:
    """Place `calls` SIP calls to the sandbox trunk and wait until SIPp ends."""
    binary = await asyncio.to_thread(sipp_binary)
    args = [
        binary,
        f"127.0.0.1:{asterisk.sip_port}",
        "-sf", str(SCENARIO),
        "-s", dnis,
        "-key", "caller", caller,
        "-m", str(calls),
        "-r", str(rate_per_s),
        "-l", str(calls),
        "-d", str(hold_ms),
        "-i", "127.0.0.1",
        "-mi", "127.0.0.1",
        "-p", str(free_port()),
        "-nostdin",
        "-timeout", f"{int(SIPP_TIMEOUT_S) - 10}s",
        "-timeout_error",
        "-trace_err",
        "-error_file", str(work_dir / "sipp_errors.log"),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=work_dir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SIPP_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode("utf-8", "replace")
    result = SippResult(_count(text, "Successful call"), _count(text, "Failed call"), text)
    if proc.returncode != 0 or result.failed:
        errors = work_dir / "sipp_errors.log"
        detail = errors.read_text(errors="replace")[-2000:] if errors.exists() else ""
        raise RuntimeError(f"sipp exited {proc.returncode}: {result}\n{text[-2000:]}\n{detail}")
    return result


def _count(text: str, label: str) -> int:
    """The cumulative column of SIPp's final statistics line `label`."""
    rows = re.findall(rf"{label}\s*\|\s*(\d+)\s*\|\s*(\d+)", text)
    return int(rows[-1][1]) if rows else 0
