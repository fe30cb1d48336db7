"""Operations: scale-out throughput and recovery after `kill -9` (issue 20).

Every daemon is a real `contactd run` process with the production composition root, each
beside its own demo PBX process (contactd/demo: it speaks AMI as Asterisk 22 does); the
campaign is an automated one whose callees all answer, with the simulated world sped up
(time_scale) so that calls are short and the claim-and-record path, not call length, sets
the pace.

1. Attempts claimed and recorded per second: one daemon on SQLite (the embedded default, the
   baseline), one daemon on PostgreSQL, and two daemons on one PostgreSQL sharing the
   campaign. Rate = outcomes stored per second between the first fifth and the last fifth
   of the leads (every attempt claimed, dialled and its outcome recorded; the opening burst
   up to the concurrency caps and the trailing calls left out), read from the database.
   Target: two daemons >= 1.7 x one.
2. Recovery: a daemon dialling a campaign is killed (SIGKILL) while calls are up and started
   again; time from the new process's spawn to its first new attempt stored (the row is
   written just before its Originate). Target <= 5 s.
3. The outbox after an SMSC outage: the daemon's messaging (MessagingService with its
   production retry and reconnect settings, SMPP rate cap [smpp] max_per_second) bound to
   the SMSC peer (scripts/smsc-peer); the peer stops, a backlog of SMS is queued, the peer
   stays away 60 s (--quick: 20 s) and comes back. Drain time: from its return to the last
   message accepted (submit_sm_resp); duplicates: texts the peer received more than once.
   Target: drain <= backlog / cap + 5 s, and 0 duplicates.

    .venv/bin/python bench/ops.py [--quick] [--leads 1500] [--only throughput|recovery|drain]

Needs PostgreSQL's server binaries (Debian postgresql; scripts/install-test-deps installs
them). Three runs of each (--quick: one); median and worst; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from contactd.config import load_settings  # noqa: E402
from contactd.db.bootstrap import open_database  # noqa: E402
from contactd.db.models.calls import CallAttempt  # noqa: E402
from contactd.dialer.campaigns import CampaignAction  # noqa: E402
from contactd.dialer.create import CampaignSpec, create_campaign  # noqa: E402
from contactd.dialer.recovery import change_status  # noqa: E402
from tests.peers.ports import free_port  # noqa: E402
from tests.peers.postgres import PostgresServer  # noqa: E402

SECRET = "bench-ops"
READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 300.0
LOOK_S = 0.1
# Each daemon's [dialer] max_concurrent_calls in the throughput runs: above the calls it
# keeps up at its pace (~0.65 s calls), and small beside the leads, so that the opening
# burst to the cap is over before the measured part begins.
CONCURRENT = 100
DRAIN_BACKLOG = 1000  # SMS queued while the SMSC is away
DRAIN_CAP = 50.0  # [smpp] max_per_second: the drain cannot beat backlog / cap


def start_pbx(time_scale: float) -> tuple[subprocess.Popen[str], int]:
    """A demo PBX process whose callees all answer as people and hear a short message."""
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "CONTACTD_DEMO__ANSWERED_HUMAN": "100", "CONTACTD_DEMO__MACHINE": "0",
           "CONTACTD_DEMO__BUSY": "0", "CONTACTD_DEMO__NO_ANSWER": "0",
           "CONTACTD_DEMO__CONGESTION": "0", "CONTACTD_DEMO__FAILED": "0",
           "CONTACTD_DEMO__TIME_SCALE": str(time_scale)}
    process = subprocess.Popen([sys.executable, "-m", "contactd.demo.serve", "--secret", SECRET],
                               env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != ["listening"]:
        process.kill()
        raise RuntimeError(f"demo PBX did not start: {line}")
    return process, int(line[1])


def write_config(
    folder: Path, node: str, url: str, ami_port: int, concurrent: int, per_second: float = 1000
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contactd.toml"
    path.write_text(f"""
[general]
data_dir = "{folder / 'data'}"
node = "{node}"
log_format = "json"
log_level = "warning"
default_region = "DE"

[database]
url = "{url}"

[web]
port = {free_port()}
secret_key = "{secrets.token_hex(16)}"

[ami]
port = {ami_port}
username = "contactd"
secret = "{SECRET}"
reconnect_min_s = 0.2
reconnect_max_s = 1

[audiosocket]
enabled = false

