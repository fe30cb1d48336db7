"""Browser phone: time from the dialer's connect to the agent hearing audio, beside a SIP phone;
and ten browser phones holding calls at once, beside ten SIP phones.

The daemon runs on its own Asterisk sandbox instance with browser phones on. Leads are
simulated people of the sandbox world (20002: answers, says "hello world", hangs up 2 s later).

1. Connect → first audio, one agent, `--calls` calls a run (50; --quick 5), `--runs` runs (3):
   - browser: the agent sits in headless Chromium (fake microphone) on a progressive campaign;
     from the dialplan's ContactdConnect UserEvent (the dialer hands the call to the agent; AMI
     event time on this host) to the first RTP packet the browser received
     (RTCRtpReceiver synchronization sources, polled every 5 ms, same host's clock);
   - SIP phone (the baseline, the same path): the agent's phone is SIPp answering as a plain
     SIP phone (PJSIP endpoint 1001 dialled at SIPp's address, PCMU, no WebRTC); its SDP sends
     the audio to a UDP socket of this process, which notes the first packet of each call
     (a new RTP SSRC). Same campaign, same people, same daemon settings.
   Target: browser p95 ≤ 500 ms on the worst run.
2. Ten at once: ten agents Ready on one campaign, ten people (20400: answers and keeps sending
   audio for 60 s, as a phone does) dialled together; once all ten calls are up, Asterisk's CPU
   (utime+stime from /proc) over 10 s, per call: ten browser contexts in one headless Chromium,
   then ten SIP phones (one SIPp answering ten calls). Target: ten browser phones hold calls at
   once (all ten in a call, audio flowing), with the CPU per call beside the SIP one.

    .venv/bin/python bench/webrtc.py [--quick] [--calls 50] [--runs 3] [--agents 10]
                                     [--only latency|hold]

Prints a table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import async_playwright

from contactd.auth.service import UserService
from contactd.config import load_settings
from contactd.crm.service import ContactInput
from contactd.daemon import Components
from contactd.db.models.dialer import Campaign, Lead
from contactd.dialer.agents import AgentState
from contactd.enums import CampaignMode, CampaignStatus, Role
from tests.integration.asterisk.test_daemon_asterisk import running
from tests.peers.asterisk import AsteriskSandbox, _free_udp_port, _root, world_channel
from tests.peers.chromium import CHROMIUM, FLAGS
from tests.peers.ports import free_port
from tests.peers.sipp import sipp_binary

PASSWORD = "correct horse battery"
REORDER_S = 0.2  # a first packet handled before its connect event, at most this much


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


PHONE_HOST = "127.0.0.2"  # the SIP phone (SIPp) and its audio socket
PERSON = "20002"  # answers, "hello world", hangs up 2 s later
TALKER = "20400"  # answers and keeps sending audio for 60 s
HOLD_WINDOW_S = 10.0  # Asterisk's CPU measured over this, once every call of part 2 is up
SIP_PHONE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- A plain SIP agent phone for bench/webrtc.py: answers (PCMU), its audio goes to AUDIO_PORT
     (a socket of the bench), accepts re-INVITEs, answers the BYE. -->
<scenario name="bench SIP agent phone">
  <recv request="INVITE" crlf="true" />
  <send><![CDATA[
      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
  ]]></send>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]bench[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:1001@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio AUDIO_PORT RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
  ]]></send>
  <recv request="ACK" />
  <label id="incall" />
  <recv request="INVITE" optional="true" next="reinvite" />
  <recv request="BYE" />
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
  ]]></send>
  <nop next="end" />
  <label id="reinvite" />
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:1001@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 1 2 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio AUDIO_PORT RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
  ]]></send>
  <recv request="ACK" />
  <nop next="incall" />
  <label id="end" />
</scenario>
"""


def _settings(sandbox: AsteriskSandbox, work: Path) -> Any:
    return load_settings(
        None,
        {
            "CONTACTD_GENERAL__DATA_DIR": str(work),
            "CONTACTD_GENERAL__DEFAULT_REGION": "GB",
            "CONTACTD_WEB__PORT": str(free_port()),
            "CONTACTD_AUDIOSOCKET__ENABLED": "false",
            "CONTACTD_AMI__PORT": str(sandbox.ami_port),
            "CONTACTD_AMI__USERNAME": sandbox.ami_username,
            "CONTACTD_AMI__SECRET": sandbox.ami_secret,
            "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE": world_channel("{number}"),
            "CONTACTD_DIALER__WINDOW_START": "00:00:00",
            "CONTACTD_DIALER__WINDOW_END": "23:59:59",
            "CONTACTD_DIALER__PACING_TICK_S": "0.2",
            "CONTACTD_DIALER__AGENT_WRAP_S": "0.5",
            "CONTACTD_WEBRTC__ENABLED": "true",
            "CONTACTD_WEBRTC__INCLUDE_FILE": str(sandbox.etc_dir / "contactd-webrtc.conf"),
            "CONTACTD_WEBRTC__WS_URL": sandbox.ws_url,
            "CONTACTD_WEBRTC__SIP_DOMAIN": "127.0.0.1",
        },
    )


