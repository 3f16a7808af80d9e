"""Benchmark of adjudication against a raw insert of the same decision rows, same run.

Run: ``.venv/bin/python bench/bench_adjudication.py --lines 20000 [--engine both]``.

Per engine, on a fresh database: an insurer with the example catalogue of the Mutuelle
des Tilleuls, a synthetic population enrolled through the enrolment service, a few
pharmacies under convention, and received claims of 1 to 4 drug lines each stored
directly (not timed: intake is not what is measured). Then:

- **adjudication**: ``services.adjudication.adjudicate_pending`` judges every claim (batch
  reads, the pure rules and the pricing engine, ``executemany`` writes of decisions and
  counters, one ledger posting per claim, one audit event per batch, commit per batch);
- **baseline**: the decided line rows, read back, inserted as they are by one
  ``executemany`` into a copy of ``claim_lines`` (same columns and primary key) in the
  same database, in one transaction, right after the adjudication it is compared with.
  Before each timed phase the write-ahead log is written back (a checkpoint), so that
  neither pays for the other's writes.

The machine's speed drifts by tens of percent over a minute (shared hosts), so one
adjudication and one baseline may meet different weather. The database is therefore
snapshotted once the claims are stored, and ``--rounds`` rounds (default 3) each restore
the snapshot, adjudicate it and load the baseline: ``ratio`` is the median of the rounds'
ratios, ``lines_per_s`` and ``baseline_lines_per_s`` the medians of their rates.

``ratio`` = adjudication lines/s ÷ baseline lines/s (target ≥ 0.30). Prints one JSON line
per engine: ``{"bench":"adjudication","engine":…,"lines":…,"lines_per_s":…,
"baseline_lines_per_s":…,"ratio":…}`` plus details and each round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Column, MetaData, Table, create_engine, select, text

from tierspayant.app.platform import Platform, initialise, open_platform
from tierspayant.config import load_settings
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimLine, duplicate_key, near_key
from tierspayant.domain.money import apply_rate
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.insurers import add_insurer, upload_catalogue
from tierspayant.services.providers import NewProvider, add_conventions, add_provider
from tierspayant.store import claims as store
from tierspayant.store.claims_tables import claim_lines
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "src" / "tierspayant" / "reference" / "demo" / "mutuelle-des-tilleuls.yaml"
AMC = "75012345"
PHARMACIES = 4
MONTH = date(2025, 10, 1)
FAMILIES = (("drug_65", 6500), ("drug_30", 3000), ("drug_100", 10_000))


def _am_number(seed: int) -> str:
    """A valid numéro AM (département 75, pharmacy category 4, Luhn key)."""
    body = f"754{seed:05d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def fresh(engine_name: str, workdir: Path) -> tuple[str, Path]:
    data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    if engine_name == "sqlite":
        return f"sqlite:///{data_dir / 'tierspayant.sqlite3'}", data_dir
    name = f"bench_adj_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_SERVER.rstrip("/") + f"/{name}", data_dir


def drop(url: str, data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    if url.startswith("postgresql"):
        admin = create_engine(
            POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def seed(platform: Platform, workdir: Path, people: int) -> tuple[int, list[int], list[int]]:
    """Insurer, catalogue, population and pharmacies; returns ids."""
    insurer = add_insurer(platform, AMC, "Mutuelle des Tilleuls", "mutuelle", "bench")
    with platform.engine.begin() as conn:
        platform.keys.active(conn, insurer_scope(AMC))
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    upload = upload_catalogue(platform, AMC, document, "bench")
    path = workdir / "people.csv"
    write_beneficiaries_csv(path, people, seed=7, contracts=upload.contracts, start=MONTH)
    import_beneficiaries(platform, AMC, path, mode="full", file_date=MONTH, actor="bench")
    providers = []
    for n in range(PHARMACIES):
        am = _am_number(n + 1)
        provider = add_provider(platform, NewProvider(am, "pharmacy", f"Pharmacie {n}"), "bench")
        add_conventions(platform, am, AMC, None, date(2020, 1, 1), "bench")
        providers.append(provider.id)
    with platform.engine.connect() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(beneficiaries.c.id).where(
                    beneficiaries.c.insurer_id == insurer.id,
                    beneficiaries.c.coverage_start <= MONTH,
                    beneficiaries.c.coverage_end.is_(None),
                )
            ).scalars()
        ]
    return insurer.id, providers, ids


def store_claims(
    platform: Platform, insurer_id: int, providers: list[int], people: list[int], lines: int
) -> int:
    """Received claims totalling ``lines`` drug lines, stored directly; returns claims."""
    rng = random.Random(11)
    now = platform.now()
    made = claims_made = 0
    next_id = 1
    batch: list[store.NewClaim] = []
    while made < lines:
        count = min(rng.choice((1, 2, 2, 3, 4)), lines - made)
        person = rng.choice(people)
        provider = rng.choice(providers)
        day = MONTH + timedelta(days=rng.randrange(28))
        chosen = []
        for _ in range(count):
            family, rate = rng.choice(FAMILIES)
            br = rng.randint(150, 3500)
            amo = max(0, apply_rate(br, rate) - 100)
            act = f"34009{rng.randint(10**7, 10**8 - 1)}"
            chosen.append(
                ClaimLine(
                    act,
                    CareDomain.PHAR,
                    family,
                    1,
                    day,
                    br,
                    br,
                    rate,
                    amo,
                    br - apply_rate(br, rate),
                )
            )
        batch.append(
            store.NewClaim(
                insurer_id=insurer_id,
                id=next_id,
                provider_id=provider,
                invoice_number=f"B{next_id:09d}",
                version=1,
                beneficiary_id=person,
                beneficiary_age=40,
                care_date=day,
                agreement_number=None,
                maternity=False,
                request_digest=bytes(32),
                source="file",
                submitted_by="bench",
                received_at=now,
                lines=tuple(chosen),
                duplicate_keys=tuple(
                    duplicate_key(person, ln.act_code, day, provider) for ln in chosen
                ),
                near_keys=tuple(near_key(person, ln.act_code, day) for ln in chosen),
            )
        )
        next_id += 1
        made += count
        claims_made += 1
        if len(batch) >= 2000:
            with platform.engine.begin() as conn:
                store.insert_claims(conn, batch)
            batch.clear()
    if batch:
        with platform.engine.begin() as conn:
            store.insert_claims(conn, batch)
    return claims_made


def baseline(platform: Platform, table: str = "bench_claim_lines") -> tuple[int, float]:
    """Insert the decided rows again, as they are, into a fresh copy of ``claim_lines``
    (one ``executemany`` in one transaction); returns (rows, seconds)."""
    with platform.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(claim_lines))]
    copy_meta = MetaData()
    copy = Table(
        table,
        copy_meta,
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in claim_lines.columns),
    )
    copy_meta.create_all(platform.engine)
    settle(platform)
    started = time.perf_counter()
    with platform.engine.begin() as conn:
        conn.execute(copy.insert(), rows)
    return len(rows), time.perf_counter() - started


def settle(platform: Platform) -> None:
    """Write back what earlier work left in the write-ahead log, so that the timed load
    does not pay for it (SQLite checkpoints its WAL at the next commit past 1,000 pages;
    PostgreSQL at its own pace)."""
    with platform.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.exec_driver_sql("CHECKPOINT")
        conn.commit()


class Snapshot:
    """The database as it is once the claims are stored, restored before each round:
    a file copy for SQLite, a template database for PostgreSQL."""

    def __init__(self, engine_name: str, url: str, workdir: Path) -> None:
        self.engine_name = engine_name
        self.url = url
        self.made: list[str] = []
        if engine_name == "sqlite":
            self.path = Path(url.split("///", 1)[1])
            self.copy = workdir / "snapshot.sqlite3"
            with sqlite3.connect(self.path) as source, sqlite3.connect(self.copy) as target:
                source.backup(target)
        else:
            self.template = url.rsplit("/", 1)[1] + "_snap"
            self._admin(f'CREATE DATABASE "{self.template}" TEMPLATE "{url.rsplit("/", 1)[1]}"')

    def _admin(self, statement: str) -> None:
        admin = create_engine(
            POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(statement))
        admin.dispose()

    def restore(self, round_no: int) -> str:
        """A database in the snapshot's state; returns its URL."""
        if self.engine_name == "sqlite":
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.copy, self.path)
            return self.url
        name = f"{self.template}_r{round_no}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return POSTGRES_SERVER.rstrip("/") + f"/{name}"

    def drop(self) -> None:
        if self.engine_name == "sqlite":
            self.copy.unlink(missing_ok=True)
            return
        for name in [*self.made, self.template]:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def adjudicate_with_workers(settings_env: dict[str, str], workers: int) -> tuple[int, int, int]:
    """Run ``workers`` adjudication processes on the same database until the backlog is
    empty (PostgreSQL: they share it through ``FOR UPDATE SKIP LOCKED``); returns
    (lines, accepted cents, batches) summed over the workers."""
    env = {**os.environ, **settings_env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    children = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    lines = accepted = batches = 0
    for child in children:
        out, _ = child.communicate(timeout=3600)
        if child.returncode != 0:
            raise SystemExit(f"an adjudication worker failed ({child.returncode})")
        done = json.loads(out.strip().splitlines()[-1])
        lines += done["lines"]
        accepted += done["accepted_cents"]
        batches += done["batches"]
    return lines, accepted, batches


def child() -> None:
    """One adjudication worker of :func:`adjudicate_with_workers`."""
    platform = open_platform(load_settings())
    done = adjudicate_pending(platform)
    platform.close()
    out = {"lines": done.lines, "accepted_cents": done.accepted_cents, "batches": done.batches}
    print(json.dumps(out), flush=True)


def run(
    engine_name: str, lines: int, people: int, workers: int = 1, rounds: int = 3
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-adj-"))
    url, data_dir = fresh(engine_name, workdir)
    snapshot: Snapshot | None = None
    try:
        settings_env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
        platform = initialise(load_settings(settings_env))
        insurer_id, providers, ids = seed(platform, workdir, people)
        claims_made = store_claims(platform, insurer_id, providers, ids, lines)
        platform.close()
        snapshot = Snapshot(engine_name, url, workdir)
        measured = []
        for round_no in range(rounds):
            round_env = {**settings_env, "TIERSPAYANT_DATABASE_URL": snapshot.restore(round_no)}
            platform = open_platform(load_settings(round_env))
            settle(platform)
            started = time.perf_counter()
            if workers == 1:
                done = adjudicate_pending(platform)
                judged, accepted_cents, batches = done.lines, done.accepted_cents, done.batches
            else:
                judged, accepted_cents, batches = adjudicate_with_workers(round_env, workers)
            elapsed = time.perf_counter() - started
            assert judged == lines, (judged, lines)
            base_rows, base_elapsed = baseline(platform)
            platform.close()
            measured.append(
                {
                    "lines_per_s": round(lines / elapsed),
                    "baseline_lines_per_s": round(base_rows / base_elapsed),
                    "ratio": round((lines / elapsed) / (base_rows / base_elapsed), 3),
                    "seconds": round(elapsed, 2),
                    "accepted_eur": round(accepted_cents / 100, 2),
                    "batches": batches,
                }
            )
        # Every round judges the same claims: the same money, or the run means nothing.
        assert len({m["accepted_eur"] for m in measured}) == 1, measured
        return {
            "bench": "adjudication",
            "engine": engine_name,
            "lines": lines,
            "lines_per_s": round(statistics.median(m["lines_per_s"] for m in measured)),
            "baseline_lines_per_s": round(
                statistics.median(m["baseline_lines_per_s"] for m in measured)
            ),
            "ratio": statistics.median(m["ratio"] for m in measured),
            "claims": claims_made,
            "seconds": round(statistics.median(m["seconds"] for m in measured), 2),
            "accepted_eur": measured[0]["accepted_eur"],
            "batches": measured[0]["batches"],
            "workers": workers,
            "rounds": measured,
        }
    finally:
        if snapshot is not None:
            snapshot.drop()
        drop(url, data_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=20_000, help="claim lines to adjudicate")
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--people", type=int, default=5_000, help="beneficiaries enrolled")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="adjudication processes sharing the backlog (PostgreSQL only beyond 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of (restore, adjudicate, baseline); figures are their medians",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    engines = ("sqlite", "postgres") if args.engine == "both" else (args.engine,)
    for engine_name in engines:
        # SQLite has one writer: several workers would only queue for it.
        workers = args.workers if engine_name == "postgres" else 1
        figures = run(engine_name, args.lines, args.people, workers, args.rounds)
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
