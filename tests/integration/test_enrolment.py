"""Beneficiary import on SQLite and PostgreSQL: applied, reported, idempotent, atomic, sealed."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import threading
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import inspect, select, text, update
from stdnum.fr import nir as stdnum_nir

from tests.conftest import SeededInsurer
from tierspayant.app.platform import Platform
from tierspayant.cli.import_beneficiaries import import_beneficiaries_command
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.identifiers import find_valid_nirs
from tierspayant.formats.beneficiaries import (
    BeneficiaryFileError,
    BeneficiaryLine,
    BeneficiaryReader,
    ImportMode,
    LineValidator,
)
from tierspayant.security.crypto import BlindIndexer, FieldCipher, new_data_keys
from tierspayant.security.identity import (
    family_index,
    member_index,
    nir_index,
    open_column,
)
from tierspayant.services import enrolment
from tierspayant.services.enrolment import ImportSummary, import_beneficiaries
from tierspayant.services.enrolment_prepare import DIGEST_PURPOSE, ParallelPreparer, WorkerError
from tierspayant.services.errors import NotFound, ServiceError
from tierspayant.store import audit, beneficiary_import
from tierspayant.store.beneficiaries import (
    count_beneficiaries,
    family_members,
    find_by_member_index,
    find_by_nir_index,
)
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries, import_runs

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end;css"
)
FILE_DATE = date(2025, 3, 1)
ACTOR = "test:enrolment"

SeedInsurer = Callable[..., SeededInsurer]


def make_nir(sex: str, birth: date, order: int) -> str:
    body = f"{'1' if sex == 'M' else '2'}{birth.year % 100:02d}{birth.month:02d}69381{order:03d}"
    return body + stdnum_nir.calc_check_digits(body)


def person(
    order: int,
    *,
    member: str = "A00000001",
    sex: str = "M",
    birth: date = date(1980, 6, 15),
    rank: int = 1,
    last: str = "Delacroix",
    first: str = "Etienne",
    quality: str = "member",
    contract: str = "ESSENTIEL",
    start: str = "2024-01-01",
    end: str = "",
) -> str:
    """One line of the file, for a person whose NIR differs by ``order``."""
    nir = make_nir(sex, birth, order)
    return (
        f"{member};{nir};{rank};{birth.isoformat()};{last};{first};{sex};{quality};"
        f"{contract};{start};{end};0"
    )


def write(tmp_path: Path, name: str, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    return path


def run(
    platform: Platform,
    insurer: SeededInsurer,
    path: Path,
    *,
    mode: str = "full",
    file_date: date = FILE_DATE,
    report: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    confirm: int | None = None,
) -> ImportSummary:
    return import_beneficiaries(
        platform,
        insurer.amc_number,
        path,
        mode=mode,
        file_date=file_date,
        actor=ACTOR,
        progress=progress,
        error_report=report,
        workers=workers,
        confirm_terminations=confirm,
    )


def snapshot(platform: Platform, insurer_id: int) -> list[tuple[Any, ...]]:
    """Every stored column of an insurer's beneficiaries, in id order."""
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(beneficiaries)
            .where(beneficiaries.c.insurer_id == insurer_id)
            .order_by(beneficiaries.c.id)
        ).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def covered_on(rows: list[tuple[Any, ...]], day: date) -> int:
    """How many of these stored rows are still covered on ``day`` (or start later)."""
    end = beneficiaries.c.keys().index("coverage_end")
    return sum(1 for row in rows if row[end] is None or row[end] >= day)


def report_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter=";"))[1:]


def counts(summary: ImportSummary) -> tuple[int, int, int, int, int, int]:
    return (
        summary.lines,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.terminated,
        summary.rejected,
    )


