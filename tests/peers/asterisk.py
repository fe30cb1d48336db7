"""Fixtures for the real Asterisk 22 peer (chroot sandbox run by scripts/asterisk-sandbox).

Fixtures
  asterisk   (session) an ``AsteriskSandbox``: its own instance of Asterisk for this pytest
             process (instance ``pytest-<pid>``, free ports), built if needed, started once,
             stopped at the end (even after failures). Attributes: host, ami_port,
             ami_username, ami_secret, sip_port, http_port (SIP over WebSocket at
             ws_url), root (chroot Path), instance, etc_dir (its /etc/asterisk).
             Methods, sync / async:  start() / astart(), stop() / astop(),
             restart() / arestart() (for "Asterisk restarted mid-call"), cli(cmd) / acli(cmd)
             -> str. In async tests use the a-variants (they run the script in a thread).
  ami        (function) a logged-in panoramisk ``Manager`` on the sandbox, closed after the
             test. ``await ami_connect(asterisk)`` makes more (e.g. through the proxy).
  AmiEvents(manager, "UserEvent", "Hangup", ...) records events; ``await
             events.user_event("ContactdAMD", Attempt="a1")`` / ``wait_for(predicate)``.
  audiosocket_recorder()  async context manager: a tiny AudioSocket server recording each
             call (session UUID, 0x10 audio frames, 0x03 DTMF); with set_audiosocket().
  ami_proxy  (function) a ``TcpProxy`` (tests/peers/tcpproxy.py) in front of AMI: connect to
             ``ami_proxy.port``; ``await ami_proxy.drop()`` closes every live connection,
             ``await ami_proxy.pause()`` / ``resume()`` refuse / accept new ones.

Dialplan (asterisk-config/README.md has the full contract). The test overlay
asterisk-config/test/extensions_local.conf simulates the world on Local channels:

  number   behaviour (context contactd-test-world)                   expected outcome
  200NN    person: answers, "hello world", quiet; hangs up NN s later  answered, AMD HUMAN
           after answering (00 = 60 s)
  201NN    person who lets it ring NN s first, then as 20000           answered after NN s
  300      busy                                                       Reason 5, cause 17
  301      rings forever                                              Reason 3, cause 19
  302      unallocated number                                         Reason 0, cause 1
  303      congestion                                                 Reason 8, cause 34
  400NN    answering machine: long greeting, beep, line open NN s     AMD MACHINE
           (00 = 30 s)
  500NN    answers silently, hangs up after NN s                      AMD HANGUP if NN < 5
           (no ContactdAMD then: ContactdHangup has Amd: HANGUP); NN >= 5: NOTSURE
  501NN    person (as 200NN) who hangs up NN s after answering        AMD HUMAN, then gone
           (NN >= 4)
  211NN    person listening for keys: answers as 20000, reads NN keys   UserEvent ContactdTestKeys
           (each within 20 s), then holds 10 s                          (Keys: the keys)
  203AB    survey respondent: as 20000, keys A ~7 s after answering    AMD HUMAN, keys A, B
           and B ~7 s later, holds 20 s
  70NN     agent: answers at once, talks NN s (00 = 60 s)             use as CONTACTD_AGENT
  7198     agent who is busy;  7199  agent who never answers

  +49305IINUMBER  as NUMBER, as a real-looking E.164 number (``world_e164(number, i)``):
           contactd dials it through its trunk with ``trunk_dial_template`` =
           ``WORLD_TRUNK_TEMPLATE``, as a user configures a trunk

Outbound (the production path): ``originate_outbound(number, attempt_id, ...)`` builds an
Originate of ``Local/<number>@contactd-test-world`` into contactd-outbound (AMD, UserEvent
ContactdAMD with ``Attempt: <attempt id>``, then agent/queue/message/ivr, abandon). Inbound
callers: ``originate_caller(dnis, script, ...)`` places ``Local/<dnis>@contactd-inbound`` (the
trunk's context: IVR over AudioSocket) whose caller side runs contactd-test-caller
``dtmf`` (SendDTMF TEST_DTMF), ``speak`` (Playback TEST_PROMPT) or ``silent``, then holds the
line TEST_HOLD_S seconds. Point the IVR at a test server with
``await set_audiosocket(ami, host, port)`` (global CONTACTD_AUDIOSOCKET).

Custom test prompts (8 kHz 16-bit mono WAV) go into ``asterisk.sounds_dir`` (shared by
every instance: use unique names) and play as ``custom/<name>``. Causes, reasons and the
UserEvent sequence of each outbound mode are pinned by tests/integration/asterisk/test_world.py.

Several pytest processes can run at once: each gets its own instance and ports; instances
left by a killed pytest are stopped by the next session that starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from panoramisk import Manager
from panoramisk.message import Message

from contactd.config import AmiSettings
from tests.peers.ports import free_port
from tests.peers.tcpproxy import TcpProxy

REPO: Final = Path(__file__).resolve().parents[2]
SCRIPT: Final = REPO / "scripts" / "asterisk-sandbox"
DEFAULT_ROOT: Final = Path("/var/cache/contactd/asterisk-sid")
AMI_USERNAME: Final = "contactd"
AMI_SECRET: Final = "contactd-test"
BUILD_TIMEOUT_S: Final = 900.0
SCRIPT_TIMEOUT_S: Final = 120.0
AMI_LOGIN_TIMEOUT_S: Final = 10.0

# Contexts of the production dialplan (asterisk-config/extensions.conf).
INBOUND_CONTEXT: Final = "contactd-inbound"
IVR_CONTEXT: Final = "contactd-ivr"
OUTBOUND_CONTEXT: Final = "contactd-outbound"
ABANDON_CONTEXT: Final = "contactd-abandon"
AGENT_CONTEXT: Final = "contactd-agent"
# Contexts of the test overlay (asterisk-config/test/extensions_local.conf).
WORLD_CONTEXT: Final = "contactd-test-world"
CALLER_CONTEXT: Final = "contactd-test-caller"

BUSY: Final = "300"
NO_ANSWER: Final = "301"
UNALLOCATED: Final = "302"
CONGESTION: Final = "303"
AGENT_BUSY: Final = "7198"
AGENT_NO_ANSWER: Final = "7199"


def _two(value: int) -> str:
    if not 0 <= value <= 99:
        raise ValueError(f"seconds must be 0..99, got {value}")
    return f"{value:02d}"


def human(hold_s: int = 0) -> str:
    """A person who answers at once (AMD HUMAN); hangs up hold_s after answering (0: 60 s)."""
    return "200" + _two(hold_s)


def talking_human(hold_s: int = 0) -> str:
    """A person (AMD HUMAN) whose line keeps sending audio until hold_s after answering (0: 60 s),
    as a phone's does: what a transferred call's new agent hears."""
    return "204" + _two(hold_s)


def human_after_ring(ring_s: int) -> str:
    """A person who answers after ring_s seconds of ringing."""
    return "201" + _two(ring_s)


def machine(hold_s: int = 0) -> str:
    """An answering machine (AMD MACHINE); line open hold_s after the beep (0: 30 s)."""
    return "400" + _two(hold_s)


def silent_hangup(after_s: int) -> str:
    """Answers, says nothing, hangs up after after_s seconds."""
    return "500" + _two(after_s)


def human_hangup(after_s: int) -> str:
    """A person (AMD HUMAN) who hangs up after_s (>= 4) seconds after answering."""
    return "501" + _two(after_s)


def agent(talk_s: int = 0) -> str:
    """An agent who answers at once and talks talk_s seconds (0: 60 s)."""
    return "70" + _two(talk_s)


def world_channel(number: str) -> str:
    """The dial string of a simulated callee or agent, e.g. for CONTACTD_AGENT."""
    return f"Local/{number}@{WORLD_CONTEXT}"


# The sandbox's world as contactd's trunk: `[asterisk] trunk_dial_template`, set as a user would.
WORLD_TRUNK_TEMPLATE: Final = f"Local/{{number}}@{WORLD_CONTEXT}"


def world_e164(number: str, index: int = 0) -> str:
    """A valid E.164 number (Berlin) the world answers as `number`, for leads dialed through
    WORLD_TRUNK_TEMPLATE; `index` (0-99) tells apart leads that behave alike."""
    if not 0 <= index <= 99:
        raise ValueError(f"index must be 0..99, got {index}")
    return f"+49305{index:02d}{number}"


def originate_outbound(
    number: str,
    attempt_id: str,
    *,
    mode: str = "agent",
    variables: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    caller_id: str = "contactd <5550100>",
) -> dict[str, Any]:
    """An async Originate of a simulated callee into contactd-outbound (production path)."""
    var = {"CONTACTD_ATTEMPT": attempt_id, "CONTACTD_MODE": mode, **(variables or {})}
    return {
        "Action": "Originate",
        "ActionID": attempt_id,
        "Channel": world_channel(number),
        "Context": OUTBOUND_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "Timeout": str(int(timeout_s * 1000)),
        "CallerID": caller_id,
        "Async": "true",
        "Variable": [f"{k}={v}" for k, v in var.items()],
    }


def originate_caller(
    dnis: str,
    script: str = "silent",
    *,
    caller_id: str = '"Test Caller" <5551234>',
    dtmf: str = "",
    prompt: str = "",
    hold_s: float = 10.0,
    delay_s: float = 1.0,
    action_id: str | None = None,
) -> dict[str, Any]:
    """A simulated caller dialing dnis into contactd-inbound (IVR via AudioSocket)."""
    var = {"TEST_HOLD_S": str(hold_s), "TEST_DELAY_S": str(delay_s)}
    if dtmf:
        var["TEST_DTMF"] = dtmf
    if prompt:
        var["TEST_PROMPT"] = prompt
    action: dict[str, Any] = {
        "Action": "Originate",
        "Channel": f"Local/{dnis}@{INBOUND_CONTEXT}",
        "Context": CALLER_CONTEXT,
        "Exten": script,
        "Priority": "1",
        "Timeout": "10000",
        "CallerID": caller_id,
        "Async": "true",
        "Variable": [f"{k}={v}" for k, v in var.items()],
    }
    if action_id:
        action["ActionID"] = action_id
    return action


@dataclass
class AsteriskSandbox:
    """One running instance of the sandbox; every method goes through the project's script."""

    instance: str
    ami_port: int
    sip_port: int
    http_port: int = 0
    host: str = "127.0.0.1"
    ami_username: str = AMI_USERNAME
    ami_secret: str = AMI_SECRET
    root: Path = field(default_factory=lambda: _root())

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTACTD_ASTERISK_CACHE": str(self.root),
            "CONTACTD_ASTERISK_INSTANCE": self.instance,
            "CONTACTD_ASTERISK_AMI_PORT": str(self.ami_port),
            "CONTACTD_ASTERISK_SIP_PORT": str(self.sip_port),
            **({"CONTACTD_ASTERISK_HTTP_PORT": str(self.http_port)} if self.http_port else {}),
            "CONTACTD_ASTERISK_AMI_SECRET": self.ami_secret,
        }

    def ami_settings(self, port: int | None = None) -> AmiSettings:
        """contactd's AMI settings for this instance (or a proxy in front of it on `port`),
        with pings and reconnects short enough for tests."""
        return AmiSettings(
            port=port or self.ami_port,
            username=self.ami_username,
            secret=self.ami_secret,
            ping_interval_s=1.0,
            action_timeout_s=5.0,
            reconnect_min_s=0.2,
            reconnect_max_s=1.0,
        )

    def run(self, *args: str, timeout_s: float = SCRIPT_TIMEOUT_S) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"scripts/asterisk-sandbox {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def build(self) -> None:
        self.run("build", timeout_s=BUILD_TIMEOUT_S)

    def start(self) -> None:
        self.run("start")

    def stop(self) -> None:
        self.run("stop")

    def restart(self) -> None:
        self.run("restart")

    def cli(self, command: str) -> str:
        return self.run("cli", command)

    def running(self) -> bool:
        done = subprocess.run(
            [str(SCRIPT), "status"], env=self._env(), capture_output=True, check=False
        )
        return done.returncode == 0

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.restart)

    async def acli(self, command: str) -> str:
        return await asyncio.to_thread(self.cli, command)

    @property
    def ws_url(self) -> str:
        """Where browser phones register: SIP over WebSocket on Asterisk's HTTP server."""
        return f"ws://{self.host}:{self.http_port}/ws"

    @property
    def etc_dir(self) -> Path:
        """This instance's /etc/asterisk as seen from the host (contactd-webrtc.conf goes here)."""
        return self.root / "srv/contactd" / self.instance / "etc"

    @property
    def sounds_dir(self) -> Path:
        """Where custom test prompts go (8 kHz 16-bit mono WAV): Playback(custom/<name>)."""
        return self.root / "usr/local/share/asterisk/sounds"


