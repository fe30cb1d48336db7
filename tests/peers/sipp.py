"""SIPp (Debian `sip-tester`) as the real SIP world around the Asterisk sandbox.

Callers into the trunk: ``await run_sipp(asterisk, dnis=..., calls=20)`` places calls with
tests/integration/sipp/uac.xml from 127.0.0.1 (so the trunk endpoint identifies them) and
returns the summary; it raises when SIPp reports a failed call.

The carrier and agent phones (the production PJSIP path, no Local channels):

  sip_asterisk  (session) an Asterisk sandbox instance of its own (``pytest-<pid>-sip``) whose
                trunk aor points at 127.0.0.1:``trunk_port`` (scripts/asterisk-sandbox
                CONTACTD_ASTERISK_TRUNK_PORT) and whose agent leg (CONTACTD_TRUNK_TECH/SUFFIX)
                dials ``PJSIP/<number>@trunk`` as in production.
  sip_ami       (function) a logged-in AMI Manager on that instance.
  sipp          (function) a ``SippLauncher``: ``await sipp.carrier(...)`` starts a SIPp UAS
                on the trunk port acting as the carrier (answer / reject with a status /
                ring forever); ``await sipp.agent_phone("1001", ...)`` registers a SIPp phone
                (digest auth) from 127.0.0.2 that answers the agent leg. Every SIPp it started
                is killed at teardown, also when the test failed.

``originate_trunk(number, attempt_id, ...)`` is contactd's Originate of
``PJSIP/<number>@trunk`` into contactd-outbound. SIPp is installed with apt when missing
(scripts/test does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import wave
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from panoramisk import Manager

from tests.peers.asterisk import OUTBOUND_CONTEXT, AsteriskSandbox, ami_connect, reap_orphans
from tests.peers.ports import free_port

SCENARIOS: Final = Path(__file__).resolve().parents[1] / "integration/sipp"
SCENARIO: Final = SCENARIOS / "uac.xml"
SIPP_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 5.0
CARRIER_HOST: Final = "127.0.0.1"
# Phones register from another loopback address: the trunk is identified by 127.0.0.1, and a
# REGISTER from there would be taken for the carrier (endpoint_identifier_order = ip,...).
PHONE_HOST: Final = "127.0.0.2"
# Agent credentials of asterisk-config/pjsip.conf (the production placeholders).
AGENT_PASSWORDS: Final = {"1001": "CHANGE-ME-1001", "1002": "CHANGE-ME-1002"}
TRUNK: Final = "trunk"


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
    digit: str = "",
) -> SippResult:
    """Place `calls` SIP calls to the sandbox trunk and wait until SIPp ends.

    With `digit`, each caller keys it by RFC 2833 (uac_dtmf.xml) 3 s after the answer."""
    binary = await asyncio.to_thread(sipp_binary)
    scenario = SCENARIO
    if digit:
        if not re.fullmatch(r"[0-9]", digit):
            raise ValueError(f"sip-tester ships RFC 2833 pcaps for 0-9 only, not {digit!r}")
        # SIPp opens a pcap when it reads the scenario, before any [key] is known.
        scenario = work_dir / f"uac_dtmf_{digit}.xml"
        template = (SCENARIOS / "uac_dtmf.xml").read_text(encoding="utf-8")
        scenario.write_text(template.replace("[digit]", digit), encoding="utf-8")
    args = [
        binary,
        f"127.0.0.1:{asterisk.sip_port}",
        "-sf", str(scenario),
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


# --- the carrier and agent phones ------------------------------------------------------------


def originate_trunk(
    number: str,
    attempt_id: str,
    *,
    mode: str = "agent",
    variables: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    caller_id: str = "contactd <5550100>",
    channel_id: str | None = None,
) -> dict[str, Any]:
    """contactd's Originate over the production trunk: PJSIP/<number>@trunk -> outbound.

    channel_id (Originate ChannelId) becomes the channel's Uniqueid: the only way to tie the
    Hangup event (the cause) of a call that was never answered to its attempt.
    """
    var = {"CONTACTD_ATTEMPT": attempt_id, "CONTACTD_MODE": mode, **(variables or {})}
    action: dict[str, Any] = {
        "Action": "Originate",
        "ActionID": attempt_id,
        "Channel": f"PJSIP/{number}@{TRUNK}",
        "Context": OUTBOUND_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "Timeout": str(int(timeout_s * 1000)),
        "CallerID": caller_id,
        "Async": "true",
        "Variable": [f"{k}={v}" for k, v in var.items()],
    }
    if channel_id:
        action["ChannelId"] = channel_id
    return action


def _ulaw(sample: int) -> int:
    """G.711 mu-law of one signed 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = min(max(magnitude.bit_length() - 8, 0), 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def write_rtp_pcap(
    wav: Path, dest: Path, *, lead_silence_ms: int = 200, tail_silence_ms: int = 3000
) -> float:
    """Write `wav` (8 kHz 16-bit mono) as a pcap of PCMU RTP (20 ms packets) for SIPp's
    play_pcap_audio, framed by silence; returns the seconds of audio."""
    with wave.open(str(wav)) as source:
        if (source.getframerate(), source.getsampwidth(), source.getnchannels()) != (8000, 2, 1):
            raise ValueError(f"{wav}: not 8 kHz 16-bit mono")
        pcm = source.readframes(source.getnframes())
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    lead, tail = bytes([0xFF]) * (lead_silence_ms * 8), bytes([0xFF]) * (tail_silence_ms * 8)
    audio = lead + bytes(_ulaw(s) for s in samples) + tail
    audio += bytes([0xFF]) * (-len(audio) % 160)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
    for seq, offset in enumerate(range(0, len(audio), 160)):
        header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, offset, 0x5EED)
        rtp = header + audio[offset : offset + 160]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
            socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"),
        ) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        usec = seq * 20_000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    dest.write_bytes(bytes(out))
    return len(audio) / 8000


