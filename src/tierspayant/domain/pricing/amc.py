"""Step 2 of a line: the AMC share the contract pays, before the deductions it covers.

In order: the guarantee for (domain, family, age); its conditions (waiting period,
equipment renewal); then a class A line under the 100 % Santé promise is paid up to its
price; otherwise the guarantee's formula, the contrat responsable caps of optics and
hearing aids, and the guarantee's ceilings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from tierspayant.domain.guarantees import Contract, Guarantee
from tierspayant.domain.money import apply_rate
from tierspayant.domain.pricing.caps import OpticsCaps, hearing_aid_cap
from tierspayant.domain.pricing.ceilings import apply_ceilings
from tierspayant.domain.pricing.explain import eur
from tierspayant.domain.pricing.formula import contract_formula
from tierspayant.domain.pricing.model import PricingLine, PricingRequest, RssClass
from tierspayant.domain.reference import FamilyRule, ReferenceRules


def conditions_met(
    guarantee: Guarantee,
    care_date: date,
    coverage_start: date,
    last_equipment: Mapping[str, date],
    age: int,
    notes: list[str],
) -> bool:
    """Whether the guarantee's waiting period is over and its equipment may be renewed."""
    if guarantee.waiting_days:
        start = coverage_start.toordinal() + guarantee.waiting_days
        if care_date.toordinal() < start:
            notes.append(
                f"waiting period of {guarantee.waiting_days} days: covered from "
                f"{date.fromordinal(start).isoformat()}"
            )
            return False
    frequency = guarantee.frequency
    if frequency is not None:
        last = last_equipment.get(frequency.key)
        if last is not None and last < care_date:
            allowed = frequency.next_allowed(last, age)
            if care_date < allowed:
                notes.append(
                    f"renewal: one {frequency.key} per {frequency.months_for(age)} months; "
                    f"last on {last.isoformat()}, covered again from {allowed.isoformat()}"
                )
                return False
    return True


def hundred_percent_sante(line: PricingLine, amo_base: int, notes: list[str]) -> int:
    """A class A line: the AMC pays the price (within its legal limit) minus the AMO share."""
    billed = line.billed_cents
    amc = max(0, billed - amo_base)
    notes.append(
        f"100 % Santé: AMC pays the price {eur(billed)} (limit "
        f"{eur(line.plv_cents or 0)}) minus the AMO share {eur(amo_base)} = {eur(amc)}"
    )
    return amc


class ContractShares:
    """The AMC share of each line of one invoice under one contract.

    Made once per invoice: the contract counters consumed (``used``), the equipment renewed
    (``renewals``) and the optics caps left run from line to line.
    """

    __slots__ = (
        "age",
        "contract",
        "extra_tm_paid",
        "legal",
        "optam",
        "optics",
        "renewals",
        "request",
        "rules",
        "used",
    )

    def __init__(
        self, contract: Contract, request: PricingRequest, rules: ReferenceRules, legal_caps: bool
    ) -> None:
        self.contract = contract
        self.request = request  # its rarer facts are read on the lines that need them
        self.rules = rules
        self.age = request.age
        self.optam = request.optam
        self.extra_tm_paid = contract.covers_hors_parcours and not contract.responsable
        self.legal = legal_caps and contract.responsable
        self.used: dict[str, list[int]] = {}  # contract counters consumed by this invoice
        self.renewals: dict[str, date] = {}  # frequency key -> care date, covered equipment
        self.optics: OpticsCaps | None = None  # set on the first class B optical item

    def of_line(
        self,
        line: PricingLine,
        fam: FamilyRule,
        amo_base: int,
        ordinary_rate: int,
        hors_parcours: bool,
        notes: list[str],
    ) -> int:
        """What the contract pays on ``line``, the rules applied added to ``notes``."""
        age = self.age
        guarantee = self.contract.guarantee_for(line.domain, line.family, age)
        covered = (
            guarantee is None
            or (not guarantee.waiting_days and guarantee.frequency is None)
            or conditions_met(
                guarantee,
                self.request.care_date,
                self.request.coverage_start,
                self.request.last_equipment,
                age,
                notes,
            )
        )
        amc = 0
        if not covered:
            pass
        elif line.rss_class == RssClass.A and self.contract.hundred_percent_sante:
            amc = hundred_percent_sante(line, amo_base, notes)
        elif guarantee is None:
            notes.append(f"no guarantee for {line.family} in {line.domain} at age {age}")
        else:
            amc = self._guarantee(
                guarantee, line, fam, amo_base, ordinary_rate, hors_parcours, notes
            )
        if covered and guarantee is not None and guarantee.frequency is not None and amc > 0:
            self.renewals[guarantee.frequency.key] = self.request.care_date
        return amc

    def _guarantee(
        self,
        guarantee: Guarantee,
        line: PricingLine,
        fam: FamilyRule,
        amo_base: int,
        ordinary_rate: int,
        hors_parcours: bool,
        notes: list[str],
    ) -> int:
        """The formula, then the legal caps, then the ceilings of ``guarantee``."""
        billed = line.billed_cents
        br = line.br_cents
        quantity = line.quantity
        # Outside the care pathway a contrat responsable pays as if the patient had kept
        # to it: the extra ticket modérateur stays with the patient.
        reference_amo = amo_base
        if hors_parcours and not self.extra_tm_paid:
            reference_amo = apply_rate(br, ordinary_rate)
            who = "contrat responsable" if self.contract.responsable else "contract"
            notes.append(
                f"hors parcours: the extra ticket modérateur {eur(reference_amo - amo_base)}"
                f" is not covered ({who})"
            )
        cost_left = max(0, billed - reference_amo)
        amc = contract_formula(
            guarantee,
            fam.doctor_fees,
            self.optam,
            billed,
            br,
            quantity,
            reference_amo,
            cost_left,
            notes,
        )
        # The legal caps bind class B equipment only: class A is paid up to its price.
        equipment = fam.equipment if line.rss_class != RssClass.A else None
        if equipment is not None and self.legal:
            if equipment == "hearing_aid":
                amc = hearing_aid_cap(self.rules, quantity, amo_base, amc, notes)
            else:
                if self.optics is None:
                    self.optics = OpticsCaps.for_invoice(self.request.lines, self.rules)
                amc = self.optics.cap(equipment, amc, notes)
        if guarantee.ceilings:
            tm_part = min(amc, max(0, br - reference_amo))
            amc = apply_ceilings(
                guarantee, amc, tm_part, quantity, self.request.counters, self.used, notes
            )
        if equipment is not None and self.optics is not None:
            self.optics.consume(equipment, amc)
        return amc
