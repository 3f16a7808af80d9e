"""Remittance advice (avis de paiement) as a printable PDF, in French.

The same advice as the CSV of :mod:`tierspayant.formats.remittance`, for a person rather
than a program: a header (operator, provider, payment date, transfer reference, totals),
a table with one row per invoice line remitted (paid, reduced or rejected, with the reason
code and its French wording), the undue amounts (indus) deducted, and the totals again.

The output depends on the data only: the document's creation date is the payment date at
midnight UTC and no other clock or random value goes in, so the same advice gives the same
bytes (the PDF file identifier is a hash of the content). Core fonts cover Latin-1 only:
text goes through :func:`~tierspayant.formats.card_pdf.latin1`, and amounts are printed
in euros without the euro sign (named in the column headings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time

from fpdf import FPDF

from tierspayant.domain.adjudication import REASONS
from tierspayant.domain.payments import RecoveredUndue, RemittanceHeader, RemittanceLine
from tierspayant.formats.card_pdf import DOMAIN_LABELS, latin1

TITLE = "Avis de paiement tiers payant"
STATUS_LABELS = {"accepted": "payée", "reduced": "réduite", "rejected": "rejetée"}
# Reason codes of undue amounts set by the platform itself (insurer staff choose their own
# codes, printed as given).
UNDUE_LABELS = {"claim.corrected": "Facture corrigée après paiement"}
_REASON_LABELS: Mapping[str, str] = {
    **{str(code): text for code, text in REASONS.items()},
    **UNDUE_LABELS,
}
_ROW = 4.5  # mm per line of text in a table row
_BASELINE = 3.2  # mm from the top of a text line to its baseline (8 pt)
_PAD = 1.0  # mm between a cell's border and its text
_BOTTOM = 15  # mm kept free at the foot of each page (page number)
# A4 landscape, 10 mm margins: 277 mm of table.
_LINE_COLUMNS = (
    ("AMC", 18, "L"),
    ("Facture", 30, "L"),
    ("Ligne", 11, "R"),
    ("Soins le", 19, "L"),
    ("Acte", 20, "L"),
    ("Domaine", 24, "L"),
    ("Demandé (EUR)", 25, "R"),
    ("Payé (EUR)", 23, "R"),
    ("Statut", 16, "L"),
    ("Motif", 91, "L"),
)
_UNDUE_COLUMNS = (
    ("AMC", 18, "L"),
    ("Facture", 30, "L"),
    ("Ligne", 11, "R"),
    ("Motif", 183, "L"),
    ("Déduit (EUR)", 35, "R"),
)


def french_amount(cents: int) -> str:
    """``123456`` → ``1 234,56`` (integer cents, no float; a minus sign when negative)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", " ") + f",{part:02d}"


def french_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def reason_text(code: str | None) -> str:
    """The code and, when the platform has one, its French wording."""
    if not code:
        return ""
    label = _REASON_LABELS.get(code)
    return f"{code} - {label}" if label else code


