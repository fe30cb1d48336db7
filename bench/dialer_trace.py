"""Trace of the predictive pacer in the simulator of bench/dialer.py, per half hour of one day.

    python bench/dialer_trace.py --seed 2 --agents 10

Prints, at the last pacing decision of each half hour: the calls dialled in it, the calibration
factor, live answers and abandons so far, and the pacer's last forecast (allowed rate, the
governor's rate, the predicted abandon share). The simulation is deterministic per seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dialer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--answer-rate", type=float, default=0.25)
    parser.add_argument("--talk-mean", type=float, default=120.0)
    parser.add_argument("--talk-dist", default="exponential")
    parser.add_argument("--wrap", type=float, default=10.0)
    parser.add_argument("--hours", type=float, default=8.0)
    args = parser.parse_args(argv)
    world = dialer.World(
        args.agents,
        args.answer_rate,
        args.talk_mean,
        args.talk_dist,
        args.wrap,
        args.hours,
        1,
        args.seed,
    )
    strategy: Any = dialer.predictive(world)
    pacer = strategy.pacer
    rows: dict[int, dict[str, Any]] = {}
    answers = [0, 0]
    passed_answer = strategy.live_answer
    passed_dial = pacer.calls_to_dial

    def live_answer(now: float, *, abandoned: bool) -> None:
        answers[0] += 1
        answers[1] += int(abandoned)
        passed_answer(now, abandoned=abandoned)

    def calls_to_dial(snap: Any, now: float) -> int:
        n = int(passed_dial(snap, now))
        row = rows.setdefault(int(now // 1800), {"dials": 0})
        row["dials"] += n
        row["cal"] = pacer.calibration
        row["answers"] = tuple(answers)
        last = pacer.last
        row["last"] = {
            k: round(getattr(last, k), 4)
            for k in dir(last)
            if not k.startswith("_") and isinstance(getattr(last, k), int | float)
        }
        return n

    strategy.live_answer = live_answer
    strategy.calls_to_dial = calls_to_dial
    result = dialer.simulate(world, strategy)
    for slot in sorted(rows):
        row = rows[slot]
        print(
            f"{slot * 0.5:4.1f} h  dials {row['dials']:4d}  calibration {row['cal']:.2f}  "
            f"live/abandoned {row['answers']}  {row['last']}"
        )
    print(
        f"occupancy {result.occupancy:.1%}  abandoned {result.abandoned}/{result.live}  "
        f"worst 24 h {result.worst_24h:.2%}  {result.extra}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
