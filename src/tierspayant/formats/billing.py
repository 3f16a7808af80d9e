"""Files of an insurer's billing run: the statement and the claim detail file.

The statement (JSON, and the same totals as CSV) says what the operator paid on the
insurer's behalf during the period, per care domain and per provider category, what it
credits back (undue amounts found after payment), the operator's management fees (a
rate per paid line, excluding VAT) and what it calls by direct debit. The
detail file has one row per paid line (and one negative row per undue line) so that the
insurer can produce its members' statements; it names beneficiaries by the platform's
internal id only.

The statement CSV and the detail file are read by the insurer's staff in a spreadsheet:
French CSVs (``formats/french_csv.py``: ``;``, decimal comma, ``dd/mm/yyyy``, BOM). The
JSON statement and the fund call (pain.008) are the machine files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TextIO

from tierspayant.domain import labels
from tierspayant.domain.engagements import HonouredLine
from tierspayant.domain.payments import DetailLine
from tierspayant.formats import french_csv
from tierspayant.formats.french_csv import Euros
from tierspayant.formats.sepa import amount

DETAIL_COLUMNS = (
    "Type",
    "Demande",
    "Ligne",
    "Facture",
    "N° AM du professionnel",
    "Catégorie du professionnel",
    "Id bénéficiaire",
    "Domaine",
    "Acte",
    "Date des soins",
    "Date du paiement",
    "Montant facturé (€)",
    "Part AMO (€)",
    "Part AMC (€)",
    "Reste à charge (€)",
)
# The kinds of detail rows, as the insurer's staff read them.
DETAIL_KINDS = {"paid": "payé", "undue": "indu"}


@dataclass(frozen=True, slots=True)
class Statement:
    amc_number: str
    insurer_name: str
    period: str
    lines: int
    paid_cents: int
    undue_cents: int
    due_cents: int
    collection_date: date
    mandate_id: str | None
    by_domain: Mapping[str, int]  # AMC cents net of undue, per care domain
    by_category: Mapping[str, int]  # per provider category
    fee_per_line_cents: int = 0  # operator fee per paid line, excluding VAT
    fee_cents: int = 0  # lines x fee_per_line_cents, included in due_cents
    # Paid lines of the period that were paid on an engagement (rights ended after the
    # check): included in paid_cents, listed apart because the insurer bears them.
    engagements: tuple[HonouredLine, ...] = ()

    @property
    def net_paid_cents(self) -> int:
        """Paid on the insurer's behalf, net of undue amounts (the due before fees)."""
        return self.paid_cents - self.undue_cents


def write_statement_json(out: TextIO, statement: Statement) -> None:
    document = {
        "amc_number": statement.amc_number,
        "insurer": statement.insurer_name,
        "period": statement.period,
        "lines": statement.lines,
        "paid": amount(statement.paid_cents),
        "undue_credited": amount(statement.undue_cents),
        "net_paid": _signed(statement.net_paid_cents),
        "operator_fees": {
            "lines": statement.lines,
            "per_line": amount(statement.fee_per_line_cents),
            "amount": amount(statement.fee_cents),
            "vat_included": False,
        },
        "due": _signed(statement.due_cents),
        "collection_date": statement.collection_date.isoformat(),
        "mandate_id": statement.mandate_id,
        "by_domain": {k: _signed(v) for k, v in sorted(statement.by_domain.items())},
        "by_provider_category": {k: _signed(v) for k, v in sorted(statement.by_category.items())},
        "engagements_honoured": {
            "amount": amount(sum(e.cents for e in statement.engagements)),
            "lines": [
                {
                    "claim": e.claim_id,
                    "line": e.line_no,
                    "invoice": e.invoice_number,
                    "provider_am_number": e.provider_am_number,
                    "care_date": e.care_date.isoformat(),
                    "domain": e.domain,
                    "contract": e.contract_code,
                    "amount": amount(e.cents),
                }
                for e in statement.engagements
            ],
        },
    }
    json.dump(document, out, indent=2, sort_keys=True, ensure_ascii=False)
    out.write("\n")


STATEMENT_COLUMNS = ("Rubrique", "Clé", "Montant (€)")


def write_statement_csv(out: TextIO, statement: Statement) -> None:
    """The statement's totals for the insurer's staff: a French CSV (``formats/french_csv``),
    the same figures as the JSON statement (which machines read)."""
    rows: list[tuple[str, str, Euros]] = []
    for key, cents in sorted(statement.by_domain.items()):
        rows.append(("Domaine de soins", f"{labels.label('domain', key)} ({key})", Euros(cents)))
    for key, cents in sorted(statement.by_category.items()):
        rows.append(("Catégorie de professionnel", key, Euros(cents)))
    rows.append(("Total", "Payé pour le compte de l'organisme", Euros(statement.paid_cents)))
    rows.append(("Total", "Indus crédités", Euros(statement.undue_cents)))
    rows.append(("Total", "Net des soins", Euros(statement.net_paid_cents)))
    for e in statement.engagements:
        key = (
            f"{e.claim_id}/{e.line_no} {e.invoice_number} {e.provider_am_number} "
            f"{e.care_date:%d/%m/%Y}"
        )
        rows.append(("Engagement honoré", key, Euros(e.cents)))
    engaged = sum(e.cents for e in statement.engagements)
    rows.append(("Total", "Engagements honorés", Euros(engaged)))
    plural = "s" if statement.lines > 1 else ""
    fee = french_csv.amount(statement.fee_per_line_cents)
    basis = f"{statement.lines} ligne{plural} × {fee} € HT"
    rows.append(("Frais de gestion", basis, Euros(statement.fee_cents)))
    rows.append(("Total", "Appel de fonds", Euros(statement.due_cents)))
    french_csv.write(out, STATEMENT_COLUMNS, rows)


def write_detail(out: TextIO, lines: Iterable[DetailLine]) -> tuple[int, int]:
    """Stream the detail rows (a French CSV for the insurer's staff); returns (rows, AMC
    cents) to check against the statement."""
    writer = french_csv.Writer(out, DETAIL_COLUMNS)
    rows = cents = 0
    for line in lines:
        writer.row(
            (
                DETAIL_KINDS.get(line.kind, line.kind),
                line.claim_id,
                line.line_no,
                line.invoice_number,
                line.provider_am_number,
                line.provider_category,
                line.beneficiary_id,
                line.domain,
                line.act_code,
                line.care_date,
                line.payment_date,
                Euros(line.billed_cents),
                Euros(line.amo_cents),
                Euros(line.amc_cents),
                Euros(line.remainder_cents),
            )
        )
        rows += 1
        cents += line.amc_cents
    return rows, cents


def _signed(cents: int) -> str:
    return ("-" if cents < 0 else "") + amount(abs(cents))
