"""Benchmark of adjudication against the fastest raw load of every row it writes, same run.

Run: ``.venv/bin/python bench/bench_adjudication.py --lines 20000 [--engine both]``.

Per engine, on a fresh database (not timed): an insurer with the example catalogue of the
Mutuelle des Tilleuls, a synthetic population enrolled through the enrolment service,
pharmacies and dentists under convention, and received claims stored directly (intake is
not what is measured). The workload (:func:`store_claims`) mixes what a day brings:

- drug lines accepted as asked, and lines asking more than the guarantee (reduced to it);
- lines of an act family the reference does not know (``act.unknown``);
- claims of nobody the card matched and of people whose coverage ended (``rights.none``);
- the same invoice line sent again in a later claim (``duplicate.same_provider``);
- dental implants of one person past the contract's yearly dental ceiling (the last ones
  reduced then refused: ``ceiling.reached``).

The generator counts what each line must become from how it made it (the contract's
guarantees and ceilings as the catalogue states them, not the engine), and after each
adjudication :func:`check_decisions` compares the database with that count: lines per
(status, reason), accepted cents, claim headers, ledger postings. Then:

- **adjudication**: ``services.adjudication.adjudicate_pending`` judges every claim (with
  several workers, each a process started and opened before the clock starts, as the
  long-running ``tierspayant work`` is; their start-up is reported apart);
- **baseline**: every row adjudication wrote — line decisions, claim headers, counters,
  ledger postings and entries, engaged lines, its audit events — read back from the
  adjudicated database and loaded again, with the fastest raw path (binary ``COPY``
  through psycopg on PostgreSQL, the driver's ``executemany`` on SQLite), into copies of
  the real tables with the same indexes and constraints (``LIKE … INCLUDING ALL`` on
  PostgreSQL, the tables' and indexes' own DDL on SQLite), in one transaction.
  Before each timed phase the write-ahead log is written back (a checkpoint), so that
  neither pays for the other's writes.

The machine's speed drifts by tens of percent over a minute (shared hosts). The database
is therefore snapshotted once the claims are stored, and ``--rounds`` rounds (default 3)
each restore the snapshot, adjudicate it and load the baseline: ``ratio`` is the median of
the rounds' ratios, ``lines_per_s`` and ``baseline_lines_per_s`` the medians of their rates.

``ratio`` = adjudication lines/s ÷ baseline lines/s (target ≥ 0.30), the baseline's rate
being the adjudicated lines divided by the time it took to load all their rows. Prints one
JSON line per round and one summary per engine, each with ``os.getloadavg()``:
``{"bench":"adjudication","engine":…,"lines":…,"lines_per_s":…,"baseline_lines_per_s":…,
"ratio":…,"load":[…],"expected":{…}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, create_engine, select, text

from tierspayant.app.platform import Platform, initialise, open_platform
from tierspayant.config import load_settings
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.adjudication import Reason
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import (
    UNKNOWN_BENEFICIARY,
    ClaimLine,
    LineStatus,
    duplicate_key,
    near_key,
)
from tierspayant.domain.money import apply_rate
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.insurers import add_insurer, upload_catalogue
from tierspayant.services.providers import NewProvider, add_conventions, add_provider
from tierspayant.store import claims as store
from tierspayant.store.bulk import fetch
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "src" / "tierspayant" / "reference" / "demo" / "mutuelle-des-tilleuls.yaml"
AMC = "75012345"
PHARMACIES = 4
DENTISTS = 2
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


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    contract: str
    coverage_start: date
    coverage_end: date | None


@dataclass(frozen=True, slots=True)
class Seeded:
    insurer_id: int
    pharmacies: list[int]
    dentists: list[int]
    people: list[Person]


def _iban(rng: random.Random) -> str:
    """A French IBAN with a right RIB key and right check digits."""
    bank, branch, number = (
        int("".join(rng.choice("0123456789") for _ in range(k))) for k in (5, 5, 11)
    )
    key = 97 - (89 * bank + 15 * branch + 3 * number) % 97
    bban = f"{bank:05d}{branch:05d}{number:011d}{key:02d}"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


def seed(
    platform: Platform,
    workdir: Path,
    people: int,
    pharmacies: int = PHARMACIES,
    dentists: int = DENTISTS,
) -> Seeded:
    """Insurer, catalogue, population, pharmacies and dentists (each with an IBAN, so that
    they can be paid) under convention."""
    insurer = add_insurer(platform, AMC, "Mutuelle des Tilleuls", "mutuelle", "bench")
    with platform.engine.begin() as conn:
        platform.keys.active(conn, insurer_scope(AMC))
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    upload = upload_catalogue(platform, AMC, document, "bench")
    path = workdir / "people.csv"
    write_beneficiaries_csv(path, people, seed=7, contracts=upload.contracts, start=MONTH)
    import_beneficiaries(platform, AMC, path, mode="full", file_date=MONTH, actor="bench")
    rng = random.Random(5)
    made: dict[str, list[int]] = {"pharmacy": [], "dentist": []}
    for n in range(pharmacies + dentists):
        category = "pharmacy" if n < pharmacies else "dentist"
        am = _am_number(n + 1)
        name = f"{'Pharmacie' if category == 'pharmacy' else 'Cabinet dentaire'} {n}"
        provider = add_provider(platform, NewProvider(am, category, name, iban=_iban(rng)), "bench")
        add_conventions(platform, am, AMC, None, date(2020, 1, 1), "bench")
        made[category].append(provider.id)
    with platform.engine.connect() as conn:
        found = [
            Person(int(r.id), str(r.contract_code), r.coverage_start, r.coverage_end)
            for r in conn.execute(
                select(
                    beneficiaries.c.id,
                    beneficiaries.c.contract_code,
                    beneficiaries.c.coverage_start,
                    beneficiaries.c.coverage_end,
                )
                .where(beneficiaries.c.insurer_id == insurer.id)
                .order_by(beneficiaries.c.id)
            )
        ]
    return Seeded(insurer.id, made["pharmacy"], made["dentist"], found)


@dataclass
class Expected:
    """What the workload must become, counted by the generator from how it made each line
    (never by running the rules): lines per (status, reason code), cents accepted, and
    the claims the ledger must post (those with an accepted amount)."""

    lines: int = 0
    claims: int = 0
    accepted_cents: int = 0
    posted_claims: int = 0
    outcomes: Counter[tuple[str, str | None]] = field(default_factory=Counter)

    def line(self, status: str, reason: str | None, cents: int) -> int:
        self.lines += 1
        self.accepted_cents += cents
        self.outcomes[(status, reason)] += 1
        return cents

    def as_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "claims": self.claims,
            "accepted_cents": self.accepted_cents,
            "posted_claims": self.posted_claims,
            "outcomes": {
                f"{status}:{reason or '-'}": n
                for (status, reason), n in sorted(
                    self.outcomes.items(), key=lambda item: (item[0][0], item[0][1] or "")
                )
            },
        }


# The catalogue's terms the expected count is made from (mutuelle-des-tilleuls.yaml):
# drugs at 100 % of the BR, AMO included, on both contracts; on EQUILIBRE, dental implants
# paid 150.00 € each, 180 days after joining, within a dental ceiling of 1,000.00 € a
# calendar year.
DRUG_RATE_PERCENT = 100
IMPLANT_FLAT_CENTS = 15_000
DENTAL_CEILING_CENTS = 100_000
IMPLANT_WAITING_DAYS = 180
IMPLANT_CONTRACT = "EQUILIBRE"
IMPLANTS_PER_CLAIM = 8  # 6 paid in full, the 7th reduced to the 100.00 € left, the 8th refused
# Shares of the workload (of claims, then of the lines of an ordinary claim).
SHARE_UNKNOWN_PERSON = 0.02
SHARE_ENDED_COVERAGE = 0.02
SHARE_DUPLICATE = 0.03
SHARE_CEILING = 0.005
SHARE_UNKNOWN_ACT = 0.03
SHARE_REDUCED = 0.07


def _drug(rng: random.Random, act: str, day: date, *, above: bool) -> tuple[ClaimLine, int]:
    """A drug line and the AMC cents it must be granted: the AMO paid exactly BR × rate,
    the AMC asks what is left of the BR (accepted), or ``above`` that, up to what was billed
    over the BR (reduced to the guarantee: BR × 100 % − AMO)."""
    family, rate = rng.choice(FAMILIES)
    br = rng.randint(150, 3500)
    amo = apply_rate(br, rate)
    guarantee = apply_rate(br, DRUG_RATE_PERCENT * 100) - amo
    billed = br + (rng.randint(50, 900) if above else 0)
    asked = billed - amo
    line = ClaimLine(act, CareDomain.PHAR, family, 1, day, br, billed, rate, amo, asked)
    return line, min(asked, guarantee)


def store_claims(
    platform: Platform,
    seeded: Seeded,
    lines: int,
    *,
    seed_value: int = 11,
) -> Expected:
    """Received claims totalling ``lines`` lines, stored directly; returns what the
    adjudication of them must decide."""
    rng = random.Random(seed_value)
    now = platform.now()
    active = [p for p in seeded.people if p.coverage_start <= MONTH and p.coverage_end is None]
    ended = [p for p in seeded.people if p.coverage_end is not None and p.coverage_end < MONTH]
    implant_start = MONTH - timedelta(days=IMPLANT_WAITING_DAYS + 30)
    ceiling_people = [
        p for p in active if p.contract == IMPLANT_CONTRACT and p.coverage_start <= implant_start
    ]
    rng.shuffle(ceiling_people)
    expected = Expected()
    accepted_pool: list[tuple[int, int, ClaimLine]] = []  # (person, provider, line) paid
    acts = 0
    next_id = 1
    batch: list[store.NewClaim] = []

    def act_code() -> str:
        nonlocal acts
        acts += 1
        return f"34009{acts:08d}"  # unique: no line duplicates another by chance

    def add(person: int, provider: int, chosen: list[ClaimLine], cents: int) -> None:
        nonlocal next_id
        batch.append(
            store.NewClaim(
                insurer_id=seeded.insurer_id,
                id=next_id,
                provider_id=provider,
                invoice_number=f"B{next_id:09d}",
                version=1,
                beneficiary_id=person,
                beneficiary_age=40,
                care_date=min(ln.care_date for ln in chosen),
                agreement_number=None,
                maternity=False,
                request_digest=bytes(32),
                source="file",
                submitted_by="bench",
                received_at=now,
                lines=tuple(chosen),
                duplicate_keys=tuple(
                    duplicate_key(person, ln.act_code, ln.care_date, provider) for ln in chosen
                ),
                near_keys=tuple(near_key(person, ln.act_code, ln.care_date) for ln in chosen),
            )
        )
        next_id += 1
        expected.claims += 1
        expected.posted_claims += cents > 0
        if len(batch) >= 2000:
            with platform.engine.begin() as conn:
                store.insert_claims(conn, batch)
            batch.clear()

    rejected = LineStatus.REJECTED.value
    while expected.lines < lines:
        left = lines - expected.lines
        count = min(rng.choice((1, 2, 2, 3, 4)), left)
        day = MONTH + timedelta(days=rng.randrange(28))
        pharmacy = rng.choice(seeded.pharmacies)
        roll = rng.random()
        cut = SHARE_UNKNOWN_PERSON
        if roll < cut:
            drugs = [_drug(rng, act_code(), day, above=False)[0] for _ in range(count)]
            for _ in drugs:
                expected.line(rejected, Reason.RIGHTS_NONE.value, 0)
            add(UNKNOWN_BENEFICIARY, pharmacy, drugs, 0)
            continue
        cut += SHARE_ENDED_COVERAGE
        if roll < cut and ended:
            person = rng.choice(ended)
            drugs = [_drug(rng, act_code(), day, above=False)[0] for _ in range(count)]
            for _ in drugs:
                expected.line(rejected, Reason.RIGHTS_NONE.value, 0)
            add(person.id, pharmacy, drugs, 0)
            continue
        cut += SHARE_DUPLICATE
        if roll < cut and accepted_pool:
            # The same invoice line again, in a claim of its own, after the one it repeats.
            person_id, provider, again = accepted_pool.pop(rng.randrange(len(accepted_pool)))
            expected.line(rejected, Reason.DUPLICATE.value, 0)
            add(person_id, provider, [again], 0)
            continue
        cut += SHARE_CEILING
        if roll < cut and ceiling_people and left >= IMPLANTS_PER_CLAIM and seeded.dentists:
            person = ceiling_people.pop()
            implants = []
            ceiling_left = DENTAL_CEILING_CENTS
            total = 0
            for n in range(IMPLANTS_PER_CLAIM):
                implants.append(
                    ClaimLine(
                        "HBLD724",
                        CareDomain.DENT,
                        "dental_implant",
                        1,
                        MONTH + timedelta(days=n),
                        0,
                        20_000,
                        0,
                        0,
                        IMPLANT_FLAT_CENTS,
                    )
                )
                granted = min(IMPLANT_FLAT_CENTS, ceiling_left)
                ceiling_left -= granted
                if granted == IMPLANT_FLAT_CENTS:
                    total += expected.line(LineStatus.ACCEPTED.value, None, granted)
                elif granted > 0:
                    status = LineStatus.REDUCED.value
                    total += expected.line(status, Reason.CEILING_REACHED.value, granted)
                else:
                    expected.line(rejected, Reason.CEILING_REACHED.value, 0)
            add(person.id, rng.choice(seeded.dentists), implants, total)
            continue
        person = rng.choice(active)
        chosen = []
        total = 0
        for _ in range(count):
            kind = rng.random()
            if kind < SHARE_UNKNOWN_ACT:
                line, _ = _drug(rng, act_code(), day, above=False)
                line = replace(line, family="drug_unlisted")
                chosen.append(line)
                expected.line(rejected, Reason.ACT_UNKNOWN.value, 0)
                continue
            above = kind < SHARE_UNKNOWN_ACT + SHARE_REDUCED
            line, granted = _drug(rng, act_code(), day, above=above)
            chosen.append(line)
            if above:
                # Reduced to the guarantee; refused when there is none left (a drug the
                # AMO pays in full leaves nothing of the BR to the AMC).
                status = (LineStatus.REDUCED if granted > 0 else LineStatus.REJECTED).value
                reason = Reason.ABOVE_GUARANTEE.value
            else:
                status, reason = LineStatus.ACCEPTED.value, None
                if len(accepted_pool) < 10_000:
                    accepted_pool.append((person.id, pharmacy, line))
            total += expected.line(status, reason, granted)
        add(person.id, pharmacy, chosen, total)
    if batch:
        with platform.engine.begin() as conn:
            store.insert_claims(conn, batch)
    return expected


def check_decisions(platform: Platform, expected: Expected) -> dict[str, Any]:
    """Compare the database with the generator's count; raise on any difference."""
    with platform.engine.connect() as conn:
        found: Counter[tuple[str, str | None]] = Counter()
        cents = 0
        for status, reason, n, total in conn.exec_driver_sql(
            "SELECT status, reason_code, count(*), coalesce(sum(amc_accepted_cents), 0)"
            " FROM claim_lines GROUP BY status, reason_code"
        ):
            found[(str(status), None if reason is None else str(reason))] = int(n)
            cents += int(total)
        headers = conn.exec_driver_sql(
            "SELECT count(*), coalesce(sum(amc_accepted_cents), 0) FROM claims"
            " WHERE status = 'adjudicated'"
        ).one()
        posted = conn.exec_driver_sql(
            "SELECT count(*), coalesce(sum(total_cents), 0) FROM ledger_postings"
            " WHERE journal = 'adjudication'"
        ).one()
    problems = []
    if found != expected.outcomes:
        keys = sorted(set(found) | set(expected.outcomes), key=lambda k: (k[0], k[1] or ""))
        problems += [
            f"{status}/{reason}: {found[(status, reason)]} in the database,"
            f" {expected.outcomes[(status, reason)]} expected"
            for status, reason in keys
            if found[(status, reason)] != expected.outcomes[(status, reason)]
        ]
    if cents != expected.accepted_cents:
        problems.append(f"lines accepted {cents} cents, expected {expected.accepted_cents}")
    if (int(headers[0]), int(headers[1])) != (expected.claims, expected.accepted_cents):
        problems.append(
            f"claims adjudicated {tuple(headers)}, expected"
            f" {(expected.claims, expected.accepted_cents)}"
        )
    if (int(posted[0]), int(posted[1])) != (expected.posted_claims, expected.accepted_cents):
        problems.append(
            f"adjudication postings {tuple(posted)}, expected"
            f" {(expected.posted_claims, expected.accepted_cents)}"
        )
    if problems:
        raise SystemExit("decisions differ from the workload's count:\n  " + "\n  ".join(problems))
    return {"checked": True, "accepted_cents": cents, "lines": sum(found.values())}


