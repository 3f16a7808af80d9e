"""The printed tiers payant card (attestation de tiers payant), one PDF page per family.

Everything printed is what the family's own card shows: insurer, AMC number, member
number, validity, the beneficiaries' first names and birth dates, and per care domain
whether tiers payant applies and its coverage code. The top of the page is the
harmonised card's standard box (numéro AMC, type de convention, CSR, numéro d'adhérent,
validity; the "R" of a contrat responsable beside it) with its DataMatrix (ECC 200, drawn
by zxing-cpp), which carries the box, each beneficiary's rights and the signed proof
(``formats/harmonised_card.py``). The QR code still carries the signed proof alone
(``security/cardsig.py``) for software that reads only it; segno draws it.

Text is French (UI language). The PDF core fonts cover Latin-1 only: other characters
are transliterated (``œ`` → ``oe``) rather than dropped.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import segno
import zxingcpp
from fpdf import FPDF
from PIL import Image

from tierspayant.domain import labels
from tierspayant.formats.harmonised_card import HarmonisedCard

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "’": "'", "‘": "'", "–": "-", "—": "-"})
DOMAIN_LABELS = {str(domain): text for domain, text in labels.DOMAINS.items()}


@dataclass(frozen=True, slots=True)
class PrintedBeneficiary:
    first_name: str = field(repr=False)
    birth_date: date = field(repr=False)
    rank: int


@dataclass(frozen=True, slots=True)
class PrintedDomain:
    domain: str
    tiers_payant: bool
    coverage_code: str


@dataclass(frozen=True, slots=True)
class PrintedContract:
    code: str
    label: str
    domains: tuple[PrintedDomain, ...]


@dataclass(frozen=True, slots=True)
class CardPrint:
    """Everything one card shows. Holds identity in clear: memory only, never logged."""

    insurer_name: str
    amc_number: str
    member_number: str = field(repr=False)
    serial: str
    valid_from: date
    valid_until: date
    beneficiaries: tuple[PrintedBeneficiary, ...] = field(repr=False)
    contracts: tuple[PrintedContract, ...]
    qr_text: str = field(repr=False)
    # The standard box and each beneficiary's rights, in the order of ``beneficiaries``.
    harmonised: HarmonisedCard = field(repr=False)
    datamatrix_text: str = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.harmonised.beneficiaries) != len(self.beneficiaries):
            raise ValueError("one row of rights per printed beneficiary")


def latin1(text: str) -> str:
    """``text`` as the PDF core fonts can print it."""
    text = text.translate(_LIGATURES)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if c.encode("latin-1", "ignore"))
    return text


def _french_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _draw_qr(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    """Place the QR code of ``text``: a 1-bit PNG, 8 pixels per module, no smoothing.

    An image costs a fraction of drawing each module as a vector square, and at 8 pixels
    a module it prints sharp at any size a card uses.
    """
    qr = segno.make_qr(text, error="m")
    png = io.BytesIO()
    qr.save(png, kind="png", scale=8, border=2)
    png.seek(0)
    pdf.image(png, x=x, y=y, w=size, h=size)


def datamatrix_image(text: str, module_pixels: int = 8) -> Image.Image:
    """The DataMatrix (ECC 200) of ``text`` as a black and white image, quiet zone included.

    Whole pixels per module, like the QR code: sharp at any printed size.
    """
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix)
    bitmap = symbol.to_image(scale=module_pixels, add_quiet_zones=True)
    height, width = bitmap.shape[0], bitmap.shape[1]
    # zxing's Image exposes the buffer protocol; its stub does not say so.
    pixels = bytes(memoryview(bitmap))  # type: ignore[arg-type]
    return Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1)


def _draw_datamatrix(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    pdf.image(datamatrix_image(text).convert("1"), x=x, y=y, w=size, h=size)


def _box(pdf: FPDF, card: CardPrint, x: float, y: float) -> None:
    """The standard box: the five labels always printed, validity first (top left)."""
    box = card.harmonised
    rows = (
        (
            "Période de validité",
            f"du {_french_date(box.valid_from)} au {_french_date(box.valid_until)}",
        ),
        ("Numéro AMC", box.amc_number),
        ("Type de convention", box.convention_type),
        ("Critère second. de routage (CSR)", box.routing_criterion),
        ("Numéro d'adhérent", box.member_number),
    )
    width, label_width, height = 110.0, 50.0, 6.0
    pdf.set_line_width(0.5)
    pdf.rect(x, y, width, height * len(rows) + 2)
    pdf.set_line_width(0.2)
    for i, (label, value) in enumerate(rows):
        pdf.set_xy(x + 1, y + 1 + i * height)
        pdf.set_font("Helvetica", "B", 8)
        pdf.cell(label_width, height, latin1(label))
        pdf.set_font("Courier", "B", 10)
        pdf.cell(width - label_width - 2, height, latin1(value))
    if box.responsable:
        pdf.set_xy(x + width + 2, y)
        pdf.set_font("Helvetica", "B", 20)
        pdf.cell(10, 10, "R", border=1, align="C")
        pdf.set_xy(x + width, y + 11)
        pdf.set_font("Helvetica", "", 6)
        pdf.multi_cell(14, 2.5, latin1("contrat responsable"), align="C")


def _fit(pdf: FPDF, width: float, text: str, size: float) -> None:
    """A cell whose font shrinks until ``text`` fits (coverage codes run to 16 characters)."""
    while size > 4 and pdf.get_string_width(text) > width - 1:
        size -= 0.5
        pdf.set_font_size(size)
    pdf.cell(width, 5, text, border=1, align="C")


def _rights(pdf: FPDF, card: CardPrint) -> None:
    """One row per beneficiary, one column per care domain found on the card."""
    _section(pdf, "Droits par bénéficiaire")
    rows = card.harmonised.beneficiaries
    domains = [d for d in DOMAIN_LABELS if any(r.domain.value == d for p in rows for r in p.rights)]
    fixed = (("Bénéficiaire", 34.0), ("Né(e) le", 19.0), ("Rang", 9.0))
    column = (pdf.epw - sum(w for _, w in fixed)) / max(len(domains), 1)
    pdf.set_font("Helvetica", "B", 7)
    for head, width in fixed:
        pdf.cell(width, 5, latin1(head), border=1)
    for domain in domains:
        pdf.cell(column, 5, domain, border=1, align="C")
    pdf.ln()
    for person, row in zip(card.beneficiaries, rows, strict=True):
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(34, 5, latin1(person.first_name)[:22], border=1)
        pdf.cell(19, 5, _french_date(person.birth_date), border=1)
        pdf.cell(9, 5, str(person.rank), border=1, align="C")
        by_domain = {r.domain.value: r for r in row.rights}
        for domain in domains:
            pdf.set_font("Helvetica", "", 7)
            right = by_domain.get(domain)
            if right is None:
                text = ""
            else:
                text = right.coverage_code if right.tiers_payant else f"({right.coverage_code})"
            _fit(pdf, column, latin1(text), 7)
        pdf.ln()
    pdf.set_font("Helvetica", "I", 7)
    pdf.multi_cell(
        0,
        3.5,
        latin1(
            "Code : tiers payant avec ce code de prise en charge ; (code) : pris en charge, "
            "sans tiers payant ; vide : non couvert. "
            + " · ".join(f"{d} {DOMAIN_LABELS[d]}" for d in domains)
        ),
        align="L",
        new_x="LMARGIN",
        new_y="NEXT",
    )


def _section(pdf: FPDF, title: str) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)


def _contracts(pdf: FPDF, contracts: Sequence[PrintedContract]) -> None:
    """The family's contracts by name (their rights are in the table above)."""
    _section(pdf, "Garanties")
    for contract in contracts:
        line = f"{contract.code} - {contract.label}".rstrip(" -")
        pdf.cell(0, 5, latin1(line), new_x="LMARGIN", new_y="NEXT")


