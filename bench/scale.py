"""Scale: concurrent calls contactd's CallService tracks against the demo PBX, and the lag
from an AMI event to its row change committed in the database.

The demo PBX runs as its own process (python -m contactd.demo.serve), so its CPU is
measured apart from contactd's. Every simulated callee answers as a person and hears a
message of --hold seconds (CONTACTD_MODE=message), so calls offered at --rate per second
overlap to about rate x (hold + AMD) at once. contactd's side is the production path:
AmiClient (login filter) -> CallService (tracker, group-commit writer) -> SQLite (WAL).

Lag: for each call event the writer stores (answered, ended), the PBX's own Timestamp of
the AMI event that produced it, to the moment its transaction committed (one machine, one
clock). Target: >= 2,000 concurrent calls with lag p99 <= 100 ms on this 2-core machine.

    .venv/bin/python bench/scale.py [--quick] [--calls 2000] [--rate 200] [--hold 8]
    .venv/bin/python bench/scale.py --demo-start   # `contactd demo` start-up and Ctrl-C

A baseline run at VICIdial's planned 125 active calls per dialer server, then three runs,
each a row of one table with the load average; the median and worst run of p99 and
concurrency; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contactd.ami.client import AmiClient
from contactd.ami.dispatcher import EventDispatcher, RawEvent
from contactd.calls.events import CallEnded, CallEvent
from contactd.calls.service import CallService, OriginateRequest
from contactd.calls.writer import AttemptWriter
from contactd.config import AmiSettings
from contactd.db.models import Base
from contactd.db.session import Database
from contactd.events import EventBus

SECRET = "bench-scale"
MESSAGE_CALL = {"CONTACTD_MODE": "message", "CONTACTD_MESSAGE": "demo-message"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class StampingDispatcher(EventDispatcher):
    """Remembers the PBX Timestamp of the event being dispatched (handlers run inside)."""

    current: float = 0.0

    def dispatch(self, event: RawEvent) -> None:
        try:
            self.current = float(event.get("Timestamp", 0.0))
        except ValueError:
            self.current = time.time()
        super().dispatch(event)


class TimedWriter(AttemptWriter):
    """The service's writer, noting when each applied event's transaction committed."""

    def __init__(self, calls: CallService, dispatcher: StampingDispatcher) -> None:
        super().__init__(calls.repo)
        self._dispatcher = dispatcher
        self._born: dict[int, float] = {}
        self.lags_ms: list[float] = []

    def apply(self, event: CallEvent) -> None:
        self._born[id(event)] = self._dispatcher.current
        super().apply(event)

    async def _write(self, batch: list[Any]) -> None:
        await super()._write(batch)
        now = time.time()
        for item in batch:
            born = self._born.pop(id(item), None)
            if born:
                self.lags_ms.append((now - born) * 1000)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def start_pbx(hold_s: float) -> tuple[subprocess.Popen[str], int]:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "CONTACTD_DEMO__ANSWERED_HUMAN": "100", "CONTACTD_DEMO__MACHINE": "0",
        "CONTACTD_DEMO__BUSY": "0", "CONTACTD_DEMO__NO_ANSWER": "0",
        "CONTACTD_DEMO__CONGESTION": "0", "CONTACTD_DEMO__FAILED": "0",
        "CONTACTD_DEMO__RING_MIN_S": "0.5", "CONTACTD_DEMO__RING_MAX_S": "1.5",
        "CONTACTD_DEMO__MESSAGE_S": str(hold_s),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "contactd.demo.serve", "--secret", SECRET],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != ["listening"]:
        process.kill()
        raise RuntimeError(f"demo PBX did not start: {line}")
    return process, int(line[1])


async def one_run(calls_total: int, rate: float, hold_s: float) -> dict[str, Any]:
    pbx, port = start_pbx(hold_s)
    try:
        return await _measure(pbx.pid, port, calls_total, rate)
    finally:
        pbx.terminate()
        pbx.wait(timeout=30)
        if pbx.stdout is not None:
            pbx.stdout.close()


async def _measure(pbx_pid: int, port: int, calls_total: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/scale.db")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db:
            dispatcher = StampingDispatcher()
            settings = AmiSettings(port=port, secret=SECRET, action_timeout_s=30.0)
            ami = AmiClient(settings, dispatcher=dispatcher)
            bus = EventBus()
            calls = CallService(db, bus, ami)
            writer = TimedWriter(calls, dispatcher)
            calls.writer = writer
            ended = 0
            all_ended = asyncio.Event()

            async def on_ended(_event: CallEnded) -> None:
                nonlocal ended
                ended += 1
                if ended == calls_total:
                    all_ended.set()

            bus.subscribe(CallEnded, on_ended)
            async with ami, calls:
                await ami.wait_connected(10)
                peak = 0
                cpu_self0, cpu_pbx0, wall0 = time.process_time(), cpu_s(pbx_pid), time.time()
                tasks: set[asyncio.Task[str]] = set()
                start = time.monotonic()
                for index in range(calls_total):
                    # Offer at `rate`: the index-th call leaves at start + index / rate.
                    delay = start + index / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    task = asyncio.create_task(calls.originate(OriginateRequest(
                        phone_e164=f"+1555{index:07d}", dial=f"PJSIP/+1555{index:07d}@trunk",
                        ring_timeout_s=25, variables=MESSAGE_CALL,
                    )))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    peak = max(peak, calls.in_flight)
                offered_s = time.monotonic() - start
                while not all_ended.is_set():  # samples concurrency every 50 ms meanwhile
                    peak = max(peak, calls.in_flight)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(all_ended.wait(), 0.05)
                results = await asyncio.gather(*tasks, return_exceptions=True)
                failures = sum(1 for r in results if isinstance(r, BaseException))
                await calls.drain()
                wall = time.time() - wall0
                cpu_self = time.process_time() - cpu_self0
                cpu_pbx = cpu_s(pbx_pid) - cpu_pbx0
            lags = sorted(writer.lags_ms)
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
    return {
        "calls": calls_total, "offered_per_s": round(calls_total / offered_s, 1),
        "peak_concurrent": peak, "ended": ended, "originate_failures": failures,
        "lag_p50_ms": round(q[49], 1), "lag_p99_ms": round(q[98], 1),
        "lag_max_ms": round(lags[-1], 1) if lags else 0.0, "lag_samples": len(lags),
        "wall_s": round(wall, 1),
        "contactd_cpu_pct": round(100 * cpu_self / wall, 1),
        "pbx_cpu_pct": round(100 * cpu_pbx / wall, 1),
    }


COLUMNS = ("calls", "offered_per_s", "peak_concurrent", "ended", "originate_failures",
           "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "wall_s", "contactd_cpu_pct",
           "pbx_cpu_pct", "load_1m")
BASELINE_CONCURRENT = 125  # VICIdial plans 125 active calls per dialer server


def _row(label: str, result: dict[str, Any]) -> str:
    return f"{label:<10}" + "".join(f"{result[c]!s:>{max(len(c), 8) + 1}}" for c in COLUMNS)


def _run(calls_total: int, rate: float, hold_s: float) -> dict[str, Any]:
    result = asyncio.run(one_run(calls_total, rate, hold_s))
    result["load_1m"] = round(os.getloadavg()[0], 2)
    return result


READY_LINE = "contactd demo is running."


def demo_start(folder: Path, port: int) -> dict[str, Any]:
    """`contactd demo` in `folder` (fresh when empty): seconds to its ready line, then to
    its exit after Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "contactd.cli", "demo", "--data-dir", str(folder),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        ready = next((line for line in process.stdout if line.strip() == READY_LINE), None)
        if ready is None:
            raise RuntimeError(f"contactd demo exited ({process.wait()}) before it was ready")
        ready_s = time.monotonic() - started
        process.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        process.wait(timeout=120)
        stop_s = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    model = "vosk_model_path" in (folder / "contactd.toml").read_text()
    return {"ready_s": round(ready_s, 1), "stop_s": round(stop_s, 1), "speech_model": model,
            "load_1m": round(os.getloadavg()[0], 2)}