def _root() -> Path:
    return Path(os.environ.get("CONTACTD_ASTERISK_CACHE", str(DEFAULT_ROOT)))


def _free_udp_port(avoid: int) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != avoid:
            return port


def reap_orphans(
    root: Path, suffix: str = "", kind: type[AsteriskSandbox] | None = None
) -> None:
    """Stop and remove instances `pytest-<pid><suffix>` whose pytest process is gone.

    A finished session leaves its instance folder (logs) for a post-mortem until the next one.
    """
    factory = kind or AsteriskSandbox
    for inst in sorted((root / "srv/contactd").glob(f"pytest-*{suffix}")):
        match = re.fullmatch(rf"pytest-(\d+){re.escape(suffix)}", inst.name)
        if match is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(match.group(1)), 0)
            continue  # its pytest is alive
        factory(instance=inst.name, ami_port=0, sip_port=0, root=root).stop()
        shutil.rmtree(inst, ignore_errors=True)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[AsteriskSandbox]:
    root = _root()
    ami_port = free_port()
    sandbox = AsteriskSandbox(
        instance=f"pytest-{os.getpid()}",
        ami_port=ami_port,
        sip_port=_free_udp_port(avoid=ami_port),
        http_port=free_port(),
        root=root,
    )
    sandbox.build()
    reap_orphans(root)
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.stop()