# Every table adjudication writes, and which of its rows it wrote (the database holds
# nothing else of these tables but the claims, which are all judged).
WRITTEN: tuple[tuple[str, str], ...] = (
    ("claims", ""),
    ("claim_lines", ""),
    ("benefit_counters", ""),
    ("engaged_lines", ""),
    ("ledger_postings", ""),
    ("ledger_entries", ""),
    ("audit_events", " WHERE action = 'claims.adjudicate'"),
)


def _copy_tables_sqlite(conn: Connection) -> None:
    """``bench_<table>``: each table of :data:`WRITTEN` made again from its own DDL, with
    its indexes."""
    for table, _ in WRITTEN:
        copy = f"bench_{table}"
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {copy}")
        ddl = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).scalar_one()
        conn.exec_driver_sql(
            re.sub(rf'^CREATE TABLE "?{table}"?', f"CREATE TABLE {copy}", str(ddl), count=1)
        )
        for name, sql in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL",
            (table,),
        ).all():
            conn.exec_driver_sql(
                re.sub(
                    rf'INDEX "?{name}"? ON "?{table}"?',
                    f"INDEX bench_{name} ON {copy}",
                    str(sql),
                    count=1,
                )
            )


def baseline(platform: Platform) -> tuple[dict[str, int], float]:
    """Load every row adjudication wrote again, as it is, into copies of its tables with
    the same indexes, by the fastest raw path, in one transaction; returns (rows per
    table, seconds)."""
    loads: list[tuple[str, list[tuple[Any, ...]], list[int]]] = []
    with platform.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if not postgres:
            _copy_tables_sqlite(conn)
        for table, where in WRITTEN:
            copy = f"bench_{table}"
            if postgres:
                conn.exec_driver_sql(
                    f"DROP TABLE IF EXISTS {copy}; CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)"
                )
                types = [
                    int(oid)
                    for (oid,) in fetch(
                        conn,
                        "SELECT atttypid FROM pg_attribute WHERE attrelid = %s::regclass"
                        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        (table,),
                    )
                ]
            else:
                types = []
            rows = fetch(conn, f"SELECT * FROM {table}{where}", ())
            loads.append((copy, rows, types))
    settle(platform)
    started = time.perf_counter()
    with platform.engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for copy, rows, types in loads:
            if not rows:
                continue
            if postgres:
                with (
                    raw.cursor() as cursor,
                    cursor.copy(f"COPY {copy} FROM STDIN (FORMAT BINARY)") as load,
                ):
                    load.set_types(types)
                    for row in rows:
                        load.write_row(row)
            else:
                marks = ", ".join("?" * len(rows[0]))
                raw.executemany(f"INSERT INTO {copy} VALUES ({marks})", rows)
    elapsed = time.perf_counter() - started
    return {copy: len(rows) for copy, rows, _ in loads}, elapsed


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


