"""Benchmark of the pricing engine on a realistic mix of lines, against a bare loop.

Run: ``.venv/bin/python bench/bench_pricing.py [--lines N] [--repeat R]``. Prints JSON
lines: the engine's lines per second, the bare baseline (a pure-Python loop that only
sums billed − BR per line, same number of lines), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.pricing import PricingLine, PricingRequest, RssClass, price
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    args = parser.parse_args()

    reference = load_default_reference()
    contracts = [
        c for path in sorted(EXAMPLES.glob("*.yaml")) for c in read_catalogue(path).contracts
    ]
    requests = _requests(args.lines, seed=7)
    line_count = sum(len(q.lines) for q in requests)
    pairs = [(contracts[i % len(contracts)], q) for i, q in enumerate(requests)]

    best = float("inf")
    total_amc = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        total_amc = 0
        for contract, request in pairs:
            total_amc += price(contract, request, reference).amc_cents
        best = min(best, time.perf_counter() - start)

    flat_lines = [line for q in requests for line in q.lines]
    bare_best = float("inf")
    checksum = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        checksum = 0
        for line in flat_lines:
            checksum += line.billed_cents - line.br_cents
        bare_best = min(bare_best, time.perf_counter() - start)

    engine_rate = line_count / best
    bare_rate = line_count / bare_best
    common = {"lines": line_count, "invoices": len(requests), "python": platform.python_version()}
    print(
        json.dumps(
            {
                "bench": "pricing",
                "metric": "lines_per_second",
                "value": round(engine_rate),
                "seconds": round(best, 4),
                "amc_cents": total_amc,
                **common,
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "pricing_bare",
                "metric": "lines_per_second",
                "value": round(bare_rate),
                "seconds": round(bare_best, 4),
                "checksum": checksum,
                **common,
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "pricing",
                "metric": "bare_over_engine_ratio",
                "value": round(bare_rate / engine_rate, 1),
                **common,
            }
        )
    )


if __name__ == "__main__":
    main()
