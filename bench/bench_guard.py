"""The guard's own cost per rights check, in-process: admission then observation.

One check is :meth:`Guard.admit` then :meth:`Guard.observe` with a hit (a new person each
time, a care date named), as the rights check calls them; the store is wrapped in the
:class:`RestoringCounterStore` that production uses, its epoch set. Four cases: the
in-process store and Redis (database ``TIERSPAYANT_BENCH_REDIS_URL``, flushed), each with
and without card proof. Thresholds are those of the HTTP benchmark (no run reaches them).
Rounds are interleaved (the cases' order shuffled each round); the figure is the median
of the rounds. ``--baseline PATH`` also runs the same cases on the guard package found
under PATH (a ``src`` directory of another checkout), in a child process per round, so
the two are measured in the same run.

Usage: PYTHONPATH=src:. python bench/bench_guard.py [--checks N] [--rounds N]
       [--baseline SRC] [--no-redis]
Prints one JSON line per case and round, and a summary line with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

REDIS_URL = os.environ.get("TIERSPAYANT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BIG = 10**9
POLICY = {
    "miss_soft_percent": 100,
    "miss_hard_percent": 100,
    "daily_caps": {"pharmacy": BIG},
    "default_daily_cap": BIG,
    "no_proof_soft": BIG,
    "no_proof_hard": BIG,
    "unbilled_pending": BIG,
    "unbilled_soft": BIG,
    "unbilled_hard": BIG,
    "principal_per_minute": BIG,
    "structure_per_minute": BIG,
    "global_per_minute": BIG,
}
CASES = ("memory/proof", "memory/no-proof", "redis/proof", "redis/no-proof")


class _NoHistory:
    def past_events(self, since: datetime) -> Iterable[object]:
        return ()

    def suspended_principals(self) -> Iterable[str]:
        return ()

    def past_alerts(self, since: datetime) -> Iterable[object]:
        return ()

    def unbilled_events(self, since: datetime) -> Iterable[object]:
        return ()


def measure(case: str, checks: int) -> float:
    """Microseconds per check (admission + observation) of one case, in this process."""
    import redis

    from tierspayant.security import guard as g

    store_name, proof = case.split("/")
    store: g.CounterStore
    if store_name == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        store = g.RedisCounterStore(client)
    else:
        store = g.MemoryCounterStore()
    policy = g.GuardPolicy.from_mapping(POLICY)
    store.restore(g.CounterSnapshot(epoch_key=g.EPOCH_KEY, epoch="bench"))
    clock = lambda: datetime.now(UTC)  # noqa: E731
    restorer = g.Restorer(store, _NoHistory(), policy, clock)  # type: ignore[arg-type]
    guard = g.Guard(g.RestoringCounterStore(store, restorer), policy)
    with_proof = proof == "proof"
    start = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
    care = date(2026, 3, 16)

    def one(i: int) -> None:
        ctx = g.LookupContext(
            "client:bench",
            g.ActorKind.SOFTWARE,
            "750000001",
            "pharmacy",
            with_proof,
            start + timedelta(milliseconds=i),
            care_date=care,
        )
        admission = guard.admit(ctx)
        assert admission.allowed, admission
        guard.observe(ctx, g.LookupOutcome.hit(f"subject-{i}"))

    for i in range(200):  # scripts loaded, connection open
        one(-1000 - i)
    began = time.perf_counter()
    for i in range(checks):
        one(i)
    return (time.perf_counter() - began) / checks * 1e6


def _child(src: str, case: str, checks: int) -> float:
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.getcwd()}")
    out = subprocess.run(
        [sys.executable, __file__, "--one", case, "--checks", str(checks)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="the src directory of the code to compare with")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps({"case": args.one, "us": measure(args.one, args.checks)}))
        return
    cases = [c for c in CASES if not (args.no_redis and c.startswith("redis"))]
    here = os.path.join(os.getcwd(), "src")
    trees = {"this": here} | ({"baseline": args.baseline} if args.baseline else {})
    figures: dict[tuple[str, str], list[float]] = {}
    for rnd in range(args.rounds):
        order = [(tree, case) for tree in trees for case in cases]
        random.shuffle(order)
        for tree, case in order:
            us = _child(trees[tree], case, args.checks)
            figures.setdefault((tree, case), []).append(us)
            print(json.dumps({"round": rnd, "tree": tree, "case": case, "us": round(us, 1)}))
    summary: dict[str, object] = {
        f"{tree}:{case}": round(statistics.median(v), 1) for (tree, case), v in figures.items()
    }
    if args.baseline:
        for case in cases:
            ratios = [
                b / t
                for b, t in zip(figures[("baseline", case)], figures[("this", case)], strict=True)
            ]
            summary[f"speedup:{case}"] = round(statistics.median(ratios), 2)
    with open("/proc/loadavg") as load:
        summary["loadavg"] = load.read().split()[:3]
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