def test_given_good_and_bad_lines_when_imported_then_good_applied_and_bad_reported(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    bad_key = person(2)[:23] + "XX" + person(2)[25:]  # NIR key replaced
    path = write(
        tmp_path,
        "in.csv",
        person(1),
        bad_key,
        person(3, quality="spouse", sex="F", first="Camille"),
        person(4, contract="PLATINE"),
        person(5, quality="child", birth=date(2015, 2, 1), first="Lucienne", sex="F"),
    )
    report = tmp_path / "errors.csv"
    summary = run(platform, insurer, path, report=report)

    assert counts(summary) == (5, 3, 0, 0, 0, 2)
    rows = report_rows(report)
    assert [(r[0], r[2]) for r in rows] == [("3", "nir"), ("5", "contract")]
    assert rows[0][1].startswith("line.nir.")
    assert rows[1][1] == "line.unknown_contract"
    assert "Delacroix" not in report.read_text(encoding="utf-8")
    assert [e.line_no for e in summary.first_errors] == [3, 5]
    # Ids follow the line order.
    stored = snapshot(platform, insurer.id)
    assert [row[1] for row in stored] == [1, 2, 3]
    assert [row[beneficiaries.c.keys().index("quality")] for row in stored] == [
        "member",
        "spouse",
        "child",
    ]
    with platform.engine.connect() as conn:
        run_row = conn.execute(select(import_runs)).one()
        assert (run_row.status, run_row.inserted, run_row.rejected) == ("done", 3, 2)
        event = audit.last_event(conn)
    assert event is not None
    assert (event.action, event.insurer, event.detail["inserted"]) == (
        "enrolment.import",
        insurer.amc_number,
        3,
    )


def test_given_an_imported_file_when_run_again_then_nothing_changes(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "synthetic.csv",
        600,
        seed=5,
        contracts=insurer.contracts,
        bad_line_ratio=0.05,
        start=FILE_DATE,
    )
    first = run(platform, insurer, made.path)
    assert first.rejected == made.bad_lines
    assert first.inserted == 600 - made.bad_lines
    before = snapshot(platform, insurer.id)

    second = run(platform, insurer, made.path)

    assert counts(second) == (600, 0, 0, first.inserted, 0, made.bad_lines)
    assert snapshot(platform, insurer.id) == before


def test_given_an_incremental_file_then_only_changed_rows_are_rewritten(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    lines = [person(n, member=f"A{n:08d}") for n in range(1, 6)]
    run(platform, insurer, write(tmp_path, "full.csv", *lines))
    before = snapshot(platform, insurer.id)

    changed = person(2, member="A00000002", contract="CONFORT")
    newcomer = person(9, member="A00000009")
    summary = run(
        platform,
        insurer,
        write(tmp_path, "inc.csv", lines[0], changed, newcomer),
        mode="incremental",
    )

    assert counts(summary) == (3, 1, 1, 1, 0, 0)
    after = snapshot(platform, insurer.id)
    assert len(after) == 6
    assert [a == b for a, b in zip(before, after, strict=False)] == [True, False, True, True, True]
    contract = beneficiaries.c.keys().index("contract_code")
    assert after[1][contract] == "CONFORT"
    assert after[5][1] == 6  # the newcomer takes the next id


def test_given_removal_lines_then_known_ones_end_and_unknown_ones_are_rejected(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    run(platform, insurer, write(tmp_path, "full.csv", person(1), person(2)))
    header = HEADER + ";action"
    report = tmp_path / "errors.csv"
    summary = run(
        platform,
        insurer,
        write(tmp_path, "inc.csv", person(1) + ";R", person(7) + ";R", header=header),
        mode="incremental",
        report=report,
    )
    assert counts(summary) == (2, 0, 1, 0, 0, 1)
    assert report_rows(report)[0][:3] == ["3", "line.unknown_beneficiary", "nir"]
    end = beneficiaries.c.keys().index("coverage_end")
    assert [row[end] for row in snapshot(platform, insurer.id)] == [
        FILE_DATE - timedelta(days=1),
        None,
    ]


def test_given_a_full_file_then_absent_rows_are_terminated_but_not_canaries_nor_rejected(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    everyone = [person(n, member=f"A{n:08d}") for n in range(1, 6)]
    run(platform, insurer, write(tmp_path, "v1.csv", *everyone), file_date=date(2025, 1, 1))
    with platform.engine.begin() as conn:  # row 5 plays a canary
        conn.execute(
            update(beneficiaries)
            .where(beneficiaries.c.insurer_id == insurer.id, beneficiaries.c.id == 5)
            .values(is_canary=True)
        )
    # Line 4 is kept but rejected (unknown contract): its beneficiary must stay covered.
    rejected_four = person(4, member="A00000004", contract="PLATINE")
    v2 = write(tmp_path, "v2.csv", everyone[0], everyone[1], rejected_four)

    summary = run(platform, insurer, v2, file_date=FILE_DATE, confirm=1)  # 1 of 4: confirmed

    assert counts(summary) == (3, 0, 0, 2, 1, 1)
    end = beneficiaries.c.keys().index("coverage_end")
    ends = [row[end] for row in snapshot(platform, insurer.id)]
    assert ends == [None, None, date(2025, 2, 28), None, None]
    # Rerun: already ended, nothing to do.
    assert run(platform, insurer, v2, file_date=FILE_DATE).terminated == 0
    # Back in a later file: reinstated.
    back = run(
        platform, insurer, write(tmp_path, "v3.csv", *everyone[:4]), file_date=date(2025, 4, 1)
    )
    assert (back.updated, back.terminated) == (1, 0)
    assert [row[end] for row in snapshot(platform, insurer.id)][2] is None


def test_given_duplicate_nir_and_rank_then_every_later_occurrence_is_rejected(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    report = tmp_path / "errors.csv"
    path = write(
        tmp_path,
        "dups.csv",
        person(1),
        person(2),
        person(1, first="Etiennette"),
        person(1),
        person(1, rank=2),  # same NIR, another rank: a twin, not a duplicate
    )
    summary = run(platform, insurer, path, report=report)
    assert counts(summary) == (5, 3, 0, 0, 0, 2)
    assert [(r[0], r[1]) for r in report_rows(report)] == [
        ("4", "line.duplicate"),
        ("5", "line.duplicate"),
    ]
    first_name = open_first_names(platform, insurer)
    assert first_name == ["Etienne", "Etienne", "Etienne"]


def open_first_names(platform: Platform, insurer: SeededInsurer) -> list[str]:
    with platform.engine.connect() as conn:
        keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
        rows = conn.execute(
            select(beneficiaries.c.idx_nir, beneficiaries.c.first_name_ct)
            .where(beneficiaries.c.insurer_id == insurer.id)
            .order_by(beneficiaries.c.id)
        ).all()
    cipher = FieldCipher(keys)
    return [
        open_column(cipher, insurer.id, bytes(r.idx_nir), "first_name", bytes(r.first_name_ct))
        for r in rows
    ]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("fail_at_call", "error", "workers"),
    [(2, Boom, 0), (5, Boom, 0), (5, KeyboardInterrupt, 0), (3, KeyboardInterrupt, 1)],
)
def test_given_a_failure_during_the_run_then_the_table_is_exactly_as_before(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    fail_at_call: int,
    error: type[BaseException],
    workers: int,
) -> None:
    insurer = seed_insurer(platform)
    first = write_beneficiaries_csv(
        tmp_path / "first.csv", 2500, seed=1, contracts=insurer.contracts, start=FILE_DATE
    )
    run(platform, insurer, first.path)
    before = snapshot(platform, insurer.id)
    second = write_beneficiaries_csv(
        tmp_path / "second.csv", 2500, seed=2, contracts=insurer.contracts, start=FILE_DATE
    )
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        # Calls: start, after lines 1000, 2000 and 2500, then after the merge (the 5th).
        if len(calls) == fail_at_call:
            raise error("injected")

    report = tmp_path / "errors.csv"
    # The second file is another population: it ends everyone of the first, confirmed.
    everyone = covered_on(before, FILE_DATE)
    with pytest.raises(error):
        run(
            platform,
            insurer,
            second.path,
            progress=progress,
            workers=workers,
            report=report,
            confirm=everyone,
        )

    assert not report.exists()

    assert snapshot(platform, insurer.id) == before
    with platform.engine.connect() as conn:
        statuses = (
            conn.execute(
                select(import_runs.c.status)
                .where(import_runs.c.insurer_id == insurer.id)
                .order_by(import_runs.c.id)
            )
            .scalars()
            .all()
        )
        event = audit.last_event(conn)
    assert statuses == ["done", "failed"]
    assert event is not None
    assert event.decision == "error"
    # The platform is still usable: the same file now goes through.
    assert run(platform, insurer, second.path, confirm=everyone).inserted == 2500


def test_given_an_unreadable_header_then_nothing_is_applied_and_the_run_is_failed(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    path = write(tmp_path, "bad.csv", person(1), header=HEADER.replace("quality", "qualite"))
    with pytest.raises(BeneficiaryFileError) as caught:
        run(platform, insurer, path)
    assert caught.value.code == "file.header.unknown_column"
    assert snapshot(platform, insurer.id) == []
    with platform.engine.connect() as conn:
        statuses = conn.execute(
            select(import_runs.c.status).where(import_runs.c.insurer_id == insurer.id)
        )
        assert statuses.scalars().all() == ["failed"]


def test_given_a_full_file_with_no_line_then_refused_and_nobody_is_terminated(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    run(platform, insurer, write(tmp_path, "v1.csv", person(1), person(2)))
    before = snapshot(platform, insurer.id)
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n\n", encoding="utf-8")
    with pytest.raises(ServiceError) as refused:
        run(platform, insurer, empty)
    assert refused.value.code == "enrolment.empty_full_file"
    assert snapshot(platform, insurer.id) == before
    assert run(platform, insurer, empty, mode="incremental").lines == 0


def test_given_an_unknown_insurer_or_no_catalogue_then_refused(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    path = write(tmp_path, "in.csv", person(1))
    with pytest.raises(NotFound) as unknown:
        import_beneficiaries(
            platform, "999999999", path, mode="full", file_date=FILE_DATE, actor=ACTOR
        )
    assert unknown.value.code == "insurer.unknown"
    with pytest.raises(ServiceError) as bad_mode:
        import_beneficiaries(
            platform, "999999999", path, mode="partial", file_date=FILE_DATE, actor=ACTOR
        )
    assert bad_mode.value.code == "enrolment.mode"
    bare = seed_insurer(platform, with_catalogue=False)
    with pytest.raises(ServiceError) as no_catalogue:
        run(platform, bare, path)
    assert no_catalogue.value.code == "enrolment.no_catalogue"


def test_given_an_import_then_lookups_by_index_find_and_decrypt_the_right_rows(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    twins = date(2016, 8, 9)
    path = write(
        tmp_path,
        "family.csv",
        person(1, member="F00000042", last="Lefebvre", first="Nathalie", sex="F"),
        person(2, member="F00000042", last="Lefebvre", first="Romain", quality="spouse"),
        person(3, member="F00000042", birth=twins, first="Jules", quality="child"),
        person(4, member="F00000042", birth=twins, rank=2, first="Lina", sex="F", quality="child"),
        person(5, member="F00000077", last="Garnier", first="Paul"),
    )
    assert run(platform, insurer, path).inserted == 5
    with platform.engine.connect() as conn:
        keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
        indexer, cipher = BlindIndexer(keys), FieldCipher(keys)
        nathalie_nir = make_nir("F", date(1980, 6, 15), 1)

        found = find_by_nir_index(conn, insurer.id, nir_index(indexer, nathalie_nir, 1))
        missing = find_by_nir_index(conn, insurer.id, nir_index(indexer, nathalie_nir, 2))
        twins_found = find_by_member_index(
            conn, insurer.id, member_index(indexer, "f00000042 ", twins)
        )
        family = family_members(conn, insurer.id, family_index(indexer, "F00000042"))

    assert missing is None
    assert found is not None
    assert found.id == 1
    assert found.covered_on(FILE_DATE)

    def opened(column: str, blob: bytes) -> str:
        assert found is not None
        return open_column(cipher, insurer.id, found.idx_nir, column, blob)

    assert opened("nir", found.nir_ct) == nathalie_nir
    assert opened("last_name", found.last_name_ct) == "Lefebvre"
    assert opened("first_name", found.first_name_ct) == "Nathalie"
    assert opened("birth_date", found.birth_date_ct) == "1980-06-15"
    assert opened("member_number", found.member_number_ct) == "F00000042"
    assert [(r.id, r.birth_rank) for r in twins_found] == [(3, 1), (4, 2)]
    assert [r.id for r in family] == [1, 2, 3, 4]
    assert "Lefebvre" not in repr(found)


def _database_text(platform: Platform) -> str:
    """Every value of every table, bytes as Latin-1: what someone reading the data sees."""
    chunks: list[str] = []
    with platform.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result:
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value).decode("latin-1"))
                    elif value is not None:
                        chunks.append(str(value))
    return "\n".join(chunks)


def test_given_an_import_then_no_valid_nir_nor_name_is_in_the_database(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path, engine_name: str
) -> None:
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "scan.csv", 400, seed=9, contracts=insurer.contracts, start=FILE_DATE
    )
    assert run(platform, insurer, made.path).inserted == 400
    with made.path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    names = {r["last_name"] for r in rows} | {r["first_name"] for r in rows}
    long_names = {n for n in names if len(n) >= 7}
    assert len(long_names) > 20
    nirs = {r["nir"] for r in rows}
    assert find_valid_nirs(" ".join(nirs))  # the scanner does find clear NIRs

    values = _database_text(platform)
    assert find_valid_nirs(values) == []
    assert [n for n in long_names if n in values] == []
    if engine_name == "sqlite":
        platform.engine.dispose()
        database = Path(platform.settings.database_url.split("///", 1)[1])
        raw = b"".join(
            p.read_bytes()
            for p in (database, database.with_name(database.name + "-wal"))
            if p.exists()
        )
        assert len(raw) > 100_000
        assert find_valid_nirs(raw.decode("latin-1")) == []
        assert [n for n in long_names if n.encode() in raw] == []


def test_given_the_command_then_progress_summary_and_exit_status(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    path = write(tmp_path, "cli.csv", person(1), person(2, contract="PLATINE"))
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    status = import_beneficiaries_command(
        platform, path, insurer.amc_number, "full", FILE_DATE, tmp_path / "e.csv", console
    )
    assert status == 1
    shown = out.getvalue()
    assert "ajoutés" in shown
    assert "refusées" in shown
    assert "line.unknown_contract" in shown
    assert (
        import_beneficiaries_command(
            platform, path, insurer.amc_number, "full", FILE_DATE, None, console
        )
        == 1
    )
    clean = write(tmp_path, "clean.csv", person(1))
    assert (
        import_beneficiaries_command(
            platform, clean, insurer.amc_number, "incremental", FILE_DATE, None, console
        )
        == 0
    )
    assert (
        import_beneficiaries_command(platform, clean, "999999999", "full", FILE_DATE, None, console)
        == 2
    )
    assert "insurer.unknown" in out.getvalue()
    assert (
        import_beneficiaries_command(
            platform, clean, insurer.amc_number, "sometimes", FILE_DATE, None, console
        )
        == 2
    )


def test_given_the_command_then_each_error_names_line_column_and_value_in_french(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    out = io.StringIO()
    console = Console(file=out, width=400, force_terminal=False)
    path = write(tmp_path, "fr.csv", person(1), person(2, contract="PLATINE"))
    status = import_beneficiaries_command(
        platform, path, insurer.amc_number, "incremental", FILE_DATE, None, console
    )
    assert status == 1
    assert (
        "ligne 3, colonne « contract » : code de contrat absent du catalogue en vigueur de "
        "l'organisme (valeur « PLATINE »)"
    ) in out.getvalue()
    header = HEADER.replace("quality", "qualite")
    bad = write(tmp_path, "entete.csv", person(1), header=header)
    refused = import_beneficiaries_command(
        platform, bad, insurer.amc_number, "incremental", FILE_DATE, None, console
    )
    assert refused == 2
    position = 1 + header.split(";").index("qualite")
    assert (
        f"[file.header.unknown_column] Fichier refusé, ligne 1 (en-tête), colonne {position} "
        "« qualite » : colonne inconnue."
    ) in out.getvalue()


def test_count_beneficiaries_counts_one_insurer_only(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    one, two = seed_insurer(platform), seed_insurer(platform)
    run(platform, one, write(tmp_path, "a.csv", person(1), person(2)))
    run(platform, two, write(tmp_path, "b.csv", person(1)))
    with platform.engine.connect() as conn:
        assert (count_beneficiaries(conn, one.id), count_beneficiaries(conn, two.id)) == (2, 1)


def test_given_other_writers_during_the_staging_then_the_import_still_commits(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    """The API keeps appending audit events while a file is read; on SQLite the import
    must not hold a stale read snapshot that would make its merge fail."""
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "busy.csv", 2500, seed=4, contracts=insurer.contracts, start=FILE_DATE
    )

    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) > 4:  # the 5th and last call comes after the merge, under its locks
            return
        with platform.engine.begin() as other:
            audit.append(
                other, at=platform.now(), actor="api:test", action="rights.check", decision="allow"
            )

    summary = run(platform, insurer, made.path, progress=progress)
    assert summary.inserted == 2500
    assert len(calls) == 5
    with platform.engine.connect() as conn:
        event = audit.last_event(conn)
    assert event is not None
    assert event.action == "enrolment.import"
    assert event.seq >= 4


def test_given_worker_processes_then_same_outcome_as_in_process(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    here, there = seed_insurer(platform), seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "w.csv",
        3500,
        seed=12,
        contracts=here.contracts,
        bad_line_ratio=0.03,
        start=FILE_DATE,
    )
    in_process = run(platform, here, made.path, report=tmp_path / "here.csv", workers=0)
    in_workers = run(platform, there, made.path, report=tmp_path / "there.csv", workers=2)

    assert counts(in_workers) == counts(in_process)
    assert in_process.rejected == made.bad_lines
    assert (tmp_path / "here.csv").read_text() == (tmp_path / "there.csv").read_text()
    assert open_first_names(platform, there) == open_first_names(platform, here)
    # And the rerun through workers recognises every row.
    again = run(platform, there, made.path, workers=2)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, in_process.inserted)


def test_given_a_worker_that_dies_then_the_preparer_raises_worker_error() -> None:
    validator = LineValidator(contracts={"ESSENTIEL"}, mode=ImportMode.FULL, file_date=FILE_DATE)
    with ParallelPreparer(new_data_keys(1), 1, validator, 1) as pool:
        worker = pool._workers[0]
        worker.process.kill()
        worker.process.wait()
        with pytest.raises(WorkerError):
            list(pool.map([[(2, ("",) * 13)]]))


@pytest.mark.parametrize("merge_each_chunk", [True, False])
def test_given_small_chunks_then_duplicates_ids_and_counts_hold_across_chunks(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    merge_each_chunk: bool,
) -> None:
    monkeypatch.setattr(beneficiary_import, "CHUNK_ROWS", 4)
    dialects = {"sqlite", "postgresql"} if merge_each_chunk else set()
    monkeypatch.setattr(beneficiary_import, "MERGE_EACH_CHUNK_ON", frozenset(dialects))
    insurer = seed_insurer(platform)
    first = [person(n, member=f"A{n:08d}") for n in range(1, 11)]
    run(platform, insurer, write(tmp_path, "v1.csv", *first[:6]))
    # Lines 2-4 known (one changed), then new ones, with duplicates of a line in an
    # earlier chunk (line 3 again on line 9) and within a chunk (line 10 on line 11).
    # Rows 4 and 5 are absent: terminated.
    lines = [
        first[0],
        first[1].replace("ESSENTIEL", "CONFORT"),
        first[2],
        first[6],
        first[7],
        person(20, contract="PLATINE"),  # rejected while reading
        first[8],
        first[1],
        first[9],
        first[9],
        first[5],
    ]
    report = tmp_path / "errors.csv"
    summary = run(platform, insurer, write(tmp_path, "v2.csv", *lines), report=report, confirm=2)

    assert counts(summary) == (11, 4, 1, 3, 2, 3)
    assert [(r[0], r[1]) for r in report_rows(report)] == [
        ("7", "line.unknown_contract"),
        ("9", "line.duplicate"),
        ("11", "line.duplicate"),
    ]
    stored = snapshot(platform, insurer.id)
    ids = [row[1] for row in stored]
    assert ids == list(range(1, 11))
    end = beneficiaries.c.keys().index("coverage_end")
    ended = FILE_DATE - timedelta(days=1)
    assert [row[end] for row in stored][3:6] == [ended, ended, None]
    assert open_first_names(platform, insurer) == ["Etienne"] * 10
    again = run(platform, insurer, write(tmp_path, "v2.csv", *lines))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 8)


def _comparable(platform: Platform, insurer: SeededInsurer) -> list[tuple[Any, ...]]:
    """An insurer's stored rows without what differs between two insurers or two runs
    (insurer id, ciphertexts, which carry random nonces, update time), plus the first
    name opened: what two imports of one file must agree on."""
    names = beneficiaries.c.keys()
    keyed = {"insurer_id", "updated_at", "row_digest"}
    kept = [k for k, name in enumerate(names) if name not in keyed and name[:4] != "idx_"]
    kept = [k for k in kept if not names[k].endswith("_ct")]
    rows = snapshot(platform, insurer.id)
    with platform.engine.connect() as conn:
        cipher = FieldCipher(platform.keys.active(conn, insurer_scope(insurer.amc_number)))
    at = {name: k for k, name in enumerate(names)}
    return [
        (
            *(row[k] for k in kept),
            *(
                open_column(cipher, insurer.id, row[at["idx_nir"]], column, row[at[f"{column}_ct"]])
                for column in ("nir", "member_number", "first_name")
            ),
        )
        for row in rows
    ]


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_given_a_new_insurer_then_chunks_copied_straight_store_what_staging_stores(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """On PostgreSQL, chunks of an insurer's first import go straight into beneficiaries
    (COPY) instead of through the staging table; a chunk holding a repeated line (of its
    own or of an earlier chunk) or a removal is staged instead. Rows, ids, counts and
    reported lines must be the same as when every chunk is staged."""
    monkeypatch.setattr(beneficiary_import, "CHUNK_ROWS", 4)
    monkeypatch.setattr(enrolment, "PREPARE_LINES", 4)
    people = [person(n, member=f"A{n:08d}") for n in range(1, 10)]
    lines = [
        *people[:4],  # lines 2-5: a chunk without repeats, copied straight
        people[4], people[1], people[5], people[6],  # line 7 repeats line 3: staged
        people[7], people[7], people[8],  # line 11 repeats line 10, in its chunk: staged
    ]  # fmt: skip
    header = HEADER
    if mode == "full":
        lines += [person(n, member=f"A{n:08d}") for n in range(10, 14)]  # lines 13-16, new
    if mode == "incremental":
        header += ";action"
        unknown = person(50, member="A00000050")
        lines = [f"{line};" for line in lines]
        # Line 13 removes line 4's person (a repeat), line 14 someone nobody holds, and
        # line 15 repeats line 2 again.
        lines += [f"{people[2]};R", f"{unknown};R", f"{people[0]};"]
    path = write(tmp_path, "first.csv", *lines, header=header)
    copied: list[int] = []
    copy_direct = beneficiary_import.BeneficiaryImport._copy_direct

    def spy(self: beneficiary_import.BeneficiaryImport, raw: Any, rows: Any) -> None:
        copied.append(len(rows))
        copy_direct(self, raw, rows)

    monkeypatch.setattr(beneficiary_import.BeneficiaryImport, "_copy_direct", spy)
    outcomes = []
    # In this process, then through two worker processes (which cut the lines and encode
    # the rows for COPY themselves), then every chunk staged.
    for straight, workers in ((True, 0), (True, 2), (False, 0)):
        if not straight:
            monkeypatch.setattr(
                beneficiary_import.BeneficiaryImport, "_direct_ok", lambda self, raw, rows: False
            )
        copied.clear()
        insurer = seed_insurer(platform)
        report = tmp_path / f"errors-{straight}-{workers}.csv"
        summary = run(platform, insurer, path, mode=mode, report=report, workers=workers)
        outcomes.append((counts(summary), report_rows(report), _comparable(platform, insurer)))
        if straight and platform.engine.dialect.name == "postgresql":
            # Chunks with a repeat (in the chunk or of a row copied before) or a removal
            # were staged; the others went straight in.
            assert copied == ([4, 3] if mode == "full" else [4])
        elif straight:
            assert copied == []
    assert outcomes[0] == outcomes[1] == outcomes[2]
    rejected = [(r[0], r[1]) for r in outcomes[0][1]]
    expected = [("7", "line.duplicate"), ("11", "line.duplicate")]
    if mode == "incremental":
        expected += [
            ("13", "line.duplicate"),
            ("14", "line.unknown_beneficiary"),
            ("15", "line.duplicate"),
        ]
    assert rejected == expected
    people_count = 13 if mode == "full" else 9
    assert outcomes[0][0] == (len(lines), people_count, 0, 0, 0, len(expected))
    assert [row[0] for row in outcomes[0][2]] == list(range(1, people_count + 1))
    assert [row[-1] for row in outcomes[0][2]] == ["Etienne"] * people_count
    assert [row[-2] for row in outcomes[0][2]] == [f"A{n:08d}" for n in range(1, people_count + 1)]


def test_given_an_import_then_each_row_is_what_the_line_by_line_definitions_give(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    """The bulk path (chunked sealing, fast NIR check, C-level HMAC states) stores exactly
    the indexes, digests and plaintexts of the one-line-at-a-time definitions, so rows
    written before it are recognised (a rerun changes nothing) and lookups find them."""
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "ref.csv", 1500, seed=21, contracts=insurer.contracts,
        bad_line_ratio=0.04, start=FILE_DATE,
    )  # fmt: skip
    summary = run(platform, insurer, made.path)
    with BeneficiaryReader(
        made.path, contracts=insurer.contracts, mode=ImportMode.FULL, file_date=FILE_DATE
    ) as reader:
        # The first line of each (NIR, rank) is applied; later ones are duplicates.
        firsts: dict[tuple[str, int], BeneficiaryLine] = {}
        for line in reader:
            if isinstance(line, BeneficiaryLine):
                firsts.setdefault((line.nir, line.birth_rank), line)
    lines = list(firsts.values())
    assert summary.inserted == len(lines) > 1400
    with platform.engine.connect() as conn:
        keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
        stored = {
            bytes(row.idx_nir): row
            for row in conn.execute(
                select(beneficiaries).where(beneficiaries.c.insurer_id == insurer.id)
            )
        }
    indexer, cipher = BlindIndexer(keys), FieldCipher(keys)
    digest_key = keys.derive(DIGEST_PURPOSE)
    for line in lines:
        idx = nir_index(indexer, line.nir, line.birth_rank)
        row = stored[idx]
        assert bytes(row.idx_member) == member_index(indexer, line.member_number, line.birth_date)
        assert bytes(row.idx_family) == family_index(indexer, line.member_number)
        expected_digest = hmac.new(digest_key, line.canonical(), hashlib.sha256).digest()[:16]
        assert bytes(row.row_digest) == expected_digest
        plain = {
            "nir": line.nir,
            "member_number": line.member_number,
            "birth_date": line.birth_date.isoformat(),
            "last_name": line.last_name,
            "first_name": line.first_name,
        }
        for column, value in plain.items():
            blob = bytes(getattr(row, f"{column}_ct"))
            assert open_column(cipher, insurer.id, idx, column, blob) == value
        assert (row.sex, row.quality, row.birth_year, row.contract_code, row.css) == (
            line.sex.value, line.quality.value, line.birth_date.year, line.contract, line.css
        )  # fmt: skip
        assert (row.coverage_start, row.coverage_end) == (line.coverage_start, line.coverage_end)
        assert (row.birth_rank, row.key_version) == (line.birth_rank, keys.version)
        assert row.is_canary is False


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "beneficiary-import-writer"]


def test_given_the_database_write_of_a_chunk_fails_then_the_run_fails_and_nothing_changes(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL chunks are written by a writer thread: its failure must reach the
    run, roll it back whole, and leave no thread behind."""
    insurer = seed_insurer(platform)
    first = write_beneficiaries_csv(
        tmp_path / "first.csv", 900, seed=31, contracts=insurer.contracts, start=FILE_DATE
    )
    run(platform, insurer, first.path)
    before = snapshot(platform, insurer.id)
    second = write_beneficiaries_csv(
        tmp_path / "second.csv", 2500, seed=32, contracts=insurer.contracts, start=FILE_DATE
    )
    # Chunks of 1,000 prepared lines, each handed to the writer at once: three writes.
    monkeypatch.setattr(beneficiary_import, "CHUNK_ROWS", 200)
    original = beneficiary_import.BeneficiaryImport._write
    writes: list[int] = []

    def failing_write(self: beneficiary_import.BeneficiaryImport, *args: Any) -> None:
        writes.append(len(args[0]))
        if len(writes) == 2:
            raise Boom("the database went away")
        original(self, *args)

    monkeypatch.setattr(beneficiary_import.BeneficiaryImport, "_write", failing_write)
    with pytest.raises(Boom):
        run(platform, insurer, second.path, workers=0)
    assert len(writes) == 2  # nothing written after the failure
    assert _writer_threads() == []
    assert snapshot(platform, insurer.id) == before
    monkeypatch.setattr(beneficiary_import.BeneficiaryImport, "_write", original)
    assert run(platform, insurer, second.path, confirm=covered_on(before, FILE_DATE)).inserted == (
        2500
    )


@pytest.mark.parametrize(("cpus", "expected"), [(1, 0), (2, 2), (3, 2), (4, 3), (16, 4)])
def test_given_a_large_file_then_two_cores_already_get_two_workers(
    monkeypatch: pytest.MonkeyPatch, cpus: int, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert enrolment._worker_count(None, enrolment.PARALLEL_MIN_BYTES) == expected
    assert enrolment._worker_count(None, enrolment.PARALLEL_MIN_BYTES - 1) == 0
    assert enrolment._worker_count(3, 0) == 3


def test_given_a_file_then_progress_counts_its_people_not_its_bytes(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "people.csv", 2300, seed=23, contracts=insurer.contracts, start=FILE_DATE
    )
    calls: list[tuple[int, int]] = []
    summary = run(platform, insurer, made.path, progress=lambda d, t: calls.append((d, t)))
    size = made.path.stat().st_size
    # The people of the file (its lines after the header), from the first call to the last.
    assert calls[0] == (0, summary.lines)
    assert calls[1:-1] == [(1000, summary.lines), (2000, summary.lines), (2300, summary.lines)]
    assert calls[-1] == (summary.lines, summary.lines)
    assert summary.lines == 2300
    assert all(total < size for _, total in calls)