async def _campaign(daemon: Components, count: int, world_number: str) -> int:
    """A running progressive campaign of `count` simulated people (`world_number`)."""
    assert daemon.contacts is not None
    people = []
    for i in range(count):
        phone = f"+44207{i:02d}{world_number}"  # the world plays its last five digits
        people.append((phone, await daemon.contacts.create_contact(
            ContactInput(first_name="Person", last_name=str(i), phones=[phone]))))
    async with daemon.db.transaction() as session:
        campaign = Campaign(name="bench", mode=CampaignMode.PROGRESSIVE,
                            status=CampaignStatus.RUNNING, max_attempts=1)
        session.add(campaign)
        await session.flush()
        for phone, contact in people:
            session.add(Lead(campaign_id=campaign.id, contact_id=contact, phone_e164=phone))
        return int(campaign.id)


def _connects(daemon: Components) -> list[float]:
    """Times of the dialplan's ContactdConnect events (this host's clock), as they come."""
    seen: list[float] = []

    def on_user_event(event: Any) -> None:
        if event.get("UserEvent") == "ContactdConnect":
            seen.append(time.time())

    assert daemon.calls is not None
    daemon.calls.ami.events.on("UserEvent", on_user_event)
    return seen


class _AudioSink(asyncio.DatagramProtocol):
    """The SIP phones' audio socket: the time of each call's first RTP packet (new SSRC)."""

    def __init__(self) -> None:
        self.firsts: list[float] = []
        self.packets = 0
        self._ssrcs: set[bytes] = set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets += 1
        ssrc = data[8:12]
        if len(data) >= 12 and ssrc not in self._ssrcs:
            self._ssrcs.add(ssrc)
            self.firsts.append(time.time())


async def _sip_phones(work: Path, calls: int, at_once: int) -> tuple[Any, _AudioSink, str, Any]:
    """SIPp answering as SIP phones, its audio into a socket here; returns the process, the
    sink, the dial string that reaches it and the socket's transport."""
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_AudioSink, local_addr=(PHONE_HOST, 0))
    audio_port = transport.get_extra_info("sockname")[1]
    sip_port = _free_udp_port(PHONE_HOST)
    scenario = work / "sip_phone.xml"
    scenario.write_text(SIP_PHONE.replace("AUDIO_PORT", str(audio_port)))
    sipp = await asyncio.create_subprocess_exec(
        sipp_binary(), "-sf", str(scenario), "-i", PHONE_HOST, "-p", str(sip_port),
        "-m", str(calls), "-l", str(at_once), "-nostdin", "-trace_err",
        "-error_file", str(work / "sipp-errors.log"),
        cwd=work, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )
    await asyncio.sleep(0.5)  # SIPp binds its port (a start-up wait, not synchronisation)
    return sipp, sink, f"PJSIP/1001/sip:1001@{PHONE_HOST}:{sip_port}", transport


async def _browser(pw: Any) -> Any:
    return await pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"],
    )


async def _seat(browser: Any, url: str, user: str) -> Any:
    """A browser context signed in as `user`, joined to the campaign, phone registered."""
    page = await (await browser.new_context(locale="en-US")).new_page()
    await page.goto(f"{url}workspace")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Campaign").select_option(label="bench (progressive)")
    await page.get_by_role("button", name="Join").click()
    await page.locator("#phone-reg[data-state=registered]").wait_for(timeout=30_000)
    return page


def _asterisk_pid(sandbox: AsteriskSandbox) -> int:
    return int((sandbox.root / "srv/contactd" / sandbox.instance / "asterisk.pid").read_text())


async def browser_run(sandbox: AsteriskSandbox, calls: int, work: Path) -> dict[str, Any]:
    """Part 1, the browser: connect → first RTP received in the page, call after call."""
    pid = _asterisk_pid(sandbox)
    async with running(_settings(sandbox, work)) as daemon, async_playwright() as pw:
        await UserService(daemon.db).add("bench", PASSWORD, Role.AGENT)
        await _campaign(daemon, calls, PERSON)
        connects = _connects(daemon)
        browser = await _browser(pw)
        page = await _seat(browser, str(daemon.web_url), "bench")
        cpu0 = _cpu_s(pid)
        await page.get_by_role("button", name="Ready").click()
        latencies: list[float] = []
        for n in range(1, calls + 1):
            await page.wait_for_function(
                f"() => (window.contactdPhone.calls || 0) >= {n}", timeout=60_000
            )
            first = await page.evaluate("window.contactdPhone.firstRtpAt") / 1000.0
            latencies.append((first - connects[n - 1]) * 1000.0)
        cpu = _cpu_s(pid) - cpu0
        await browser.close()
    return _figures(latencies, cpu, calls)


