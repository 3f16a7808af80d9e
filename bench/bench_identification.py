"""In-process identification: does an unknown person cost what a known one costs?

Builds the HTTP tests' world on SQLite (two insurers, a few hundred members), then times
``services.identification.identify_detailed`` in one open connection, as the rights check
runs it, for three cards taken in turn within each round (the order rotates, so drift in
the machine's load falls on all three alike): a known person, the same person with a
wrong birth date, and a valid NIR the insurer does not hold. Prints one JSON line per case
(median, 10th and 90th percentiles in microseconds) and a summary line with the relative
gap between unknown and known, and the load average before and after.

Usage: PYTHONPATH=src:. python bench/bench_identification.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from tests.api.world import build_world, close_world
from tests.factories import make_nir

from tierspayant.services.identification import CardData, identify_detailed


class _TempDirs:
    """What ``build_world`` needs of pytest's tmp_path_factory on SQLite."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tp-ident-"))
        self.count = 0

    def mktemp(self, name: str) -> Path:
        self.count += 1
        path = self.root / f"{name}{self.count}"
        path.mkdir()
        return path


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    world = build_world("sqlite", None, _TempDirs(), count=300)  # type: ignore[arg-type]
    try:
        person = next(iter(world.people.values()))[17]
        known = person.card_data()
        wrong_birth = replace(known, birth_date=known.birth_date - timedelta(days=1))
        unknown = replace(known, nir=make_nir(random.Random(7), year=1970, month=5))
        platform = world.platform
        load_before = os.getloadavg()
        with platform.engine.connect() as conn:
            outcomes = {
                "known": identify_detailed(platform, conn, known).found is not None,
                "wrong_birth_date": identify_detailed(platform, conn, wrong_birth).found is None,
                "unknown": identify_detailed(platform, conn, unknown).found is None,
            }
            if not all(outcomes.values()):
                print(json.dumps({"error": "unexpected identification", "outcomes": outcomes}))
                return 1
            cases: dict[str, CardData] = {
                "known": known,
                "wrong_birth_date": wrong_birth,
                "unknown": unknown,
            }
            timings: dict[str, list[float]] = {name: [] for name in cases}
            names = list(cases)
            clock: Callable[[], int] = time.perf_counter_ns
            for _ in range(200):  # warm caches (insurer, keys, canary marks, statements)
                for name in names:
                    identify_detailed(platform, conn, cases[name])
            for round_no in range(args.rounds):
                shift = round_no % len(names)
                for name in names[shift:] + names[:shift]:
                    card = cases[name]
                    start = clock()
                    identify_detailed(platform, conn, card)
                    timings[name].append((clock() - start) / 1000)
        load_after = os.getloadavg()
    finally:
        close_world(world)
    medians = {}
    for name, values in timings.items():
        medians[name] = statistics.median(values)
        print(
            json.dumps(
                {
                    "benchmark": "identification",
                    "case": name,
                    "runs": len(values),
                    "median_us": round(medians[name], 1),
                    "p10_us": round(_percentile(values, 0.1), 1),
                    "p90_us": round(_percentile(values, 0.9), 1),
                }
            )
        )
    gap = (medians["unknown"] - medians["known"]) / medians["known"]
    print(
        json.dumps(
            {
                "benchmark": "identification",
                "summary": "unknown vs known",
                "gap_percent": round(100 * gap, 1),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
