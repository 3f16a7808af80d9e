"""The file handed to the preparation workers as text pieces: cut there, it must give the
very records (line numbers, cells, errors) the reader gives line by line."""

from __future__ import annotations

import hashlib
import pickle
import tracemalloc
from datetime import date
from pathlib import Path

import pytest
from stdnum.fr import nir as stdnum_nir

from tierspayant.formats.beneficiaries import (
    BeneficiaryReader,
    ImportMode,
    LineError,
    RawRecord,
    RecordCutter,
    TextLines,
)
from tierspayant.formats.beneficiaries import reader as reader_module

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end;css"
)
CONTRACTS = frozenset({"ESSENTIEL", "CONFORT"})
FILE_DATE = date(2025, 3, 1)


def _nir(order: int) -> str:
    body = f"185057512{order:03d}3"[:13]
    return body + stdnum_nir.calc_check_digits(body)


def _line(n: int, last: str = "Martin") -> str:
    return f"A{n:08d};{_nir(n)};1;1985-05-14;{last};Julien;M;member;ESSENTIEL;2024-01-01;;0"


def _awkward_file(path: Path) -> Path:
    """Every kind of line end and of faulty line the reader knows, mixed."""
    parts = [
        "\ufeff" + HEADER + "\r\n",
        _line(1) + "\n",
        _line(2) + "\r\n",
        _line(3) + "\r",  # a bare CR ends a line too
        "   ;  ;\n",  # blank cells only
        "\n",  # blank
        _line(4, last='Mar"tin') + "\n",  # a quote inside a field
        _line(5, last='"Martin') + "\n",  # a quoted field left open
        _line(6, last='"Mar;tin"') + "\r\n",  # a quoted field on its line
        _line(7) + ";extra\n",  # one cell too many
        "A00000008;" + _nir(8) + ";1\n",  # cut short
        _line(9, last="x" * 2000) + "\n",  # an oversized field
        _line(10, last="y" * 70_000) + "\r\n",  # longer than a piece of the reader
        # A line whose CRLF the reader's 65,536-character pieces cut in two.
        _line(11, last="z" * (65_535 - len(_line(11, last="")))) + "\r\n",
        _line(12) + "\n",
    ]
    data = "".join(parts).encode("utf-8")
    data += _line(13).encode("utf-8").replace(b"Julien", b"Jul\xffien") + b"\n"
    data += (_line(14) + "\r\n").encode() * 30
    data += _line(15, last='"open').encode()  # the last line: open quote, no line end
    path.write_bytes(data)
    return path


def _key(record: RawRecord | LineError) -> object:
    if isinstance(record, LineError):
        return (record, record.nir, record.birth_rank)
    return record


def _records(path: Path) -> list[object]:
    with BeneficiaryReader(
        path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE
    ) as reader:
        return [_key(r) for r in reader.records()]


def _from_pieces(path: Path, lines_per_piece: int) -> tuple[list[object], list[int], str]:
    with BeneficiaryReader(
        path, contracts=CONTRACTS, mode=ImportMode.FULL, file_date=FILE_DATE
    ) as reader:
        # As a worker gets it: the cutter through pickle, each piece on its own.
        cutter: RecordCutter = pickle.loads(pickle.dumps(reader.cutter))  # noqa: S301
        out: list[object] = []
        sizes = []
        for pieces in reader.pieces(lines_per_piece):
            sizes.append(
                sum(
                    p.text.count("\n") + p.text.count("\r") - p.text.count("\r\n")
                    if isinstance(p, TextLines)
                    else 1
                    for p in pieces
                )
            )
            out.extend(_key(r) for r in cutter.expand(pickle.loads(pickle.dumps(pieces))))  # noqa: S301
        return out, sizes, reader.sha256()


@pytest.mark.parametrize("lines_per_piece", [1, 3, 1000])
@pytest.mark.parametrize(("block", "long_text"), [(1 << 18, 1 << 20), (61, 1 << 20), (5, 40)])
def test_given_an_awkward_file_then_pieces_give_the_records_the_reader_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines_per_piece: int,
    block: int,
    long_text: int,
) -> None:
    # Small blocks put line ends (a CRLF among them) across reads; a small long-line
    # threshold sends most lines through the reader's own bounded reading.
    monkeypatch.setattr(reader_module, "_BLOCK", block)
    monkeypatch.setattr(reader_module, "_LONG_TEXT", long_text)
    path = _awkward_file(tmp_path / "awkward.csv")
    expected = _records(path)
    got, sizes, digest = _from_pieces(path, lines_per_piece)
    assert got == expected
    assert len(expected) == 44  # 46 data lines, two of them blank
    codes = [r[0].code for r in expected if isinstance(r, tuple) and isinstance(r[0], LineError)]
    assert codes == [
        "line.quote", "line.columns", "line.columns", "line.field_too_large",
        "line.field_too_large", "line.field_too_large", "line.quote",
    ]  # fmt: skip
    # Pieces hold the lines asked for (the last one the rest), all 46 lines in all (the
    # last one, without its line end, is not counted by line ends unless cut here).
    assert sum(sizes) in (45, 46)
    assert all(size >= lines_per_piece for size in sizes[:-1])
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_given_a_huge_line_then_pieces_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text(f"{HEADER}\n{_line(1, last='x' * 16_000_000)}\n{_line(2)}\n")
    tracemalloc.start()
    try:
        got, _, _ = _from_pieces(path, 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    first, second = got
    assert isinstance(first, tuple)
    assert isinstance(first[0], LineError)
    assert first[0].code == "line.field_too_large"
    assert second == (3, (*_line(2).split(";"), ""))
    assert peak < 8_000_000
