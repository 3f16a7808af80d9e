"""No NIR in clear anywhere the platform writes: database files, logs, error reports.

After an import (with bad lines, so an error report is written) and a few hundred
lookups, including identifiers sent in the wrong fields and malformed requests whose
refusals could echo them, the database (SQLite: the file and its -wal and -shm; PostgreSQL:
``COPY … TO STDOUT`` of every table), everything logged (structlog output and stdlib
logging at DEBUG) and the error report are scanned for the base's NIRs: with
``find_valid_nirs`` and as exact strings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tests.api.world import FILE_DATE, TODAY, World, build_world, close_world
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.identifiers import find_valid_nirs
from tierspayant.services import enrolment

LOOKUPS = 60


def leaks(text: str, nirs: set[str]) -> set[str]:
    """The NIRs of ``nirs`` found in ``text``, by the validator's scan or verbatim."""
    found = set(find_valid_nirs(text, isolated=True)) & nirs
    found |= {nir for nir in nirs if nir in text}
    return found


def scan_files(paths: Iterable[Path], nirs: set[str]) -> dict[str, set[str]]:
    return {
        path.name: leaks(path.read_bytes().decode("latin-1"), nirs)
        for path in paths
        if path.exists()
    }


def exercise(world: World, tmp_path: Path) -> Path:
    """Lookups of every kind, and an import that rejects lines: what could leak."""
    people = list(world.everyone())[:LOOKUPS]
    headers = world.pharmacy.headers
    post = world.client.post
    for person in people:
        post(
            "/v1/eligibility",
            headers=headers,
            json={"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR"]},
        )
        post(
            "/v1/calculations",
            headers=headers,
            json={
                "card": person.card(),
                "care_date": TODAY.isoformat(),
                "lines": [
                    {
                        "act_code": "G",
                        "domain": "MED",
                        "family": "consultation",
                        "billed_cents": 3000,
                        "br_cents": 3000,
                    }
                ],
            },
        )
        # Identifiers where they do not belong, and refusals that could echo them.
        post(
            "/v1/eligibility",
            headers=headers,
            json={
                "card": person.card(member_number=person.nir, nir=None, birth_rank=None),
                "care_date": TODAY.isoformat(),
                "domains": ["MED"],
            },
        )
        post(
            "/v1/eligibility",
            headers=headers,
            json={
                "card": person.card(amc_number=person.nir),
                "care_date": TODAY.isoformat(),
                "domains": ["MED"],
            },
        )
        post(
            "/v1/eligibility",
            headers=headers,
            json={
                "card": person.card(birth_rank=person.nir),
                "care_date": person.nir,
                "domains": [person.nir],
                person.nir: person.nir,
            },
        )
        post(
            "/v1/eligibility",
            headers=headers,
            content=f'{{"card": "{person.nir}"'.encode(),
        )
    # An incremental file in which some lines are wrong: the error report must not name them.
    amc = world.amc_numbers[0]
    bad_file = tmp_path / "incremental.csv"
    written = write_beneficiaries_csv(
        bad_file,
        200,
        seed=99,
        contracts=("ESSENTIEL", "NOPE"),
        bad_line_ratio=0.3,
        start=FILE_DATE,
    )
    assert written.bad_lines > 0
    report = tmp_path / "errors.csv"
    summary = enrolment.import_beneficiaries(
        world.platform,
        amc,
        bad_file,
        mode="incremental",
        file_date=date(2026, 2, 1),
        actor="test:scan",
        error_report=report,
        workers=0,
    )
    assert summary.rejected > 0
    assert report.exists()
    return report  # fmt: skip


def dump_postgres(world: World) -> str:
    """Every row of every table, as PostgreSQL's COPY writes it."""
    chunks: list[str] = []
    tables = inspect(world.platform.engine).get_table_names()
    assert "beneficiaries" in tables
    raw = world.platform.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table in tables:
            # A query, not the table: a partitioned table (migration 0018) has no rows of
            # its own to COPY (its partitions are listed too).
            with cursor.copy(f'COPY (SELECT * FROM "{table}") TO STDOUT') as copy:
                chunks.extend(bytes(block).decode("utf-8", "replace") for block in copy)
    finally:
        raw.close()
    return "".join(chunks)


def test_the_scan_finds_a_nir_hidden_in_binary_or_spaced(tmp_path: Path) -> None:
    nir, other = "185057512345673", "285057512345623"
    page = tmp_path / "page.bin"
    page.write_bytes(b"\x00\x01SQLite" + nir.encode() + b"\xff\x00 2 85 05 75 123 456 23\x00")
    assert scan_files([page], {nir, other}) == {"page.bin": {nir, other}}
    assert leaks("nothing here 1850575123456", {nir}) == set()


@pytest.mark.parametrize(
    "engine_name",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])],
)
def test_no_nir_of_the_base_in_database_logs_or_reports(
    engine_name: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    world = build_world(engine_name, request, tmp_path_factory, count=300)
    try:
        report = exercise(world, tmp_path)
        nirs = {person.nir for person in world.everyone()} | file_nirs(tmp_path / "incremental.csv")
        # The error report names lines and codes, not people.
        assert leaks(report.read_text(encoding="utf-8"), nirs) == set()
        if engine_name == "sqlite":
            db = Path(world.platform.settings.database_url.removeprefix("sqlite:///"))
            files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
            assert db.stat().st_size > 0
            assert scan_files(files, nirs) == {p.name: set() for p in files if p.exists()}
        else:
            dump = dump_postgres(world)
            assert len(dump) > 100_000
            assert leaks(dump, nirs) == set()
    finally:
        close_world(world)
    if engine_name == "sqlite":
        # After the last connection closed (the WAL is checkpointed into the file).
        assert scan_files(files, nirs) == {p.name: set() for p in files if p.exists()}
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert logged  # the capture works: the import and the app log
    assert leaks(logged, nirs) == set()


def file_nirs(path: Path) -> set[str]:
    """The valid NIRs of a beneficiary file (its second column)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {nir for line in lines for nir in find_valid_nirs(line.split(";")[1])}
