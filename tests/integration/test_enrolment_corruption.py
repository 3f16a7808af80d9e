"""A damaged full file never ends coverage by accident, on SQLite and PostgreSQL.

A line that cannot be applied is rejected; if its NIR and birth rank can still be read,
its beneficiary keeps their coverage. Lines after a damaged one are read as they are. A
full file that would end more than a share of the insurer's covered base is refused, with
nothing written, until its count of terminations is confirmed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from sqlalchemy import select

from tests.conftest import SeededInsurer
from tests.integration.test_enrolment import (
    FILE_DATE,
    HEADER,
    covered_on,
    person,
    report_rows,
    run,
    snapshot,
)
from tierspayant.app.platform import Platform
from tierspayant.cli.import_beneficiaries import EXIT_OK, EXIT_REFUSED, import_beneficiaries_command
from tierspayant.config import EnrolmentSettings
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.errors import InvalidIdentifier
from tierspayant.domain.identifiers import parse_birth_rank, parse_nir_value
from tierspayant.services.enrolment import TerminationsNotConfirmed
from tierspayant.services.errors import ServiceError
from tierspayant.store import audit
from tierspayant.store.tables import beneficiaries, import_runs

SeedInsurer = Callable[..., SeededInsurer]
END = beneficiaries.c.keys().index("coverage_end")
COLUMNS = HEADER.split(";")


def ends(platform: Platform, insurer: SeededInsurer) -> list[date | None]:
    """Each stored beneficiary's coverage end, in id (first file's line) order."""
    return [row[END] for row in snapshot(platform, insurer.id)]


def set_cell(line: str, column: str, value: str) -> str:
    cells = line.split(";")
    cells[COLUMNS.index(column)] = value
    return ";".join(cells)


def cell(line: str, column: str) -> str:
    return line.split(";")[COLUMNS.index(column)]


# Each corruption: the text lines of a valid 1,000-line file, from index 1 (the header,
# so that index n is line n) -> the bytes of the damaged file, the line numbers damaged.
Corruption = Callable[[list[str]], tuple[bytes, list[int]]]


def _encode(lines: list[str]) -> bytes:
    return ("\n".join(lines[1:]) + "\n").encode("utf-8")


def stray_quote(lines: list[str]) -> tuple[bytes, list[int]]:
    lines[51] = set_cell(lines[51], "last_name", '"' + cell(lines[51], "last_name"))
    return _encode(lines), [51]


def quote_closed_ten_lines_later(lines: list[str]) -> tuple[bytes, list[int]]:
    lines[51] = set_cell(lines[51], "last_name", '"' + cell(lines[51], "last_name"))
    lines[61] = set_cell(lines[61], "first_name", cell(lines[61], "first_name") + '"')
    return _encode(lines), [51, 61]


def short_lines(lines: list[str]) -> tuple[bytes, list[int]]:
    damaged = list(range(100, 200, 10))
    for n in damaged:
        lines[n] = ";".join(lines[n].split(";")[:6])  # cut after the last name
    return _encode(lines), damaged


def extra_cells(lines: list[str]) -> tuple[bytes, list[int]]:
    damaged = [300, 301, 302]
    for n in damaged:
        lines[n] = set_cell(lines[n], "first_name", cell(lines[n], "first_name") + ";Marie")
    return _encode(lines), damaged


def latin1_names(lines: list[str]) -> tuple[bytes, list[int]]:
    damaged = [400, 500]
    raw = [line.encode("utf-8") for line in lines]
    for n in damaged:
        raw[n] = set_cell(lines[n], "first_name", "Jérôme").encode("latin-1")
    return b"\n".join(raw[1:]) + b"\n", damaged


def oversized_fields(lines: list[str]) -> tuple[bytes, list[int]]:
    lines[51] = set_cell(lines[51], "first_name", "x" * 200_000)
    lines[52] = set_cell(lines[52], "member_number", "9" * 300_000)
    return _encode(lines), [51, 52]


def unknown_contract(lines: list[str]) -> tuple[bytes, list[int]]:
    lines[700] = set_cell(lines[700], "contract", "PLATINE")
    return _encode(lines), [700]


@pytest.mark.parametrize(
    "corrupt",
    [
        stray_quote,
        quote_closed_ten_lines_later,
        short_lines,
        extra_cells,
        latin1_names,
        oversized_fields,
        unknown_contract,
    ],
)
def test_given_a_damaged_full_file_then_nobody_whose_line_names_them_is_terminated(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path, corrupt: Corruption
) -> None:
    # Given an insurer whose 1,000 beneficiaries came from a valid full file
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "v1.csv", 1000, seed=8, contracts=insurer.contracts, start=FILE_DATE
    )
    assert run(platform, insurer, made.path).inserted == 1000
    before = ends(platform, insurer)
    # When the same file comes back damaged
    lines = ["", *made.path.read_text(encoding="utf-8").splitlines()]
    assert lines[1] == HEADER
    content, damaged = corrupt(lines)
    path = tmp_path / "v2.csv"
    path.write_bytes(content)
    report = tmp_path / "errors.csv"
    summary = run(platform, insurer, path, report=report)
    # Then every physical line was read, exactly the damaged ones are rejected, and
    # nobody lost their coverage
    assert summary.lines == 1000
    assert [int(row[0]) for row in report_rows(report)] == damaged
    assert (summary.rejected, summary.terminated) == (len(damaged), 0)
    assert summary.unchanged == 1000 - len(damaged)
    assert ends(platform, insurer) == before


def test_given_a_full_file_cut_at_a_quote_then_the_import_still_reads_every_line(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    """The reported defect: main read 50 lines, rejected 1 and terminated 908."""
    insurer = seed_insurer(platform)
    made = write_beneficiaries_csv(
        tmp_path / "v1.csv", 1000, seed=9, contracts=insurer.contracts, start=FILE_DATE
    )
    run(platform, insurer, made.path)
    lines = ["", *made.path.read_text(encoding="utf-8").splitlines()]
    content, _ = stray_quote(lines)
    path = tmp_path / "v2.csv"
    path.write_bytes(content)

    summary = run(platform, insurer, path)

    assert (summary.lines, summary.rejected, summary.terminated) == (1000, 1, 0)
    assert summary.first_errors[0].code == "line.quote"


# --- terminations above the share need a confirmation -------------------------------------


def _hundred(tmp_path: Path, name: str, people: range) -> Path:
    lines = [person(n, member=f"A{n:08d}") for n in people]
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *lines)) + "\n", encoding="utf-8")
    return path


def test_given_a_full_file_ending_more_than_the_share_then_refused_until_confirmed(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    # Given 100 covered beneficiaries
    insurer = seed_insurer(platform)
    run(platform, insurer, _hundred(tmp_path, "v1.csv", range(1, 101)))
    # and a full file without the last ten but with two newcomers (and one change)
    v2 = _hundred(tmp_path, "v2.csv", range(1, 91))
    text = v2.read_text(encoding="utf-8").replace("ESSENTIEL", "CONFORT", 1)
    newcomers = [person(n, member=f"A{n:08d}") for n in (101, 102)]
    v2.write_text(text + "\n".join(newcomers) + "\n", encoding="utf-8")
    before = snapshot(platform, insurer.id)
    report = tmp_path / "errors.csv"

    # When imported without confirmation: refused, with the count, and nothing written
    with pytest.raises(TerminationsNotConfirmed) as refused:
        run(platform, insurer, v2, report=report)
    assert refused.value.code == "enrolment.terminations_unconfirmed"
    assert (refused.value.terminations, refused.value.covered) == (10, 100)
    assert snapshot(platform, insurer.id) == before
    assert not report.exists()
    with platform.engine.connect() as conn:
        statuses = conn.execute(
            select(import_runs.c.status)
            .where(import_runs.c.insurer_id == insurer.id)
            .order_by(import_runs.c.id)
        ).scalars()
        assert list(statuses) == ["done", "failed"]
        event = audit.last_event(conn)
    assert event is not None
    assert (event.decision, event.detail["reason"], event.detail["terminations"]) == (
        "error",
        "enrolment.terminations_unconfirmed",
        10,
    )

    # When confirmed with another count: refused, nothing written
    with pytest.raises(TerminationsNotConfirmed) as mismatch:
        run(platform, insurer, v2, confirm=9)
    assert mismatch.value.code == "enrolment.terminations_mismatch"
    assert snapshot(platform, insurer.id) == before

    # When confirmed with the count announced: applied
    summary = run(platform, insurer, v2, confirm=10)
    assert (summary.inserted, summary.updated, summary.terminated) == (2, 1, 10)
    stored = ends(platform, insurer)
    assert stored[90:100] == [FILE_DATE - timedelta(days=1)] * 10
    assert stored[:90] + stored[100:] == [None] * 92
    with platform.engine.connect() as conn:
        event = audit.last_event(conn)
    assert event is not None
    assert (event.decision, event.detail["terminations_confirmed"]) == ("allow", 10)


def test_given_terminations_within_the_share_then_no_confirmation_is_asked(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    run(platform, insurer, _hundred(tmp_path, "v1.csv", range(1, 101)))
    # 2 of 100 is not more than 2 %; 3 of 98 would be.
    assert run(platform, insurer, _hundred(tmp_path, "v2.csv", range(1, 99))).terminated == 2
    with pytest.raises(TerminationsNotConfirmed):
        run(platform, insurer, _hundred(tmp_path, "v3.csv", range(1, 96)))


def test_given_the_share_setting_then_it_decides_when_to_ask(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    insurer = seed_insurer(platform)
    run(platform, insurer, _hundred(tmp_path, "v1.csv", range(1, 101)))
    v2 = _hundred(tmp_path, "v2.csv", range(1, 91))  # ends 10 of 100

    def share(bp: int) -> None:
        enrolment = EnrolmentSettings(confirm_terminations_above_bp=bp)
        monkeypatch.setattr(platform, "settings", replace(platform.settings, enrolment=enrolment))

    share(1000)  # 10 %
    assert run(platform, insurer, v2).terminated == 10
    run(platform, insurer, _hundred(tmp_path, "v1.csv", range(1, 101)))  # everyone back
    share(0)
    with pytest.raises(TerminationsNotConfirmed):  # 0: every termination is confirmed
        run(platform, insurer, _hundred(tmp_path, "v3.csv", range(1, 100)))
    with pytest.raises(ServiceError) as negative:
        run(platform, insurer, v2, confirm=-1)
    assert negative.value.code == "enrolment.confirm_terminations"


def test_given_the_command_then_a_french_refusal_names_the_count_and_the_option(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    run(platform, insurer, _hundred(tmp_path, "v1.csv", range(1, 101)))
    v2 = _hundred(tmp_path, "v2.csv", range(1, 89))  # ends 12 of 100
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)

    def command(confirm: int | None) -> int:
        return import_beneficiaries_command(
            platform, v2, insurer.amc_number, "full", FILE_DATE, None, console, confirm
        )

    assert command(None) == EXIT_REFUSED
    shown = out.getvalue()
    assert "mettrait fin à la couverture de 12 bénéficiaires sur 100 (12\u00a0%)" in shown
    assert "au-delà du seuil de 2\u00a0%" in shown
    assert "Rien n'a été appliqué" in shown
    assert "relancez avec --confirm-terminations 12" in shown
    assert "[enrolment.terminations_unconfirmed]" in shown
    assert covered_on(snapshot(platform, insurer.id), FILE_DATE) == 100

    assert command(11) == EXIT_REFUSED
    assert "et non de 11" in out.getvalue()
    assert command(12) == EXIT_OK
    assert covered_on(snapshot(platform, insurer.id), FILE_DATE) == 88


# --- property: random damage never ends the coverage of someone a line still names --------

PEOPLE = 24
BIG = 140_000  # over the csv module's own field limit (128 KiB)


def _readable(cells: list[str], nir_at: int, rank_at: int) -> tuple[str, int] | None:
    """The NIR and rank the damaged line still shows where the header puts them."""
    if max(nir_at, rank_at) >= len(cells):
        return None
    try:
        return parse_nir_value(cells[nir_at]), parse_birth_rank(cells[rank_at])
    except InvalidIdentifier:
        return None


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[list[str], list[str], dict[int, bytes]]:
    """Columns in a random order, people, and damaged lines (person index -> bytes)."""
    columns = draw(st.permutations(COLUMNS))
    people = [
        person(
            n,
            member=f"A{n:08d}",
            rank=1 + n % 3,
            first=draw(st.sampled_from(["Etienne", "Anne-Marie", "Jean"])),
            contract=draw(st.sampled_from(["ESSENTIEL", "CONFORT"])),
        )
        for n in range(1, PEOPLE + 1)
    ]
    ordered = [";".join(cell(line, c) for c in columns) for line in people]
    targets = draw(st.sets(st.integers(0, PEOPLE - 1), min_size=1, max_size=6))
    damaged: dict[int, bytes] = {}
    for index in sorted(targets):
        cells = ordered[index].split(";")
        kind = draw(
            st.sampled_from(["quote", "quote_inside", "cut", "bytes", "big", "extra", "swap"])
        )
        at = draw(st.integers(0, len(cells) - 1))
        if kind == "quote_inside" and len(cells[at]) >= 2:  # a quote as a character
            inside = draw(st.integers(1, len(cells[at]) - 1))
            cells[at] = cells[at][:inside] + '"' + cells[at][inside:]
        elif kind.startswith("quote"):  # opens a quoted field that nothing closes
            cells[at] = '"' + cells[at]
        elif kind == "bytes":  # invalid UTF-8 inside a cell
            line = ";".join(cells).encode()
            start = len(";".join(cells[:at]).encode()) + (1 if at else 0)
            where = draw(st.integers(start, start + len(cells[at].encode())))
            damaged[index] = (
                line[:where] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3"])) + line[where:]
            )
            continue
        elif kind == "big":
            cells[at] = draw(st.sampled_from(["x" * 1500, "7" * BIG, "y" * 3 * BIG]))
        elif kind == "extra":
            cells.insert(draw(st.integers(0, len(cells))), draw(st.sampled_from(["", "1", "X"])))
        elif kind == "swap":
            other = draw(st.integers(0, len(cells) - 1))
            names = {columns[at], columns[other]}
            if cells[at] == cells[other] or names == {"last_name", "first_name"}:
                cells.insert(at, "surplus")  # a swap that could leave a valid line
            else:
                cells[at], cells[other] = cells[other], cells[at]
        else:  # cut: the line loses at least its last separator, keeps a non-blank cell
            whole = ";".join(cells)
            first = next(i for i, c in enumerate(whole) if c != ";")
            damaged[index] = whole[: draw(st.integers(first + 1, whole.rindex(";")))].encode()
            continue
        damaged[index] = ";".join(cells).encode()
    return columns, ordered, damaged


def _shown_identity(columns: list[str], raw: bytes) -> tuple[str, int] | None:
    """Whom a (damaged) line still names: its cells split at separators, except that a
    cell opening a quote (a line holds one quote at most) runs to the end of the line."""
    text = raw.decode("utf-8", errors="replace")
    assert text.count('"') <= 1
    cells = text.split(";")
    opened = next((i for i, c in enumerate(cells) if c.startswith('"')), None)
    if opened is not None:
        cells[opened:] = [";".join(cells[opened:])[1:] + "\n"]
    return _readable(cells, columns.index("nir"), columns.index("birth_rank"))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=damaged_files())
def test_property_random_damage_only_ends_the_coverage_of_people_no_line_names(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    case: tuple[list[str], list[str], dict[int, bytes]],
) -> None:
    columns, lines, damaged = case
    insurer = seed_insurer(platform)  # a fresh insurer per example
    folder = tmp_path / insurer.amc_number
    folder.mkdir()
    header = ";".join(columns).encode()
    valid = folder / "v1.csv"
    valid.write_bytes(b"\n".join([header, *(line.encode() for line in lines)]) + b"\n")
    assert run(platform, insurer, valid).inserted == PEOPLE
    # The damaged file; who is still named by some line, and who is not.
    raw = [damaged.get(i, line.encode()) for i, line in enumerate(lines)]
    path = folder / "v2.csv"
    path.write_bytes(b"\n".join([header, *raw]) + b"\n")
    named = {_shown_identity(columns, line) for line in raw}
    lost = [
        i for i, line in enumerate(lines) if _shown_identity(columns, line.encode()) not in named
    ]
    report = folder / "errors.csv"

    # The count to confirm is the oracle's: the run is refused if it would end any other.
    summary = run(platform, insurer, path, report=report, confirm=len(lost))

    reported = sorted(int(row[0]) for row in report_rows(report))
    assert reported == sorted(i + 2 for i in damaged)  # line n of the file: person n - 2
    assert summary.lines == PEOPLE
    day_before = FILE_DATE - timedelta(days=1)
    assert ends(platform, insurer) == [day_before if i in lost else None for i in range(PEOPLE)]
