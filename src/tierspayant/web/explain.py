"""The calculation's explanation in French: how each line's shares were made.

Built from the figures of the engine's answer (base, rate, AMO share, ticket modérateur,
excess, AMC share, what is left to the patient) and, for the ceilings, from the engine's
notes (``domain/pricing/ceilings.py``), whose amounts are already French. The engine's
other notes are English, for logs and the API: they are not shown to people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tierspayant.domain import labels
from tierspayant.domain.guarantees import PERIOD_LABELS
from tierspayant.domain.pricing.explain import eur, pct
from tierspayant.domain.pricing.model import LineResult, PricingResult

_PERIOD_FR = {
    english: labels.label("ceiling_period", period) for period, english in PERIOD_LABELS.items()
}
_AMOUNT_CAP = re.compile(r"^capped by (\S+) ceiling (\S+) (.+ €) \((.+ €) left\)$")
_COUNT_CAP = re.compile(r"^capped by (\S+) ceiling (\S+) of (\d+) per period \((\d+) left\)$")


def ceilings(rules: Iterable[str]) -> list[str]:
    """The ceilings that capped a line, in French (the other notes are left out)."""
    said = []
    for rule in rules:
        amount = _AMOUNT_CAP.match(rule)
        if amount:
            period = _PERIOD_FR.get(amount[1], amount[1])
            said.append(
                f"Plafond de garantie atteint : {amount[3]} {period} ; il restait {amount[4]} "
                "sur ce plafond, la part complémentaire en est limitée."
            )
            continue
        count = _COUNT_CAP.match(rule)
        if count:
            period = _PERIOD_FR.get(count[1], count[1])
            said.append(
                f"Plafond de garantie atteint : {count[3]} acte(s) {period} ; il en restait "
                f"{count[4]}."
            )
    return said


def line_explained(contract: str, line: LineResult) -> list[str]:
    """What applied to one line, in French sentences."""
    family = labels.label("family", line.family) if line.family else "—"
    said = [
        f"Garantie appliquée : contrat {contract}, {family} "
        f"({labels.label('domain', line.domain)}).",
        f"Base de remboursement {eur(line.br_cents)} × taux AMO {pct(line.amo_rate_bp)} : "
        f"part AMO {eur(line.amo_paid_cents)}"
        + (
            f" (après participation forfaitaire {eur(line.participation_cents)})"
            if line.participation_cents
            else ""
        )
        + (f" (après franchise {eur(line.franchise_cents)})" if line.franchise_cents else "")
        + ".",
        f"Ticket modérateur {eur(line.tm_cents)}, dépassement {eur(line.depassement_cents)}.",
        *ceilings(line.rules),
        f"Part complémentaire {eur(line.amc_cents)} ; reste à charge du patient "
        f"{eur(line.patient_cents)}.",
    ]
    return said


def explained(result: PricingResult) -> list[tuple[LineResult, list[str]]]:
    """Each line of a calculation with its explanation."""
    return [(line, line_explained(result.contract_code, line)) for line in result.lines]