async def ami_connect(sandbox: AsteriskSandbox, port: int | None = None) -> Manager:
    """A logged-in panoramisk Manager (utf8) on the sandbox, or on a proxy's port."""
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=sandbox.host,
        port=port or sandbox.ami_port,
        username=sandbox.ami_username,
        secret=sandbox.ami_secret,
        encoding="utf8",
        ping_delay=3600,
        ping_interval=3600,
    )
    try:
        async with asyncio.timeout(AMI_LOGIN_TIMEOUT_S):
            # connect() returns the connect task; its done-callback (registered before our
            # await) has sent the Login by the time we resume.
            await manager.connect()
            login = manager.authenticated_future
            accepted = bool((await login).success) if login is not None else manager.authenticated
        if not accepted:
            raise RuntimeError(f"AMI refused the login of {sandbox.ami_username!r}")
    except BaseException:
        manager.close()
        raise
    return manager


async def set_audiosocket(manager: Manager, host: str, port: int) -> None:
    """Point contactd-ivr's AudioSocket() at host:port (the global CONTACTD_AUDIOSOCKET)."""
    reply = await manager.send_action(
        {"Action": "Setvar", "Variable": "CONTACTD_AUDIOSOCKET", "Value": f"{host}:{port}"}
    )
    if reply.response != "Success":
        raise RuntimeError(f"Setvar CONTACTD_AUDIOSOCKET failed: {reply}")


