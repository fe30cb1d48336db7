"""AMI layer throughput: events through contactd's tracker, and sustained originations.

1. Events/s: the recorded sandbox stream (tests/replay/ami/calls.ami), copied with fresh
   attempt ids, fed in 64 KiB reads (a) to panoramisk alone (AMIProtocol parse + Manager
   dispatch to one callback) and (b) to contactd (AmiProtocol → EventDispatcher →
   CallTracker producing domain events). Target: (b) >= 50 % of (a).
2. Originations/s against a real Asterisk 22 sandbox started for this run: the same async
   Originate of 2-s Local-channel calls offered at --rate for --seconds, (a) by bare panoramisk
   (send, count OriginateResponse events) and (b) by contactd's CallService (attempt row
   committed before each Originate, every call followed to CallEnded and stored). Both log in
   as the same AMI user with the same event classes, so manager.conf's `eventfilter` (the
   events contactd subscribes to) thins both streams alike. The offered rate is far above
   what either side can take, so the figure is each side's ceiling: calls / (last Originate
   accepted - first sent); lost = calls with no final outcome. Each side runs --runs times
   (default 3), interleaved: the median and the worst run are printed.
   Target: (b) >= 400/s and >= 50 % of (a), on the median.

    .venv/bin/python bench/ami.py [--quick] [--rate 5000] [--seconds 1] [--runs 3] [--no-asterisk]

Prints a table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from contactd.ami import actions
from contactd.ami.client import AmiClient
from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.service import CallService, OriginateRequest
from contactd.calls.tracker import TRACKED_EVENTS, CallTracker
from contactd.config import AmiSettings
from contactd.db.models import Base
from contactd.db.session import Database
from contactd.enums import AttemptState
from contactd.events import EventBus

REPO = Path(__file__).resolve().parent.parent
TRACE = REPO / "tests" / "replay" / "ami"
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
READ_BYTES = 65536
SECRET = "contactd-bench"
WORLD = "contactd-test-world"
CALLEE = "50002"  # answers, stays 2 s, hangs up (asterisk-config/test/extensions_local.conf)
VARIABLES = {"CONTACTD_AMD": "no", "CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "silence/3"}


# ---- 1. events per second ----------------------------------------------------------------
def stream_copies(copies: int) -> tuple[list[bytes], list[str]]:
    base = (TRACE / "calls.ami").read_bytes()
    ids: dict[str, str] = json.loads((TRACE / "calls.json").read_text())
    parts, all_ids = [], []
    for k in range(copies):
        data = base
        for attempt_id in ids.values():
            fresh = f"{k:08x}" + attempt_id[8:]  # same length: byte-identical framing
            data = data.replace(attempt_id.encode(), fresh.encode())
            all_ids.append(fresh)
        parts.append(data)
    blob = b"".join(parts)
    return [blob[i : i + READ_BYTES] for i in range(0, len(blob), READ_BYTES)], all_ids


def bare_events(chunks: list[bytes]) -> tuple[float, int]:
    manager = Manager(encoding="utf8")
    seen = 0

    def on_event(_manager: Any, _event: Any) -> None:
        nonlocal seen
        seen += 1

    manager.register_event("*", on_event)
    manager.callbacks["FullyBooted"].clear()  # its re-send hook is no part of parsing
    protocol = AMIProtocol()
    protocol.connection_made(None)
    protocol.factory = manager
    protocol.encoding = "utf8"
    started = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
    return time.perf_counter() - started, seen


def contactd_events(chunks: list[bytes], ids: list[str]) -> tuple[float, int, int]:
    client = AmiClient(AmiSettings())
    tracker = CallTracker()
    for attempt_id in ids:
        tracker.watch(attempt_id, started=0.0, expect_amd=True)
    seen = ended = 0

    def on_event(event: Any) -> None:
        nonlocal seen, ended
        seen += 1
        for produced in tracker.feed(event, 0.0):
            ended += isinstance(produced, CallEnded)

    for name in TRACKED_EVENTS:
        client.events.on(name, on_event)
    protocol = client.replay_protocol()
    started = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
    elapsed = time.perf_counter() - started
    return elapsed, client.events.dispatched, ended


# ---- 2. originations per second ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sandbox:
    def __init__(self) -> None:
        self.ami_port = free_port()
        self.env = {
            **os.environ,
            "CONTACTD_ASTERISK_INSTANCE": f"bench-ami-{os.getpid()}",
            "CONTACTD_ASTERISK_AMI_PORT": str(self.ami_port),
            "CONTACTD_ASTERISK_SIP_PORT": str(free_port()),
            "CONTACTD_ASTERISK_AMI_SECRET": SECRET,
        }

    def run(self, command: str) -> None:
        subprocess.run(
            [str(SANDBOX), command], env=self.env, check=True, timeout=900, capture_output=True
        )


def originate_fields(attempt_id: str) -> dict[str, Any]:
    return actions.originate(
        attempt_id,
        f"Local/{CALLEE}@{WORLD}",
        context="contactd-outbound",
        timeout_ms=20000,
        variables=VARIABLES,
    )


async def paced(total: int, rate: float, launch: Any) -> None:
    """Launch `total` coroutines at `rate` per second, in 5-ms ticks (no sleep drift)."""
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            launch(sent)
            sent += 1
        await asyncio.sleep(0.005)


async def wait_idle(port: int) -> None:
    """Wait until the previous run's channels are gone (both runs get an empty Asterisk)."""
    settings = AmiSettings(port=port, secret=SECRET)
    async with AmiClient(settings) as ami:
        await ami.wait_connected(30)
        for _ in range(120):
            if not await ami.core_show_channels():
                return
            await asyncio.sleep(0.5)


