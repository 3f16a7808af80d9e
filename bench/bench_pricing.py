"""Benchmark of the pricing engine on a realistic mix of lines, against a textbook pricer.

Run: ``.venv/bin/python bench/bench_pricing.py [--lines N] [--rounds R]``. The baseline
(:func:`textbook_amc`) does the same kind of work per line (the family's AMO rate, the
contract's guarantee for the line, the AMC share within the bill) without the
regulation's exceptions. Rounds alternate which runs first; each prints both rates and
their ratio (engine / baseline, the same way round as every other benchmark), and the
summary gives the median of the per-round ratios. Content: the engine's lines are checked
to be balanced (AMO + AMC + patient = billed, none negative).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.pricing import PricingLine, PricingRequest, RssClass, price
from tierspayant.domain.reference import ReferenceRules
from tierspayant.formats.catalogue import read_catalogue
from tierspayant.formats.reference import load_default_reference

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "tierspayant" / "reference" / "demo"
CARE_DATE = date(2026, 3, 16)

# (weight, line factory): pharmacy dominates the real flow, then doctors, labs, nurses.
_MIX: list[tuple[int, Callable[[random.Random], PricingLine]]] = [
    (40, lambda r: PricingLine("PH7", CareDomain.PHAR, "drug_65", r.randint(1, 3), *_same(r, 2))),
    (8, lambda r: PricingLine("PH4", CareDomain.PHAR, "drug_30", 1, *_same(r, 1))),
    (4, lambda r: PricingLine("PH1", CareDomain.PHAR, "drug_100", 1, *_same(r, 3))),
    (12, lambda r: PricingLine("G", CareDomain.MED, "consultation", 1, 3000, 3000)),
    (
        6,
        lambda r: PricingLine(
            "CS", CareDomain.MED, "specialist", 1, r.choice((3000, 5000, 7000)), 3000
        ),
    ),
    (
        2,
        lambda r: PricingLine(
            "G", CareDomain.MED, "consultation", 1, 3000, 3000, in_care_pathway=False
        ),
    ),
    (8, lambda r: PricingLine("B", CareDomain.LABO, "lab_test", 1, *_same(r, 4))),
    (6, lambda r: PricingLine("AMI", CareDomain.AUXM, "nursing", r.randint(1, 3), *_same(r, 1))),
    (
        4,
        lambda r: PricingLine(
            "AMK", CareDomain.AUXM, "physiotherapy", 1, 1800, 1800, exemption=Exemption.ALD
        ),
    ),
    (3, lambda r: PricingLine("ADC", CareDomain.RADIO, "imaging", 1, 4500, 2500)),
    (2, lambda r: PricingLine("HBQK", CareDomain.DENT, "dental_care", 1, 2300, 2300)),
    (
        1,
        lambda r: PricingLine(
            "HBLD", CareDomain.DENT, "dental_prosthesis", 1, 60000, 12000, rss_class=RssClass.B
        ),
    ),
    (
        1,
        lambda r: PricingLine(
            "V01", CareDomain.OPTI, "optics_lens_simple", 1, 15000, 5, rss_class=RssClass.B
        ),
    ),
    (1, lambda r: PricingLine("TAX", CareDomain.TRAN, "transport", 1, *_same(r, 5))),
    (1, lambda r: PricingLine("FJH", CareDomain.HOSP, "hospital_daily_charge", 3, 6000, 6000)),
    (1, lambda r: PricingLine("SF", CareDomain.SAGE, "midwife", 1, 2500, 2500)),
]


def _same(r: random.Random, scale: int) -> tuple[int, int]:
    amount = r.randint(150, 3000) * scale
    return amount, amount


def _requests(lines: int, seed: int) -> list[PricingRequest]:
    """Invoices of 1 to 4 lines, each with its beneficiary facts."""
    r = random.Random(seed)
    weights = [w for w, _ in _MIX]
    factories = [f for _, f in _MIX]
    requests = []
    made = 0
    while made < lines:
        size = min(r.randint(1, 4), lines - made)
        chosen = r.choices(factories, weights, k=size)
        requests.append(
            PricingRequest(
                care_date=CARE_DATE,
                age=r.randint(0, 90),
                coverage_start=date(2024, 1, 1),
                lines=tuple(f(r) for f in chosen),
                optam=r.random() < 0.5,
                counters={"amo.franchise.year": (r.randint(0, 5000), 0)},
            )
        )
        made += size
    return requests


def textbook_amc(
    contract: Contract, request: PricingRequest, rules: ReferenceRules
) -> tuple[int, int]:
    """The baseline: the pricing a textbook gives, the same lookups per line without the
    regulation's exceptions. AMO = BR × the family's AMO rate; the AMC pays its rate of
    BR (or its flat amount, or the actual costs) minus the AMO, within what is left of
    the bill. No franchise, participation, ceiling, 100 % Santé or frequency rule.
    Returns (AMC, AMO) in cents for the request."""
    amc = amo_total = 0
    for line in request.lines:
        family = rules.families[line.family]
        rate = line.amo_rate_bp
        if rate is None:
            rate = rules.amo_rates_bp[family.rate_key]
        amo = line.br_cents * rate // 10_000
        rest = line.billed_cents - amo
        guarantee = contract.guarantee_for(line.domain, line.family, request.age)
        if guarantee is None or rest <= 0:
            pay = 0
        elif guarantee.actual_costs:
            pay = rest
        elif guarantee.flat_cents is not None:
            pay = min(rest, guarantee.flat_cents * line.quantity)
        else:
            share = line.br_cents * (guarantee.rate_for(request.optam) or 0) // 10_000 - amo
            pay = max(0, min(rest, share))
        amc += pay
        amo_total += amo
    return amc, amo_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--repeat", type=int, default=None, help="(old name of --rounds)")
    args = parser.parse_args()
    rounds = args.repeat or args.rounds

    reference = load_default_reference()
    rules = reference.on(CARE_DATE)
    contracts = [
        c for path in sorted(EXAMPLES.glob("*.yaml")) for c in read_catalogue(path).contracts
    ]
    requests = _requests(args.lines, seed=7)
    line_count = sum(len(q.lines) for q in requests)
    pairs = [(contracts[i % len(contracts)], q) for i, q in enumerate(requests)]

    def engine() -> tuple[float, int]:
        start = time.perf_counter()
        total = 0
        for contract, request in pairs:
            total += price(contract, request, reference).amc_cents
        return time.perf_counter() - start, total

    def baseline() -> tuple[float, int]:
        start = time.perf_counter()
        total = 0
        for contract, request in pairs:
            total += textbook_amc(contract, request, rules)[0]
        return time.perf_counter() - start, total

    # Content: every line of the engine's answers is balanced and within its bill.
    wrong = 0
    for contract, request in pairs[:2000]:
        result = price(contract, request, reference)
        for line in result.lines:
            if (
                line.amo_paid_cents + line.amc_cents + line.patient_cents != line.billed_cents
                or min(line.amc_cents, line.patient_cents, line.amo_paid_cents) < 0
            ):
                wrong += 1

    ratios = []
    engine_total = baseline_total = 0
    common = {"lines": line_count, "invoices": len(requests), "python": platform.python_version()}
    for index in range(rounds):
        order = (engine, baseline) if index % 2 == 0 else (baseline, engine)
        timings = {}
        for run in order:
            seconds, total = run()
            timings[run.__name__] = seconds
            if run is engine:
                engine_total = total
            else:
                baseline_total = total
        ratio = timings["baseline"] / timings["engine"]  # engine's rate / baseline's rate
        ratios.append(ratio)
        print(
            json.dumps(
                {
                    "bench": "pricing",
                    "round": index,
                    "engine_lines_per_second": round(line_count / timings["engine"]),
                    "baseline_lines_per_second": round(line_count / timings["baseline"]),
                    "ratio": round(ratio, 3),
                    "load": [round(x, 2) for x in os.getloadavg()],
                    **common,
                }
            )
        )
    print(
        json.dumps(
            {
                "bench": "pricing",
                "summary": True,
                # The engine's rate over the textbook baseline's (below 1: the regulation's
                # rules cost that much more per line), median of the interleaved rounds.
                "ratio": round(statistics.median(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
                "engine_amc_cents": engine_total,
                "baseline_amc_cents": baseline_total,
                "lines_checked": sum(len(q.lines) for _, q in pairs[:2000]),
                "valid": wrong == 0,
                "load": [round(x, 2) for x in os.getloadavg()],
                **common,
            }
        )
    )


if __name__ == "__main__":
    main()
