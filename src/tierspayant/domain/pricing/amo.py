"""Step 1 of a line: the AMO share, then what the AMO deducts from it.

The rate is the act family's on the care date, 100 % under an exemption, or the hors
parcours rate outside the care pathway; the base is rate × BR. From it the AMO deducts
the participation forfaitaire and the franchises, within their annual and daily caps, what
is left of them running over the lines of the invoice.
"""

from __future__ import annotations

from tierspayant.domain.care import Exemption
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.money import apply_rate
from tierspayant.domain.pricing.checks import check_rate
from tierspayant.domain.pricing.explain import COVERED, NOT_COVERED, RESPONSABLE, eur, pct
from tierspayant.domain.pricing.model import (
    COUNTER_FRANCHISE_DAY,
    COUNTER_FRANCHISE_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_PARTICIPATION_YEAR,
    FULL_RATE,
    FULL_RATE_EXEMPTIONS,
    ZERO,
    PricingLine,
    PricingRequest,
)
from tierspayant.domain.reference import FamilyRule, ReferenceRules


def amo_share(
    line: PricingLine,
    index: int,
    fam: FamilyRule,
    rules: ReferenceRules,
    age: int,
    notes: list[str],
) -> tuple[int, int, int, bool]:
    """The AMO rate, ordinary rate, base and hors parcours flag of ``line`` at ``age``.

    The ordinary rate is the family's in the care pathway without exemption (what a
    contrat responsable reckons with outside the pathway). A plain tuple: the engine
    makes one per line, and a named tuple costs several times as much to build.
    """
    ordinary = rules.family_rates_bp[line.family]
    exemption = line.exemption
    hp_rate = rules.hors_parcours_rate_bp
    hors_parcours = False
    if exemption in FULL_RATE_EXEMPTIONS:
        expected = FULL_RATE
    elif (
        fam.care_pathway
        and not line.in_care_pathway
        and age >= rules.care_pathway_min_age
        and ordinary > hp_rate
    ):
        expected = hp_rate
        hors_parcours = True
    else:
        expected = ordinary
    rate = line.amo_rate_bp
    if rate is None:
        rate = expected
    else:
        check_rate(line, index, fam, rules)
    br = line.br_cents
    base = apply_rate(br, rate)
    note = f"AMO {pct(rate)} of BR {eur(br)} = {eur(base)}"
    if hors_parcours:
        note += f" (hors parcours: {pct(rate)} instead of {pct(ordinary)})"
    elif rate != ordinary and exemption in FULL_RATE_EXEMPTIONS:
        note += f" (exemption {exemption}: 100 %)"
    notes.append(note)
    return rate, ordinary, base, hors_parcours


def _fate(contract: Contract, covered: bool) -> str:
    """What becomes of a deduction the AMO made, under ``contract``."""
    if contract.responsable:
        return RESPONSABLE
    return COVERED if covered else NOT_COVERED