@dataclass
class SippProcess:
    """One running SIPp; ``finish()`` waits for its own end, ``stop()`` kills it."""

    name: str
    proc: asyncio.subprocess.Process
    work_dir: Path
    port: int
    media_port: int = 0  # where its RTP arrives (-mp), when the test chose it

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def finish(self, timeout_s: float = 30.0) -> SippResult:
        """Wait until SIPp ended by itself; raises if it reported a failed call."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.proc.wait()
        except TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"{self.name}: still running after {timeout_s} s\n{self.log()}"
            ) from None
        text = self.log()
        result = SippResult(_count(text, "Successful call"), _count(text, "Failed call"), text)
        if self.proc.returncode != 0 or result.failed:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {result}\n{text}")
        return result

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)

    def messages(self) -> str:
        """Every SIP message SIPp sent and received (complete once it has ended)."""
        path = self.work_dir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        """SIPp's screen output and error log (the tail of each), for assertion messages."""
        parts = []
        names = ("screen.log", "errors.log", "messages.log")
        for path in (self.work_dir / name for name in names):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@dataclass
class SippLauncher:
    """Starts SIPp processes for one test and kills every one of them at teardown."""

    asterisk: AsteriskSandbox
    trunk_port: int
    work_dir: Path
    processes: list[SippProcess] = field(default_factory=list)

    def _folder(self, name: str) -> Path:
        work = self.work_dir / name
        work.mkdir(parents=True, exist_ok=True)
        return work

    async def _start(self, name: str, args: list[str], port: int) -> SippProcess:
        binary = await asyncio.to_thread(sipp_binary)
        work = self._folder(name)
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            "-p", str(port),
            "-cp", str(_free_udp_port()),
            "-nostdin",
            "-timeout", f"{int(SIPP_TIMEOUT_S)}s",
            "-timeout_error",
            "-trace_err", "-error_file", str(work / "errors.log"),
            "-trace_screen", "-screen_file", str(work / "screen.log"),
            "-trace_msg", "-message_file", str(work / "messages.log"),
            cwd=work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        process = SippProcess(name, proc, work, port)
        self.processes.append(process)
        return process

    async def carrier(
        self,
        scenario: str,
        *,
        status: str = "",
        ring_ms: int = 0,
        pcap: Path | None = None,
        calls: int = 1,
    ) -> SippProcess:
        """A SIPp UAS on the trunk's far end running carrier_<scenario>.xml for `calls` calls,
        bound and ready to receive when this returns.

        answer: rings ring_ms, answers, plays `pcap` (RTP), waits for the BYE. reject: final
        response `status` (e.g. "503 Service Unavailable"; default 486 Busy Here). ring: 180
        until Asterisk CANCELs.
        """
        name = f"carrier-{scenario}-{len(self.processes)}"
        folder = self._folder(name)
        text = (SCENARIOS / f"carrier_{scenario}.xml").read_text()
        if status:  # SIPp reads status codes at load time: no keyword possible there
            if "SIP/2.0 486 Busy Here" not in text:
                raise ValueError(f"carrier_{scenario}.xml has no status line to replace")
            text = text.replace("SIP/2.0 486 Busy Here", f"SIP/2.0 {status}")
        # SIPp looks for pcap files next to the scenario: both go into the process's folder.
        source = folder / f"carrier_{scenario}.xml"
        source.write_text(text)
        if pcap is not None:
            shutil.copyfile(pcap, folder / "callee.pcap")
        media_port = _free_udp_port()
        args = [
            "-sf", str(source),
            "-i", CARRIER_HOST, "-mi", CARRIER_HOST, "-mp", str(media_port),
            "-m", str(calls), "-d", str(ring_ms),
        ]  # fmt: skip
        process = await self._start(name, args, self.trunk_port)
        process.media_port = media_port
        await _wait_bound(process, CARRIER_HOST)
        return process

    async def agent_phone(self, extension: str, *, password: str | None = None) -> SippProcess:
        """A SIPp phone registering as `extension` (digest auth) and answering one call.

        It answers OPTIONS (qualify), rings, answers the agent leg, talks 3 s, hangs up, then
        unregisters and exits. `password` overrides the configured one (to be refused).
        """
        port = _free_udp_port(PHONE_HOST)
        args = [
            f"{self.asterisk.host}:{self.asterisk.sip_port}",
            "-sf", str(SCENARIOS / "agent_register.xml"),
            "-oocsf", str(SCENARIOS / "agent_answer.xml"),
            "-key", "agent", extension,
            "-au", extension, "-ap", password or AGENT_PASSWORDS[extension],
            "-i", PHONE_HOST, "-mi", PHONE_HOST, "-mp", str(_free_udp_port(PHONE_HOST)),
            "-m", "1", "-l", "1",
        ]  # fmt: skip
        return await self._start(f"agent-{extension}-{len(self.processes)}", args, port)

    async def aclose(self) -> None:
        for process in self.processes:
            await process.stop()