async def bare_originate(port: int, total: int, rate: float) -> dict[str, float]:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.0.1",
        port=port,
        username="contactd",
        secret=SECRET,
        encoding="utf8",
        ping_delay=3600,
        ping_interval=3600,
        forgetable_actions=actions.FORGETTABLE_ACTIONS,
        events=AmiSettings().events,  # the classes contactd logs in with
    )
    manager.callbacks["FullyBooted"].clear()  # no re-sending of awaiting actions here
    await manager.connect()
    assert manager.authenticated_future is not None
    await manager.authenticated_future
    responses: Counter[str] = Counter()
    finished = asyncio.Event()

    def on_response(_manager: Any, event: Any) -> None:
        responses[str(event.get("Reason"))] += 1
        if sum(responses.values()) >= total:
            finished.set()

    manager.register_event("OriginateResponse", on_response)
    futures: list[asyncio.Future[Any]] = []
    accepted_at: list[float] = []
    t0 = time.perf_counter()

    def launch(i: int) -> None:
        future = manager.send_action(originate_fields(f"bare-{t0}-{i}"), as_list=False)
        future.add_done_callback(lambda _f: accepted_at.append(time.perf_counter()))
        futures.append(future)

    await paced(total, rate, launch)
    await asyncio.wait_for(asyncio.gather(*futures), 60)
    rate_done = total / (max(accepted_at) - t0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), 60)
    manager.close()
    return {"rate": rate_done, "lost": total - sum(responses.values()), "answered": responses["4"]}


async def contactd_originate(port: int, total: int, rate: float, folder: Path) -> dict[str, float]:
    db = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    bus = EventBus()
    ended: Counter[str] = Counter()
    finished = asyncio.Event()

    def on_end(event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            ended[event.outcome.value] += 1
            if sum(ended.values()) >= total:
                finished.set()

    bus.subscribe(CallEnded, on_end)
    settings = AmiSettings(port=port, secret=SECRET)
    request = OriginateRequest(
        phone_e164="+15550100",
        dial=f"Local/{CALLEE}@{WORLD}",
        context="contactd-outbound",
        ring_timeout_s=20,
        detect_machine=False,
        variables=VARIABLES,
    )
    ami = AmiClient(settings)
    calls = CallService(db, bus, ami)
    async with db, ami, calls:
        await ami.wait_connected(30)
        tasks: set[asyncio.Task[str]] = set()
        accepted_at: list[float] = []
        t0 = time.perf_counter()

        def launch(_i: int) -> None:
            task = asyncio.create_task(calls.originate(request))
            task.add_done_callback(lambda _t: accepted_at.append(time.perf_counter()))
            tasks.add(task)

        await paced(total, rate, launch)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        rate_done = total / (max(accepted_at) - t0)
        failed = [r for r in results if isinstance(r, BaseException)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), 60)
        await calls.drain()
        states = await calls.repo.count_by_state()
    await db.engine.dispose()
    return {
        "rate": rate_done,
        "lost": total - sum(ended.values()),
        "answered": ended["human"],
        "originate_errors": len(failed),
        "rows_ended": states.get(AttemptState.ENDED, 0),
    }


def spread(runs: list[dict[str, float]]) -> dict[str, Any]:
    rates = [r["rate"] for r in runs]
    return {
        "median": statistics.median(rates),
        "worst": min(rates),
        "rates": rates,
        # the worst run's count of each: most lost, fewest answered or stored
        "lost": max(r["lost"] for r in runs),
        "answered": min(r["answered"] for r in runs),
        "originate_errors": max(r.get("originate_errors", 0) for r in runs),
        "rows_ended": min(r.get("rows_ended", 0) for r in runs),
    }