def render_card(card: CardPrint) -> bytes:
    """The card as a one-page A4 PDF."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creator("tierspayant")
    pdf.set_title("Attestation de tiers payant")
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, latin1("Attestation de tiers payant"), new_x="LMARGIN", new_y="NEXT")
    _box(pdf, card, x=pdf.l_margin, y=22)
    _draw_datamatrix(pdf, card.datamatrix_text, x=136, y=20, size=31)
    _draw_qr(pdf, card.qr_text, x=169, y=20, size=31)
    pdf.set_font("Helvetica", "", 6)
    for x, caption in ((136, "DataMatrix : attestation et code signé"), (169, "Code signé seul")):
        pdf.set_xy(x, 52)
        pdf.multi_cell(31, 2.5, latin1(caption), align="C")
    pdf.set_xy(pdf.l_margin, 62)
    facts = (
        ("Organisme complémentaire", card.insurer_name),
        ("Numéro de carte", card.serial),
    )
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(50, 6, latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(80, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    _rights(pdf, card)
    _contracts(pdf, card.contracts)
    pdf.set_y(-25)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(
        0,
        4,
        latin1(
            "Présentez cette attestation au professionnel de santé : il lit le DataMatrix. "
            "En cas de perte ou de vol, prévenez votre organisme : la carte sera révoquée. "
            "Une nouvelle carte remplace la précédente."
        ),
    )
    return bytes(pdf.output())


def write_card(card: CardPrint, directory: Path) -> Path:
    """Write the card's PDF under ``directory``, named by its serial (no identifier)."""
    path = directory / f"carte-{card.serial}.pdf"
    path.write_bytes(render_card(card))
    return path
