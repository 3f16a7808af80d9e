"""Claim files: every refused line names the field and the rule it broke (issue 14).

The issue's findings: 10¹⁰ cents answered "must be a non-negative integer", a negative
amount ``file.type`` instead of ``claim.negative``, invalid UTF-8 "not a JSON object".
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.domain.amount_limits import DEFAULT_CEILINGS, AmountCeiling
from tierspayant.domain.care import CareDomain
from tierspayant.formats.claims import ClaimRecord, LineError, read_claims

LINE: dict[str, Any] = {
    "act_code": "PH7",
    "domain": "PHAR",
    "family": "drug_65",
    "quantity": 1,
    "care_date": "2026-03-16",
    "br_cents": 1000,
    "billed_cents": 1000,
    "amo_rate_bp": 6500,
    "amo_paid_cents": 650,
    "amc_requested_cents": 350,
}
INVOICE: dict[str, Any] = {
    "invoice_number": "F-2026-0001",
    "card": {"amc_number": "75012345", "birth_date": "1980-06-15", "nir": "180067512345678"},
    "care_date": "2026-03-16",
    "lines": [LINE],
}


def invoice(**line: object) -> bytes:
    return json.dumps({**INVOICE, "lines": [{**LINE, **line}]}).encode()


def read(tmp_path: Path, *lines: bytes, **kwargs: Any) -> list[ClaimRecord | LineError]:
    path = tmp_path / "claims.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return list(read_claims(path, **kwargs))


def only_error(items: list[ClaimRecord | LineError]) -> tuple[str, str]:
    (item,) = items
    assert isinstance(item, LineError), item
    return item.code, item.message


def test_ten_to_the_ten_cents_is_refused_by_the_line_ceiling(tmp_path: Path) -> None:
    code, message = only_error(read(tmp_path, invoice(billed_cents=10**10)))
    assert code == "claim.line_ceiling"
    assert message == (
        "lines[0].billed_cents: 100000000.00 EUR is above the ceiling of a PHAR line, 30000.00 EUR"
    )


def test_a_negative_amount_is_claim_negative_naming_the_field(tmp_path: Path) -> None:
    code, message = only_error(read(tmp_path, invoice(amo_paid_cents=-5)))
    assert code == "claim.negative"
    assert message == "lines[0].amo_paid_cents: an amount in cents may not be negative"


def test_invalid_utf8_is_an_encoding_error_not_a_json_one(tmp_path: Path) -> None:
    raw = invoice().replace(b"F-2026-0001", b"F-2026-\xe9")
    code, message = only_error(read(tmp_path, raw))
    assert code == "line.encoding"
    offset = raw.index(b"\xe9")
    assert message == f"the line is not UTF-8 text (invalid byte at offset {offset})"


def test_each_malformed_field_is_named_with_its_rule(tmp_path: Path) -> None:
    cases = {
        b"{not json": ("file.json", "the line is not valid JSON: "),
        b"[1, 2]": ("file.type", "the line must be a JSON object"),
        invoice(quantity="1"): ("file.type", "lines[0].quantity must be a whole number"),
        invoice(billed_cents=10.5): ("file.type", "lines[0].billed_cents must be a whole"),
        invoice(domain="PHARMA"): ("file.code", "lines[0].domain must be one of PHAR, MED"),
        invoice(quantity=1000): ("claim.quantity", "lines[0].quantity: from 1 to 999"),
        invoice(amo_rate_bp=10_001): ("claim.amo_rate", "lines[0].amo_rate_bp: the AMO rate"),
        invoice(care_date="16/03/2026"): ("file.date", "lines[0].care_date is not a date"),
        invoice(act_code="x" * 41): ("file.type", "lines[0].act_code must be a string of"),
    }
    for raw, (code, start) in cases.items():
        got_code, message = only_error(read(tmp_path, raw))
        assert (got_code, message[: len(start)]) == (code, start), raw


def test_configured_ceilings_are_the_ones_applied(tmp_path: Path) -> None:
    # Given a pharmacy line ceiling lowered to 5.00 EUR
    ceilings = {**DEFAULT_CEILINGS, CareDomain.PHAR: AmountCeiling(500, 1000)}
    # Then a 10.00 EUR line is refused, a 5.00 EUR one read, two of them over the invoice
    assert only_error(read(tmp_path, invoice(), ceilings=ceilings))[0] == "claim.line_ceiling"
    small = {
        "billed_cents": 500,
        "br_cents": 500,
        "amo_paid_cents": 325,
        "amc_requested_cents": 175,
    }
    assert isinstance(read(tmp_path, invoice(**small), ceilings=ceilings)[0], ClaimRecord)
    two = json.dumps({**INVOICE, "lines": [{**LINE, **small}] * 3}).encode()
    assert only_error(read(tmp_path, two, ceilings=ceilings))[0] == "claim.invoice_ceiling"


_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from([*sorted(LINE), "exemption", "rss_class", "plv_cents", "psychiatry"]),
    value=_values,
    top=st.sampled_from([*sorted(INVOICE), "correction", "maternity", "agreement_number"]),
    top_value=_values,
    cut=st.integers(0, 400),
    noise=st.binary(max_size=8),
)
def test_any_malformed_line_is_a_coded_error_never_an_exception(
    tmp_path_factory: Any, field: str, value: object, top: str, top_value: object, cut: int,
    noise: bytes,
) -> None:  # fmt: skip
    # Given lines with a field of any type and value, a top field replaced, a line cut
    # short with bytes added, each alone on its line
    directory = tmp_path_factory.mktemp("claims")
    bad_field = invoice(**{field: value})
    bad_top = json.dumps({**INVOICE, top: top_value}).encode()
    cut_short = (invoice()[:cut] + noise).replace(b"\n", b" ").replace(b"\r", b" ")
    items = read(directory, bad_field, bad_top, cut_short)
    # Then each is read as an invoice or refused with a code and a message
    assert len(items) == 3 - (not cut_short.strip())
    for item in items:
        if isinstance(item, LineError):
            assert item.code
            assert "." in item.code
            assert item.message
        else:
            assert item.content.care_date <= date(9999, 12, 31)
