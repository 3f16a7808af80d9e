"""Where a rights check's CPU goes, control by control, without HTTP (SQLite, the default).

The HTTP benchmark (``bench_eligibility_http``) compares the whole answer with a bare POST;
this one says what the answer is made of. It builds the same data set (30,000 people by
default, 20 % of the cards naming nobody), opens the platform in this process, and runs
rights checks as the lean HTTP handler does, eight in flight (each started, then settled
once its audit event is committed), with nothing of HTTP around them: no parsing, no
token, no log line of the request, no response written.

Each control the check must run is timed in CPU seconds of the thread that runs it
(``time.thread_time``), by wrapping its entry point for the run:

- ``guard``: ``Guard.admit`` and ``Guard.observe`` (rate windows, caps, shares, the
  never-invoiced people, suspensions);
- ``identification``: ``identify_detailed`` (index HMAC, the padded read, decryption,
  canary check, the person's pseudonym);
- ``rights``: the coverage and contract rules for the domains asked;
- ``seal``: the engagement number sealed over the answer;
- ``audit_event``: building and handing over the audit event (the main thread's part);
- ``audit_writer``: the other threads' CPU (the writer chaining and committing events).

Prints one JSON line per round, then a summary with the medians: microseconds per check
for the whole and for each control, and the load average. The HTTP figures to set them
against (a bare POST's CPU per request, the target's budget) are in docs/operations.md.

Usage: PYTHONPATH=. python bench/rights_check_parts.py [--checks N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bench_eligibility_http import environment, misses, prepare
from tierspayant.api.json_body import rights_json
from tierspayant.api.schemas import EligibilityIn, card_data, card_proof
from tierspayant.app.platform import Platform, open_platform
from tierspayant.config import load_settings
from tierspayant.security.guard import core as guard_core
from tierspayant.security.principal import Principal
from tierspayant.services import eligibility, lookup, providers
from tierspayant.services.eligibility import RightsCheck, start_rights_check
from tierspayant.store import audit_writer

IN_FLIGHT = 8


class Clock:
    """CPU seconds of the calling thread spent inside each wrapped control."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.depth = 0

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:  # a control inside another is counted once, by the outer one
                return function(*args, **kwargs)
            self.depth += 1
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.thread_time() - started
                self.depth -= 1

        return timed


@contextmanager
def timed_controls(clock: Clock) -> Iterator[None]:
    """Wrap each control's entry point where the check calls it, for the ``with`` block."""
    places: list[tuple[Any, str, str]] = [
        (guard_core.Guard, "admit", "guard"),
        (guard_core.Guard, "observe", "guard"),
        (lookup, "identify_detailed", "identification"),
        (eligibility, "_rights", "rights"),
        (eligibility, "_engagement", "seal"),
        (audit_writer.AuditWriter, "submit", "audit_event"),
        (audit_writer.AuditWriter, "submit_from_loop", "audit_event"),
    ]
    saved = [(owner, attr, owner.__dict__[attr]) for owner, attr, _ in places]
    try:
        for owner, attr, name in places:
            setattr(owner, attr, clock.wrap(name, owner.__dict__[attr]))
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def run_checks(
    platform: Platform,
    principal: Principal,
    checks: list[tuple[RightsCheck, Any]],
    count: int,
    start_at: int = 0,
) -> int:
    """Run ``count`` checks, eight in flight; returns how many answered someone covered."""
    covered = 0
    done = 0
    index = start_at
    while done < count:
        batch = []
        for _ in range(min(IN_FLIGHT, count - done)):
            check, proof = checks[index % len(checks)]
            index += 1
            batch.append(start_rights_check(platform, principal, check, proof))
        for deferred in batch:
            answer = deferred.settle()
            written = rights_json(answer.care_date, answer.rights, answer.engagement_number)
            if written is None:
                raise SystemExit("an answer the lean writer could not write")
            covered += any(r.covered for r in answer.rights)
        done += len(batch)
    return covered


def one_round(
    platform: Platform, principal: Principal, checks: list[tuple[RightsCheck, Any]], count: int
) -> dict[str, Any]:
    clock = Clock()
    with timed_controls(clock):
        process_started = time.process_time()
        thread_started = time.thread_time()
        covered = run_checks(platform, principal, checks, count)
        main_cpu = time.thread_time() - thread_started
        process_cpu = time.process_time() - process_started
    per = 1e6 / count
    parts = {name: round(seconds * per, 1) for name, seconds in sorted(clock.spent.items())}
    parts["audit_writer"] = round((process_cpu - main_cpu) * per, 1)
    return {
        "cpu_us_per_check": round(process_cpu * per, 1),
        "main_thread_us": round(main_cpu * per, 1),
        "parts_us": parts,
        "covered_share": round(covered / count, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--beneficiaries", type=int, default=30_000)
    parser.add_argument("--checks", type=int, default=20_000, help="checks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--miss-percent", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        token, hits = prepare(data_dir, args.beneficiaries)
        missing = misses(hits, args.miss_percent)
        bodies = hits + missing
        random.Random(5).shuffle(bodies)
        env = environment(data_dir)
        platform = open_platform(load_settings(env))
        try:
            principal = providers.authenticate_token_cached(platform, token)
            checks = []
            for body in bodies:
                model = EligibilityIn.model_validate(body)
                check = RightsCheck(card_data(model.card), model.care_date, tuple(model.domains))
                checks.append((check, card_proof(model.card_proof)))
            run_checks(platform, principal, checks, 2_000)  # warm-up, not counted
            rounds = []
            for number in range(1, args.rounds + 1):
                figures = one_round(platform, principal, checks, args.checks)
                expected = len(hits) / len(bodies)
                if abs(figures["covered_share"] - expected) > 0.05:
                    raise SystemExit(f"covered share {figures['covered_share']} != {expected}")
                row = {"bench": "rights_check_parts", "round": number, **figures}
                row["load"] = [round(x, 2) for x in os.getloadavg()]
                print(json.dumps(row), flush=True)
                rounds.append(figures)
        finally:
            platform.close()
    names = sorted({name for r in rounds for name in r["parts_us"]})
    summary = {
        "bench": "rights_check_parts",
        "summary": True,
        "engine": "sqlite",
        "checks_per_round": args.checks,
        "rounds": args.rounds,
        "miss_share": round(len(missing) / len(bodies), 3),
        "cpu_us_per_check": statistics.median(r["cpu_us_per_check"] for r in rounds),
        "parts_us": {
            n: round(statistics.median(r["parts_us"].get(n, 0.0) for r in rounds), 1) for n in names
        },
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    summary["controls_us"] = round(sum(summary["parts_us"].values()), 1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
