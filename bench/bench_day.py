"""A day of volume on PostgreSQL: invoice lines adjudicated by two worker processes, then
the day's payment run (one SEPA file, one remittance advice per provider).

Run: ``.venv/bin/python bench/bench_day.py --lines 200000`` (``make bench-day``; the
issue's day is ``--lines 2000000``; ``--lines 20000`` is a smoke run).

On a fresh PostgreSQL database (not timed): the insurer, population, pharmacies and
dentists of ``bench_adjudication`` (each provider with an IBAN) and the same kind of
workload — accepted, reduced, refused lines (unknown person, coverage ended, unknown
act), duplicates and yearly dental ceilings reached — stored as received claims, with
the count of what each line must become. Then, timed:

1. **adjudication**: ``--workers`` processes each run the adjudication job
   (``jobs.adjudication.AdjudicationWorker.run_once``) on the same backlog; they share it
   through ``FOR UPDATE SKIP LOCKED`` and per-beneficiary advisory locks, as ``tierspayant
   work`` processes do. The decisions are then checked in the database against the
   workload's count (lines per status and reason, cents, claim headers, postings);
2. **payment run**: ``services.payments.run_payments`` in a process of its own, so that its
   peak memory (``ru_maxrss``) is the run's: the pain.001 file and one remittance advice
   CSV per paid provider; the net paid must equal the cents the workload accepts;
3. **a PDF on demand**: one provider's remittance advice downloaded as PDF.

Prints one JSON line: lines/s of adjudication (wall time of the workers, from the first
start to the last end), the payment run's wall time and peak RSS, the files written, the
PDF's time, a linear projection to 2 M lines, and ``os.getloadavg()`` after each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.bench_adjudication import check_decisions, seed, store_claims
from tierspayant.app.platform import initialise, open_platform
from tierspayant.config import load_settings
from tierspayant.domain.payments import remittance_id
from tierspayant.jobs.adjudication import AdjudicationWorker
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.payments import download_remittance, run_payments

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
ROOT = Path(__file__).resolve().parents[1]
# The day: a Monday, so that it is a TARGET2 business day and the run pays on it.
CLOCK = datetime(2026, 12, 7, 7, tzinfo=UTC)
PAY_DAY = date(2026, 12, 7)
DAY_LINES = 2_000_000


def _clock() -> datetime:
    return CLOCK


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _admin(statement: str) -> None:
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def child_adjudicate() -> dict[str, Any]:
    """One worker: the adjudication job's run, until the backlog is empty."""
    platform = open_platform(load_settings(), clock=_clock)
    started = time.time()
    done = AdjudicationWorker(platform).run_once()
    ended = time.time()
    platform.close()
    if done is None:
        raise SystemExit("the adjudication job failed (see its log)")
    return {
        "started": started,
        "ended": ended,
        "lines": done.lines,
        "claims": done.claims,
        "accepted_cents": done.accepted_cents,
        "batches": done.batches,
        "deferred": done.deferred,
        "peak_rss_mb": _peak_mb(),
    }


def child_pay(out: Path) -> dict[str, Any]:
    """The day's payment run, then one remittance advice as PDF, on demand."""
    platform = open_platform(load_settings(), clock=_clock)
    before = _peak_mb()
    started = time.perf_counter()
    summary = run_payments(platform, PAY_DAY, out_dir=out)
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    advices = [p for p in summary.files if p.parent.name == "remittances"]
    paid = sorted(int(p.stem.rsplit("-", 1)[1]) for p in advices)
    pdf_seconds = pdf_bytes = None
    if paid:
        principal = Principal(
            id="bench-day",
            kind=PrincipalKind.PROVIDER_USER,
            strength=AuthStrength.AAL2,
            provider_id=paid[0],
        )
        pdf_started = time.perf_counter()
        pdf = download_remittance(platform, principal, remittance_id(PAY_DAY, paid[0]), "pdf")
        pdf_seconds = round(time.perf_counter() - pdf_started, 3)
        pdf_bytes = len(pdf)
        if not pdf.startswith(b"%PDF"):
            raise SystemExit("the remittance advice served as PDF is not a PDF")
    platform.close()
    return {
        "seconds": seconds,
        "providers": summary.providers,
        "transfers": summary.transfers,
        "net_cents": summary.net_cents,
        "remittance_files": len(advices),
        "sepa_files": sum(p.suffix == ".xml" for p in summary.files),
        "waiting_for_iban": len(summary.waiting_for_iban),
        "peak_before_mb": before,
        "peak_rss_mb": peak,
        "pdf_seconds": pdf_seconds,
        "pdf_bytes": pdf_bytes,
    }


