"""Files of an insurer's billing run: the statement and the claim detail file.

The statement (JSON, and the same totals as CSV) says what the operator paid on the
insurer's behalf during the period, per care domain and per provider category, what it
credits back (undue amounts found after payment), the operator's management fees (a
rate per paid line, excluding VAT) and what it calls by direct debit. The
detail file has one row per paid line (and one negative row per undue line) so that the
insurer can produce its members' statements; it names beneficiaries by the platform's
internal id only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TextIO

from tierspayant.domain.engagements import HonouredLine
from tierspayant.domain.payments import DetailLine
from tierspayant.formats.sepa import amount

DETAIL_COLUMNS = (
    "type",
    "demande",
    "ligne",
    "facture",
    "ps_numero_am",
    "ps_categorie",
    "beneficiaire_id",
    "domaine",
    "acte",
    "date_soins",
    "date_paiement",
    "montant_facture",
    "part_amo",
    "part_amc",
    "reste_a_charge",
)


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


def write_statement_csv(out: TextIO, statement: Statement) -> None:
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(("rubrique", "cle", "montant"))
    for key, cents in sorted(statement.by_domain.items()):
        writer.writerow(("domaine", key, _signed(cents)))
    for key, cents in sorted(statement.by_category.items()):
        writer.writerow(("categorie_ps", key, _signed(cents)))
    writer.writerow(("total", "paye", amount(statement.paid_cents)))
    writer.writerow(("total", "indus_credites", amount(statement.undue_cents)))
    writer.writerow(("total", "net_soins", _signed(statement.net_paid_cents)))
    for e in statement.engagements:
        key = f"{e.claim_id}/{e.line_no} {e.invoice_number} {e.provider_am_number} {e.care_date}"
        writer.writerow(("engagement_honore", key, amount(e.cents)))
    engaged = sum(e.cents for e in statement.engagements)
    writer.writerow(("total", "engagements_honores", amount(engaged)))
    basis = f"{statement.lines} x {amount(statement.fee_per_line_cents)} HT"
    writer.writerow(("frais_gestion", basis, amount(statement.fee_cents)))
    writer.writerow(("total", "appel_de_fonds", _signed(statement.due_cents)))


def write_detail(out: TextIO, lines: Iterable[DetailLine]) -> tuple[int, int]:
    """Stream the detail rows; returns (rows, AMC cents) to check against the statement."""
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(DETAIL_COLUMNS)
    rows = cents = 0
    for line in lines:
        writer.writerow(
            (
                line.kind,
                line.claim_id,
                line.line_no,
                line.invoice_number,
                line.provider_am_number,
                line.provider_category,
                line.beneficiary_id,
                line.domain,
                line.act_code,
                line.care_date.isoformat(),
                line.payment_date.isoformat(),
                amount(line.billed_cents),
                amount(line.amo_cents),
                _signed(line.amc_cents),
                amount(line.remainder_cents)
                if line.remainder_cents >= 0
                else _signed(line.remainder_cents),
            )
        )
        rows += 1
        cents += line.amc_cents
    return rows, cents


def _signed(cents: int) -> str:
    return ("-" if cents < 0 else "") + amount(abs(cents))
