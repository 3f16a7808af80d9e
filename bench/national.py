"""A national data set, streamed to files: 84 insurers, 20 million people, 250,000
providers and a day of rights checks (issue 16, the seed's operator at full size).

Usage:
    python bench/national.py generate --out DIR [--people N] [--insurers N]
        [--providers N] [--checks N] [--miss-percent P] [--workers N] [--seed S]

What it writes under ``DIR``:

- ``insurers.csv``: AMC number, name, kind, demo catalogue file, people (the plan);
- ``catalogue_<amc>.yaml``: the demo catalogue of the insurer's kind, made out to it;
- ``beneficiaries_<amc>.csv``: each insurer's population in the import format
  (``docs/formats/beneficiaries.md``), families included, one file per insurer;
- ``providers.csv``: the providers in the registry format, in the demo's mix of
  professions (pharmacies first);
- ``rights_checks.jsonl``: a day of rights checks, one JSON body of ``POST
  /v1/eligibility`` per line with the provider's AM number, drawn across insurers in
  proportion to their size, with a share of cards of nobody (``"miss": true``);
- ``manifest.json``: the parameters, counts, bytes and timings.

Sizes follow a Zipf law (exponent 1.1): with the defaults the largest insurer holds about
4.4 million people, the three largest about 8 million together, and the smallest about
35,000: a few national groups and a long tail of small mutuelles, as in the market.

Memory stays flat: every file is written as a stream (the providers' AM numbers, kept to
stay distinct, are the only set that grows, with the number of providers). Insurers are
generated in parallel by ``--workers`` processes, the largest first.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import yaml

from tierspayant.demo.builder import (
    ProviderSpec,
    demo_catalogue,
    iter_demo_providers,
    write_providers_csv,
)
from tierspayant.demo.synthetic import synthetic_nirs, write_beneficiaries_csv
from tierspayant.formats.catalogue import parse_catalogue

CATALOGUES = (
    ("mutuelle", "mutuelle-des-tilleuls.yaml"),
    ("prevoyance", "prevoyance-btp-solidaire.yaml"),
    ("assureur", "azur-assurances-sante.yaml"),
)
# Kinds of the French market by number of bodies: mostly mutuelles.
KIND_WEIGHTS = (6, 1, 3)
NAMES = {
    "mutuelle": "Mutuelle",
    "prevoyance": "Institution de prévoyance",
    "assureur": "Assurances santé",
}
ZIPF_EXPONENT = 1.1
DOMAINS_CHECKED = (["PHAR"], ["MED"], ["PHAR", "MED"], ["OPTI"], ["DENT"], ["LABO"], ["AUDI"])


@dataclass(frozen=True)
class InsurerPlan:
    amc_number: str
    name: str
    kind: str
    catalogue: str
    people: int
    seed: int


def plan_insurers(people: int, count: int, seed: int) -> list[InsurerPlan]:
    """``count`` insurers whose sizes follow a Zipf law and add up to ``people``."""
    if count < 1 or people < count:
        raise SystemExit("need at least one insurer and one person per insurer")
    rng = random.Random(seed)
    weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, count + 1)]
    total = sum(weights)
    sizes = [max(1, int(people * w / total)) for w in weights]
    sizes[0] += people - sum(sizes)  # rounding goes to the largest
    kinds = [k for (k, _), w in zip(CATALOGUES, KIND_WEIGHTS, strict=True) for _ in range(w)]
    numbers: set[str] = set()
    plans = []
    for index, size in enumerate(sizes):
        kind = rng.choice(kinds)
        catalogue = next(file for k, file in CATALOGUES if k == kind)
        number = f"{rng.randrange(10_000_000, 99_999_999)}"
        while number in numbers:
            number = f"{rng.randrange(10_000_000, 99_999_999)}"
        numbers.add(number)
        plans.append(
            InsurerPlan(
                amc_number=number,
                name=f"{NAMES[kind]} nationale n° {index + 1}",
                kind=kind,
                catalogue=catalogue,
                people=size,
                seed=seed * 1000 + index,
            )
        )
    return plans


def _contracts(catalogue_file: str) -> list[str]:
    return [c.code for c in parse_catalogue(demo_catalogue(catalogue_file)).contracts]


def _write_insurer(plan: InsurerPlan, out: Path, start: date) -> dict[str, object]:
    started = time.perf_counter()
    path = out / f"beneficiaries_{plan.amc_number}.csv"
    written = write_beneficiaries_csv(
        path, plan.people, seed=plan.seed, contracts=_contracts(plan.catalogue), start=start
    )
    return {
        "amc_number": plan.amc_number,
        "people": written.lines,
        "families": written.families,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _sample_rows(path: Path, every: int, rng: random.Random) -> Iterator[list[str]]:
    """About one row in ``every``, read as plain lines (no CSV quoting in these files)."""
    with path.open(encoding="utf-8") as handle:
        next(handle)  # header
        skip = rng.randrange(every)
        for line in handle:
            if skip:
                skip -= 1
                continue
            skip = rng.randrange(2 * every - 1)  # mean gap ``every``
            yield line.rstrip("\n").split(";")


def write_checks(
    out: Path,
    plans: list[InsurerPlan],
    providers: list[str],
    checks: int,
    miss_percent: int,
    care_date: date,
    seed: int,
) -> dict[str, int]:
    """A day of rights checks drawn across insurers by size, misses mixed in."""
    rng = random.Random(seed)
    people = sum(p.people for p in plans)
    hits_wanted = checks * (100 - miss_percent) // 100
    every = max(1, people // max(1, hits_wanted))
    hits = misses = 0
    path = out / "rights_checks.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for plan in plans:
            sampled = _sample_rows(out / f"beneficiaries_{plan.amc_number}.csv", every, rng)
            # People covered on the day only: the answer for a hit must show a coverage.
            active = (r for r in sampled if not r[10] or date.fromisoformat(r[10]) >= care_date)
            while rows := list(itertools.islice(active, 10_000)):  # flat memory
                share = len(rows) * miss_percent // max(1, 100 - miss_percent)
                nobody = synthetic_nirs(
                    rng.randrange(1 << 30),
                    [(row[6], date.fromisoformat(row[3])) for row in rows[:share]],
                )
                cards: list[tuple[bool, list[str], str]] = [(False, r, r[1]) for r in rows]
                cards += [(True, r, nir) for r, nir in zip(rows, nobody, strict=False)]
                rng.shuffle(cards)
                for miss, row, nir in cards:
                    body = {
                        "card": {
                            "amc_number": plan.amc_number,
                            "nir": nir,
                            "birth_rank": int(row[2]),
                            "birth_date": row[3],
                        },
                        "care_date": care_date.isoformat(),
                        "domains": rng.choice(DOMAINS_CHECKED),
                    }
                    line = {"provider": rng.choice(providers), "miss": miss, "body": body}
                    handle.write(json.dumps(line, separators=(",", ":")) + "\n")
                    misses += miss
                    hits += not miss
    return {"hits": hits, "misses": misses, "bytes": path.stat().st_size}


def generate(args: argparse.Namespace) -> dict[str, object]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = date.fromisoformat(args.file_date)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plans = plan_insurers(args.people, args.insurers, args.seed)
    with (out / "insurers.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["amc_number", "name", "kind", "catalogue", "people"])
        for p in plans:
            writer.writerow([p.amc_number, p.name, p.kind, p.catalogue, p.people])
            # The demo catalogue of the insurer's kind, made out to its AMC number.
            document = demo_catalogue(p.catalogue)
            document["insurer"] = p.amc_number
            document["name"] = p.name
            (out / f"catalogue_{p.amc_number}.yaml").write_text(
                yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
            )

    insurers: list[dict[str, object]] = []
    done_people = 0
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_write_insurer, p, out, start) for p in plans]  # largest first
        for future in futures:
            result = future.result()
            insurers.append(result)
            done_people += int(result["people"])  # type: ignore[call-overload]
            print(
                f"\r{done_people:>12,} personnes écrites ({len(insurers)}/{len(plans)} organismes)",
                end="",
                file=sys.stderr,
                flush=True,
            )
    print(file=sys.stderr)
    timings["beneficiaries"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    am_numbers: list[str] = []
    pharmacies: list[str] = []

    def providers_stream() -> Iterator[ProviderSpec]:
        for spec in iter_demo_providers(args.providers, args.seed):
            am_numbers.append(spec.am_number)
            if spec.category.value == "pharmacy":
                pharmacies.append(spec.am_number)
            yield spec

    write_providers_csv(out / "providers.csv", providers_stream())
    timings["providers"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    checks = write_checks(
        out,
        plans,
        pharmacies or am_numbers,
        args.checks,
        args.miss_percent,
        start,
        args.seed,
    )
    timings["checks"] = time.perf_counter() - t2

    manifest = {
        "bench": "national_generate",
        "people": args.people,
        "insurers": len(plans),
        "largest": plans[0].people,
        "smallest": plans[-1].people,
        "providers": len(am_numbers),
        "rights_checks": checks,
        "bytes": sum(f.stat().st_size for f in out.iterdir() if f.is_file()),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "people_per_second": round(args.people / timings["beneficiaries"]),
        "workers": args.workers,
        "seed": args.seed,
        "file_date": start.isoformat(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "plan": [asdict(p) for p in plans],
        "per_insurer": insurers,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the national data set")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--people", type=int, default=20_000_000)
    gen.add_argument("--insurers", type=int, default=84)
    gen.add_argument("--providers", type=int, default=250_000)
    gen.add_argument("--checks", type=int, default=1_000_000, help="rights checks of the day")
    gen.add_argument("--miss-percent", type=int, default=20)
    gen.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    gen.add_argument("--seed", type=int, default=16)
    gen.add_argument("--file-date", default=date.today().isoformat())
    args = parser.parse_args()
    manifest = generate(args)
    summary = {k: v for k, v in manifest.items() if k not in ("plan", "per_insurer")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