async def originations(rate: float, seconds: float, runs: int) -> dict[str, Any]:
    total = int(rate * seconds)
    sandbox = Sandbox()
    await asyncio.to_thread(sandbox.run, "start")
    bare_runs: list[dict[str, float]] = []
    our_runs: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run in range(runs):  # interleaved: a drift of the shared host hits both sides
                await wait_idle(sandbox.ami_port)
                bare_runs.append(await bare_originate(sandbox.ami_port, total, rate))
                await wait_idle(sandbox.ami_port)
                run_folder = Path(folder) / f"run{run}"
                run_folder.mkdir()
                our_runs.append(await contactd_originate(sandbox.ami_port, total, rate, run_folder))
    finally:
        await asyncio.to_thread(sandbox.run, "stop")
    return {
        "calls": total,
        "offered_per_s": rate,
        "bare": spread(bare_runs),
        "contactd": spread(our_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (CI smoke)")
    parser.add_argument("--rate", type=float, default=None, help="offered originations/s")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--copies", type=int, default=None, help="copies of the trace")
    parser.add_argument("--no-asterisk", action="store_true", help="events part only")
    parser.add_argument("--runs", type=int, default=3, help="origination runs per side")
    args = parser.parse_args()
    copies = args.copies or (200 if args.quick else 1500)
    # Offered far above either side's ceiling, so the figure is the ceiling, not the offer.
    rate = args.rate or (3000.0 if args.quick else 5000.0)
    seconds = args.seconds or (0.25 if args.quick else 1.0)

    chunks, ids = stream_copies(copies)
    bare_s, bare_n = min((bare_events(chunks) for _ in range(3)), key=lambda r: r[0])
    ours_s, ours_n, ended = min(
        (contactd_events(chunks, ids) for _ in range(3)), key=lambda r: r[0]
    )
    assert bare_n == ours_n, (bare_n, ours_n)
    assert ended == len(ids), f"tracker ended {ended} of {len(ids)} calls"
    figures: dict[str, Any] = {
        "events": bare_n,
        "events_per_s_bare": round(bare_n / bare_s),
        "events_per_s_contactd": round(ours_n / ours_s),
        "events_ratio": round(bare_s / ours_s, 3),
    }
    print(f"{'events':<34}{'bare panoramisk':>18}{'contactd tracker':>18}{'ratio':>8}")
    label = f"{bare_n} events, {len(ids)} calls"
    print(
        f"{label:<34}{figures['events_per_s_bare']:>18,}"
        f"{figures['events_per_s_contactd']:>18,}{figures['events_ratio']:>8.2f}"
    )
    if not args.no_asterisk:
        run = asyncio.run(originations(rate, seconds, args.runs))
        bare, ours = run["bare"], run["contactd"]
        figures.update(
            calls=run["calls"],
            offered_per_s=rate,
            runs=args.runs,
            originate_per_s_bare_median=round(bare["median"], 1),
            originate_per_s_bare_worst=round(bare["worst"], 1),
            originate_per_s_contactd_median=round(ours["median"], 1),
            originate_per_s_contactd_worst=round(ours["worst"], 1),
            originate_per_s_bare_runs=[round(r, 1) for r in bare["rates"]],
            originate_per_s_contactd_runs=[round(r, 1) for r in ours["rates"]],
            originate_ratio_median=round(ours["median"] / bare["median"], 3),
            lost_bare=bare["lost"],
            lost_contactd=ours["lost"],
            answered_bare=bare["answered"],
            answered_contactd=ours["answered"],
            originate_errors_contactd=ours["originate_errors"],
            rows_ended_contactd_min=ours["rows_ended"],
        )
        print()
        print(f"{'originations (2-s calls), ceiling':<34}{'bare panoramisk':>18}{'contactd':>18}")
        print(f"{run['calls']} offered at {rate:g}/s, {args.runs} runs per side")
        print(f"{'  median /s':<34}{bare['median']:>18.1f}{ours['median']:>18.1f}")
        print(f"{'  worst /s':<34}{bare['worst']:>18.1f}{ours['worst']:>18.1f}")
        print(f"{'  ratio of medians':<34}{'':>18}{figures['originate_ratio_median']:>18.2f}")
        print(f"{'  lost (worst run)':<34}{bare['lost']:>18}{ours['lost']:>18}")
        print(f"{'  answered (worst run)':<34}{bare['answered']:>18}{ours['answered']:>18}")
    print(json.dumps(figures, separators=(",", ":")))


if __name__ == "__main__":
    main()
