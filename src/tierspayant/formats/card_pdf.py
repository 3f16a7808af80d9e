"""The printed tiers payant card (attestation de tiers payant), one PDF page per family.

Everything printed is what the family's own card shows: insurer, AMC number, member
number, validity, the beneficiaries' first names and birth dates, and per care domain
whether tiers payant applies and its coverage code. The QR code carries the signed
payload (``security/cardsig.py``); it is embedded as a black and white PNG drawn by segno.

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
from fpdf import FPDF

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "’": "'", "‘": "'", "–": "-", "—": "-"})
DOMAIN_LABELS = {
    "PHAR": "Pharmacie",
    "MED": "Médecins",
    "LABO": "Laboratoires",
    "RADIO": "Radiologie",
    "AUXM": "Auxiliaires médicaux",
    "DENT": "Dentaire",
    "OPTI": "Optique",
    "AUDI": "Audioprothèses",
    "HOSP": "Hospitalisation",
    "SAGE": "Sages-femmes",
    "TRAN": "Transport",
    "CSTE": "Centres de santé",
    "EXTE": "Soins externes",
}


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


def _section(pdf: FPDF, title: str) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)


def _beneficiaries(pdf: FPDF, people: Sequence[PrintedBeneficiary]) -> None:
    _section(pdf, "Bénéficiaires")
    for person in people:
        rank = f" (rang {person.rank})" if person.rank > 1 else ""
        line = f"{person.first_name} - né(e) le {_french_date(person.birth_date)}{rank}"
        pdf.cell(0, 6, latin1(line), new_x="LMARGIN", new_y="NEXT")


def _contracts(pdf: FPDF, contracts: Sequence[PrintedContract]) -> None:
    for contract in contracts:
        _section(pdf, f"Garantie {contract.code} - {contract.label}")
        pdf.set_font("Helvetica", "B", 9)
        for head, width in (("Domaine", 55), ("Code", 20), ("Tiers payant", 30)):
            pdf.cell(width, 6, latin1(head), border=1)
        pdf.ln()
        pdf.set_font("Helvetica", "", 9)
        for d in contract.domains:
            label = f"{d.domain} {DOMAIN_LABELS.get(d.domain, '')}".strip()
            pdf.cell(55, 6, latin1(label), border=1)
            pdf.cell(20, 6, latin1(d.coverage_code), border=1)
            pdf.cell(30, 6, "oui" if d.tiers_payant else "non", border=1)
            pdf.ln()


def render_card(card: CardPrint) -> bytes:
    """The card as a one-page A4 PDF."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creator("tierspayant")
    pdf.set_title("Attestation de tiers payant")
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 10, latin1("Attestation de tiers payant"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    facts = (
        ("Organisme complémentaire", card.insurer_name),
        ("Numéro AMC", card.amc_number),
        ("Numéro d'adhérent", card.member_number),
        (
            "Période de validité",
            f"du {_french_date(card.valid_from)} au {_french_date(card.valid_until)}",
        ),
        ("Numéro de carte", card.serial),
    )
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(50, 6, latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(80, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    _draw_qr(pdf, card.qr_text, x=145, y=22, size=50)
    pdf.set_xy(145, 73)
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(50, 3, latin1("Code signé : à présenter au professionnel de santé."))
    pdf.set_xy(pdf.l_margin, 60)
    _beneficiaries(pdf, card.beneficiaries)
    _contracts(pdf, card.contracts)
    pdf.set_y(-25)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(
        0,
        4,
        latin1(
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
