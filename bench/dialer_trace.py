"""Trace of the predictive pacer in the simulator of bench/dialer.py, per half hour of one day.

    python bench/dialer_trace.py --seed 2 --agents 10

Prints, at the last pacing decision of each half hour: the calls dialled in it, the calibration
factor, live answers and abandons so far, and the pacer's last forecast (allowed rate, the
governor's rate, the predicted abandon share). The simulation is deterministic per seed.

    python bench/dialer_trace.py --seed 2 --agents 10 --check-forecast 37

also checks the forecast itself: at every 37th decision once the pacer is warm, its expected
abandons among the calls in flight (with those it adds) beside a Monte Carlo of the same calls
in the simulated world (its true answer, talk and wrap-up laws), dialling nothing more.

    python bench/dialer_trace.py --agents 50 --frontier --seeds 1,2,3

asks where the pacer's occupancy is bounded, per seed: the pacer as shipped at several abandon
limits (--limits), the pacer with its calibration frozen at fixed marginal thresholds and no
governor in the way (--thresholds: the open-loop curve the calibration moves along), and the
pacer told exactly when every busy agent will be free (what no real pacer can know), at 3%.
Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from bisect import bisect_right
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dialer

from contactd.dialer.governor import AbandonGovernor
from contactd.dialer.pacing import GRACE_S, PacingSnapshot, PredictivePacer

# The governor's limit for the open-loop runs: wide enough never to bind, so the frozen
# threshold alone decides.
OPEN_LOOP_LIMIT_PCT = 20.0


def talk_left(world: dialer.World, age: float, rng: random.Random) -> float:
    """What is left of a talk that has lasted `age` s, drawn from the world's talk law."""
    if world.talk_dist != "lognormal":
        return rng.expovariate(1.0 / world.talk_mean)  # memoryless
    sigma = 1.0
    mu = math.log(world.talk_mean) - sigma * sigma / 2
    for _ in range(1000):
        talk = rng.lognormvariate(mu, sigma)
        if talk > age:
            return talk - age
    return world.talk_mean  # a talk far past the law's bulk: any long remainder will do


def simulated_abandons(world: dialer.World, snap: Any, new: int, rng: random.Random,
                       runs: int = 400) -> float:
    """Mean abandons among the answers of the calls in `snap` plus `new` calls dialled now,
    dialling nothing more, in `world`: FIFO, an answer waits the grace for an agent."""
    p = world.answer_rate
    total = 0
    for _ in range(runs):
        free_at = [0.0] * snap.free_agents
        free_at += [talk_left(world, age, rng) + world.wrap for age in snap.talking]
        free_at += [max(0.0, world.wrap - age) for age in snap.wrapping]
        answers = [0.0] * snap.waiting
        for age in [*snap.ringing, *([0.0] * new)]:
            # Not resolved by `age`: an answer by the posterior chance, uniform over what is left.
            answer = p * max(0.0, 20.0 - max(3.0, age)) / 17.0
            fail = (1 - p) * max(0.0, 30.0 - max(15.0, age)) / 15.0
            if answer + fail > 0 and rng.random() < answer / (answer + fail):
                answers.append(rng.uniform(max(3.0, age), 20.0) - age)
        free_at.sort()
        for at in sorted(answers):
            if free_at and free_at[0] <= at + GRACE_S:
                free_at.pop(0)
            else:
                total += 1
    return total / runs


class KnownSupplyPacer(PredictivePacer):
    """The shipped pacer, told exactly when each busy agent will be free: its supply side is
    then certain (no talk or wrap-up law, no variance), the demand side unchanged. A reference,
    not a strategy: it shows how much the supply forecast's uncertainty costs."""

    def __init__(self, governor: AbandonGovernor) -> None:
        super().__init__(governor)
        self.free_in: list[float] = []  # seconds until each busy agent is free, sorted

    def _balance(
        self, snap: PacingSnapshot, horizons: list[int], p: float
    ) -> list[tuple[float, float, float, float, float, float]]:
        rows = super()._balance(snap, horizons, p)
        if not self._supply_known:
            return rows
        var = [0.0] * len(horizons)
        for age, n in Counter(round(a) for a in snap.ringing).items():
            ring_var = self._memo["ring"][(age, p)][1]
            var = [x + n * v for x, v in zip(var, ring_var, strict=True)]
        return [(demand, snap.free_agents + bisect_right(self.free_in, h + self.grace_s), v,
                 ringing, shared, own)
                for (demand, _, _, ringing, shared, own), h, v in zip(rows, horizons, var,
                                                                     strict=True)]


class KnownSupply(dialer.Wrapped):
    sees_free_times = True

    def __init__(self, pacer: KnownSupplyPacer) -> None:
        super().__init__("told when agents come free", pacer)
        self.known = pacer

    def agents_free_in(self, seconds: list[float]) -> None:
        self.known.free_in = seconds