def _free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _udp_bound(host: str, port: int) -> bool:
    """Whether some socket is bound to host:port/udp (read from /proc: probing with a bind
    could steal the port from a SIPp that is starting)."""
    wanted = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/udp", encoding="ascii") as table:
        return any(line.split()[1] == wanted for line in table.readlines()[1:])


async def _wait_bound(process: SippProcess, host: str, timeout_s: float = 15.0) -> None:
    """Until SIPp holds its UDP port (it is ready to receive), or fail with its log."""
    async with asyncio.timeout(timeout_s):
        while not _udp_bound(host, process.port):
            if not process.running:
                raise RuntimeError(f"{process.name} exited at start-up\n{process.log()}")
            await asyncio.sleep(0.05)


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class SipAsteriskSandbox(AsteriskSandbox):
    """An Asterisk sandbox whose trunk's far end is 127.0.0.1:trunk_port (the SIPp carrier)."""

    trunk_port: int = 0

    def _env(self) -> dict[str, str]:
        return {**super()._env(), "CONTACTD_ASTERISK_TRUNK_PORT": str(self.trunk_port)}

    @property
    def messages_log(self) -> Path:
        """Asterisk's notice/warning/error log of this instance (logger.conf)."""
        return self.root / "srv/contactd" / self.instance / "log/messages.log"


@pytest.fixture(scope="session")
def sip_asterisk() -> Iterator[SipAsteriskSandbox]:
    ami_port = free_port()
    sip_port = _free_udp_port()
    trunk_port = _free_udp_port()
    while trunk_port in (sip_port, ami_port):
        trunk_port = _free_udp_port()
    sandbox = SipAsteriskSandbox(
        instance=f"pytest-{os.getpid()}-sip",
        ami_port=ami_port,
        sip_port=sip_port,
        trunk_port=trunk_port,
        http_port=free_port(),  # its own: never the default 18088 another sandbox may hold
    )
    sandbox.build()
    reap_orphans(sandbox.root, "-sip", SipAsteriskSandbox)
    try:
        sandbox.start()
        # The test overlay sends the agent leg into the simulated world; here it goes over the
        # real trunk as in production.
        sandbox.cli("dialplan set global CONTACTD_TRUNK_TECH PJSIP")
        sandbox.cli(f"dialplan set global CONTACTD_TRUNK_SUFFIX @{TRUNK}")
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def sip_ami(sip_asterisk: SipAsteriskSandbox) -> AsyncIterator[Manager]:
    manager = await ami_connect(sip_asterisk)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
async def sipp(sip_asterisk: SipAsteriskSandbox, tmp_path: Path) -> AsyncIterator[SippLauncher]:
    launcher = SippLauncher(sip_asterisk, sip_asterisk.trunk_port, tmp_path)
    try:
        yield launcher
    finally:
        await launcher.aclose()
