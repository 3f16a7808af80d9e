"""The remittance advice as a PDF: what it shows, in French, and the same bytes for the
same data (no clock, no random identifier)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from tests.pdf_support import pdf_pages, pdf_text
from tierspayant.domain.adjudication import REASONS, Reason
from tierspayant.domain.payments import RecoveredUndue, RemittanceHeader, RemittanceLine
from tierspayant.formats.remittance_pdf import french_amount, reason_text, render_remittance

DAY = date(2026, 11, 30)
OPERATOR = "Opérateur Tiers Payant"


def _line(
    n: int, *, paid: int = 350, status: str = "accepted", reason: str | None = None
) -> RemittanceLine:
    return RemittanceLine(
        amc_number="31000017",
        invoice_number=f"FAC-2026-{n:05d}",
        claim_id=n,
        line_no=1,
        care_date=DAY - timedelta(days=n % 20),
        act_code="PH7",
        domain="PHAR",
        requested_cents=350,
        paid_cents=paid,
        status=status,
        reason_code=reason,
    )


LINES = (
    _line(1),
    _line(2, paid=0, status="rejected", reason=str(Reason.NEAR_DUPLICATE)),
    _line(3, paid=200, status="reduced", reason=str(Reason.CEILING_REACHED)),
)
RECOVERED = (RecoveredUndue("69000019", "FAC-2026-00099", 99, 2, "rights.ended", 12_345),)


def _header(
    lines: tuple[RemittanceLine, ...], recovered: tuple[RecoveredUndue, ...]
) -> RemittanceHeader:
    gross = sum(line.paid_cents for line in lines)
    deducted = min(gross, sum(item.cents for item in recovered))
    return RemittanceHeader(
        remittance_id="R20261130-42",
        payment_date=DAY,
        provider_am_number="751234567",
        provider_name="Pharmacie Éloïse",
        gross_cents=gross + 1_000_000,  # large enough to show digit grouping
        recovered_cents=deducted,
        net_cents=gross + 1_000_000 - deducted,
        lines=len(lines),
        end_to_end_id="TP20261130-42",
    )


def _render(
    lines: tuple[RemittanceLine, ...] = LINES,
    recovered: tuple[RecoveredUndue, ...] = RECOVERED,
    *,
    compress: bool = False,
) -> bytes:
    return render_remittance(
        _header(lines, recovered), lines, recovered, operator_name=OPERATOR, compress=compress
    )


def test_the_advice_shows_header_lines_reasons_undue_and_totals_in_french() -> None:
    header = _header(LINES, RECOVERED)
    document = _render()
    assert document.startswith(b"%PDF-")
    text = pdf_text(document)
    for expected in (
        "Avis de paiement tiers payant",
        OPERATOR,
        "Pharmacie Éloïse",
        header.provider_am_number,
        "30/11/2026",
        header.remittance_id,
        header.end_to_end_id,
        french_amount(header.gross_cents),
        french_amount(header.recovered_cents),
        french_amount(header.net_cents),
    ):
        assert expected in text, expected
    assert french_amount(header.net_cents).startswith("10 ")  # grouped by thousands
    for line in LINES:
        assert line.invoice_number in text
    for status in ("payée", "rejetée", "réduite"):
        assert status in text
    # Reason code and its French wording (the label may wrap: look at its first words).
    assert "duplicate.other_provider - " + REASONS[Reason.NEAR_DUPLICATE][:20] in text
    assert "ceiling.reached - " + REASONS[Reason.CEILING_REACHED] in text
    # The undue amount deducted: its invoice, its code as given, a negative amount.
    assert "Indus récupérés" in text
    assert "FAC-2026-00099" in text
    assert "rights.ended" in text
    assert "-123,45" in text


def test_the_same_advice_gives_the_same_bytes_and_another_one_differs() -> None:
    compressed = _render(compress=True)
    assert compressed == _render(compress=True)
    assert _render() == _render()
    assert compressed != _render()
    other = _render(lines=(*LINES[:2], replace(LINES[2], paid_cents=201)))
    assert other != _render()
    # The creation date is the payment date, not the time of rendering.
    assert b"/CreationDate (D:20261130000000" in _render()


def test_thousands_of_lines_go_over_pages_with_the_headings_repeated() -> None:
    many = tuple(
        _line(n, paid=0, status="rejected", reason=str(Reason.NEAR_DUPLICATE))
        if n % 7 == 0
        else _line(n)
        for n in range(1, 1201)
    )
    document = _render(lines=many)
    text = pdf_text(document)
    pages = pdf_pages(document)
    assert pages > 20
    assert text.count("(Facture)") == pages  # the table headings on every page
    assert all(line.invoice_number in text for line in many)
    # Page numbers "n/total", the total filled in when the document is closed.
    assert f"- page {pages}/" in text
    assert "{nb}" not in text


def test_an_advice_with_undue_amounts_only_says_so() -> None:
    header = replace(
        _header((), RECOVERED), gross_cents=0, net_cents=0, recovered_cents=0, end_to_end_id=""
    )
    text = pdf_text(
        render_remittance(header, (), RECOVERED, operator_name=OPERATOR, compress=False)
    )
    assert "Aucune ligne." in text
    assert "aucun virement" in text
    assert "FAC-2026-00099" in text


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (None, ""),
        ("rights.none", "rights.none - " + REASONS[Reason.RIGHTS_NONE]),
        ("claim.corrected", "claim.corrected - Facture corrigée après paiement"),
        ("care.not_given", "care.not_given"),
    ],
)
def test_a_reason_reads_as_its_code_and_french_wording_when_known(
    code: str | None, expected: str
) -> None:
    assert reason_text(code) == expected


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0,00"), (5, "0,05"), (123456, "1 234,56"), (-100000000, "-1 000 000,00")],
)
def test_amounts_are_french_from_integer_cents(cents: int, text: str) -> None:
    assert french_amount(cents) == text