async def sip_run(sandbox: AsteriskSandbox, calls: int, work: Path) -> dict[str, Any]:
    """Part 1, the baseline: the same path to a plain SIP phone (SIPp)."""
    pid = _asterisk_pid(sandbox)
    sipp, sink, dial, transport = await _sip_phones(work, calls, 1)
    try:
        async with running(_settings(sandbox, work)) as daemon:
            campaign_id = await _campaign(daemon, calls, PERSON)
            connects = _connects(daemon)
            assert daemon.dialer is not None
            cpu0 = _cpu_s(pid)
            daemon.dialer.agents.login("sip-phone", dial, campaign_id, time.time())  # Ready
            daemon.dialer.wake()
            async with asyncio.timeout(60 + 10 * calls):
                while len(sink.firsts) < calls or len(connects) < calls:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # polling two counters, no event to wait on
            cpu = _cpu_s(pid) - cpu0
            latencies = _paired(connects, sink.firsts)
    finally:
        transport.close()
        if sipp.returncode is None:
            sipp.kill()
        await sipp.wait()
    return _figures(latencies, cpu, calls)


async def _all_up(daemon: Components, campaign_id: int, agents: int, timeout_s: float) -> None:
    """Until `agents` agents of the campaign are on a call."""
    assert daemon.dialer is not None
    board = daemon.dialer.agents
    async with asyncio.timeout(timeout_s):
        while sum(1 for a in board.agents.values()  # noqa: ASYNC110
                  if a.campaign_id == campaign_id and a.state is AgentState.TALKING) < agents:
            await asyncio.sleep(0.1)  # polling the board, no event to wait on


async def hold_run(sandbox: AsteriskSandbox, agents: int, kind: str, work: Path) -> dict[str, Any]:
    """Part 2: `agents` calls up at once, on browser phones or SIP phones; Asterisk's CPU per
    call over HOLD_WINDOW_S, and whether every browser phone is in a call with audio."""
    pid = _asterisk_pid(sandbox)
    sipp = sink = transport = None
    if kind == "sip":
        sipp, sink, dial, transport = await _sip_phones(work, agents, agents)
    try:
        async with running(_settings(sandbox, work)) as daemon, async_playwright() as pw:
            campaign_id = await _campaign(daemon, agents, TALKER)
            assert daemon.dialer is not None
            pages = []
            browser = None
            if kind == "browser":
                for n in range(agents):
                    await UserService(daemon.db).add(f"agent{n}", PASSWORD, Role.AGENT)
                browser = await _browser(pw)
                pages = [await _seat(browser, str(daemon.web_url), f"agent{n}")
                         for n in range(agents)]
                for page in pages:
                    await page.get_by_role("button", name="Ready").click()
            else:
                for n in range(agents):
                    daemon.dialer.agents.login(f"sip{n}", dial, campaign_id, time.time())
                daemon.dialer.wake()
            await _all_up(daemon, campaign_id, agents, 90)
            await asyncio.sleep(1.0)  # every bridge settles (not synchronisation: a margin)
            cpu0, wall0 = _cpu_s(pid), time.monotonic()
            await asyncio.sleep(HOLD_WINDOW_S)  # the measuring window
            cpu, wall = _cpu_s(pid) - cpu0, time.monotonic() - wall0
            in_call = agents
            audio = 0
            if pages:
                in_call = sum([await p.locator("#phone-call").inner_text() == "In a call"
                               for p in pages])
                audio = sum([int(await p.locator("#phone-stats").get_attribute(
                    "data-packets-received") or 0) > 20 for p in pages])
            elif sink is not None:
                audio = len(sink.firsts)
            if browser is not None:
                await browser.close()
    finally:
        if transport is not None:
            transport.close()
        if sipp is not None:
            if sipp.returncode is None:
                sipp.kill()
            await sipp.wait()
    return {"kind": kind, "calls": agents, "in_call": in_call, "with_audio": audio,
            "asterisk_cpu_pct": round(100 * cpu / wall, 1),
            "asterisk_cpu_ms_per_call_s": round(1000 * cpu / (wall * agents), 2)}


