"""Benchmark of the beneficiary import against a raw bulk load of the same rows, same run.

Run: ``.venv/bin/python bench/bench_import.py --rows 100000 [--rows 1000000]
[--engine sqlite|postgres|both]``.

For each size, a synthetic file is generated once (``formats.synthetic``); then, per
engine, two child processes run one after the other, each on a fresh database:

- **import**: ``services.enrolment.import_beneficiaries`` on the file (read, validate,
  encrypt, index, stage or copy, merge, audit, commit), its preparation workers as the
  import chooses them (``--workers`` to force a count);
- **baseline**: the same file's rows, prepared beforehand by the import's own
  ``LinePreparer`` (validated, indexed, sealed: the very bytes the import stores) and
  shaped as ``beneficiaries`` rows, loaded into the same empty table by raw
  ``executemany`` (SQLite) or binary ``COPY`` (PostgreSQL, one per chunk of 5,000 rows,
  as the import), in one transaction. Only the load is timed, from the first row of a
  chunk to the server's end of it, not the preparation.

On a shared machine the load changes between two children; ``--repeat N`` runs N
rounds, alternating which of the two goes first, and the figure is the median of the
per-round ratios (every round is printed, with the load average after each child).

Each child measures its own peak RSS (``getrusage``), so the import's memory is not
mixed with the generator's or the baseline's. The import's validation/encryption workers
(files over 4 MiB) are not counted: ``RUSAGE_CHILDREN`` would charge them the parent's
pages at fork time; read from ``/proc/<pid>/status`` they stay near 38 MB each.
``--tracemalloc`` adds a second, slower import run that reports the Python-heap peak.

Prints one JSON line per (engine, size):
``{"bench":"import","engine":…,"rows":…,"ratio":…,"rows_per_s":…,
"baseline_rows_per_s":…,"peak_rss_mb":…,"rounds":[…],"load":[…]}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import create_engine, text

from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.formats.beneficiaries import (
    BeneficiaryReader,
    ImportMode,
    LineError,
    RawRecord,
)
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.enrolment_prepare import LinePreparer
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import catalogues, insurers

POSTGRES_SERVER = os.environ.get(
    "TIERSPAYANT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
AMC = "912345678"
CONTRACTS = ("ESSENTIEL", "CONFORT", "PREMIUM", "JEUNES", "SENIORS")
FILE_DATE = date(2025, 1, 1)
SEED = 20250101
CHUNK = 5000
BENEFICIARY_COLUMNS = (
    "insurer_id", "id", "idx_nir", "idx_member", "idx_family", "key_version", "nir_ct",
    "member_number_ct", "birth_date_ct", "last_name_ct", "first_name_ct", "birth_rank",
    "sex", "quality", "birth_year", "contract_code", "coverage_start", "coverage_end",
    "css", "is_canary", "row_digest", "updated_at",
)  # fmt: skip
COPY_TYPES = [
    "int4", "int8", "bytea", "bytea", "bytea", "int4", "bytea", "bytea", "bytea", "bytea",
    "bytea", "int2", "varchar", "varchar", "int2", "varchar", "date", "date", "bool", "bool",
    "bytea", "timestamptz",
]  # fmt: skip


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- databases ---------------------------------------------------------------------------


def _admin() -> Any:
    return create_engine(POSTGRES_SERVER.rstrip("/") + "/postgres", isolation_level="AUTOCOMMIT")


def fresh_database(engine_name: str, workdir: Path) -> tuple[str, Path]:
    """A new empty database and data directory; returns (url, data_dir)."""
    data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    if engine_name == "sqlite":
        return f"sqlite:///{data_dir / 'tierspayant.sqlite3'}", data_dir
    name = f"bench_import_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_SERVER.rstrip("/") + f"/{name}", data_dir


def drop_database(url: str, data_dir: Path) -> None:
    """Remove what :func:`fresh_database` made."""
    shutil.rmtree(data_dir, ignore_errors=True)
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        admin = _admin()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_seeded(url: str, data_dir: Path) -> tuple[Platform, int]:
    """Initialise the platform and create the benchmark insurer (keys and catalogue)."""
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    )
    platform = initialise(settings)
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer_id = conn.execute(
            insurers.insert()
            .values(
                amc_number=AMC, name="Mutuelle du banc d'essai", kind="mutuelle", created_at=now
            )
            .returning(insurers.c.id)
        ).scalar_one()
        platform.keys.create(conn, insurer_scope(AMC), now)
        document = json.dumps(
            {"insurer": AMC, "contracts": [{"code": c} for c in CONTRACTS]},
            sort_keys=True,
            separators=(",", ":"),
        )
        conn.execute(
            catalogues.insert().values(
                insurer_id=insurer_id,
                version=1,
                document=document,
                digest="0" * 64,
                uploaded_at=now,
                uploaded_by="bench",
            )
        )
    return platform, int(insurer_id)


# --- children ----------------------------------------------------------------------------


def child_import(
    csv_path: Path, url: str, data_dir: Path, rerun: bool, heap: bool, workers: int | None
) -> dict[str, Any]:
    """Import the file once (and again with --rerun); report speed and memory."""
    platform, _ = open_seeded(url, data_dir)
    if heap:
        tracemalloc.start()
    began = time.perf_counter()
    summary = import_beneficiaries(
        platform, AMC, csv_path, mode="full", file_date=FILE_DATE, actor="bench", workers=workers
    )
    seconds = time.perf_counter() - began
    result: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "lines": summary.lines,
        "inserted": summary.inserted,
        "rejected": summary.rejected,
        "rows_per_s": round(summary.lines / seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    if heap:
        result["python_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    if rerun:
        began = time.perf_counter()
        again = import_beneficiaries(
            platform, AMC, csv_path, mode="full", file_date=FILE_DATE, actor="bench",
            workers=workers,
        )  # fmt: skip
        rerun_seconds = time.perf_counter() - began
        assert again.inserted == again.updated == 0, again
        result["rerun_rows_per_s"] = round(again.lines / rerun_seconds, 1)
        result["peak_rss_mb_after_rerun"] = peak_rss_mb()
    platform.close()
    return result


def _prepared_chunks(csv_path: Path, platform: Platform, insurer_id: int) -> Iterator[list[Any]]:
    """The file's rows as the import prepares them (validated, indexed, sealed under the
    insurer's keys), a chunk at a time, shaped as beneficiaries rows: the ids the import
    gives, the dates as dates."""
    with platform.engine.connect() as conn:
        keys = platform.keys.active(conn, insurer_scope(AMC))
    now = datetime.now(UTC)
    numbers = itertools.count(1)

    def shaped(records: list[RawRecord | LineError]) -> list[Any]:
        return [
            (insurer_id, next(numbers), *row[2:16], date.fromisoformat(row[16]),
             None if row[17] is None else date.fromisoformat(row[17]), row[18], False,
             row[19], now)
            for row in preparer.prepare(records).rows
        ]  # fmt: skip

    with BeneficiaryReader(
        csv_path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE
    ) as reader:
        preparer = LinePreparer(keys, insurer_id, reader.validator)
        chunk: list[RawRecord | LineError] = []
        for record in reader.records():
            chunk.append(record)
            if len(chunk) >= CHUNK:
                yield shaped(chunk)
                chunk = []
        if chunk:
            yield shaped(chunk)


def child_baseline(csv_path: Path, url: str, data_dir: Path) -> dict[str, Any]:
    """Load the file's rows, prepared beforehand, into an empty beneficiaries table by the
    fastest raw path; time the load only (not the preparation)."""
    platform, insurer_id = open_seeded(url, data_dir)
    loading = 0.0
    rows = 0
    with platform.engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            with raw.cursor() as cursor:
                # The same fast bytea dumper as the import's staging: a fair baseline.
                cursor.adapters.register_dumper(None, BytesBinaryDumper)
                columns = ", ".join(BENEFICIARY_COLUMNS)
                sql = f"COPY beneficiaries ({columns}) FROM STDIN (FORMAT BINARY)"
                for chunk in _prepared_chunks(csv_path, platform, insurer_id):
                    # One COPY per chunk, timed until the server has taken it all: the
                    # server never works on timed rows while the next chunk is prepared.
                    began = time.perf_counter()
                    with cursor.copy(sql) as copy:
                        copy.set_types(COPY_TYPES)
                        for row in chunk:
                            copy.write_row(row)
                    loading += time.perf_counter() - began
                    rows += len(chunk)
            began = time.perf_counter()
            raw.commit()
            loading += time.perf_counter() - began
        else:
            marks = ", ".join("?" for _ in BENEFICIARY_COLUMNS)
            sql = f"INSERT INTO beneficiaries ({', '.join(BENEFICIARY_COLUMNS)}) VALUES ({marks})"
            for chunk in _prepared_chunks(csv_path, platform, insurer_id):
                # sqlite3 adapts neither dates (deprecated) nor aware datetimes the way
                # SQLAlchemy stores them: give it the stored text, as the import does.
                stamp = chunk[0][21].strftime("%Y-%m-%d %H:%M:%S.%f")
                prepared = [
                    (*row[:16], row[16].isoformat(), None if row[17] is None else
                     row[17].isoformat(), int(row[18]), 0, row[20], stamp)
                    for row in chunk
                ]  # fmt: skip
                began = time.perf_counter()
                raw.executemany(sql, prepared)
                loading += time.perf_counter() - began
                rows += len(chunk)
            began = time.perf_counter()
            raw.commit()
            loading += time.perf_counter() - began
        count = conn.execute(text("SELECT count(*) FROM beneficiaries")).scalar_one()
    platform.close()
    assert count == rows, count
    return {
        "seconds": round(loading, 2),
        "rows": rows,
        "rows_per_s": round(rows / loading, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(args: list[str]) -> dict[str, Any]:
    """Run this script as a child process and parse the JSON line it prints."""
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


# --- parent ------------------------------------------------------------------------------


def _one_pair(
    engine_name: str, csv_path: Path, workdir: Path, extra: list[str], baseline_first: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round: the import and the baseline, each on a fresh database, in the order
    given (rounds alternate it, so neither side always runs on a warmer machine)."""

    def one(kind: str) -> dict[str, Any]:
        url, data_dir = fresh_database(engine_name, workdir)
        try:
            args = ["--child", kind, "--csv", str(csv_path), "--url", url,
                    "--data-dir", str(data_dir)]  # fmt: skip
            result = run_child(args + (extra if kind == "import" else []))
        finally:
            drop_database(url, data_dir)
        result["load"] = [round(x, 2) for x in os.getloadavg()]
        return result

    if baseline_first:
        baseline = one("baseline")
        return one("import"), baseline
    imported = one("import")
    return imported, one("baseline")


