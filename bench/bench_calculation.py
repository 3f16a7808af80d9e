"""Calculations per second through the service (facts read), against the pure engine.

Run: ``.venv/bin/python bench/bench_calculation.py [--calculations N] [--history 20]
[--rounds 10]``.

On a fresh SQLite database: the Tilleuls catalogue, a small population, a pharmacy under
convention, and one person with ``--history`` invoices already adjudicated (so that the
calculation reads a real counter history). Then, in the same run:

- **reserving**: ``services.pricing.calculate`` of new lines each time, over the
  population: everything below plus the engagement on amounts it writes (the person's
  lock, their open reservations read, the guard's count of the structure's reservations
  today, one ``amount_reservations`` row inserted);
- **service**: the same calculation repeated for that person (lines checked, guarded
  lookup, identification, conventions, contract, counter history, engine, audit event;
  its engagement found again and its amounts rewritten, the retry of a lost answer);
- **engine**: ``domain.pricing.price`` on the request the service builds, alone.

The three are interleaved in ``--rounds`` rounds, so that the machine's load weighs on
each alike. Prints one JSON line: the rates, their ratios and the load average.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.bench_adjudication import AMC, fresh, seed
from tierspayant.app.platform import initialise
from tierspayant.config import load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.facts import PricingFacts, pricing_request
from tierspayant.domain.pricing import PricingLine, price
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, submit_claim
from tierspayant.services.identification import CardData
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.services.providers import get_provider
from tierspayant.store import adjudication as facts_store
from tierspayant.store.providers import provider_by_id

RELAXED_GUARD = {
    "no_proof_soft": 1_000_000,
    "no_proof_hard": 1_000_000,
    "unbilled_pending": 1_000_000,
    "unbilled_soft": 1_000_000,
    "unbilled_hard": 1_000_000,
    "miss_soft_percent": 100,
    "miss_hard_percent": 100,
    "principal_per_minute": 10_000_000,
    "structure_per_minute": 10_000_000,
    "global_per_minute": 10_000_000,
    "daily_caps": {"pharmacy": 10_000_000},
    "reservations_soft": 10_000_000,
    "reservations_hard": 10_000_000,
}
LINES = (
    PricingLine("3400930000001", CareDomain.PHAR, "drug_65", 2, 2000, 2000),
    PricingLine("3400930000002", CareDomain.PHAR, "drug_30", 1, 800, 800),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calculations", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-calc-"))
    url, data_dir = fresh("sqlite", workdir)
    try:
        env = {
            "TIERSPAYANT_DATA_DIR": str(data_dir),
            "TIERSPAYANT_DATABASE_URL": url,
            # One person calculated again and again: the guard would (rightly) stop it.
            "TIERSPAYANT_GUARD_POLICY": json.dumps(RELAXED_GUARD),
            # Many new engagements per person (the reserving calculations).
            "TIERSPAYANT_ENGAGEMENT_MAX_OPEN": "50",
        }
        platform = initialise(load_settings(env))
        seeded = seed(platform, workdir, 200)
        insurer_id, providers = seeded.insurer_id, seeded.pharmacies
        ids = [p.id for p in seeded.people if p.coverage_end is None]
        with (workdir / "people.csv").open(encoding="utf-8") as source:
            rows = [r for r in csv.DictReader(source, delimiter=";") if not r["coverage_end"]]
        cards = [
            CardData(AMC, date.fromisoformat(r["birth_date"]), r["nir"], int(r["birth_rank"]))
            for r in rows
        ]
        row, card = rows[0], cards[0]
        with platform.engine.connect() as conn:
            found = provider_by_id(conn, providers[0])
            assert found is not None
            am = found.am_number
        provider = get_provider(platform, am)
        principal = Principal(
            id=f"provider:{am}/client:bench",
            kind=PrincipalKind.PROVIDER_CLIENT,
            strength=AuthStrength.AAL2,
            provider_id=provider.id,
            provider_am_number=am,
            structure=provider.structure,
        )
        today = platform.today()
        for n in range(args.history):
            day = today - timedelta(days=3 * n + 1)
            line = ClaimLine(
                f"34009300{n:05d}", CareDomain.PHAR, "drug_65", 1, day, 1000, 1000, 6500, 550, 350
            )
            content = ClaimContent(f"H-{n}", day, (line,))
            submit_claim(platform, principal, ClaimSubmission(card, content), source="file")
        adjudicate_pending(platform, insurer_amc=AMC)
        request = Calculation(card, today, LINES)
        calculate(platform, principal, request)  # warm caches
        # The engine alone, on the request the service builds from the same facts.
        with platform.engine.connect() as conn:
            histories = facts_store.counter_history(conn, insurer_id, ids)
            history = max(histories.values(), key=len)
            contract = platform.catalogues.contract(conn, insurer_id, row["contract"])
        assert contract is not None
        coverage = Coverage(contract.code, date.fromisoformat(row["coverage_start"]), None)
        facts = PricingFacts(contract, coverage, 40, history=tuple(history))
        engine_request = pricing_request(facts, today, LINES)
        per_round = max(1, args.calculations // args.rounds)
        reserving_s = service_s = engine_s = 0.0
        serial = 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            for _ in range(per_round):
                # New lines, so a new engagement (not the retry of an earlier one).
                serial += 1
                lines = (
                    PricingLine(f"3400931{serial:06d}", CareDomain.PHAR, "drug_65", 1, 900, 900),
                )
                calculate(
                    platform, principal, Calculation(cards[serial % len(cards)], today, lines)
                )
            reserving_s += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(per_round):
                calculate(platform, principal, request)
            service_s += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(per_round * 20):
                price(contract, engine_request, platform.reference)
            engine_s += time.perf_counter() - started
        platform.close()
        done = per_round * args.rounds
        reserving_rate = done / reserving_s
        service_rate = done / service_s
        engine_rate = done * 20 / engine_s
        print(
            json.dumps(
                {
                    "bench": "calculation",
                    "engine": "sqlite",
                    "history_invoices": args.history,
                    "rounds": args.rounds,
                    "reserving_calculations_per_s": round(reserving_rate, 1),
                    "service_calculations_per_s": round(service_rate, 1),
                    "engine_calculations_per_s": round(engine_rate, 1),
                    "engine_over_reserving": round(engine_rate / reserving_rate, 1),
                    "engine_over_service": round(engine_rate / service_rate, 1),
                    "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
                }
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