class _AdvicePdf(FPDF):
    """Pages that repeat the advice's reference in the footer, with a page number."""

    def __init__(self, reference: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._reference = reference

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        text = f"{TITLE} {self._reference} - page {self.page_no()}/{{nb}}"
        self.cell(0, 5, latin1(text), align="C")


def _facts(pdf: FPDF, facts: Iterable[tuple[str, str]]) -> None:
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(60, 6, latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")


def _totals(header: RemittanceHeader) -> tuple[tuple[str, str], ...]:
    returned = (
        (("Virements retournés payés", f"{french_amount(header.reissued_cents)} EUR"),)
        if header.reissued_cents
        else ()
    )
    return (
        ("Lignes de facture", str(header.lines)),
        ("Total accepté", f"{french_amount(header.gross_cents)} EUR"),
        ("Indus déduits", f"{french_amount(header.recovered_cents)} EUR"),
        *returned,
        ("Montant viré", f"{french_amount(header.transfer_cents)} EUR"),
    )


def _section(pdf: FPDF, title: str, *, keep: float) -> None:
    """A section title, on a new page unless it and ``keep`` mm after it fit here."""
    if pdf.get_y() + 11 + keep > pdf.h - _BOTTOM:
        pdf.add_page()
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 7, latin1(title), new_x="LMARGIN", new_y="NEXT")


class _Widths:
    """Text widths in the table font, remembered: most cells repeat (dates, codes)."""

    def __init__(self, pdf: FPDF) -> None:
        self._pdf = pdf
        self._known: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        width = self._known.get(text)
        if width is None:
            width = self._known[text] = self._pdf.get_string_width(text)
        return width

    def wrap(self, text: str, room: float) -> list[str]:
        """``text`` in lines no wider than ``room``: by words, long words by characters."""
        if self(text) <= room:
            return [text]
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = f"{current} {word}" if current else word
            if self(candidate) <= room:
                current = candidate
                continue
            if current:
                lines.append(current)
            while len(word) > 1 and self(word) > room:
                cut = len(word) - 1
                while cut > 1 and self(word[:cut]) > room:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        if current:
            lines.append(current)
        return lines


def _cells(
    widths: _Widths, columns: tuple[tuple[str, int, str], ...], texts: Iterable[str]
) -> list[list[str]]:
    return [
        widths.wrap(text, width - 2 * _PAD)
        for text, (_, width, _) in zip(texts, columns, strict=True)
    ]


def _row(
    pdf: FPDF, widths: _Widths, columns: tuple[tuple[str, int, str], ...], cells: list[list[str]]
) -> None:
    """One bordered row at the current position, each cell's lines drawn in its column."""
    height = _ROW * max(len(lines) for lines in cells)
    top = pdf.get_y()
    x = pdf.l_margin
    for lines, (_, width, align) in zip(cells, columns, strict=True):
        for n, line in enumerate(lines):
            left = x + width - _PAD - widths(line) if align == "R" else x + _PAD
            pdf.text(left, top + n * _ROW + _BASELINE, line)
        pdf.line(x, top, x, top + height)
        x += width
    pdf.line(x, top, x, top + height)
    pdf.line(pdf.l_margin, top, x, top)
    pdf.line(pdf.l_margin, top + height, x, top + height)
    pdf.set_y(top + height)


def _heading(pdf: FPDF, columns: tuple[tuple[str, int, str], ...]) -> None:
    pdf.set_font("Helvetica", "B", 8)
    widths = _Widths(pdf)
    _row(pdf, widths, columns, _cells(widths, columns, (latin1(t) for t, _, _ in columns)))
    pdf.set_font("Helvetica", "", 8)


def _table(
    pdf: FPDF, columns: tuple[tuple[str, int, str], ...], rows: Iterable[tuple[str, ...]]
) -> int:
    """Draw a table, headings repeated on each page; returns the number of rows.

    Rows are drawn as they come, with the PDF's low-level text and line operators (an
    advice may have thousands of lines). A row is never split across two pages.
    """
    _heading(pdf, columns)
    widths = _Widths(pdf)
    count = 0
    for values in rows:
        cells = _cells(widths, columns, (latin1(value) for value in values))
        if pdf.get_y() + _ROW * max(len(lines) for lines in cells) > pdf.h - _BOTTOM:
            pdf.add_page()
            _heading(pdf, columns)
        _row(pdf, widths, columns, cells)
        count += 1
    return count


def _line_row(line: RemittanceLine) -> tuple[str, ...]:
    domain = DOMAIN_LABELS.get(line.domain, line.domain)
    return (
        line.amc_number,
        line.invoice_number,
        str(line.line_no),
        french_date(line.care_date),
        line.act_code,
        domain,
        french_amount(line.requested_cents),
        french_amount(line.paid_cents),
        STATUS_LABELS.get(line.status, line.status),
        reason_text(line.reason_code),
    )


def _undue_row(undue: RecoveredUndue) -> tuple[str, ...]:
    return (
        undue.amc_number,
        undue.invoice_number,
        str(undue.line_no),
        reason_text(undue.reason_code),
        french_amount(-undue.cents),
    )


def render_remittance(
    header: RemittanceHeader,
    lines: Iterable[RemittanceLine],
    recovered: Iterable[RecoveredUndue],
    *,
    operator_name: str,
    compress: bool = True,
) -> bytes:
    """The advice as an A4 landscape PDF; same data, same bytes.

    ``compress=False`` leaves the page content readable (tests look for text in it).
    """
    pdf = _AdvicePdf(header.remittance_id)
    pdf.set_compression(compress)
    pdf.set_creation_date(datetime.combine(header.payment_date, time(0), tzinfo=UTC))
    pdf.set_creator("tierspayant")
    pdf.set_producer("tierspayant")
    pdf.set_author(latin1(operator_name))
    pdf.set_title(latin1(f"{TITLE} {header.remittance_id}"))
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, latin1(TITLE), new_x="LMARGIN", new_y="NEXT")
    transfer = header.end_to_end_id or "aucun virement (montant net nul)"
    _facts(
        pdf,
        (
            ("Émis par", operator_name),
            (
                "Professionnel de santé",
                f"{header.provider_name} (n° AM {header.provider_am_number})",
            ),
            ("Date de paiement", french_date(header.payment_date)),
            ("Référence de l'avis", header.remittance_id),
            ("Référence du virement", transfer),
            *_totals(header),
        ),
    )
    _section(pdf, "Lignes de facture réglées ou rejetées", keep=4 * _ROW)
    if not _table(pdf, _LINE_COLUMNS, (_line_row(line) for line in lines)):
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 6, latin1("Aucune ligne."), new_x="LMARGIN", new_y="NEXT")
    undue = [_undue_row(item) for item in recovered]
    if undue:
        _section(pdf, "Indus récupérés sur ce paiement", keep=4 * _ROW)
        _table(pdf, _UNDUE_COLUMNS, undue)
    _section(pdf, "Totaux", keep=4 * 6)
    _facts(pdf, _totals(header))
    return bytes(pdf.output())