class AmiEvents:
    """Records AMI events of the given names from a Manager; wait for one by predicate."""

    def __init__(self, manager: Manager, *names: str) -> None:
        self.seen: list[Message] = []
        self._waiters: list[tuple[Callable[[Message], bool], asyncio.Future[Message]]] = []
        for name in names:
            manager.register_event(name, self._on_event)

    def _on_event(self, _manager: Manager, event: Message) -> None:
        self.seen.append(event)
        for predicate, future in self._waiters:
            if not future.done() and predicate(event):
                future.set_result(event)

    async def wait_for(
        self, predicate: Callable[[Message], bool], timeout_s: float = 20.0
    ) -> Message:
        """The first recorded event (past or future) matching predicate."""
        for event in self.seen:
            if predicate(event):
                return event
        waiter = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter[1], timeout_s)
        finally:
            self._waiters.remove(waiter)

    @staticmethod
    def _is_user_event(event: Message, name: str, headers: Mapping[str, str]) -> bool:
        return (
            event.get("Event") == "UserEvent"
            and event.get("UserEvent") == name
            and all(event.get(k) == v for k, v in headers.items())
        )

    def user_events(self, name: str, **headers: str) -> list[Message]:
        return [e for e in self.seen if self._is_user_event(e, name, headers)]

    async def user_event(self, name: str, timeout_s: float = 20.0, **headers: str) -> Message:
        """Wait for UserEvent(name) whose headers equal the given ones (e.g. Attempt="a1")."""
        return await self.wait_for(lambda e: self._is_user_event(e, name, headers), timeout_s)


