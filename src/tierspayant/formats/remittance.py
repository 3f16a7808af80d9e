"""Remittance advice (avis de paiement): what one payment paid, line by line.

A ``;``-separated CSV a provider's software can reconcile with its invoices: one row per
invoice line remitted (paid, or rejected with its reason code), one row per undue amount
deducted, then the totals. Rows are streamed; amounts are euros with a dot (``12.30``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from tierspayant.domain.payments import RecoveredUndue, RemittanceHeader, RemittanceLine
from tierspayant.formats.sepa import amount

COLUMNS = (
    "type",
    "amc",
    "facture",
    "demande",
    "ligne",
    "date_soins",
    "acte",
    "domaine",
    "montant_demande",
    "montant_paye",
    "statut",
    "motif",
)


def write_remittance(
    out: TextIO,
    header: RemittanceHeader,
    lines: Iterable[RemittanceLine],
    recovered: Iterable[RecoveredUndue],
) -> None:
    """Write one remittance advice; the totals row repeats the payment's figures."""
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(("avis", header.remittance_id, header.payment_date.isoformat()))
    writer.writerow(("beneficiaire_paiement", header.provider_am_number, header.provider_name))
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow(
            (
                "ligne",
                line.amc_number,
                line.invoice_number,
                line.claim_id,
                line.line_no,
                line.care_date.isoformat(),
                line.act_code,
                line.domain,
                amount(line.requested_cents),
                amount(line.paid_cents),
                line.status,
                line.reason_code or "",
            )
        )
    for undue in recovered:
        writer.writerow(
            (
                "indu_recupere",
                undue.amc_number,
                undue.invoice_number,
                undue.claim_id,
                undue.line_no,
                "",
                "",
                "",
                "",
                "-" + amount(undue.cents),
                "undue",
                undue.reason_code,
            )
        )
    writer.writerow(("total_lignes", header.lines))
    writer.writerow(("total_accepte", amount(header.gross_cents)))
    writer.writerow(("total_indus_deduits", amount(header.recovered_cents)))
    if header.reissued_cents:
        writer.writerow(("virements_retournes_payes", amount(header.reissued_cents)))
    writer.writerow(("virement", amount(header.transfer_cents), header.end_to_end_id))