def bench_demo_start(runs: int) -> None:
    """Start-up of `contactd demo`, fresh folder and again on the kept one, `runs` times."""
    print(f"contactd demo start-up: load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    print(f"{'':<10}{'folder':>8}{'ready_s':>9}{'stop_s':>8}{'model':>7}{'load_1m':>9}")
    rows: dict[str, list[dict[str, Any]]] = {"fresh": [], "kept": []}
    for number in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "contactd-demo"
            for kind in ("fresh", "kept"):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = int(sock.getsockname()[1])
                row = demo_start(folder, port)
                rows[kind].append(row)
                print(f"{'run ' + str(number):<10}{kind:>8}{row['ready_s']:>9}{row['stop_s']:>8}"
                      f"{'yes' if row['speech_model'] else 'no':>7}{row['load_1m']:>9}",
                      flush=True)
    summary: dict[str, Any] = {"runs": rows, "target": "ready_s < 20 with the speech model"}
    for kind, found in rows.items():
        ready = sorted(r["ready_s"] for r in found)
        summary[f"{kind}_ready_s_median"] = statistics.median(ready)
        summary[f"{kind}_ready_s_worst"] = ready[-1]
        summary[f"{kind}_stop_s_median"] = statistics.median(r["stop_s"] for r in found)
    summary["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(f"ready: fresh median {summary['fresh_ready_s_median']} s, worst "
          f"{summary['fresh_ready_s_worst']} s; kept median {summary['kept_ready_s_median']} s,"
          f" worst {summary['kept_ready_s_worst']} s")
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="three small runs (600 calls, 4 s messages) and a small baseline")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="originations per second")
    parser.add_argument("--hold", type=float, default=None, help="seconds of message per call")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo-start", action="store_true",
                        help="measure `contactd demo` start-up and Ctrl-C instead")
    args = parser.parse_args()
    if args.demo_start:
        bench_demo_start(args.runs)
        return
    hold = args.hold or (4.0 if args.quick else 8.0)
    calls_total = args.calls or (600 if args.quick else 4000)
    rate = args.rate or (100.0 if args.quick else 250.0)
    # Each call lasts about ring (1 s) + AMD (2.6 s) + message: offered at `rate`, about
    # rate x that many overlap. The baseline offers VICIdial's 125 at once.
    per_call_s = 1.0 + 2.6 + hold
    base_rate = round(BASELINE_CONCURRENT / per_call_s, 1)
    base_calls = int(base_rate * per_call_s * 2)
    print(f"bench/scale.py: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores; each call ~{per_call_s:.1f} s", flush=True)
    print(f"{'':<10}" + "".join(f"{c:>{max(len(c), 8) + 1}}" for c in COLUMNS), flush=True)
    baseline = _run(base_calls, base_rate, hold)
    print(_row("baseline", baseline), flush=True)
    results = []
    for number in range(1, args.runs + 1):
        result = _run(calls_total, rate, hold)
        results.append(result)
        print(_row(f"run {number}", result), flush=True)
    p99 = sorted(r["lag_p99_ms"] for r in results)
    peaks = sorted(r["peak_concurrent"] for r in results)
    met = peaks[0] >= 2000 and p99[-1] <= 100
    summary = {
        "baseline": baseline,
        "runs": results,
        "lag_p99_ms_median": statistics.median(p99), "lag_p99_ms_worst": p99[-1],
        "peak_concurrent_median": statistics.median(peaks), "peak_concurrent_worst": peaks[0],
        "pbx_cpu_pct_median": statistics.median(r["pbx_cpu_pct"] for r in results),
        "contactd_cpu_pct_median": statistics.median(r["contactd_cpu_pct"] for r in results),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "target": "peak_concurrent >= 2000 and lag_p99_ms <= 100 (worst run)",
        "target_met": met,
    }
    print(f"lag p99 median {summary['lag_p99_ms_median']} ms, worst {p99[-1]} ms "
          f"(baseline at {baseline['peak_concurrent']} calls: {baseline['lag_p99_ms']} ms); "
          f"peak concurrent median {summary['peak_concurrent_median']}, worst {peaks[0]}; "
          f"target {'met' if met else 'NOT met'}"
          + ("" if calls_total >= 2000 else " (too few calls for the target: not --quick)"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
