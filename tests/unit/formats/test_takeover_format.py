"""The takeover file's reader: the header, one physical line per record, coded line errors
that never show an identity (docs/formats/takeover.md)."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from tests.factories import make_nir
from tierspayant.formats.takeover import (
    RecordKind,
    TakeoverFileError,
    TakeoverLine,
    TakeoverLineError,
    read_takeover,
)

TODAY = date(2026, 11, 29)
HEADER = "record;nir;birth_rank;key;date;amount_cents;units"
NIR = make_nir(random.Random(7))


def read(tmp_path: Path, data: bytes) -> list[TakeoverLine | TakeoverLineError]:
    path = tmp_path / "takeover.csv"
    path.write_bytes(data)
    return list(read_takeover(path, TODAY))


def test_columns_in_any_order_a_bom_and_crlf_lines(tmp_path: Path) -> None:
    data = (
        "\ufeffunits;amount_cents;date;key;birth_rank;nir;record\r\n"
        f"1;45000;2026-03-02;Dental;1;{NIR};COUNTER\r\n\r\n"
        f";;2026-06-02;glasses;1;{NIR};equipment\r\n"
    ).encode()
    first, second = read(tmp_path, data)
    assert isinstance(first, TakeoverLine)
    assert (first.kind, first.key, first.day, first.amount_cents, first.units) == (
        RecordKind.COUNTER, "dental", date(2026, 3, 2), 45_000, 1,
    )  # fmt: skip
    assert isinstance(second, TakeoverLine)
    assert (second.kind, second.line_no, second.amount_cents, second.units) == (
        RecordKind.EQUIPMENT, 4, 0, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("record;nir;birth_rank;key;date;amount_cents;units;colour", "file.header.unknown_column"),
        ("record;nir;birth_rank;key;date;amount_cents;units;units", "file.header.duplicate_column"),
        ("record;nir;birth_rank;key;date;amount_cents", "file.header.missing_column"),
        ("", "file.empty"),
    ],
)
def test_a_bad_header_refuses_the_file(tmp_path: Path, header: str, code: str) -> None:
    with pytest.raises(TakeoverFileError) as refused:
        read(tmp_path, f"{header}\n".encode())
    assert refused.value.code == code


def test_unreadable_lines_are_refused_one_by_one_and_identities_masked(tmp_path: Path) -> None:
    good = f"counter;{NIR};1;dental;2026-03-02;100;1"
    data = b"\n".join(
        (
            HEADER.encode(),
            f'counter;"{NIR};1;dental;2026-03-02;100;1'.encode(),  # 2: quote left open
            good.encode(),  # 3: read on its own, not swallowed by line 2
            b"counter;" + "\xe9".encode("latin-1") + b";1;dental;2026-03-02;100;1",  # 4
            f"counter;{NIR};1;{'x' * 2000};2026-03-02;100;1".encode(),  # 5: too long
            f"counter;{NIR[:5]};1;dental;2026-03-02;100;1".encode(),  # 6: NIR cut short
            f"counter;{NIR};0;dental;2026-03-02;100;1".encode(),  # 7: rank out of range
        )
    )
    got = read(tmp_path, data)
    assert [(x.line_no, getattr(x, "code", "ok")) for x in got] == [
        (2, "line.quote"),
        (3, "ok"),
        (4, "line.encoding"),
        (5, "line.field_too_large"),
        (6, "line.nir.length"),
        (7, "line.birth_rank.range"),
    ]
    errors = [x for x in got if isinstance(x, TakeoverLineError)]
    assert [e.value for e in errors if e.column in ("nir", "birth_rank")] == ["•" * 5, "•"]
    assert not any(NIR[:5] in f"{e.message}{e.value}" for e in errors)