class AmoDeductions:
    """The participation forfaitaire and franchises of one invoice, within their caps.

    Made once per invoice: what is left under each cap runs from line to line, and what the
    invoice deducted is what it consumes from the AMO counters.
    """

    __slots__ = (
        "counters",
        "fr_count",
        "fr_day_left",
        "fr_day_used",
        "fr_fate",
        "fr_total",
        "fr_year_left",
        "part_count",
        "part_day_left",
        "part_fate",
        "part_total",
        "part_year_left",
        "rules",
        "spared",
    )

    def __init__(self, contract: Contract, request: PricingRequest, rules: ReferenceRules) -> None:
        self.rules = rules
        self.counters = counters = request.counters
        # Who is spared the participation forfaitaire and the franchises, and why.
        spared: str | None
        if request.age < rules.exemption_age:
            spared = f"under {rules.exemption_age}"
        elif request.maternity:
            spared = "maternity"
        elif request.css:
            spared = "complémentaire santé solidaire"
        else:
            spared = None
        self.spared = spared
        self.part_fate = _fate(contract, contract.covers_participation)
        self.fr_fate = _fate(contract, contract.covers_franchises)
        self.part_year_left = max(
            0,
            rules.participation_annual_cap_cents
            - counters.get(COUNTER_PARTICIPATION_YEAR, ZERO)[0],
        )
        self.part_day_left = max(
            0,
            rules.participation_daily_cap_cents - counters.get(COUNTER_PARTICIPATION_DAY, ZERO)[0],
        )
        self.fr_year_left = max(
            0, rules.franchise_annual_cap_cents - counters.get(COUNTER_FRANCHISE_YEAR, ZERO)[0]
        )
        # Filled on first use: most invoices have no franchise.
        self.fr_day_left: dict[str, int] = {}
        self.fr_day_used: dict[str, list[int]] = {}
        self.part_total = self.part_count = self.fr_total = self.fr_count = 0

    def deduct(
        self, line: PricingLine, fam: FamilyRule, amo_base: int, notes: list[str]
    ) -> tuple[int, int]:
        """The participation and the franchise deducted from ``amo_base`` on ``line``."""
        participation = franchise = 0
        spared = self.spared
        exemption = line.exemption
        if spared is None and (exemption == Exemption.MATERNITY or exemption == Exemption.CSS):
            spared = str(exemption)
        quantity = line.quantity
        if fam.participation:
            if spared is not None:
                notes.append(f"no participation forfaitaire ({spared})")
            else:
                wanted = self.rules.participation_cents * quantity
                participation = min(wanted, self.part_year_left, self.part_day_left, amo_base)
                self.part_year_left -= participation
                self.part_day_left -= participation
                if participation:
                    self.part_total += participation
                    self.part_count += 1
                note = f"participation forfaitaire {eur(participation)} deducted ({self.part_fate})"
                if participation < wanted:
                    note += f"; limited by the caps ({eur(wanted)} asked)"
                notes.append(note)
        kind = fam.franchise
        if kind is not None:
            if spared is not None:
                notes.append(f"no franchise ({spared})")
            else:
                franchise = self._franchise(kind, quantity, amo_base - participation, notes)
        return participation, franchise

    def _franchise(self, kind: str, quantity: int, left: int, notes: list[str]) -> int:
        rules = self.rules
        wanted = rules.franchise_cents[kind] * quantity
        franchise = min(wanted, self.fr_year_left, left)
        daily_cap = rules.franchise_daily_cap_cents.get(kind)
        if daily_cap is not None:
            day_left = self.fr_day_left.get(kind)
            if day_left is None:
                already = self.counters.get(COUNTER_FRANCHISE_DAY[kind], ZERO)[0]
                day_left = max(0, daily_cap - already)
            franchise = min(franchise, day_left)
            self.fr_day_left[kind] = day_left - franchise
            if franchise:
                slot = self.fr_day_used.setdefault(kind, [0, 0])
                slot[0] += franchise
                slot[1] += 1
        self.fr_year_left -= franchise
        if franchise:
            self.fr_total += franchise
            self.fr_count += 1
        note = f"franchise {kind} {eur(franchise)} deducted ({self.fr_fate})"
        if franchise < wanted:
            note += f"; limited by the caps ({eur(wanted)} asked)"
        notes.append(note)
        return franchise

    def consumption(self) -> dict[str, tuple[int, int]]:
        """What the invoice consumes from the AMO counters: key -> (amount, count)."""
        consumed: dict[str, tuple[int, int]] = {}
        if self.part_total:
            consumed[COUNTER_PARTICIPATION_YEAR] = (self.part_total, self.part_count)
            consumed[COUNTER_PARTICIPATION_DAY] = (self.part_total, self.part_count)
        if self.fr_total:
            consumed[COUNTER_FRANCHISE_YEAR] = (self.fr_total, self.fr_count)
        for kind, (amount, count) in self.fr_day_used.items():
            consumed[COUNTER_FRANCHISE_DAY[kind]] = (amount, count)
        return consumed