@dataclass(frozen=True)
class WorkersDone:
    """What :func:`adjudicate_with_workers` measured, summed over the workers."""

    lines: int
    accepted_cents: int
    batches: int
    deferred: int  # claims left for a later batch
    seconds: float  # from the start signal to the last worker's end
    startup_seconds: float  # from the processes' start to the last one ready


def adjudicate_with_workers(settings_env: dict[str, str], workers: int) -> WorkersDone:
    """Run ``workers`` adjudication processes on the same database until the backlog is
    empty (PostgreSQL: they share it through ``FOR UPDATE SKIP LOCKED``).

    A worker of the platform (``tierspayant work``) is a long-running process: it starts
    once, then judges claims as they come. So each worker here starts Python, imports the
    platform and opens it, says it is ready, and waits; the clock starts when every one
    is ready and they are all told to go. The single-worker round judges in the
    benchmark's own process, on an open platform too, so both counts measure the same
    thing, and the baseline's load (an open connection, then COPY) is timed alike. The
    start-up is reported apart (``startup_seconds``), never hidden: about a second per
    process here, most of it imports.
    """
    env = {**os.environ, **settings_env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    launched = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for child_process in children:
            assert child_process.stdout is not None
            ready = child_process.stdout.readline()
            if json.loads(ready or "{}").get("ready") is not True:
                raise SystemExit(f"an adjudication worker did not start: {ready!r}")
        started = time.perf_counter()
        for child_process in children:
            assert child_process.stdin is not None
            child_process.stdin.write("go\n")
            child_process.stdin.flush()
        outputs = [c.communicate(timeout=3600)[0] for c in children]
        elapsed = time.perf_counter() - started
    finally:
        for child_process in children:
            if child_process.poll() is None:
                child_process.kill()
                child_process.wait()
    lines = accepted = batches = deferred = 0
    for child_process, out in zip(children, outputs, strict=True):
        if child_process.returncode != 0:
            raise SystemExit(f"an adjudication worker failed ({child_process.returncode})")
        done = json.loads(out.strip().splitlines()[-1])
        lines += done["lines"]
        accepted += done["accepted_cents"]
        batches += done["batches"]
        deferred += done["deferred"]
    return WorkersDone(lines, accepted, batches, deferred, elapsed, started - launched)


def child() -> None:
    """One adjudication worker of :func:`adjudicate_with_workers`: opens the platform,
    says it is ready, waits for the word to go, judges until the backlog is empty."""
    platform = open_platform(load_settings())
    print(json.dumps({"ready": True}), flush=True)
    if sys.stdin.readline().strip() != "go":
        platform.close()
        raise SystemExit("no start signal")
    done = adjudicate_pending(platform)
    platform.close()
    out = {
        "lines": done.lines,
        "accepted_cents": done.accepted_cents,
        "batches": done.batches,
        "deferred": done.deferred,
    }
    print(json.dumps(out), flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _round(
    engine_name: str, round_env: dict[str, str], workers: int, lines: int, expected: Expected
) -> dict[str, Any]:
    """Adjudicate a restored snapshot, check its decisions, then load the baseline."""
    platform = open_platform(load_settings(round_env))
    settle(platform)
    startup = 0.0
    if workers == 1:
        started = time.perf_counter()
        done = adjudicate_pending(platform)
        elapsed = time.perf_counter() - started
        judged, accepted_cents, batches = done.lines, done.accepted_cents, done.batches
        deferred = done.deferred
    else:
        several = adjudicate_with_workers(round_env, workers)
        judged, accepted_cents, batches = several.lines, several.accepted_cents, several.batches
        deferred, elapsed, startup = several.deferred, several.seconds, several.startup_seconds
    assert judged == lines, (judged, lines)
    check_decisions(platform, expected)
    base_rows, base_elapsed = baseline(platform)
    platform.close()
    return {
        "bench": "adjudication",
        "engine": engine_name,
        "workers": workers,
        "lines_per_s": round(lines / elapsed),
        "baseline_lines_per_s": round(lines / base_elapsed),
        "ratio": round(base_elapsed / elapsed, 3),
        "seconds": round(elapsed, 2),
        # The workers' start (Python, imports, platform opened), before the clock.
        "startup_seconds": round(startup, 2),
        # The ratio had the start-up been timed too (as this benchmark did until
        # 2026-12-07): for comparison with the figures of before.
        "ratio_with_startup": round(base_elapsed / (elapsed + startup), 3),
        "baseline_seconds": round(base_elapsed, 3),
        "accepted_cents": accepted_cents,
        "batches": batches,
        "deferred": deferred,
        "baseline_rows": base_rows,
        "load": _load(),
    }


def run(
    engine_name: str,
    lines: int,
    people: int,
    workers: int | tuple[int, ...] = 1,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """One summary per number of workers; with several numbers, each round restores and
    adjudicates the snapshot once per number, so that they alternate in the same minutes."""
    counts = (workers,) if isinstance(workers, int) else workers
    workdir = Path(tempfile.mkdtemp(prefix="bench-adj-"))
    url, data_dir = fresh(engine_name, workdir)
    snapshot: Snapshot | None = None
    try:
        settings_env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
        platform = initialise(load_settings(settings_env))
        seeded = seed(platform, workdir, people)
        expected = store_claims(platform, seeded, lines)
        platform.close()
        snapshot = Snapshot(engine_name, url, workdir)
        measured: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
        restored = 0
        for round_no in range(rounds):
            for n in counts:
                round_url = snapshot.restore(restored)
                restored += 1
                round_env = {**settings_env, "TIERSPAYANT_DATABASE_URL": round_url}
                figures = _round(engine_name, round_env, n, lines, expected)
                figures["round"] = round_no + 1
                print(json.dumps(figures), flush=True)
                measured[n].append(figures)
        return [
            {
                "bench": "adjudication",
                "engine": engine_name,
                "summary": True,
                "lines": lines,
                "lines_per_s": round(statistics.median(m["lines_per_s"] for m in rows)),
                "baseline_lines_per_s": round(
                    statistics.median(m["baseline_lines_per_s"] for m in rows)
                ),
                "ratio": statistics.median(m["ratio"] for m in rows),
                "ratios": [m["ratio"] for m in rows],
                "ratio_with_startup": statistics.median(m["ratio_with_startup"] for m in rows),
                "startup_seconds": statistics.median(m["startup_seconds"] for m in rows),
                "target": 0.3,
                "seconds": round(statistics.median(m["seconds"] for m in rows), 2),
                "workers": n,
                "rounds": len(rows),
                "baseline_rows": rows[0]["baseline_rows"],
                "expected": expected.as_json(),
                "decisions_checked": True,
                "load": _load(),
            }
            for n, rows in measured.items()
        ]
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
        default="1",
        help="adjudication processes sharing the backlog (PostgreSQL only beyond 1); several"
        " numbers (1,2) alternate in each round",
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
        counts = tuple(int(n) for n in str(args.workers).split(","))
        workers = counts if engine_name == "postgres" else (1,)
        for figures in run(engine_name, args.lines, args.people, workers, args.rounds):
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
