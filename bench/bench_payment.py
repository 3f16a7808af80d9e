"""Benchmark of the provider payment run against a raw read-and-write of the same rows.

Run: ``.venv/bin/python bench/bench_payment.py --lines 100000 [--providers 1000]
[--insurers 1] [--engine sqlite|postgres] [--scale]``.

On a fresh database (not timed): ``--insurers`` insurers, ``--providers`` pharmacies with
an IBAN (encrypted by the provider service), and ``--lines`` adjudicated claim lines (one
line per claim, 3.50 € each) spread evenly over them and over the insurers (so that each
provider's transfer nets every insurer's lines: its postings are one per insurer),
inserted in bulk. Then, each in its own
child process so that peak memory (``ru_maxrss``) is the measured part's alone:

- **payment**: ``services.payments.run_payments`` (lease, one INSERT … SELECT and two
  postings per provider, then the pain.001 and one remittance CSV per provider);
- **baseline**: the same rows read by one streamed SELECT ordered by provider, summed per
  provider in Python, and a pain.001 written with one transfer per provider — no lease,
  no ledger, no remittance advice, no IBAN decryption.

Prints one JSON line per size: ``{"bench":"payment","engine":…,"lines":…,"seconds":…,
"lines_per_s":…,"peak_rss_mb":…,"peak_growth_mb":…,"baseline_seconds":…,
"baseline_peak_rss_mb":…,"ratio":…}`` (ratio = baseline seconds ÷ payment seconds;
``peak_growth_mb`` = how far the measured part raised the peak above the process's peak
after start-up and migration check). ``--scale`` runs ``--lines``
and ten times as many, to show that memory stays flat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, create_engine, select, text

from tierspayant.app.platform import Platform, initialise, open_platform
from tierspayant.config import load_settings
from tierspayant.domain.payments import BankParty, Transfer
from tierspayant.formats.sepa import write_credit_transfers
from tierspayant.services.insurers import add_insurer
from tierspayant.services.payments import run_payments
from tierspayant.services.providers import NewProvider, add_provider
from tierspayant.store.claims_tables import claim_lines, claims

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
AMC = "75012345"
PAY_DAY = date(2026, 11, 30)
CLOCK = datetime(2026, 11, 30, 9, tzinfo=UTC)
ADJUDICATED = datetime(2026, 11, 27, 9, tzinfo=UTC)
CHUNK = 20_000


def _luhn_am(seed: int) -> str:
    body = f"755{seed:05d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    """A French IBAN with a right RIB key and right check digits."""
    bank, branch, number = (
        int("".join(rng.choice("0123456789") for _ in range(k))) for k in (5, 5, 11)
    )
    key = 97 - (89 * bank + 15 * branch + 3 * number) % 97
    bban = f"{bank:05d}{branch:05d}{number:011d}{key:02d}"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


def fresh_url(engine_name: str, workdir: Path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{workdir / 'tierspayant.sqlite3'}"
    name = f"bench_pay_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_SERVER.rstrip("/") + f"/{name}"


def drop(url: str) -> None:
    if url.startswith("sqlite"):
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def env_for(url: str, data_dir: Path) -> dict[str, str]:
    return {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}


def seed(platform: Platform, lines: int, provider_count: int, insurer_count: int = 1) -> None:
    """Providers with IBANs, then ``lines`` adjudicated one-line claims, in bulk."""
    rng = random.Random(2026)
    insurer_ids = [
        add_insurer(
            platform, f"{AMC}{k:02d}" if k else AMC, f"Mutuelle {k}", "mutuelle", "bench"
        ).id
        for k in range(insurer_count)
    ]
    ids = [
        add_provider(
            platform,
            NewProvider(_luhn_am(n), "pharmacy", f"Pharmacie {n}", iban=_iban(rng)),
            "bench",
        ).id
        for n in range(provider_count)
    ]
    digest = hashlib.sha256(b"bench").digest()
    for start in range(1, lines + 1, CHUNK):
        numbers = range(start, min(start + CHUNK, lines + 1))
        with platform.engine.begin() as conn:
            conn.execute(
                claims.insert(),
                [
                    {
                        "insurer_id": insurer_ids[n % insurer_count], "id": n,
                        "provider_id": ids[n // insurer_count % provider_count],
                        "invoice_number": f"F{n:09d}", "version": 1, "beneficiary_id": n,
                        "care_date": date(2026, 11, 26), "request_digest": digest,
                        "status": "adjudicated", "source": "file", "received_at": ADJUDICATED,
                        "adjudicated_at": ADJUDICATED, "billed_cents": 1000,
                        "amc_requested_cents": 350, "amc_accepted_cents": 350,
                    }
                    for n in numbers
                ],
            )  # fmt: skip
            conn.execute(
                claim_lines.insert(),
                [
                    {
                        "insurer_id": insurer_ids[n % insurer_count], "claim_id": n, "line_no": 1,
                        "act_code": "PH7",
                        "domain": "PHAR", "quantity": 1, "care_date": date(2026, 11, 26),
                        "billed_cents": 1000, "br_cents": 1000, "amo_rate_bp": 6500,
                        "amo_paid_cents": 650, "amc_requested_cents": 350, "status": "accepted",
                        "amc_accepted_cents": 350, "decided_at": ADJUDICATED,
                    }
                    for n in numbers
                ],
            )  # fmt: skip


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_payment(out: Path) -> dict[str, Any]:
    platform = open_platform(load_settings(), clock=lambda: CLOCK)
    before = _peak_mb()
    started = time.perf_counter()
    summary = run_payments(platform, PAY_DAY, out_dir=out)
    seconds = time.perf_counter() - started
    platform.close()
    return {
        "seconds": seconds,
        "net_cents": summary.net_cents,
        "transfers": summary.transfers,
        "peak_before_mb": before,
    }


def child_baseline(out: Path) -> dict[str, Any]:
    """Read the rows, sum per provider, write a pain.001: the floor for this work."""
    platform = open_platform(load_settings(), clock=lambda: CLOCK)
    before = _peak_mb()
    started = time.perf_counter()
    query = (
        select(claims.c.provider_id, claim_lines.c.amc_accepted_cents)
        .select_from(
            claim_lines.join(
                claims,
                and_(
                    claims.c.insurer_id == claim_lines.c.insurer_id,
                    claims.c.id == claim_lines.c.claim_id,
                ),
            )
        )
        .where(claim_lines.c.status.in_(("accepted", "reduced")))
        .order_by(claims.c.provider_id)
    )
    totals: list[tuple[int, int]] = []  # one entry per provider, not per line
    with platform.engine.connect() as conn:
        current, cents = None, 0
        for provider_id, amount in conn.execution_options(yield_per=10_000).execute(query):
            if provider_id != current and current is not None:
                totals.append((current, cents))
                cents = 0
            current = provider_id
            cents += int(amount)
        if current is not None:
            totals.append((current, cents))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "baseline.xml").open("w", encoding="utf-8") as handle:
        write_credit_transfers(
            handle,
            message_id="BASELINE",
            created=PAY_DAY,
            debtor=BankParty("Op", "FR7630006000011234567890189", "AGRIFRPPXXX", "X"),
            execution_date=PAY_DAY,
            count=len(totals),
            control_cents=sum(c for _, c in totals),
            transfers=(
                Transfer(f"B{p}", c, f"P{p}", "FR7630006000011234567890189", None, "b")
                for p, c in totals
            ),
        )
    seconds = time.perf_counter() - started
    platform.close()
    return {
        "seconds": seconds,
        "net_cents": sum(c for _, c in totals),
        "transfers": len(totals),
        "peak_before_mb": before,
    }


def run_child(kind: str, env: dict[str, str], out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--out", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(
    engine_name: str, lines: int, provider_count: int, insurer_count: int = 1
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pay-") as workdir:
        data_dir = Path(workdir) / "data"
        url = fresh_url(engine_name, Path(workdir))
        try:
            env = env_for(url, data_dir)
            platform = initialise(load_settings(env))
            seed(platform, lines, provider_count, insurer_count)
            platform.close()
            baseline = run_child("baseline", env, Path(workdir) / "baseline")
            payment = run_child("payment", env, Path(workdir) / "out")
        finally:
            drop(url)
    assert payment["net_cents"] == baseline["net_cents"], (payment, baseline)
    return {
        "bench": "payment",
        "engine": engine_name,
        "lines": lines,
        "providers": provider_count,
        "insurers": insurer_count,
        "seconds": round(payment["seconds"], 3),
        "lines_per_s": round(lines / payment["seconds"]),
        "peak_rss_mb": payment["peak_rss_mb"],
        "peak_growth_mb": round(payment["peak_rss_mb"] - payment["peak_before_mb"], 1),
        "baseline_seconds": round(baseline["seconds"], 3),
        "baseline_peak_rss_mb": baseline["peak_rss_mb"],
        "baseline_peak_growth_mb": round(baseline["peak_rss_mb"] - baseline["peak_before_mb"], 1),
        "ratio": round(baseline["seconds"] / payment["seconds"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--providers", type=int, default=1_000)
    parser.add_argument("--insurers", type=int, default=1)
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--scale", action="store_true", help="also run ten times the lines")
    parser.add_argument("--child", choices=("payment", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (child_payment if args.child == "payment" else child_baseline)(args.out)
        print(json.dumps({**result, "peak_rss_mb": _peak_mb()}))
        return
    sizes = [args.lines, args.lines * 10] if args.scale else [args.lines]
    for lines in sizes:
        print(json.dumps(measure(args.engine, lines, args.providers, args.insurers)), flush=True)


if __name__ == "__main__":
    main()
