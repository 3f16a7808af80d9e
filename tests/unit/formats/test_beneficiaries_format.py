"""The beneficiary file format: streaming reader, validation codes, error report, generator."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from stdnum.fr import nir as stdnum_nir

from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.care import Quality, Sex
from tierspayant.domain.identifiers import parse_nir
from tierspayant.formats import french_csv
from tierspayant.formats.beneficiaries import (
    Action,
    BeneficiaryFileError,
    BeneficiaryLine,
    BeneficiaryReader,
    ErrorReportWriter,
    ImportMode,
    LineError,
    canonical_fields,
    mask_identifiers,
    shown_value,
)

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end;css"
)
CONTRACTS = frozenset({"ESSENTIEL", "CONFORT"})
FILE_DATE = date(2025, 3, 1)


def make_nir(sex: str, birth: date, place: str = "75123", order: int = 456) -> str:
    """A valid NIR for a person born in Paris on ``birth``."""
    body = f"{'1' if sex == 'M' else '2'}{birth.year % 100:02d}{birth.month:02d}{place}{order:03d}"
    return body + stdnum_nir.calc_check_digits(body)


JULIEN_NIR = make_nir("M", date(1985, 5, 14))
GOOD = f"A00000001;{JULIEN_NIR};1;1985-05-14;Martin;Julien;M;member;ESSENTIEL;2024-01-01;;0"


def write(tmp_path: Path, *lines: str, header: str = HEADER, name: str = "b.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    return path


def read_all(
    path: Path, mode: ImportMode = ImportMode.FULL, file_date: date = FILE_DATE
) -> list[BeneficiaryLine | LineError]:
    with BeneficiaryReader(path, contracts=CONTRACTS, mode=mode, file_date=file_date) as reader:
        return list(reader)


def only_error(path: Path, mode: ImportMode = ImportMode.FULL) -> LineError:
    (item,) = read_all(path, mode)
    assert isinstance(item, LineError), item
    return item


def with_field(column: str, value: str, line: str = GOOD) -> str:
    names = HEADER.split(";")
    cells = line.split(";")
    cells[names.index(column)] = value
    return ";".join(cells)


# --- valid lines ------------------------------------------------------------------------


def test_given_a_valid_line_when_read_then_values_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f" a00000001 ;{JULIEN_NIR};1;1985-05-14;  Martin   Du  Pont ;Julien;m;MEMBER;ESSENTIEL;"
        "2024-01-01;2025-12-31;1",
    )
    (line,) = read_all(path)
    assert isinstance(line, BeneficiaryLine)
    assert line.line_no == 2
    assert line.member_number == "A00000001"
    assert line.nir == JULIEN_NIR
    assert line.last_name == "Martin Du Pont"
    assert line.sex is Sex.MALE
    assert line.quality is Quality.MEMBER
    assert line.coverage_end == date(2025, 12, 31)
    assert line.css is True
    assert line.action is Action.ADD


def test_given_a_line_when_printed_then_repr_hides_identity(tmp_path: Path) -> None:
    (line,) = read_all(write(tmp_path, GOOD))
    shown = repr(line)
    assert JULIEN_NIR not in shown
    assert "Martin" not in shown
    assert "1985" not in shown


def test_given_columns_in_another_order_without_optional_ones_then_read(tmp_path: Path) -> None:
    header = (
        "nir;member_number;birth_rank;birth_date;first_name;last_name;sex;quality;contract;"
        "coverage_start;coverage_end"
    )
    path = write(
        tmp_path,
        f"{JULIEN_NIR};A1;1;1985-05-14;Julien;Martin;M;member;CONFORT;2024-01-01;",
        header=header,
    )
    (line,) = read_all(path)
    assert isinstance(line, BeneficiaryLine)
    assert (line.member_number, line.first_name, line.last_name) == ("A1", "Julien", "Martin")
    assert line.contract == "CONFORT"
    assert line.css is False
    assert line.coverage_end is None


def test_given_bom_crlf_and_blank_lines_when_read_then_line_numbers_are_physical(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crlf.csv"
    other = make_nir("F", date(1987, 9, 2), order=123)
    second = with_field(
        "nir", other, with_field("sex", "F", with_field("birth_date", "1987-09-02"))
    )
    path.write_bytes(("\ufeff" + HEADER + "\r\n" + GOOD + "\r\n\r\n" + second + "\r\n").encode())
    items = read_all(path)
    assert [i.line_no for i in items] == [2, 4]
    assert all(isinstance(i, BeneficiaryLine) for i in items)


def test_given_two_lines_same_content_then_canonical_forms_match(tmp_path: Path) -> None:
    first, second = read_all(write(tmp_path, GOOD, GOOD.replace("Martin", " Martin ")))
    assert isinstance(first, BeneficiaryLine)
    assert isinstance(second, BeneficiaryLine)
    assert first.canonical() == second.canonical()
    changed = read_all(write(tmp_path, GOOD.replace("ESSENTIEL", "CONFORT"), name="c.csv"))[0]
    assert isinstance(changed, BeneficiaryLine)
    assert changed.canonical() != first.canonical()


def test_given_an_unknown_month_in_the_nir_then_only_the_year_is_compared(tmp_path: Path) -> None:
    nir = make_nir("M", date(1985, 1, 1)).replace("18501", "18530")
    body = nir[:13]
    nir = body + stdnum_nir.calc_check_digits(body)
    (line,) = read_all(write(tmp_path, with_field("nir", nir)))
    assert isinstance(line, BeneficiaryLine)


def test_given_a_removal_without_end_when_incremental_then_ends_the_day_before(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, GOOD + ";R", header=HEADER + ";action")
    (line,) = read_all(path, ImportMode.INCREMENTAL)
    assert isinstance(line, BeneficiaryLine)
    assert line.action is Action.REMOVE
    assert line.coverage_end == date(2025, 2, 28)


# --- rejected lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("member_number", "", "line.member_number"),
        ("member_number", "A 1", "line.member_number"),
        ("birth_date", "14/05/1985", "line.date"),
        ("birth_date", "19850514", "line.date"),
        ("birth_date", "1985-02-30", "line.date"),
        ("last_name", "", "line.name"),
        ("first_name", "Jul1en", "line.name"),
        ("last_name", "X" * 81, "line.name"),
        ("sex", "X", "line.sex"),
        ("sex", "F", "line.nir_sex_mismatch"),
        ("quality", "cousin", "line.quality"),
        ("contract", "PLATINE", "line.unknown_contract"),
        ("contract", "", "line.unknown_contract"),
        ("coverage_start", "2024-13-01", "line.date"),
        ("coverage_start", "1980-01-01", "line.birth_after_coverage"),
        ("coverage_end", "2023-12-31", "line.coverage_order"),
        ("coverage_end", "soon", "line.date"),
        ("css", "2", "line.css"),
        ("birth_date", "1985-06-14", "line.nir_birth_mismatch"),
        ("birth_date", "1885-05-14", "line.date"),
    ],
)
def test_given_a_bad_field_when_read_then_rejected_with_its_code_and_column(
    tmp_path: Path, column: str, value: str, code: str
) -> None:
    error = only_error(write(tmp_path, with_field(column, value)))
    assert error.code == code
    assert error.line_no == 2
    assert error.column == column or code.startswith("line.nir_")
    # NIR and rank were valid: the error names the beneficiary internally.
    assert error.nir == JULIEN_NIR
    assert error.birth_rank == 1


def test_given_a_bad_nir_key_then_the_identifier_code_is_prefixed(tmp_path: Path) -> None:
    bad = JULIEN_NIR[:13] + f"{(int(JULIEN_NIR[13:]) % 97) + 1:02d}"
    error = only_error(write(tmp_path, with_field("nir", bad)))
    assert error.code.startswith("line.nir.")
    assert error.column == "nir"
    assert error.nir is None
    assert bad not in mask_identifiers(error.message)


def test_given_a_bad_birth_rank_then_the_identifier_code_is_prefixed(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, with_field("birth_rank", "x")))
    assert error.code.startswith("line.birth_rank")
    assert error.column == "birth_rank"


def test_given_a_missing_field_then_line_columns(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, GOOD.rsplit(";", 1)[0]))
    assert (error.code, error.line_no, error.column) == ("line.columns", 2, None)


def test_given_a_birth_after_the_file_date_then_rejected(tmp_path: Path) -> None:
    baby = make_nir("F", date(2025, 4, 2))
    line = with_field(
        "birth_date",
        "2025-04-02",
        with_field("nir", baby, with_field("sex", "F", with_field("coverage_start", "2025-04-02"))),
    )
    assert only_error(write(tmp_path, line)).code == "line.birth_future"


def test_given_a_removal_in_a_full_file_then_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + ";R", header=HEADER + ";action")
    error = only_error(path, ImportMode.FULL)
    assert (error.code, error.column) == ("line.action", "action")


def test_given_an_unknown_action_then_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + ";D", header=HEADER + ";action")
    assert only_error(path, ImportMode.INCREMENTAL).code == "line.action"


def test_given_invalid_utf8_in_a_name_then_only_that_line_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    bad = with_field("first_name", "Jérôme").encode("latin-1")
    path.write_bytes(HEADER.encode() + b"\n" + bad + b"\n" + GOOD.encode() + b"\n")
    first, second = read_all(path)
    assert isinstance(first, LineError)
    assert (first.code, first.line_no) == ("line.encoding", 2)
    assert isinstance(second, BeneficiaryLine)


# --- one physical line, one record --------------------------------------------------------


def people(count: int) -> list[str]:
    """``count`` valid lines of different men born in 1985 (NIR order 100, 101…)."""
    return [
        with_field("nir", make_nir("M", date(1985, 5, 14), order=100 + n)) for n in range(count)
    ]


def identity(item: BeneficiaryLine | LineError) -> tuple[str | None, int | None]:
    return item.nir, item.birth_rank


def test_given_a_stray_quote_then_only_its_line_is_rejected_and_the_next_ones_are_read(
    tmp_path: Path,
) -> None:
    # Given line 4 whose last name opens a quote that nothing closes
    lines = people(8)
    lines[2] = with_field("last_name", '"Julien', lines[2])
    # When read
    items = read_all(write(tmp_path, *lines))
    # Then line 4 alone is rejected, naming the column and (internally) its beneficiary;
    # the five lines after it are read as lines of their own
    assert len(items) == 8
    error = items[2]
    assert isinstance(error, LineError)
    assert (error.line_no, error.code, error.column) == (4, "line.quote", "last_name")
    assert identity(error) == (make_nir("M", date(1985, 5, 14), order=102), 1)
    assert [item.line_no for item in items if isinstance(item, BeneficiaryLine)] == [
        2, 3, 5, 6, 7, 8, 9
    ]  # fmt: skip


def test_given_a_quote_closed_lines_later_then_each_line_stands_alone(tmp_path: Path) -> None:
    # Given a quote opened on line 3 and closed on line 6: CSV would make one field of it
    lines = people(6)
    lines[1] = with_field("last_name", '"Martin', lines[1])
    lines[4] = with_field("first_name", 'Julien"', lines[4])
    items = read_all(write(tmp_path, *lines))
    # Then lines 3 and 6 are rejected, lines 4 and 5 between them are applied
    assert [(item.line_no, type(item).__name__) for item in items] == [
        (2, "BeneficiaryLine"),
        (3, "LineError"),
        (4, "BeneficiaryLine"),
        (5, "BeneficiaryLine"),
        (6, "LineError"),
        (7, "BeneficiaryLine"),
    ]
    assert [item.code for item in items if isinstance(item, LineError)] == [
        "line.quote",
        "line.name",  # a quote inside a name is only a wrong character
    ]


def test_given_quoted_fields_on_one_line_then_they_are_read(tmp_path: Path) -> None:
    line = with_field("last_name", '"Le Goff"', with_field("contract", '"ESSENTIEL"'))
    (item,) = read_all(write(tmp_path, line))
    assert isinstance(item, BeneficiaryLine)
    assert (item.last_name, item.contract) == ("Le Goff", "ESSENTIEL")


def test_given_a_quote_left_open_on_the_last_line_then_that_line_is_rejected(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{with_field('css', chr(34) + '0')}", encoding="utf-8")
    first, last = read_all(path)
    assert isinstance(first, BeneficiaryLine)
    assert isinstance(last, LineError)
    assert (last.line_no, last.code, last.column) == (3, "line.quote", "css")


@pytest.mark.parametrize(
    ("cut", "identified"),
    [
        (3, True),  # member number, NIR and rank are still there
        (11, True),  # only the last cell is missing
        (2, False),  # the rank is missing
    ],
)
def test_given_a_line_cut_short_then_line_columns_names_whom_it_can(
    tmp_path: Path, cut: int, identified: bool
) -> None:
    error = only_error(write(tmp_path, ";".join(GOOD.split(";")[:cut])))
    assert (error.code, error.line_no) == ("line.columns", 2)
    assert identity(error) == ((JULIEN_NIR, 1) if identified else (None, None))


def test_given_a_line_cut_inside_the_nir_then_nobody_is_named(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, GOOD[: GOOD.index(JULIEN_NIR) + 10]))
    assert error.code == "line.columns"
    assert identity(error) == (None, None)


@pytest.mark.parametrize(("at", "identified"), [(5, True), (13, True), (1, False)])
def test_given_an_extra_cell_then_line_columns_names_the_beneficiary_if_it_can(
    tmp_path: Path, at: int, identified: bool
) -> None:
    # An extra cell after the rank leaves NIR and rank where the header says; before the
    # NIR it shifts them and the line names nobody.
    cells = GOOD.split(";")
    cells.insert(at, "surplus")
    error = only_error(write(tmp_path, ";".join(cells)))
    assert error.code == "line.columns"
    assert identity(error) == ((JULIEN_NIR, 1) if identified else (None, None))


@pytest.mark.parametrize("size", [1025, 140_000, 3_000_000])
@pytest.mark.parametrize("column", ["member_number", "first_name", "css"])
def test_given_an_oversized_field_then_a_coded_error_and_the_next_line_is_read(
    tmp_path: Path, size: int, column: str
) -> None:
    # Given a field over the limit (the csv module alone stops at 128 KiB with an error)
    path = write(tmp_path, with_field(column, "x" * size), GOOD)
    # When read
    error, after = read_all(path)
    # Then the line is rejected with its column, still naming its beneficiary
    assert isinstance(error, LineError)
    assert (error.line_no, error.code, error.column) == (2, "line.field_too_large", column)
    assert identity(error) == (JULIEN_NIR, 1)
    assert isinstance(after, BeneficiaryLine)
    assert after.line_no == 3


def test_given_a_field_at_the_limit_then_it_is_an_ordinary_bad_value(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, with_field("last_name", "x" * 1024)))
    assert (error.code, error.column) == ("line.name", "last_name")


def test_given_an_oversized_nir_then_nobody_is_named(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, with_field("nir", "1" * 200_000)))
    assert (error.code, error.column) == ("line.field_too_large", "nir")
    assert identity(error) == (None, None)


def test_given_a_huge_line_then_memory_stays_flat(tmp_path: Path) -> None:
    import tracemalloc

    # A 16 MB line: read in pieces, only its beginning kept.
    path = write(tmp_path, with_field("last_name", "x" * 16_000_000), GOOD)
    tracemalloc.start()
    try:
        error, after = read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, LineError)
    assert error.code == "line.field_too_large"
    assert isinstance(after, BeneficiaryLine)
    assert peak < 2_000_000


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_given_a_long_line_whose_end_falls_on_a_piece_boundary_then_lines_stay_counted(
    tmp_path: Path, ending: str
) -> None:
    # Lines are read 65,536 characters at a time: make the line's CR its last character,
    # so that a CRLF is cut in two (or a bare CR ends the line) exactly there.
    long_line = with_field("last_name", "x" * (65_535 - len(with_field("last_name", ""))))
    assert len(long_line) == 65_535
    path = tmp_path / "b.csv"
    path.write_bytes((HEADER + ending + long_line + ending + GOOD + ending).encode())
    error, after = read_all(path)
    assert isinstance(error, LineError)
    assert (error.line_no, error.code) == (2, "line.field_too_large")
    assert isinstance(after, BeneficiaryLine)
    assert after.line_no == 3


def test_given_a_csv_error_then_the_line_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    # Only a process that lowered the csv module's field limit can get here.
    path = write(tmp_path, with_field("first_name", "x" * 300), GOOD)
    previous = csv.field_size_limit(200)
    try:
        error, after = read_all(path)
    finally:
        csv.field_size_limit(previous)
    assert isinstance(error, LineError)
    assert (error.line_no, error.code) == (2, "line.unreadable")
    assert isinstance(after, BeneficiaryLine)
    assert after.line_no == 3


def test_given_invalid_utf8_in_another_column_then_the_beneficiary_is_named(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin1.csv"
    bad = with_field("contract", "ESSENTIEL\xa0").encode("latin-1")
    path.write_bytes(HEADER.encode() + b"\n" + bad + b"\n" + GOOD.encode() + b"\n")
    first, second = read_all(path)
    assert isinstance(first, LineError)
    assert (first.line_no, first.column) == (2, "contract")
    assert identity(first) == (JULIEN_NIR, 1)
    assert isinstance(second, BeneficiaryLine)


def test_given_a_header_with_an_open_quote_then_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, header=HEADER.replace("last_name", '"last_name'))
    with (
        pytest.raises(BeneficiaryFileError) as caught,
        BeneficiaryReader(path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE),
    ):
        pass
    assert caught.value.code == "file.header.quote"


# --- the file as a whole ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (HEADER.replace("contract", "contrat"), "file.header.unknown_column"),
        (HEADER.replace(";sex", ""), "file.header.missing_column"),
        (HEADER + ";css", "file.header.duplicate_column"),
    ],
)
def test_given_a_bad_header_then_the_whole_file_is_refused(
    tmp_path: Path, header: str, code: str
) -> None:
    path = write(tmp_path, GOOD, header=header)
    with (
        pytest.raises(BeneficiaryFileError) as caught,
        BeneficiaryReader(path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE),
    ):
        pass
    assert caught.value.code == code


def test_given_an_empty_file_then_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with (
        pytest.raises(BeneficiaryFileError, match="header"),
        BeneficiaryReader(path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE),
    ):
        pass


def test_given_a_file_read_through_then_bytes_and_digest_cover_it(tmp_path: Path) -> None:
    import hashlib

    path = write(tmp_path, *[GOOD] * 2000)
    with BeneficiaryReader(
        path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE
    ) as reader:
        seen = []
        for count, _ in enumerate(reader, start=1):
            if count % 500 == 0:
                seen.append(reader.bytes_read)
        assert reader.bytes_read == reader.size == path.stat().st_size
        assert reader.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
    # Progress moves forward while reading, not only at the end.
    assert seen == sorted(seen)
    assert seen[0] < reader.size


# --- error report -----------------------------------------------------------------------


def test_given_errors_when_reported_then_csv_with_identities_masked(tmp_path: Path) -> None:
    report = tmp_path / "errors.csv"
    with ErrorReportWriter(report) as writer:
        masked = shown_value("nir", JULIEN_NIR)
        writer.write(LineError(7, "line.nir.key", f"bad key in {JULIEN_NIR}", "nir", value=masked))
        writer.write(LineError(9, "line.sex", "sex: expected M or F", "sex", value="X"))
    assert writer.count == 2
    # a French CSV for the insurer's staff: BOM, French headers
    rows = french_csv.read(report.read_bytes())
    assert report.read_bytes().startswith("\ufeff".encode())
    assert rows[0] == ["ligne", "code", "colonne", "message", "valeur", "explication"]
    assert rows[1][:3] == ["7", "line.nir.key", "nir"]
    assert rows[1][4] == JULIEN_NIR[0] + "•" * 14
    assert rows[2] == [
        "9",
        "line.sex",
        "sex",
        "sex: expected M or F",
        "X",
        "ligne 9, colonne « sex » : sexe attendu : M ou F (valeur « X »)",
    ]
    assert JULIEN_NIR not in report.read_text(encoding="utf-8")


def test_given_a_whole_bad_file_when_reported_then_no_nir_or_name_leaks(tmp_path: Path) -> None:
    lines = [
        with_field("sex", "F"),
        with_field("contract", "NOPE"),
        with_field("first_name", "J3"),
        GOOD.rsplit(";", 2)[0],
    ]
    report = tmp_path / "errors.csv"
    with ErrorReportWriter(report) as writer:
        for item in read_all(write(tmp_path, *lines)):
            assert isinstance(item, LineError)
            writer.write(item)
    text = report.read_text(encoding="utf-8")
    assert writer.count == 4
    assert JULIEN_NIR not in text
    assert "Martin" not in text
    assert "1985-05-14" not in text


def test_mask_identifiers_masks_nir_shapes_and_keeps_short_numbers() -> None:
    assert mask_identifiers(f"x {JULIEN_NIR} y") == f"x {JULIEN_NIR[0]}{'•' * 14} y"
    assert mask_identifiers("2A corsica 1902A12345678") == "2A corsica 1" + "•" * 12
    assert mask_identifiers("line 12, 30 columns") == "line 12, 30 columns"


# --- synthetic generator ----------------------------------------------------------------


def test_given_a_seed_then_the_synthetic_file_is_deterministic(tmp_path: Path) -> None:
    one = write_beneficiaries_csv(tmp_path / "1.csv", 500, seed=7, contracts=["ESSENTIEL"])
    two = write_beneficiaries_csv(tmp_path / "2.csv", 500, seed=7, contracts=["ESSENTIEL"])
    other = write_beneficiaries_csv(tmp_path / "3.csv", 500, seed=8, contracts=["ESSENTIEL"])
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.path.read_bytes() != other.path.read_bytes()
    assert one.lines == 500
    assert one.bad_lines == 0


def test_given_no_bad_ratio_then_every_synthetic_line_is_valid_and_realistic(
    tmp_path: Path,
) -> None:
    made = write_beneficiaries_csv(
        tmp_path / "s.csv", 3000, seed=3, contracts=sorted(CONTRACTS), start=FILE_DATE
    )
    items = read_all(made.path)
    assert len(items) == 3000
    errors = [i for i in items if isinstance(i, LineError)]
    assert errors == []
    lines = [i for i in items if isinstance(i, BeneficiaryLine)]
    assert len({(line.nir, line.birth_rank) for line in lines}) == 3000
    for line in lines[:300]:
        assert parse_nir(line.nir).value == line.nir
    qualities = Counter(line.quality for line in lines)
    assert qualities[Quality.MEMBER] == made.families
    assert qualities[Quality.SPOUSE] > 200
    assert qualities[Quality.CHILD] > 500
    families = Counter(line.member_number for line in lines)
    assert max(families.values()) >= 4
    assert any(line.birth_rank == 2 for line in lines)  # twins happen
    places = {line.nir[5:7] for line in lines}
    assert {"2A", "2B", "99"} & places
    assert len(places) > 80


def test_given_a_bad_ratio_then_that_many_lines_are_wrong(tmp_path: Path) -> None:
    made = write_beneficiaries_csv(
        tmp_path / "bad.csv", 2000, seed=11, contracts=["ESSENTIEL"], bad_line_ratio=0.1
    )
    items = read_all(made.path, file_date=date(2025, 1, 1))
    read_errors = [i for i in items if isinstance(i, LineError)]
    keys = Counter((i.nir, i.birth_rank) for i in items if isinstance(i, BeneficiaryLine))
    duplicates = sum(n - 1 for n in keys.values())
    assert 140 < made.bad_lines < 260
    assert len(read_errors) + duplicates == made.bad_lines
    assert len({e.code for e in read_errors}) >= 5


def test_given_a_line_then_its_canonical_bytes_are_pinned(tmp_path: Path) -> None:
    """Row digests of rows already stored were computed over these exact bytes: if they
    changed, the next file would rewrite every row instead of changing nothing."""
    (line,) = read_all(write(tmp_path, GOOD.replace(";;0", ";2024-12-31;1")))
    assert isinstance(line, BeneficiaryLine)
    expected = "\x1f".join(
        ["A00000001", JULIEN_NIR, "1", "1985-05-14", "Martin", "Julien", "M", "member",
         "ESSENTIEL", "2024-01-01", "2024-12-31", "1"]
    ).encode()  # fmt: skip
    assert line.canonical() == canonical_fields(line.fields()) == expected
    (open_ended,) = read_all(write(tmp_path, GOOD, name="open.csv"))
    assert isinstance(open_ended, BeneficiaryLine)
    assert open_ended.canonical().endswith(b"\x1f2024-01-01\x1f\x1f0")


def test_given_a_file_with_bad_lines_then_check_and_the_validator_agree(tmp_path: Path) -> None:
    made = write_beneficiaries_csv(
        tmp_path / "mixed.csv", 600, seed=5, contracts=sorted(CONTRACTS), bad_line_ratio=0.2,
        start=FILE_DATE,
    )  # fmt: skip
    with BeneficiaryReader(
        made.path, contracts=CONTRACTS, mode=ImportMode.INCREMENTAL, file_date=FILE_DATE
    ) as reader:
        records = [r for r in reader.records() if not isinstance(r, LineError)]
        validator = reader.validator
    outcomes: Counter[str] = Counter()
    for line_no, cells in records:
        checked = validator.check(line_no, cells)
        called = validator(line_no, cells)
        if isinstance(checked, LineError):
            outcomes["error"] += 1
            assert called == checked
            assert (called.nir, called.birth_rank) == (checked.nir, checked.birth_rank)
        else:
            outcomes["line"] += 1
            assert isinstance(called, BeneficiaryLine)
            assert called.fields() == checked
            assert called.canonical() == canonical_fields(checked)
    assert outcomes["error"] > 50
    assert outcomes["line"] > 300