[dialer]
window_start = "00:00"
window_end = "23:59"
pacing_tick_s = 0.2
ring_timeout_s = 15
max_concurrent_calls = {concurrent}
max_calls_per_second = {per_second}
""", encoding="utf-8")
    return path


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTD_")}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "contactd.cli", "run", "--config",
                                 str(config)], stdout=out, stderr=subprocess.STDOUT,
                                env={**env, "PYTHONPATH": str(ROOT)}, cwd=config.parent)


def web_port(config: Path) -> int:
    return int(config.read_text().split("[web]", 1)[1].split("port = ", 1)[1].split()[0])


async def wait_ready(config: Path, process: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:{web_port(config)}/healthz"

    def ami_up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        except OSError:
            return False
        return bool(body.get("components", {}).get("ami", {}).get("status") == "ok")

    async with asyncio.timeout(READY_TIMEOUT_S):
        while not await asyncio.to_thread(ami_up):
            if process.poll() is not None:
                raise RuntimeError(f"contactd exited {process.returncode}")
            await asyncio.sleep(LOOK_S)


async def until(check: Any, every_s: float = LOOK_S) -> Any:
    """Polls `check()` (another process's database) until it returns something truthy."""
    async with asyncio.timeout(RUN_TIMEOUT_S):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(every_s)


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def make_campaign(config: Path, leads: int) -> None:
    settings = load_settings(config, {})
    async with await open_database(settings) as db:
        await create_campaign(db, settings, CampaignSpec(
            name="bench", mode="automated", message="custom/bench", max_attempts=1),
            numbers=[(str(i), f"+49301{i:07d}") for i in range(leads)])


class Books:
    """One open connection to the shared database, for polling (a new engine per look
    would cost the machine more than the daemons being measured)."""

    def __init__(self, config: Path) -> None:
        self.settings = load_settings(config, {})

    async def __aenter__(self) -> Books:
        self.db = await (await open_database(self.settings, upgrade=False)).__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.__aexit__(None, None, None)

    async def _count(self, column: Any) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count(column))) or 0)

    async def at_least(self, count: int) -> bool:
        """At least `count` attempts stored (claimed)."""
        return await self._count(CallAttempt.id) >= count

    async def recorded(self) -> int:
        """Attempts whose outcome is stored."""
        return await self._count(CallAttempt.ended_at)

    async def all_recorded(self, count: int) -> bool:
        return await self.recorded() >= count

    async def nth_outcome(self, n: int) -> datetime:
        """When the n-th outcome (0-based, in time order) was stored."""
        async with self.db.session() as session:
            found: datetime | None = await session.scalar(
                select(CallAttempt.ended_at).where(CallAttempt.ended_at.is_not(None))
                .order_by(CallAttempt.ended_at).offset(n).limit(1))
        assert found is not None
        return found

    async def first_attempt_after(self, after: datetime) -> datetime | None:
        async with self.db.session() as session:
            found: datetime | None = await session.scalar(
                select(func.min(CallAttempt.created_at)).where(CallAttempt.created_at > after))
        return found

    async def start(self) -> None:
        await change_status(self.db, "bench", CampaignAction.START)


