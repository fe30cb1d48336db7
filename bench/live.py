"""Live floor: 200 open /floor connections while a 50-agent predictive campaign dials the
demo PBX. Two figures:

- event -> browser: for every call and agent push, from the moment the daemon made the bus
  event (its `at`, sent as `t`) to the moment a viewer read it off the stream (one machine,
  one clock). Target: p95 <= 250 ms.
  `server_p95_ms` is the part until the daemon wrote the push's frame (each frame starts
  with an SSE comment saying when): the rest is the machine delivering and the viewers,
  200 of them in this one process, reading.
- the daemon's CPU with 200 viewers beside the same campaign with none (target: <= +20 %),
  read from /proc/<pid>/stat of the daemon process only. Each run interleaves windows
  without viewers and with 200 (idle, viewers, idle, viewers, idle, ...); each viewer
  window is compared with the mean of its two neighbours, so a drift in the machine's load
  or the campaign's pace over the run does not count as the viewers' cost.
  The verdict compares CPU per push the campaign made (`cpu_extra_per_push_pct`): the
  campaign's own pace swings from window to window (on a quiet host, idle windows of one run
  read 11 % and 16 %, or 13 % and 23 %), more than 200 viewers cost, so a comparison per
  second of wall time measures mostly which window was busier; per push it compares the same
  amount of campaign work with and without viewers. The per-second figure is printed beside it.
  The viewers' extra CPU is also given per push made per viewer, and per frame (one write per
  tab).

`--writes` measures the fan-out's write alone, steady under any load: a bare server holds 200
streams and alternates windows of aiohttp's `response.write` per tab and the floor's
`FloorStream.send` (the chunk made once per frame), printing its CPU per frame per tab.

The daemon (`bench/live.py --serve`) and the demo PBX (python -m contactd.demo.serve) run as
processes of their own, so the daemon's CPU is read from /proc apart from the viewers'.

    .venv/bin/python bench/live.py [--quick] [--viewers 200] [--agents 50]
                                   [--window 30] [--rounds 3]

Three runs; each is printed, then the median and the worst; the last line is one JSON object
with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-live"
PASSWORD = "bench live password"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TIMED = (b"event: call", b"event: agent")
T_RE = re.compile(rb'"t":([0-9.]+)')


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _spawn(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if not line:
        process.kill()
        raise RuntimeError(f"{args[:2]} did not start")
    return process, line


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


# ---- the daemon side (a process of its own) ---------------------------------------------
async def serve(agents: int, leads: int) -> None:
    from contactd.auth.service import UserService
    from contactd.config import load_settings
    from contactd.daemon import Components, run_daemon
    from contactd.db.models.dialer import Campaign, Lead
    from contactd.enums import CampaignMode, Role

    settings = load_settings(None)

    async def ready(components: Components) -> None:
        assert components.dialer is not None
        await UserService(components.db).add("boss", PASSWORD, Role.SUPERVISOR)
        async with components.db.transaction() as session:
            campaign = Campaign(name="bench", mode=CampaignMode.PREDICTIVE, max_attempts=1)
            session.add(campaign)
            await session.flush()
            session.add_all(
                [
                    Lead(campaign_id=campaign.id, phone_e164=f"+4930{5000000 + i}")
                    for i in range(leads)
                ]
            )
            campaign_id = campaign.id
        now = time.time()
        for n in range(agents):
            components.dialer.agents.login(f"agent{n:03d}", f"PJSIP/agent{n:03d}", campaign_id, now)
        await components.dialer.start("bench")
        print(f"ready {components.web_url}", flush=True)

    await run_daemon(settings, on_ready=ready)


# ---- the viewers (this process) ----------------------------------------------------------
async def _sign_in(session: aiohttp.ClientSession, url: str) -> None:
    page = await (await session.get(f"{url}login")).text()
    token = CSRF_RE.search(page)
    assert token, "login page without a CSRF token"
    answer = await session.post(
        f"{url}login",
        data={"username": "boss", "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
        allow_redirects=False,
    )
    assert answer.status == 303, answer.status


class Viewer:
    def __init__(self) -> None:
        self.lags_ms: list[float] = []  # event made -> read by the viewer
        self.server_ms: list[float] = []  # event made -> its frame written by the daemon
        self.pushes = 0
        self.frames = 0  # frames read (each starts with ": sent")
        self.snapshots = 0  # the first, then one each time the daemon found it behind
        self.snapshot = asyncio.Event()
        self.measuring = False

    async def watch(self, session: aiohttp.ClientSession, url: str) -> None:
        """Reads the stream in chunks and looks only at the pushes it times (call, agent):
        the viewers share this process, so their own parsing must stay cheap."""
        async with session.get(
            f"{url}floor/events", timeout=aiohttp.ClientTimeout(total=None)
        ) as stream:
            rest = b""
            async for chunk in stream.content.iter_any():
                now = time.time()
                rest += chunk
                *pushes, rest = rest.split(b"\n\n")
                self.pushes += sum(1 for p in pushes if p.startswith(b"event: "))
                self.frames += sum(1 for p in pushes if p.startswith(b": sent "))
                sent = now
                for push in pushes:
                    if push.startswith(b": sent "):
                        sent = float(push[7:])
                    elif push.startswith(b"event: snapshot"):
                        self.snapshot.set()
                        self.snapshots += 1
                    elif self.measuring and push.startswith(TIMED):
                        found = T_RE.search(push)
                        if found:
                            t = float(found.group(1))
                            self.lags_ms.append((now - t) * 1000)
                            self.server_ms.append((sent - t) * 1000)


class Window:
    """The daemon's CPU seconds, the pushes it made and the frames it wrote over `seconds`
    of wall time (read from the counting connection, which is open in every window)."""

    def __init__(self, cpu: float, wall: float, pushes: int, frames: int) -> None:
        self.cpu, self.wall, self.pushes, self.frames = cpu, wall, pushes, frames

    @property
    def pct(self) -> float:
        return 100 * self.cpu / self.wall


async def _window(pid: int, seconds: float, counter: Viewer) -> Window:
    cpu0, wall0 = cpu_s(pid), time.monotonic()
    pushes0, frames0 = counter.pushes, counter.frames
    await asyncio.sleep(seconds)  # a measuring window, not synchronisation
    return Window(
        cpu_s(pid) - cpu0,
        time.monotonic() - wall0,
        counter.pushes - pushes0,
        counter.frames - frames0,
    )


async def _open(
    session: aiohttp.ClientSession, url: str, viewers: int
) -> tuple[list[Viewer], list[asyncio.Task[None]]]:
    crowd = [Viewer() for _ in range(viewers)]
    tasks = [asyncio.create_task(v.watch(session, url)) for v in crowd]
    async with asyncio.timeout(60):
        for v in crowd:
            await v.snapshot.wait()
    return crowd, tasks


async def _close(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def measure(
    url: str, pid: int, viewers: int, window_s: float, warmup_s: float, rounds: int
) -> dict[str, Any]:
    """Windows without viewers and with `viewers`, interleaved: idle, viewers, idle, ...,
    idle (`rounds` viewer windows). Each viewer window is compared with the mean of the idle
    windows either side of it, so a drift of the machine's load or of the campaign's pace
    over the run does not count as the viewers' cost. One connection stays open throughout
    (in the idle windows too) and counts the pushes and frames, so the CPU can also be
    compared per push made. The viewers connect before their window opens and leave after
    it closes: sign-in and snapshots are not in the figures."""
    connector = aiohttp.TCPConnector(limit=0)
    jar = aiohttp.CookieJar(unsafe=True)  # the panel is on 127.0.0.1
    lags: list[float] = []
    served: list[float] = []
    idle: list[Window] = []
    watched: list[Window] = []
    caught_up = 0  # snapshots sent again to a viewer that fell behind (a costly write)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        await _sign_in(session, url)
        counters, counting = await _open(session, url, 1)
        counter = counters[0]
        try:
            await asyncio.sleep(warmup_s)  # the campaign ramps up (pacer warm-up, agents busy)
            idle.append(await _window(pid, window_s, counter))
            for _ in range(rounds):
                crowd, tasks = await _open(session, url, viewers)
                for v in crowd:
                    v.measuring = True
                watched.append(await _window(pid, window_s, counter))
                for v in crowd:
                    v.measuring = False
                await _close(tasks)
                caught_up += sum(v.snapshots - 1 for v in crowd)
                lags.extend(lag for v in crowd for lag in v.lags_ms)
                served.extend(ms for v in crowd for ms in v.server_ms)
                idle.append(await _window(pid, window_s, counter))
        finally:
            await _close(counting)
    lags.sort()
    served.sort()
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
    qs = statistics.quantiles(served, n=100) if len(served) > 1 else [0.0] * 99
    # The viewers' extra CPU in each viewer window: its CPU less what the daemon spent per
    # second (and per push) in the idle windows either side.
    extra_pct, extra_push_pct, extra_s = [], [], 0.0
    for n, w in enumerate(watched):
        before, after = idle[n], idle[n + 1]
        base = (before.pct + after.pct) / 2
        extra_pct.append(100 * (w.pct - base) / base if base else 0.0)
        per_push = [x.cpu / x.pushes if x.pushes else 0.0 for x in (before, w, after)]
        base_push = (per_push[0] + per_push[2]) / 2
        extra_push_pct.append(100 * (per_push[1] - base_push) / base_push if base_push else 0.0)
        extra_s += w.cpu - base / 100 * w.wall
    pushes = sum(w.pushes for w in watched)
    frames = sum(w.frames for w in watched)
    idle_pct = 100 * sum(w.cpu for w in idle) / sum(w.wall for w in idle)
    watched_pct = 100 * sum(w.cpu for w in watched) / sum(w.wall for w in watched)
    return {
        "viewers": viewers,
        "timed_pushes": len(lags),
        "viewers_caught_up": caught_up,
        "pushes_per_s": round(pushes / sum(w.wall for w in watched), 1),
        "frames_per_s": round(frames / sum(w.wall for w in watched), 1),
        "lag_p50_ms": round(q[49], 1),
        "lag_p95_ms": round(q[94], 1),
        "lag_max_ms": round(lags[-1], 1) if lags else 0.0,
        "server_p50_ms": round(qs[49], 1),
        "server_p95_ms": round(qs[94], 1),
        "cpu_idle_pct": round(idle_pct, 1),
        "cpu_viewers_pct": round(watched_pct, 1),
        "cpu_idle_windows_pct": [round(w.pct, 1) for w in idle],
        "cpu_viewer_windows_pct": [round(w.pct, 1) for w in watched],
        # the run's figure: the mean over its viewer windows, each against its neighbours
        "cpu_extra_pct": round(statistics.mean(extra_pct), 1),
        "cpu_extra_per_push_pct": round(statistics.mean(extra_push_pct), 1),
        # the viewers' cost in the daemon, per push made and per viewer reached (and per
        # frame: a frame is one write to each tab)
        "cpu_us_per_push_viewer": (round(1e6 * extra_s / (pushes * viewers), 2) if pushes else 0.0),
        "cpu_us_per_frame_viewer": (
            round(1e6 * extra_s / (frames * viewers), 2) if frames else 0.0
        ),
    }


async def one_run(
    viewers: int, agents: int, window_s: float, warmup_s: float, rounds: int, seed: int
) -> dict[str, Any]:
    world = {
        "CONTACTD_DEMO__TIME_SCALE": "0.25",
        "CONTACTD_DEMO__SEED": str(seed),
        "CONTACTD_DEMO__AGENTS": "0",
    }
    pbx, line = _spawn(["-m", "contactd.demo.serve", "--secret", SECRET], world)
    try:
        if line[:1] != ["listening"]:
            raise RuntimeError(f"demo PBX did not start: {line}")
        with tempfile.TemporaryDirectory() as tmp:
            web_port = _free_port()
            daemon, line = _spawn(
                [__file__, "--serve", "--agents", str(agents)],
                {
                    "CONTACTD_GENERAL__DATA_DIR": tmp,
                    "CONTACTD_AMI__PORT": line[1],
                    "CONTACTD_AMI__SECRET": SECRET,
                    "CONTACTD_WEB__PORT": str(web_port),
                    "CONTACTD_AUDIOSOCKET__ENABLED": "false",
                    "CONTACTD_DIALER__WINDOW_START": "00:00:00",
                    "CONTACTD_DIALER__WINDOW_END": "23:59:59",
                    "CONTACTD_DIALER__AGENT_WRAP_S": "2",
                },
            )
            try:
                if line[:1] != ["ready"]:
                    raise RuntimeError(f"daemon did not start: {line}")
                return await measure(line[1], daemon.pid, viewers, window_s, warmup_s, rounds)
            finally:
                _stop(daemon)
    finally:
        _stop(pbx)


# ---- the fan-out's write alone (--writes) ------------------------------------------------
def _write_server(port: int, tabs_wanted: int, window_s: float, rounds: int, ready: Any) -> None:
    """A bare aiohttp server holding `tabs_wanted` SSE streams; it sends 8 frames a second,
    alternating windows of the two ways to write them, and prints its own CPU per frame per
    tab: `response.write` (the writer frames a chunk per tab) and the floor's FloorStream.send
    (the chunk made once, straight into each socket buffer)."""
    from aiohttp import web

    from contactd.web.live import Frame
    from contactd.web.views.floor import FloorStream

    async def run() -> None:
        tabs: list[tuple[web.StreamResponse, FloorStream]] = []
        everyone = asyncio.Event()

        async def events(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b": hello\n\n")
            tabs.append((response, FloorStream(response, request.transport, True)))
            if len(tabs) == tabs_wanted:
                everyone.set()
            await asyncio.Event().wait()
            return response

        app = web.Application()
        app.router.add_get("/e", events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await everyone.wait()
        body = b'event: call\ndata: {"id":"a1","state":"talking","number":"+4930500"}\n\n' * 3
        for number in range(rounds):
            for how in ("response.write", "FloorStream.send"):
                cpu0, wall0, frames = time.process_time(), time.monotonic(), 0
                while time.monotonic() - wall0 < window_s:
                    frame = b": sent %.3f\n\n" % time.time() + body
                    if how == "response.write":
                        for response, _ in tabs:
                            await response.write(frame)
                    else:
                        made = Frame.of(frame)
                        for _, stream in tabs:
                            stream.send(made)
                    frames += 1
                    await asyncio.sleep(1 / 8)  # the frame rate, not synchronisation
                cpu = time.process_time() - cpu0
                print(
                    f"round {number + 1}  {how:18}"
                    f"{1e6 * cpu / (frames * tabs_wanted):8.2f} us CPU per frame per tab",
                    flush=True,
                )
        await runner.cleanup()

    asyncio.run(run())


def writes(tabs: int, window_s: float, rounds: int) -> None:
    import multiprocessing

    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=_write_server, args=(port, tabs, window_s, rounds, ready)
    )
    server.start()

    async def read(stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /e HTTP/1.1\r\nHost: bench\r\n\r\n")
        while not stop.is_set() and await reader.read(65536):
            pass
        writer.close()

    async def readers() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(read(stop)) for _ in range(tabs)]
        await asyncio.to_thread(server.join)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    if not ready.wait(30):
        raise RuntimeError("the write server did not start")
    asyncio.run(readers())
    print(f"load average {os.getloadavg()[0]:.2f}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="15 s windows, 2 with viewers (default 30 s, 3)"
    )
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--window", type=float, default=None, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=None, help="windows with viewers per run")
    parser.add_argument(
        "--writes",
        action="store_true",
        help="only the fan-out's write per tab: response.write against FloorStream.send",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.agents, leads=20_000))
        return
    if args.writes:
        writes(args.viewers, args.window or 8.0, args.rounds or 3)
        return
    window = args.window or (15.0 if args.quick else 30.0)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = 60.0  # the predictive pacer warms up and every agent gets busy (the daemon's CPU
    # still climbs for a minute: windows measured earlier would see a ramp, not a level)
    results = []
    for number, seed in enumerate((1, 2, 3), start=1):
        result = asyncio.run(one_run(args.viewers, args.agents, window, warmup, rounds, seed))
        load = os.getloadavg()
        result["load_avg_1m"] = round(load[0], 2)
        results.append(result)
        print(f"run {number}: " + "  ".join(f"{k} {v}" for k, v in result.items()), flush=True)
    p95 = sorted(r["lag_p95_ms"] for r in results)
    server = sorted(r["server_p95_ms"] for r in results)
    extra = sorted(r["cpu_extra_pct"] for r in results)
    per_push = sorted(r["cpu_extra_per_push_pct"] for r in results)
    per_viewer = sorted(r["cpu_us_per_push_viewer"] for r in results)
    per_frame = sorted(r["cpu_us_per_frame_viewer"] for r in results)
    summary = {
        "runs": results,
        "agents": args.agents,
        "viewers": args.viewers,
        "window_s": window,
        "rounds": rounds,
        "lag_p95_ms_median": statistics.median(p95),
        "lag_p95_ms_worst": p95[-1],
        "server_p95_ms_median": statistics.median(server),
        "server_p95_ms_worst": server[-1],
        "cpu_extra_pct_median": statistics.median(extra),
        "cpu_extra_pct_worst": extra[-1],
        "cpu_extra_per_push_pct_median": statistics.median(per_push),
        "cpu_extra_per_push_pct_worst": per_push[-1],
        "cpu_us_per_push_viewer_median": statistics.median(per_viewer),
        "cpu_us_per_push_viewer_worst": per_viewer[-1],
        "cpu_us_per_frame_viewer_median": statistics.median(per_frame),
        "cpu_us_per_frame_viewer_worst": per_frame[-1],
        "cpu_baseline_pct_median": statistics.median(r["cpu_idle_pct"] for r in results),
        "target": "lag_p95_ms <= 250 and cpu_extra_per_push_pct <= 20 (worst run)",
    }
    summary["met"] = {
        "lag_p95_ms": p95[-1] <= 250,
        "cpu_extra_per_push_pct": per_push[-1] <= 20,
    }
    print(f"{'':24}{'median':>10}{'worst':>10}  target (worst run)")
    print(
        f"{'event->browser p95 ms':24}{summary['lag_p95_ms_median']:>10}{p95[-1]:>10}"
        f"  <= 250 {'met' if summary['met']['lag_p95_ms'] else 'MISSED'}"
    )
    print(f"{'  of it in the daemon':24}{summary['server_p95_ms_median']:>10}{server[-1]:>10}")
    cpu_met = "met" if summary["met"]["cpu_extra_per_push_pct"] else "MISSED"
    print(
        f"{'daemon CPU extra % /push':24}{summary['cpu_extra_per_push_pct_median']:>10}"
        f"{per_push[-1]:>10}  <= +20 {cpu_met}"
    )
    print(f"{'  per second of wall':24}{summary['cpu_extra_pct_median']:>10}{extra[-1]:>10}")
    print(
        f"{'  us per push per viewer':24}{summary['cpu_us_per_push_viewer_median']:>10}"
        f"{per_viewer[-1]:>10}"
    )
    print(
        f"{'  us per frame per viewer':24}{summary['cpu_us_per_frame_viewer_median']:>10}"
        f"{per_frame[-1]:>10}"
    )
    print(
        f"baseline daemon CPU (no viewers) median {summary['cpu_baseline_pct_median']:.1f} %;"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