def _paired(connects: list[float], firsts: list[float]) -> list[float]:
    """Connect -> first audio per call, in ms: each connect with the first new RTP stream
    that starts after it. A call's stream can change SSRC mid-call (a re-INVITE, a bridge
    change): pairing by order alone then shifted every later call onto the wrong stream."""
    out: list[float] = []
    starts = sorted(firsts)
    for connect in connects:
        # The AMI event and the first packet reach this process's loop separately: a packet
        # handled a moment before its event still belongs to this call.
        found = next((f for f in starts if f >= connect - REORDER_S), None)
        if found is not None:
            out.append(max(0.0, found - connect) * 1000.0)
            starts.remove(found)
    return out


def _figures(latencies: list[float], cpu: float, calls: int) -> dict[str, Any]:
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(_pct(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "calls": len(latencies),
        "asterisk_cpu_ms_per_call": round(cpu * 1000 / calls, 1),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 calls a run, 4 phones at once")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agents", type=int, default=10, help="phones holding calls at once")
    parser.add_argument("--only", choices=("latency", "hold"),
                        help="part 1 (connect -> first audio) or part 2 (phones at once) alone")
    args = parser.parse_args()
    calls = 5 if args.quick else args.calls
    agents = 4 if args.quick else args.agents
    ami_port = free_port()
    sandbox = AsteriskSandbox(
        instance=f"bench-webrtc-{os.getpid()}",
        ami_port=ami_port,
        sip_port=_free_udp_port(ami_port),
        http_port=free_port(),
        root=_root(),
    )
    load = os.getloadavg()[0]
    browser_runs, sip_runs, holds = [], [], []
    await sandbox.astart()
    try:
        for n in range(args.runs if args.only != "hold" else 0):
            with tempfile.TemporaryDirectory() as work:
                browser_runs.append(await browser_run(sandbox, calls, Path(work)))
            with tempfile.TemporaryDirectory() as work:
                sip_runs.append(await sip_run(sandbox, calls, Path(work)))
            print(f"run {n + 1}: browser {browser_runs[-1]}; SIP phone {sip_runs[-1]}", flush=True)
        for kind in ("browser", "sip") if args.only != "latency" else ():
            with tempfile.TemporaryDirectory() as work:
                holds.append(await hold_run(sandbox, agents, kind, Path(work)))
            print(f"{agents} at once: {holds[-1]}", flush=True)
    finally:
        await sandbox.astop()
    figures: dict[str, Any] = {"calls_per_run": calls, "runs": len(browser_runs),
                               "target_ms": 500, "at_once_target": 10, "loadavg_1m": load}
    if browser_runs:
        print(f"{'connect -> first audio':24}{'run':>4}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}"
              f"{'max ms':>9}{'CPU ms/call':>13}")
        for label, runs in (("browser phone", browser_runs), ("SIP phone (baseline)", sip_runs)):
            for i, r in enumerate(runs, 1):
                print(f"{label:24}{i:>4}{r['calls']:>7}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                      f"{r['max_ms']:>9.0f}{r['asterisk_cpu_ms_per_call']:>13.1f}")
        p95s = [r["p95_ms"] for r in browser_runs]
        sip_p95s = [r["p95_ms"] for r in sip_runs]
        worst = max(p95s)
        print(f"browser p95 median {statistics.median(p95s):.0f} ms, worst {worst:.0f} ms (target "
              f"<= 500: {'met' if worst <= 500 else 'MISSED'}); SIP phone p95 median "
              f"{statistics.median(sip_p95s):.0f} ms, worst {max(sip_p95s):.0f} ms")
        figures |= {"browser": browser_runs, "sip_baseline": sip_runs,
                    "p95_median_ms": statistics.median(p95s), "p95_worst_ms": worst,
                    "sip_p95_median_ms": statistics.median(sip_p95s),
                    "sip_p95_worst_ms": max(sip_p95s), "target_met": worst <= 500}
    if holds:
        for h in holds:
            print(f"{h['calls']} {h['kind']} phones at once: {h['in_call']} in a call, "
                  f"{h['with_audio']} with audio; Asterisk {h['asterisk_cpu_pct']} % CPU, "
                  f"{h['asterisk_cpu_ms_per_call_s']} ms CPU per call-second")
        browser_hold = holds[0]
        held = browser_hold["in_call"] == agents and browser_hold["with_audio"] == agents
        verdict = ("met" if held and agents >= 10 else
                   f"all {agents} held, fewer than the 10 of the target" if held else "MISSED")
        print(f"{agents} browser phones holding calls at once: {verdict} (target >= 10)")
        figures |= {"at_once": holds, "at_once_met": held and agents >= 10}
    print(f"load average (1 min) at the start: {load:.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