KIND_HANGUP: Final = 0x00
KIND_UUID: Final = 0x01
KIND_DTMF: Final = 0x03
KIND_AUDIO: Final = 0x10


@dataclass
class AudioSocketCall:
    session: uuid.UUID | None = None
    audio_frames: list[bytes] = field(default_factory=list)
    dtmf: str = ""
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.StreamWriter | None = None


@dataclass
class AudioSocketRecorder:
    """A tiny AudioSocket server recording what Asterisk sends on each connection.

    ``async with audiosocket_recorder() as rec``: point the dialplan at ``rec.port`` with
    set_audiosocket(); ``await rec.connected.get()`` yields each call (session UUID, audio
    frames, DTMF digits); ``call.writer.close()`` is the IVR hanging up its side.
    """

    port: int = 0
    calls: list[AudioSocketCall] = field(default_factory=list)
    connected: asyncio.Queue[AudioSocketCall] = field(default_factory=asyncio.Queue)
    hold_open: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call = AudioSocketCall(writer=writer)
        self.calls.append(call)
        await self.connected.put(call)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(3), 30)
                kind, length = header[0], int.from_bytes(header[1:3], "big")
                payload = await reader.readexactly(length) if length else b""
                if kind == KIND_UUID:
                    call.session = uuid.UUID(bytes=payload)
                elif kind == KIND_AUDIO:
                    call.audio_frames.append(payload)
                elif kind == KIND_DTMF:
                    call.dtmf += payload.decode("ascii")
                    call.digits.put_nowait(payload.decode("ascii"))
                elif kind == KIND_HANGUP:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # Asterisk closes the socket on hang-up
        finally:
            call.ended.set()
            writer.close()


@contextlib.asynccontextmanager
async def audiosocket_recorder() -> AsyncIterator[AudioSocketRecorder]:
    recorder = AudioSocketRecorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = int(server.sockets[0].getsockname()[1])
    async with server:
        yield recorder
        server.close()


@pytest.fixture
async def ami(asterisk: AsteriskSandbox) -> AsyncIterator[Manager]:
    manager = await ami_connect(asterisk)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
async def ami_proxy(asterisk: AsteriskSandbox) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(asterisk.host, asterisk.ami_port) as proxy:
        yield proxy