def _spawn(kind: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, *extra],
        env={**os.environ, **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"},
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = child.communicate(timeout=6 * 3600)
    if child.returncode != 0:
        raise SystemExit(f"a child process failed ({child.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


def run(lines: int, people: int, pharmacies: int, dentists: int, workers: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-day-"))
    name = f"bench_day_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_SERVER.rstrip("/") + f"/{name}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        env = {"TIERSPAYANT_DATA_DIR": str(workdir / "data"), "TIERSPAYANT_DATABASE_URL": url}
        setup_started = time.perf_counter()
        initialise(load_settings(env)).close()
        platform = open_platform(load_settings(env), clock=_clock)
        seeded = seed(platform, workdir, people, pharmacies, dentists)
        expected = store_claims(platform, seeded, lines)
        platform.close()
        setup_seconds = time.perf_counter() - setup_started

        children = [_spawn("adjudicate", env) for _ in range(workers)]
        done = [_result(child) for child in children]
        adjudication_seconds = max(d["ended"] for d in done) - min(d["started"] for d in done)
        load_adjudication = _load()
        judged = sum(d["lines"] for d in done)
        if judged != lines:
            raise SystemExit(f"{judged} lines adjudicated, {lines} stored")
        platform = open_platform(load_settings(env), clock=_clock)
        check_decisions(platform, expected)
        platform.close()

        paid = _result(_spawn("pay", env, "--out", str(workdir / "out")))
        load_payment = _load()
        if paid["net_cents"] != expected.accepted_cents:
            raise SystemExit(
                f"paid {paid['net_cents']} cents, the workload accepts {expected.accepted_cents}"
            )
        remittances = paid["remittance_files"]
        if remittances != paid["providers"]:
            raise SystemExit(f"{remittances} remittance advices for {paid['providers']} payees")
        rate = lines / adjudication_seconds
        return {
            "bench": "day",
            "engine": "postgres",
            "lines": lines,
            "claims": expected.claims,
            "workers": workers,
            "people": people,
            "providers": pharmacies + dentists,
            "setup_seconds": round(setup_seconds, 1),
            "adjudication_seconds": round(adjudication_seconds, 1),
            "lines_per_s": round(rate),
            "per_worker": [
                {k: d[k] for k in ("lines", "claims", "batches", "deferred", "peak_rss_mb")}
                for d in done
            ],
            "decisions_checked": True,
            "outcomes": expected.as_json()["outcomes"],
            "accepted_cents": expected.accepted_cents,
            "load_after_adjudication": load_adjudication,
            "payment_seconds": round(paid["seconds"], 2),
            "payment_peak_rss_mb": paid["peak_rss_mb"],
            "payment_peak_growth_mb": round(paid["peak_rss_mb"] - paid["peak_before_mb"], 1),
            "payees": paid["providers"],
            "transfers": paid["transfers"],
            "sepa_files": paid["sepa_files"],
            "remittance_files": remittances,
            "paid_cents": paid["net_cents"],
            "pdf_seconds": paid["pdf_seconds"],
            "pdf_bytes": paid["pdf_bytes"],
            "load_after_payment": load_payment,
            "projected_2m_adjudication_minutes": round(DAY_LINES / rate / 60, 1),
            "load": _load(),
        }
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=200_000, help="invoice lines of the day")
    parser.add_argument("--people", type=int, default=50_000, help="beneficiaries enrolled")
    parser.add_argument("--pharmacies", type=int, default=300)
    parser.add_argument("--dentists", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="adjudication processes")
    parser.add_argument("--child", choices=("adjudicate", "pay"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "adjudicate":
        print(json.dumps(child_adjudicate()), flush=True)
        return
    if args.child == "pay":
        print(json.dumps(child_pay(args.out)), flush=True)
        return
    figures = run(args.lines, args.people, args.pharmacies, args.dentists, args.workers)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