def bench(
    engine_name: str, rows: int, csv_path: Path, workdir: Path, extra: list[str], repeat: int = 1
) -> dict[str, Any]:
    """Rounds of (import, baseline), alternating which goes first; the figure is the
    median of the per-round ratios (not a ratio of medians)."""
    pairs = [
        _one_pair(engine_name, csv_path, workdir, extra, baseline_first=bool(k % 2))
        for k in range(repeat)
    ]
    ratios = [i["rows_per_s"] / b["rows_per_s"] for i, b in pairs]
    result: dict[str, Any] = {
        "bench": "import",
        "engine": engine_name,
        "rows": rows,
        "ratio": round(statistics.median(ratios), 3),
        "rows_per_s": statistics.median(i["rows_per_s"] for i, _ in pairs),
        "baseline_rows_per_s": statistics.median(b["rows_per_s"] for _, b in pairs),
        "peak_rss_mb": max(i["peak_rss_mb"] for i, _ in pairs),
        "rounds": [
            {
                "import": i["rows_per_s"],
                "baseline": b["rows_per_s"],
                "ratio": round(r, 3),
                "import_seconds": i["seconds"],
                "baseline_seconds": b["seconds"],
                "import_rss_mb": i["peak_rss_mb"],
                "load": i["load"],
            }
            for (i, b), r in zip(pairs, ratios, strict=True)
        ],
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, action="append", help="file size (repeatable)")
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--bad-line-ratio", type=float, default=0.0)
    parser.add_argument("--rerun", action="store_true", help="also time an idempotent rerun")
    parser.add_argument(
        "--repeat", type=int, default=1, help="import/baseline pairs per engine (medians)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="preparation workers (default: the import's)"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also report Python heap peak")
    parser.add_argument("--workdir", type=Path, default=None)
    # Internal: what a child process runs.
    parser.add_argument("--child", choices=("import", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "import":
        result = child_import(
            args.csv, args.url, args.data_dir, args.rerun, args.heap, args.workers
        )
        print(json.dumps(result))
        return 0
    if args.child == "baseline":
        print(json.dumps(child_baseline(args.csv, args.url, args.data_dir)))
        return 0

    sizes = args.rows or [100_000]
    engines = ("sqlite", "postgres") if args.engine == "both" else (args.engine,)
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.workdir))
    try:
        for rows in sizes:
            csv_path = workdir / f"beneficiaries-{rows}.csv"
            began = time.perf_counter()
            made = write_beneficiaries_csv(
                csv_path, rows, seed=SEED, contracts=CONTRACTS, bad_line_ratio=args.bad_line_ratio,
                start=FILE_DATE,
            )  # fmt: skip
            generated = time.perf_counter() - began
            print(json.dumps({
                "bench": "import.generate", "rows": made.lines, "bad_lines": made.bad_lines,
                "rows_per_s": round(made.lines / generated, 1),
                "megabytes": round(csv_path.stat().st_size / 2**20, 1),
            }), flush=True)  # fmt: skip
            extra = ["--rerun"] if args.rerun else []
            if args.workers is not None:
                extra += ["--workers", str(args.workers)]
            for engine_name in engines:
                result = bench(engine_name, rows, csv_path, workdir, extra, max(args.repeat, 1))
                print(json.dumps(result), flush=True)
                if args.tracemalloc:
                    url, data_dir = fresh_database(engine_name, workdir)
                    try:
                        heap = run_child(["--child", "import", "--csv", str(csv_path), "--url", url,
                                          "--data-dir", str(data_dir), "--heap"])  # fmt: skip
                    finally:
                        drop_database(url, data_dir)
                    print(json.dumps({
                        "bench": "import.heap", "engine": engine_name, "rows": rows,
                        "python_heap_peak_mb": heap["python_heap_peak_mb"],
                    }), flush=True)  # fmt: skip
            csv_path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
