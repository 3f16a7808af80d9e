"""Invoices as values: well-formedness, digests (idempotency), duplicate keys, and the
claim file format read and written back (JSON Lines)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import (
    ClaimContent,
    ClaimError,
    ClaimLine,
    check_content,
    duplicate_key,
    line_from_detail,
    near_key,
    submission_digest,
)
from tierspayant.domain.pricing import RssClass
from tierspayant.formats.claims import (
    ClaimRecord,
    FileCard,
    LineError,
    claim_json,
    parse_claim,
    read_claims,
)

DAY = date(2026, 3, 16)
LINE = ClaimLine("3400930000001", CareDomain.PHAR, "drug_65", 1, DAY, 1000, 1000, 6500, 550, 350)
CONTENT = ClaimContent("F-2026-0001", DAY, (LINE,))
CARD = {"amc_number": "75012345", "birth_date": "1980-06-15", "nir": "x", "birth_rank": 1}


def test_a_well_formed_invoice_passes() -> None:
    check_content(CONTENT)
    assert CONTENT.billed_cents == 1000
    assert CONTENT.amc_requested_cents == 350


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (replace(CONTENT, invoice_number=""), "claim.invoice_number"),
        (replace(CONTENT, invoice_number="F 1"), "claim.invoice_number"),
        (replace(CONTENT, invoice_number="F" * 41), "claim.invoice_number"),
        (replace(CONTENT, lines=()), "claim.lines"),
        (replace(CONTENT, lines=(LINE,) * 100), "claim.lines"),
        (replace(CONTENT, lines=(replace(LINE, act_code="a b"),)), "claim.act_code"),
        (replace(CONTENT, lines=(replace(LINE, quantity=0),)), "claim.quantity"),
        (replace(CONTENT, lines=(replace(LINE, billed_cents=-1),)), "claim.negative"),
        (replace(CONTENT, lines=(replace(LINE, amo_rate_bp=10_001),)), "claim.amo_rate"),
    ],
)
def test_malformed_invoices_are_refused_with_a_code(content: ClaimContent, code: str) -> None:
    with pytest.raises(ClaimError) as refused:
        check_content(content)
    assert refused.value.code == code


def test_the_digest_tells_bodies_apart() -> None:
    same = submission_digest(CARD, CONTENT)
    assert same == submission_digest(dict(CARD), replace(CONTENT))
    assert len(same) == 32
    assert same != submission_digest({**CARD, "birth_rank": 2}, CONTENT)
    other_line = replace(CONTENT, lines=(replace(LINE, amc_requested_cents=349),))
    assert same != submission_digest(CARD, other_line)
    assert same != submission_digest(CARD, replace(CONTENT, agreement_number="PA1"))


def test_duplicate_keys() -> None:
    key = duplicate_key(42, "G", DAY, 7)
    assert len(key) == 16
    assert key == duplicate_key(42, "G", DAY, 7)
    assert key != duplicate_key(42, "G", DAY, 8)
    assert near_key(42, "G", DAY) != near_key(43, "G", DAY)
    assert near_key(42, "G", DAY) != key


def test_a_stored_line_comes_back_the_same() -> None:
    line = replace(
        LINE,
        domain=CareDomain.OPTI,
        family="optics_frame",
        exemption=Exemption.ALD,
        in_care_pathway=False,
        rss_class=RssClass.A,
        plv_cents=3000,
    )
    again = line_from_detail(
        act_code=line.act_code,
        domain=line.domain.value,
        family=line.family,
        quantity=line.quantity,
        care_date=line.care_date,
        br_cents=line.br_cents,
        billed_cents=line.billed_cents,
        amo_rate_bp=line.amo_rate_bp,
        amo_paid_cents=line.amo_paid_cents,
        amc_requested_cents=line.amc_requested_cents,
        detail=json.dumps(line.detail()),
    )
    assert again == line
    assert line.pricing_line().amo_rate_bp == 6500


def record(content: ClaimContent = CONTENT, correction: bool = False) -> ClaimRecord:
    card = FileCard("75012345", date(1980, 6, 15), "180067512345678", 1, None)
    return ClaimRecord(1, card, content, correction)


lines = st.builds(
    ClaimLine,
    act_code=st.from_regex(r"[A-Z0-9]{1,13}", fullmatch=True),
    domain=st.sampled_from(list(CareDomain)),
    family=st.sampled_from(["drug_65", "consultation", "optics_frame"]),
    quantity=st.integers(1, 999),
    care_date=st.dates(date(2024, 1, 1), date(2026, 12, 31)),
    br_cents=st.integers(0, 2 * 10**5),
    billed_cents=st.integers(0, 2 * 10**5),
    amo_rate_bp=st.integers(0, 10_000),
    amo_paid_cents=st.integers(0, 2 * 10**5),
    amc_requested_cents=st.integers(0, 2 * 10**5),
    exemption=st.sampled_from(list(Exemption)),
    in_care_pathway=st.booleans(),
    rss_class=st.sampled_from([None, RssClass.A, RssClass.B]),
    plv_cents=st.one_of(st.none(), st.integers(0, 2 * 10**5)),
    psychiatry=st.booleans(),
).map(
    # A well-formed line asks at most what the AMO left (else ``claim.amc_above_cost``).
    lambda line: replace(
        line,
        amo_paid_cents=min(line.amo_paid_cents, line.billed_cents),
        amc_requested_cents=min(
            line.amc_requested_cents,
            line.billed_cents - min(line.amo_paid_cents, line.billed_cents),
        ),
    )
)


@given(
    chosen=st.lists(lines, min_size=1, max_size=5),
    agreement=st.one_of(st.none(), st.just("PA0000000001ABCDEF")),
    correction=st.booleans(),
    maternity=st.booleans(),
)
def test_the_file_format_reads_back_what_it_writes(
    chosen: list[ClaimLine], agreement: str | None, correction: bool, maternity: bool
) -> None:
    content = ClaimContent("F-1", DAY, tuple(chosen), agreement, maternity)
    written = record(content, correction)
    assert parse_claim(1, claim_json(written)) == written


def test_a_file_is_read_line_by_line_with_numbered_errors(tmp_path: Path) -> None:
    good = claim_json(record())
    path = tmp_path / "claims.jsonl"
    path.write_text(
        "\n".join(
            [
                good,
                "",
                "[1, 2]",
                good.replace('"drug_65"', '"drug_65","colour":"red"'),
                good.replace('"PHAR"', '"PHARMA"'),
                good.replace('"care_date":"2026-03-16"', '"care_date":"16/03/2026"', 1),
                good.replace('"quantity":1', '"quantity":"1"'),
                good.replace('"F-2026-0001"', '"F 2026"'),
                good,
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    read = list(read_claims(path))
    assert [type(item).__name__ for item in read] == [
        "ClaimRecord",
        *["LineError"] * 6,
        "ClaimRecord",
    ]
    errors = [(e.line_no, e.code) for e in read if isinstance(e, LineError)]
    assert errors == [
        (3, "file.type"),
        (4, "file.unknown_field"),
        (5, "file.code"),
        (6, "file.date"),
        (7, "file.type"),
        (8, "claim.invoice_number"),
    ]
    assert read[-1] == replace(read[0], line_no=9)