async def throughput(daemons: int, url_of: Any, leads: int, folder: Path) -> dict[str, Any]:
    """Attempts claimed and recorded per second by `daemons` daemons sharing one campaign."""
    pbxes = [start_pbx(time_scale=0.05) for _ in range(daemons)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        url = url_of()
        configs = [write_config(folder / f"node{i}", f"node{i}", url, port, concurrent=CONCURRENT)
                   for i, (_pbx, port) in enumerate(pbxes)]
        await make_campaign(configs[0], leads)
        processes = [spawn(c, c.parent / "daemon.log") for c in configs]
        await asyncio.gather(*(wait_ready(c, p) for c, p in zip(configs, processes, strict=True)))
        async with Books(configs[0]) as books:
            await books.start()
            # Claimed, dialled and recorded, in the steady part of the run: the outcomes
            # stored between the first fifth and the last fifth of the leads. (At the start
            # each daemon dials up to its concurrency cap at once, a burst that says nothing
            # about how many attempts a second it sustains; at the end the last calls trail.)
            await until(lambda: books.all_recorded(leads), 0.25)
            count = await books.recorded()
            low, high = leads // 5, leads - leads // 5
            start, end = await books.nth_outcome(low), await books.nth_outcome(high)
        span = (end - start).total_seconds()
        return {"attempts": count, "span_s": round(span, 3),
                "per_s": round((high - low) / span, 1) if span > 0 else 0.0}
    finally:
        for process in processes:
            stop(process)
        for pbx, _port in pbxes:
            pbx.terminate()
            pbx.wait(30)
            if pbx.stdout is not None:
                pbx.stdout.close()


async def recovery(folder: Path) -> float:
    """Seconds from the restarted daemon's spawn to its first new attempt stored."""
    pbx, port = start_pbx(time_scale=1.0)
    process: subprocess.Popen[bytes] | None = None
    try:
        # Killed with about 5 calls up, under a cap of 20: the restarted daemon may dial at
        # once. (Under a cap its resumed calls fill, its first new Originate waits for one of
        # them to end, which measures call length rather than recovery.)
        config = write_config(folder, "node0", "", port, concurrent=20, per_second=5)
        await make_campaign(config, 500)
        process = spawn(config, folder / "daemon-1.log")
        await wait_ready(config, process)
        async with Books(config) as books:
            await books.start()
            await until(lambda: books.at_least(5))  # calls are up
            process.kill()
            process.wait()
            spawned = datetime.now(UTC)
            process = spawn(config, folder / "daemon-2.log")
            found: datetime = await until(lambda: books.first_attempt_after(spawned))
        return (found - spawned).total_seconds()
    finally:
        if process is not None:
            stop(process)
        pbx.terminate()
        pbx.wait(30)
        if pbx.stdout is not None:
            pbx.stdout.close()


async def drain(outage_s: float, backlog: int, cap: float, folder: Path) -> dict[str, Any]:
    """One outage: the backlog's drain time after the SMSC peer is back, and duplicates."""
    from collections import Counter

    from contactd.db.models import Base
    from contactd.db.session import Database
    from contactd.enums import Channel
    from contactd.messaging.outbox_types import OutboundMessage
    from contactd.messaging.service import MessagingService
    from tests.peers.smsc import start_peer, stop_peer

    peer = start_peer()
    try:
        db = Database(f"sqlite+aiosqlite:///{folder}/drain.db")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        settings = load_settings(None, {"CONTACTD_GENERAL__DATA_DIR": str(folder)})
        settings = settings.model_copy(update={"smpp": peer.settings(max_per_second=cap)})
        async with db, MessagingService(settings, db, None, is_window_open=lambda *_: True) as m:
            assert m.smpp is not None
            smpp = m.smpp
            await asyncio.wait_for(smpp.until_bound(), 30)
            await peer.stop()
            await _polled(lambda: not smpp.connected)
            await m.outbox.enqueue_many([
                OutboundMessage(f"d{i}", Channel.SMS, f"+4915300{i:05d}", f"backlog {i}")
                for i in range(backlog)
            ])
            await asyncio.sleep(outage_s)  # the outage
            held = m.outbox.stats.sent
            await peer.start()
            back = time.monotonic()
            await m.outbox.wait_for(lambda st: st.sent >= backlog, backlog / cap * 4 + 120)
            drain_s = time.monotonic() - back
            failed = m.outbox.stats.failed
        submits = await peer.submits()
        await db.engine.dispose()
    finally:
        stop_peer(peer)
    per_text = Counter(str(x["text"]) for x in submits)
    return {
        "drain_s": round(drain_s, 2),
        "bound_s": round(backlog / cap + 5, 2),
        "duplicates": sum(n - 1 for n in per_text.values()),
        "received": len(per_text),
        "sent_during_outage": held,
        "failed": failed,
    }


async def _polled(check: Any, timeout_s: float = 30.0) -> None:
    """Waits for `check()` (this process's own state) to hold."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - the client has no "unbound" event to wait on
            await asyncio.sleep(LOOK_S)


def summary(values: list[float], *, higher_is_better: bool) -> dict[str, float]:
    worst = min(values) if higher_is_better else max(values)
    return {"median": round(statistics.median(values), 2), "worst": round(worst, 2)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = 1 if args.quick else 3
    leads = args.leads or (600 if args.quick else 1500)
    parts = {args.only} if args.only else {"throughput", "recovery", "drain"}
    figures: dict[str, list[float]] = {"sqlite_1": [], "postgres_1": [], "postgres_2": [],
                                       "recovery_s": []}
    drains: list[dict[str, Any]] = []
    outage_s = 20.0 if args.quick else 60.0
    server = PostgresServer() if "throughput" in parts else None
    if server is not None:
        server.start()
    try:
        for run_no in range(runs if parts != {"drain"} else 0):
            with tempfile.TemporaryDirectory(prefix="contactd-bench-ops-") as tmp:
                root = Path(tmp)

                def new_pg(name: str) -> Any:
                    def make() -> str:
                        assert server is not None
                        server.psql(f"CREATE DATABASE {name}")
                        return server.url(name)
                    return make

                for key, daemons, url_of in (
                        ("sqlite_1", 1, lambda: ""),
                        ("postgres_1", 1, new_pg(f"ops_one_{run_no}")),
                        ("postgres_2", 2, new_pg(f"ops_two_{run_no}"))):
                    if "throughput" not in parts:
                        break
                    result = await throughput(daemons, url_of, leads, root / key)
                    figures[key].append(result["per_s"])
                    print(f"run {run_no + 1}: {key:<11} {result['attempts']:>5} attempts, "
                          f"steady part {result['span_s']:>7.2f} s = {result['per_s']:>7.1f}/s",
                          flush=True)
                if "recovery" in parts:
                    seconds = await recovery(root / "recovery")
                    figures["recovery_s"].append(seconds)
                    print(f"run {run_no + 1}: kill -9 -> first new Originate {seconds:.2f} s",
                          flush=True)
    finally:
        if server is not None:
            server.stop()
    for run_no in range(3 if "drain" in parts else 0):  # three outages, even with --quick
        with tempfile.TemporaryDirectory(prefix="contactd-bench-drain-") as tmp:
            one = await drain(outage_s, DRAIN_BACKLOG, DRAIN_CAP, Path(tmp))
        drains.append(one)
        print(f"run {run_no + 1}: SMSC away {outage_s:.0f} s, {DRAIN_BACKLOG} SMS held "
              f"({one['sent_during_outage']} sent while away, {one['failed']} failed): drained "
              f"in {one['drain_s']} s (bound {one['bound_s']} s), {one['duplicates']} "
              "duplicates at the SMSC", flush=True)
    out: dict[str, Any] = {"runs": runs, "leads": leads, "targets": {"two_over_one": 1.7,
                           "recovery_s": 5.0, "drain_s": "backlog / cap + 5", "duplicates": 0}}
    out["met"] = {}
    if figures["sqlite_1"]:
        ratio = [two / one for two, one in zip(figures["postgres_2"], figures["sqlite_1"],
                                               strict=True)]
        out["attempts_per_s"] = {k: summary(figures[k], higher_is_better=True)
                                 for k in ("sqlite_1", "postgres_1", "postgres_2")}
        out["two_over_one"] = summary(ratio, higher_is_better=True)
        out["met"]["two_over_one"] = out["two_over_one"]["worst"] >= 1.7
    if figures["recovery_s"]:
        out["recovery_s"] = summary(figures["recovery_s"], higher_is_better=False)
        out["met"]["recovery_s"] = out["recovery_s"]["worst"] <= 5.0
    if drains:
        out["drain"] = {
            "outage_s": outage_s, "backlog": DRAIN_BACKLOG, "cap_per_s": DRAIN_CAP,
            "bound_s": drains[0]["bound_s"],
            "drain_s": summary([d["drain_s"] for d in drains], higher_is_better=False),
            "duplicates": max(d["duplicates"] for d in drains),
            "runs": drains,
        }
        out["met"]["drain_s"] = (out["drain"]["drain_s"]["worst"] <= drains[0]["bound_s"]
                                 and all(d["received"] == DRAIN_BACKLOG for d in drains))
        out["met"]["duplicates"] = out["drain"]["duplicates"] == 0
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, fewer leads")
    parser.add_argument("--leads", type=int, default=0, help="leads per throughput run")
    parser.add_argument("--only", choices=("throughput", "recovery", "drain"), default="")
    args = parser.parse_args()
    out = asyncio.run(run(args))
    print()
    print(f"{'figure':<38} {'median':>8} {'worst':>8}  target (worst run)")
    if "attempts_per_s" in out:
        for key, label in (("sqlite_1", "attempts/s, 1 daemon, SQLite (base)"),
                           ("postgres_1", "attempts/s, 1 daemon, PostgreSQL"),
                           ("postgres_2", "attempts/s, 2 daemons, one PostgreSQL")):
            fig = out["attempts_per_s"][key]
            print(f"{label:<38} {fig['median']:>8} {fig['worst']:>8}")
        print(f"{'2 daemons / 1':<38} {out['two_over_one']['median']:>8} "
              f"{out['two_over_one']['worst']:>8}  >= 1.7 {verdict(out, 'two_over_one')}")
    if "recovery_s" in out:
        print(f"{'kill -9 -> first Originate, s':<38} {out['recovery_s']['median']:>8} "
              f"{out['recovery_s']['worst']:>8}  <= 5 {verdict(out, 'recovery_s')}")
    if "drain" in out:
        d = out["drain"]
        print(f"{'outbox drain after the SMSC is back, s':<38} {d['drain_s']['median']:>8} "
              f"{d['drain_s']['worst']:>8}  <= {d['bound_s']} {verdict(out, 'drain_s')}")
        print(f"{'  duplicates at the SMSC':<38} {'':>8} {d['duplicates']:>8}  0 "
              f"{verdict(out, 'duplicates')}")
    print(f"load average (1 min) at the end: {out['load_avg_1m']}")
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(out))


def verdict(out: dict[str, Any], key: str) -> str:
    return "met" if out["met"].get(key) else "MISSED"


if __name__ == "__main__":
    main()