def frontier_run(variant: str, value: float, world: dialer.World) -> dict[str, float]:
    """One day of one variant: 'limit' (shipped pacer at that abandon limit, %), 'still'
    (the same without surplus hang-ups), 'threshold' (calibration frozen so the marginal
    call's allowed share is `value`, no hang-ups), 'known' (told when agents come free, at
    that limit, no hang-ups)."""
    strategy: dialer.Strategy
    if variant == "threshold":
        pacer = PredictivePacer(AbandonGovernor(limit_pct=OPEN_LOOP_LIMIT_PCT),
                                calibration_gain=0.0, calibration_gain_max=0.0)
        pacer.calibration = value / pacer.governor.max_rate
        strategy = dialer.Wrapped("fixed threshold", pacer)
    elif variant == "known":
        strategy = KnownSupply(KnownSupplyPacer(AbandonGovernor(limit_pct=value)))
    elif variant == "still":
        strategy = dialer.Wrapped("no hang-ups", PredictivePacer(AbandonGovernor(limit_pct=value)))
    else:
        strategy = dialer.Wrapped("shipped", PredictivePacer(
            AbandonGovernor(limit_pct=value), hangup_after_s=world.hangup_after or None))
    result = dialer.simulate(world, strategy)
    return {"occupancy": round(result.occupancy, 4), "abandon_rate": round(result.rate, 4)}


def frontier(args: argparse.Namespace) -> int:
    seeds = [int(x) for x in args.seeds.split(",") if x]
    variants = ([("limit", float(x)) for x in args.limits.split(",") if x]
                + [("threshold", float(x)) for x in args.thresholds.split(",") if x]
                + [("still", 3.0), ("known", 3.0)])
    worlds = {seed: dialer.World(args.agents, args.answer_rate, args.talk_mean, args.talk_dist,
                                 args.wrap, args.hours, 1, seed) for seed in seeds}
    with ProcessPoolExecutor() as pool:
        jobs = {(v, x, seed): pool.submit(frontier_run, v, x, worlds[seed])
                for v, x in variants for seed in seeds}
        runs = {k: f.result() for k, f in jobs.items()}
    labels = {"limit": "shipped pacer, abandon limit {:g}%",
              "still": "shipped pacer without hang-ups, limit {:g}%",
              "threshold": "calibration frozen: marginal share {:g}",
              "known": "told when agents come free, limit {:g}%"}
    print(f"{args.agents} agents, answer {args.answer_rate:.0%}, talk {args.talk_dist} "
          f"{args.talk_mean:g} s, wrap {args.wrap:g} s, {args.hours:g} h; seeds "
          f"{','.join(map(str, seeds))}")
    header = f"{'variant':<44} {'occupancy mean/worst':>21} {'abandoned mean/worst':>21}"
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {}
    for v, x in variants:
        rs = [runs[(v, x, seed)] for seed in seeds]
        occ = [r["occupancy"] for r in rs]
        rate = [r["abandon_rate"] for r in rs]
        row = {"occupancy_mean": round(sum(occ) / len(occ), 4), "occupancy_worst": min(occ),
               "abandon_mean": round(sum(rate) / len(rate), 4), "abandon_worst": max(rate),
               "seeds": {str(seed): r for seed, r in zip(seeds, rs, strict=True)}}
        figures[f"{v}={x:g}"] = row
        print(f"{labels[v].format(x):<44} {row['occupancy_mean']:>10.1%} /"
              f"{row['occupancy_worst']:>6.1%}   {row['abandon_mean']:>10.2%} /"
              f"{row['abandon_worst']:>6.2%}")
    print(json.dumps({"agents": args.agents, "seeds": seeds, "variants": figures},
                     separators=(",", ":")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--answer-rate", type=float, default=0.25)
    parser.add_argument("--talk-mean", type=float, default=120.0)
    parser.add_argument("--talk-dist", default="exponential")
    parser.add_argument("--wrap", type=float, default=10.0)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--check-forecast", type=int, default=0, metavar="N",
                        help="check the forecast at every N-th warm decision (0: never)")
    parser.add_argument("--frontier", action="store_true",
                        help="occupancy against abandons: shipped, frozen, told the supply")
    parser.add_argument("--seeds", default="1,2,3", help="seeds for --frontier")
    parser.add_argument("--limits", default="3,4,6", help="abandon limits (%%) for --frontier")
    parser.add_argument("--thresholds", default="0.03,0.04,0.05,0.07",
                        help="frozen marginal thresholds for --frontier")
    args = parser.parse_args(argv)
    if args.frontier:
        return frontier(args)
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

    checks = {"decisions": 0, "forecast": 0.0, "simulated": 0.0, "checked": 0}
    check_rng = random.Random(args.seed * 31 + 7)

    def calls_to_dial(snap: Any, now: float) -> int:
        n = int(passed_dial(snap, now))
        if args.check_forecast and pacer.last.warm and pacer.supply_known:
            checks["decisions"] += 1
            if checks["decisions"] % args.check_forecast == 0:
                horizons = list(pacer.last.horizons)
                p = round(pacer._planning_p(), 2)
                forecast, _ = pacer._blocked(pacer._balance(snap, horizons, p),
                                             pacer._new_call(horizons, p), n)
                checks["forecast"] += forecast
                checks["simulated"] += simulated_abandons(world, snap, n, check_rng)
                checks["checked"] += 1
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
    if checks["checked"]:
        print(
            f"forecast check at {checks['checked']} decisions: expected abandons among the "
            f"calls in flight {checks['forecast']:.1f}, simulated {checks['simulated']:.1f} "
            f"(ratio {checks['forecast'] / max(checks['simulated'], 1e-9):.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
