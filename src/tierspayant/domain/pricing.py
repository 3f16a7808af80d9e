"""The calculation engine (CLC): AMO, AMC and patient shares of each line of an invoice.

For each line, in integer cents, rounding half up at the line level:

1. AMO base = AMO rate × BR (rate of the act family on the care date; 100 % under an
   exemption; the hors parcours rate outside the care pathway), minus the participation
   forfaitaire and the franchises the AMO deducts (annual and daily caps taken from the
   counters) = AMO paid. Ticket modérateur = BR − AMO base; dépassement = billed − BR.
2. AMC share from the contract's guarantee for (domain, family, age): a percentage of BR
   including the AMO share, a flat amount, actual costs; then its ceilings; then the
   contrat responsable caps; a class A (100 % Santé) line is paid up to its price.
3. Patient = billed − AMO paid − AMC. Always: AMC ≥ 0 and AMC ≤ billed − AMO paid.

The engine reads its inputs and never changes them: ``counter_consumption`` says what the
invoice would consume, for the caller to record once the invoice is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.errors import PricingError
from tierspayant.domain.guarantees import PERIOD_LABELS, Contract, Guarantee
from tierspayant.domain.money import apply_rate, format_euros
from tierspayant.domain.reference import FamilyRule, ReferenceRules, ReferenceTable, lens_pair

__all__ = [
    "AMO_COUNTERS",
    "COUNTER_FRANCHISE_DAY",
    "COUNTER_FRANCHISE_YEAR",
    "COUNTER_PARTICIPATION_DAY",
    "COUNTER_PARTICIPATION_YEAR",
    "LineResult",
    "PricingLine",
    "PricingRequest",
    "PricingResult",
    "RssClass",
    "check_lines",
    "max_equipment_cover",
    "price",
    "price_with_rules",
]

# Counters of what the AMO already deducted: per calendar year, and per day (the day
# counter of the participation is per professional: the caller passes the one of this
# provider on the care date).
COUNTER_PARTICIPATION_YEAR = "amo.participation.year"
COUNTER_PARTICIPATION_DAY = "amo.participation.day"
COUNTER_FRANCHISE_YEAR = "amo.franchise.year"
COUNTER_FRANCHISE_DAY = MappingProxyType(
    {"paramedical": "amo.franchise.paramedical.day", "transport": "amo.franchise.transport.day"}
)
AMO_COUNTERS = (
    COUNTER_PARTICIPATION_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_FRANCHISE_YEAR,
    *COUNTER_FRANCHISE_DAY.values(),
)

FULL_RATE = 10_000
_FULL_RATE_EXEMPTIONS = frozenset({Exemption.ALD, Exemption.MATERNITY, Exemption.WORK_ACCIDENT})
_ZERO = (0, 0)
_NEVER_COVERED = 10**12  # the "huge" price used to find a contract's maximum cover


class RssClass(StrEnum):
    """Price class of optics, dental prostheses and hearing aids."""

    A = "A"  # 100 % Santé basket: legal price limit, nothing left to the patient
    B = "B"  # free price


_RSS_CLASSES = frozenset(RssClass)


@dataclass(frozen=True, slots=True)
class PricingLine:
    """One line of a prospective invoice, as the provider's software sends it."""

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    billed_cents: int
    br_cents: int  # total BR of the line (all units)
    amo_rate_bp: int | None = None  # None: the reference rate of the family
    exemption: Exemption = Exemption.NONE
    in_care_pathway: bool = True
    rss_class: RssClass | None = None
    plv_cents: int | None = None  # legal price limit of the line (class A)
    psychiatry: bool = False  # forfait journalier in psychiatry


@dataclass(frozen=True, slots=True)
class PricingRequest:
    """The beneficiary, provider and history facts a calculation depends on."""

    care_date: date
    age: int  # age in whole years on the care date
    coverage_start: date
    lines: tuple[PricingLine, ...]
    optam: bool = False  # the doctor joined OPTAM / OPTAM-CO
    maternity: bool = False  # maternity insurance (from the 6th month of pregnancy)
    css: bool = False  # complémentaire santé solidaire
    # counter key -> (amount in cents, count) already consumed in the counter's window
    counters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # frequency key -> date of the last covered equipment
    last_equipment: Mapping[str, date] = field(default_factory=dict)


class LineResult(NamedTuple):
    """The shares of one line, and the rules applied, in plain English.

    A named tuple rather than a frozen dataclass: the engine makes one per line, and a
    frozen dataclass's constructor costs four times as much.
    """

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    billed_cents: int
    br_cents: int
    amo_rate_bp: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int
    rules: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (amounts in cents)."""
        return {
            "act_code": self.act_code,
            "domain": str(self.domain),
            "family": self.family,
            "quantity": self.quantity,
            "billed_cents": self.billed_cents,
            "br_cents": self.br_cents,
            "amo_rate_bp": self.amo_rate_bp,
            "amo_base_cents": self.amo_base_cents,
            "participation_cents": self.participation_cents,
            "franchise_cents": self.franchise_cents,
            "amo_paid_cents": self.amo_paid_cents,
            "tm_cents": self.tm_cents,
            "depassement_cents": self.depassement_cents,
            "amc_cents": self.amc_cents,
            "patient_cents": self.patient_cents,
            "rules": list(self.rules),
        }


@dataclass(frozen=True, slots=True)
class PricingResult:
    """Per-line and total shares, and what the invoice would consume from counters."""

    contract_code: str
    care_date: date
    lines: tuple[LineResult, ...]
    billed_cents: int
    br_cents: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int
    counter_consumption: Mapping[str, tuple[int, int]]
    renewals: Mapping[str, date]  # frequency key -> care date, for covered equipment

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (amounts in cents, dates in ISO format)."""
        return {
            "contract_code": self.contract_code,
            "care_date": self.care_date.isoformat(),
            "lines": [line.as_dict() for line in self.lines],
            "totals": {
                "billed_cents": self.billed_cents,
                "br_cents": self.br_cents,
                "amo_base_cents": self.amo_base_cents,
                "participation_cents": self.participation_cents,
                "franchise_cents": self.franchise_cents,
                "amo_paid_cents": self.amo_paid_cents,
                "tm_cents": self.tm_cents,
                "depassement_cents": self.depassement_cents,
                "amc_cents": self.amc_cents,
                "patient_cents": self.patient_cents,
            },
            "counter_consumption": {
                key: {"amount_cents": amount, "count": count}
                for key, (amount, count) in sorted(self.counter_consumption.items())
            },
            "renewals": {key: day.isoformat() for key, day in sorted(self.renewals.items())},
        }


def price(contract: Contract, request: PricingRequest, reference: ReferenceTable) -> PricingResult:
    """Price every line of ``request`` under ``contract`` with the rules in force that day."""
    return price_with_rules(contract, request, reference.on(request.care_date))


def price_with_rules(
    contract: Contract,
    request: PricingRequest,
    rules: ReferenceRules,
    *,
    legal_caps: bool = True,
) -> PricingResult:
    """:func:`price` with the reference snapshot already chosen.

    ``legal_caps=False`` leaves out the contrat responsable caps of optics and hearing aids,
    to measure what a contract alone would pay (used by the catalogue checks).
    """
    lines = request.lines
    if not lines:
        raise PricingError(
            "pricing.no_lines", "a calculation needs at least one line", field="lines"
        )
    age = request.age
    if not 0 <= age < 150:
        raise PricingError("pricing.invalid_request", "age must be between 0 and 149", field="age")
    care_date = request.care_date
    if care_date < request.coverage_start:
        raise PricingError(
            "pricing.not_covered_yet",
            f"the coverage starts on {request.coverage_start.isoformat()}, after the care date",
            field="care_date",
        )
    families = rules.families
    family_rates = rules.family_rates_bp
    contract_domains = contract.domains
    counters = request.counters
    last_equipment = request.last_equipment
    responsable = contract.responsable
    optam = request.optam
    hp_rate = rules.hors_parcours_rate_bp
    pathway_age = rules.care_pathway_min_age
    # Who is spared the participation forfaitaire and the franchises, and why.
    if age < rules.exemption_age:
        spared: str | None = f"under {rules.exemption_age}"
    elif request.maternity:
        spared = "maternity"
    elif request.css:
        spared = "complémentaire santé solidaire"
    else:
        spared = None
    covers_part = contract.covers_participation and not responsable
    covers_fr = contract.covers_franchises and not responsable
    extra_tm_paid = contract.covers_hors_parcours and not responsable
    part_fate = _RESPONSABLE if responsable else _COVERED if covers_part else _NOT_COVERED
    fr_fate = _RESPONSABLE if responsable else _COVERED if covers_fr else _NOT_COVERED
    legal = legal_caps and responsable

    part_unit = rules.participation_cents
    part_year_left = max(
        0, rules.participation_annual_cap_cents - counters.get(COUNTER_PARTICIPATION_YEAR, _ZERO)[0]
    )
    part_day_left = max(
        0, rules.participation_daily_cap_cents - counters.get(COUNTER_PARTICIPATION_DAY, _ZERO)[0]
    )
    fr_year_left = max(
        0, rules.franchise_annual_cap_cents - counters.get(COUNTER_FRANCHISE_YEAR, _ZERO)[0]
    )
    fr_day_left: dict[str, int] = {}  # filled on first use: most invoices have no franchise
    fr_day_used: dict[str, list[int]] = {}
    part_total = part_count = fr_total = fr_count = 0
    used: dict[str, list[int]] = {}  # contract counters consumed by this invoice
    renewals: dict[str, date] = {}
    optics: _OpticsCaps | None = None  # set on the first class B optical item
    total_billed = total_br = total_base = total_paid = total_tm = total_dep = total_amc = 0

    results: list[LineResult] = []
    for index, line in enumerate(lines):
        family_name = line.family
        fam = families.get(family_name)
        if fam is None or line.domain not in fam.domains:
            fam = _family(line, index, rules)  # raises the precise error
        domain = line.domain
        if domain not in contract_domains:
            raise PricingError(
                "pricing.domain_not_covered",
                f"contract {contract.code} does not cover care domain {domain}",
                field=f"lines[{index}].domain",
            )
        quantity = line.quantity
        billed = line.billed_cents
        br = line.br_cents
        rss = line.rss_class
        # The full checks only when a cheap test says something is unusual.
        if (
            quantity < 1
            or br < 0
            or billed < br
            or rss is not None
            or line.amo_rate_bp is not None
            or fam.daily_charge
        ):
            _check_amounts(line, index, fam.rss, fam.daily_charge, rules)

        # 1. AMO: rate, base, deductions.
        ordinary = family_rates[family_name]
        exemption = line.exemption
        hors_parcours = False
        if exemption in _FULL_RATE_EXEMPTIONS:
            expected = FULL_RATE
        elif (
            fam.care_pathway
            and not line.in_care_pathway
            and age >= pathway_age
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
            _check_rate(line, index, fam, rules)
        amo_base = apply_rate(br, rate)
        amo_note = f"AMO {_pct(rate)} of BR {_eur(br)} = {_eur(amo_base)}"
        if hors_parcours:
            amo_note += f" (hors parcours: {_pct(rate)} instead of {_pct(ordinary)})"
        elif rate != ordinary and exemption in _FULL_RATE_EXEMPTIONS:
            amo_note += f" (exemption {exemption}: 100 %)"
        notes = [amo_note]

        participation = franchise = 0
        line_spared = spared
        if line_spared is None and (exemption == Exemption.MATERNITY or exemption == Exemption.CSS):
            line_spared = str(exemption)
        if fam.participation:
            if line_spared is not None:
                notes.append(f"no participation forfaitaire ({line_spared})")
            else:
                wanted = part_unit * quantity
                participation = min(wanted, part_year_left, part_day_left, amo_base)
                part_year_left -= participation
                part_day_left -= participation
                if participation:
                    part_total += participation
                    part_count += 1
                note = f"participation forfaitaire {_eur(participation)} deducted ({part_fate})"
                if participation < wanted:
                    note += f"; limited by the caps ({_eur(wanted)} asked)"
                notes.append(note)
        kind = fam.franchise
        if kind is not None:
            if line_spared is not None:
                notes.append(f"no franchise ({line_spared})")
            else:
                wanted = rules.franchise_cents[kind] * quantity
                franchise = min(wanted, fr_year_left, amo_base - participation)
                daily_cap = rules.franchise_daily_cap_cents.get(kind)
                if daily_cap is not None:
                    day_left = fr_day_left.get(kind)
                    if day_left is None:
                        already = counters.get(COUNTER_FRANCHISE_DAY[kind], _ZERO)[0]
                        day_left = max(0, daily_cap - already)
                    franchise = min(franchise, day_left)
                    fr_day_left[kind] = day_left - franchise
                    if franchise:
                        slot = fr_day_used.setdefault(kind, [0, 0])
                        slot[0] += franchise
                        slot[1] += 1
                fr_year_left -= franchise
                if franchise:
                    fr_total += franchise
                    fr_count += 1
                note = f"franchise {kind} {_eur(franchise)} deducted ({fr_fate})"
                if franchise < wanted:
                    note += f"; limited by the caps ({_eur(wanted)} asked)"
                notes.append(note)
        amo_paid = amo_base - participation - franchise

        # 2. AMC: the guarantee, its conditions, its formula, its ceilings, the legal caps.
        guarantee = contract.guarantee_for(domain, family_name, age)
        amc = 0
        covered = True
        if guarantee is not None and guarantee.waiting_days:
            start = request.coverage_start.toordinal() + guarantee.waiting_days
            if care_date.toordinal() < start:
                covered = False
                notes.append(
                    f"waiting period of {guarantee.waiting_days} days: covered from "
                    f"{date.fromordinal(start).isoformat()}"
                )
        if covered and guarantee is not None and guarantee.frequency is not None:
            frequency = guarantee.frequency
            last = last_equipment.get(frequency.key)
            if last is not None and last < care_date:
                allowed = frequency.next_allowed(last, age)
                if care_date < allowed:
                    covered = False
                    notes.append(
                        f"renewal: one {frequency.key} per {frequency.months_for(age)} months; "
                        f"last on {last.isoformat()}, covered again from {allowed.isoformat()}"
                    )
        if not covered:
            pass
        elif rss == RssClass.A and contract.hundred_percent_sante:
            amc = max(0, billed - amo_base)
            notes.append(
                f"100 % Santé: AMC pays the price {_eur(billed)} (limit "
                f"{_eur(line.plv_cents or 0)}) minus the AMO share {_eur(amo_base)} = {_eur(amc)}"
            )
        elif guarantee is None:
            notes.append(f"no guarantee for {family_name} in {domain} at age {age}")
        else:
            # Outside the care pathway a contrat responsable pays as if the patient had
            # kept to it: the extra ticket modérateur stays with the patient.
            reference_amo = amo_base
            if hors_parcours and not extra_tm_paid:
                reference_amo = apply_rate(br, ordinary)
                notes.append(
                    f"hors parcours: the extra ticket modérateur {_eur(reference_amo - amo_base)}"
                    f" is not covered ({'contrat responsable' if responsable else 'contract'})"
                )
            cost_left = max(0, billed - reference_amo)
            amc = _formula(
                guarantee,
                fam.doctor_fees,
                optam,
                billed,
                br,
                quantity,
                reference_amo,
                cost_left,
                notes,
            )
            if legal and fam.equipment is not None and rss != RssClass.A:
                if fam.equipment == "hearing_aid":
                    cap = max(0, rules.hearing_class_ii_cap_cents * quantity - amo_base)
                    if amc > cap:
                        amc = cap
                        notes.append(
                            "capped by the contrat responsable limit of "
                            f"{_eur(rules.hearing_class_ii_cap_cents)} per hearing aid, "
                            f"AMO included: {_eur(cap)}"
                        )
                else:
                    if optics is None:
                        optics = _OpticsCaps.for_invoice(lines, rules)
                    amc = optics.cap(fam.equipment, amc, notes)
            if guarantee.ceilings:
                tm_part = min(amc, max(0, br - reference_amo))
                amc = _apply_ceilings(guarantee, amc, tm_part, quantity, counters, used, notes)
            if optics is not None and fam.equipment is not None and rss != RssClass.A:
                optics.consume(fam.equipment, amc)
        if covered and guarantee is not None and guarantee.frequency is not None and amc > 0:
            renewals[guarantee.frequency.key] = care_date
        if covers_part:
            amc += participation
        if covers_fr:
            amc += franchise
        # Never more than the cost: what the AMO did not pay.
        amc = max(0, min(amc, billed - amo_paid))
        tm = br - amo_base
        depassement = billed - br
        total_billed += billed
        total_br += br
        total_base += amo_base
        total_paid += amo_paid
        total_tm += tm
        total_dep += depassement
        total_amc += amc
        results.append(
            LineResult(
                line.act_code,
                domain,
                family_name,
                quantity,
                billed,
                br,
                rate,
                amo_base,
                participation,
                franchise,
                amo_paid,
                tm,
                depassement,
                amc,
                billed - amo_paid - amc,
                tuple(notes),
            )
        )

    consumption: dict[str, tuple[int, int]] = {
        key: (amount, count) for key, (amount, count) in used.items() if amount or count
    }
    if part_total:
        consumption[COUNTER_PARTICIPATION_YEAR] = (part_total, part_count)
        consumption[COUNTER_PARTICIPATION_DAY] = (part_total, part_count)
    if fr_total:
        consumption[COUNTER_FRANCHISE_YEAR] = (fr_total, fr_count)
    for kind, (amount, count) in fr_day_used.items():
        consumption[COUNTER_FRANCHISE_DAY[kind]] = (amount, count)
    return PricingResult(
        contract.code,
        care_date,
        tuple(results),
        total_billed,
        total_br,
        total_base,
        part_total,
        fr_total,
        total_paid,
        total_tm,
        total_dep,
        total_amc,
        total_billed - total_paid - total_amc,
        consumption,
        renewals,
    )


_RESPONSABLE = "not covered: contrat responsable"
_COVERED = "covered by the contract"
_NOT_COVERED = "not covered by the contract"


def _formula(
    guarantee: Guarantee,
    doctor_fees: bool,
    optam: bool,
    billed: int,
    br: int,
    quantity: int,
    reference_amo: int,
    cost_left: int,
    notes: list[str],
) -> int:
    """What the guarantee's formula pays, before its ceilings, at most ``cost_left``."""
    if guarantee.actual_costs:
        notes.append(
            f"AMC actual costs: billed {_eur(billed)} − AMO {_eur(reference_amo)} "
            f"= {_eur(cost_left)}"
        )
        return cost_left
    amc = 0
    g_rate = guarantee.rate_bp
    if g_rate is not None:
        # Two levels only when the guarantee distinguishes OPTAM doctors.
        two_levels = doctor_fees and guarantee.rate_non_optam_bp is not None
        if two_levels and not optam:
            g_rate = guarantee.rate_non_optam_bp or 0
        ceiling_total = apply_rate(br, g_rate)
        amc = max(0, min(billed, ceiling_total) - reference_amo)
        level = (" (OPTAM)" if optam else " (non-OPTAM)") if two_levels else ""
        if g_rate == FULL_RATE:
            notes.append(f"AMC 100 % BR including AMO{level} → ticket modérateur {_eur(amc)}")
        else:
            notes.append(
                f"AMC {_pct(g_rate)} BR including AMO{level}: min(billed {_eur(billed)}, "
                f"{_eur(ceiling_total)}) − AMO {_eur(reference_amo)} = {_eur(amc)}"
            )
    flat = guarantee.flat_cents
    if flat:
        amc += flat * quantity
        if quantity == 1:
            notes.append(f"AMC flat amount {_eur(flat)}")
        else:
            notes.append(f"AMC flat amount {_eur(flat)} × {quantity} = {_eur(flat * quantity)}")
    if amc > cost_left:
        amc = cost_left
        notes.append(f"limited to the cost left after the AMO: {_eur(cost_left)}")
    return amc


class _OpticsCaps:
    """Contrat responsable caps of one class B optical equipment over an invoice.

    The class of the equipment is given by its lenses (a single lens counts as a pair of
    its kind); the frame has its own cap within the equipment's.
    """

    __slots__ = ("equipment_left", "frame_cap", "frame_left", "label")

    def __init__(self, equipment_cap: int, frame_cap: int, label: str) -> None:
        self.equipment_left = equipment_cap
        self.frame_cap = frame_cap
        self.frame_left = frame_cap
        self.label = label

    @classmethod
    def for_invoice(cls, lines: Sequence[PricingLine], rules: ReferenceRules) -> _OpticsCaps:
        complexities = [
            fam.lens_complexity
            for line in lines
            if line.rss_class != RssClass.A
            and (fam := rules.families.get(line.family)) is not None
            and fam.lens_complexity is not None
        ]
        caps = rules.optics_equipment_caps
        if not complexities:
            return cls(
                max(c.ceiling_cents for c in caps.values()),
                rules.optics_frame_cap_cents,
                "frame-only",
            )
        pair = lens_pair(complexities[0], complexities[1 if len(complexities) > 1 else 0])
        return cls(caps[pair].ceiling_cents, rules.optics_frame_cap_cents, "/".join(pair))

    def cap(self, equipment: str, amc: int, notes: list[str]) -> int:
        if equipment == "frame" and amc > self.frame_left:
            amc = self.frame_left
            notes.append(f"capped by the contrat responsable frame limit {_eur(self.frame_cap)}")
        if amc > self.equipment_left:
            amc = self.equipment_left
            notes.append(
                f"capped by the contrat responsable ceiling of a {self.label} equipment: "
                f"{_eur(amc)} left"
            )
        return amc

    def consume(self, equipment: str, amc: int) -> None:
        if equipment == "frame":
            self.frame_left -= amc
        self.equipment_left -= amc


def check_lines(lines: Sequence[PricingLine], rules: ReferenceRules) -> None:
    """Refuse lines that no contract and no beneficiary could make valid.

    Everything here depends on the lines and the reference data only, so a caller can
    check a request before looking anyone up: the errors cannot tell about a person.
    """
    if not lines:
        raise PricingError(
            "pricing.no_lines", "a calculation needs at least one line", field="lines"
        )
    for index, line in enumerate(lines):
        family = _family(line, index, rules)
        _check_amounts(line, index, family.rss, family.daily_charge, rules)
        if line.amo_rate_bp is not None:
            _check_rate(line, index, family, rules)


def _family(line: PricingLine, index: int, rules: ReferenceRules) -> FamilyRule:
    family = rules.families.get(line.family)
    if family is None:
        raise PricingError(
            "pricing.unknown_family",
            f"unknown act family {line.family!r}",
            field=f"lines[{index}].family",
        )
    if line.domain not in family.domains:
        raise PricingError(
            "pricing.family_domain_mismatch",
            f"family {line.family} is not billed in care domain {line.domain}",
            field=f"lines[{index}].domain",
        )
    return family


def _check_rate(line: PricingLine, index: int, family: FamilyRule, rules: ReferenceRules) -> None:
    """A rate sent by the caller may be above the reference (local regimes), not below.

    The lowest acceptable rate depends on the line only (not on the beneficiary's age),
    so that this check reveals nothing about the person.
    """
    ordinary = rules.family_rates_bp[family.name]
    if line.exemption in _FULL_RATE_EXEMPTIONS:
        lowest = FULL_RATE
    elif family.care_pathway and not line.in_care_pathway:
        lowest = min(ordinary, rules.hors_parcours_rate_bp)
    else:
        lowest = ordinary
    rate = line.amo_rate_bp
    if rate is not None and not lowest <= rate <= FULL_RATE:
        raise PricingError(
            "pricing.amounts_inconsistent",
            f"AMO rate {_pct(rate)} is inconsistent: {_pct(lowest)} to 100 % expected "
            f"for {family.name}",
            field=f"lines[{index}].amo_rate_bp",
        )


def _check_amounts(
    line: PricingLine, index: int, rss_family: bool, daily_charge: bool, rules: ReferenceRules
) -> None:
    """Refuse amounts that cannot describe a real line, naming the field."""
    where = f"lines[{index}]"
    if line.quantity < 1:
        raise PricingError(
            "pricing.amounts_inconsistent", "quantity must be at least 1", field=f"{where}.quantity"
        )
    if line.br_cents < 0 or line.billed_cents < 0:
        raise PricingError(
            "pricing.amounts_inconsistent",
            "amounts may not be negative",
            field=f"{where}.br_cents" if line.br_cents < 0 else f"{where}.billed_cents",
        )
    if line.billed_cents < line.br_cents:
        raise PricingError(
            "pricing.amounts_inconsistent",
            "billed is below the BR: send the price charged as the BR",
            field=f"{where}.billed_cents",
        )
    if line.amo_rate_bp is not None and not 0 <= line.amo_rate_bp <= FULL_RATE:
        raise PricingError(
            "pricing.amounts_inconsistent",
            "the AMO rate must be between 0 and 100 %",
            field=f"{where}.amo_rate_bp",
        )
    rss = line.rss_class
    if rss is not None:
        if rss not in _RSS_CLASSES:
            raise PricingError(
                "pricing.amounts_inconsistent",
                "rss_class must be A (100 % Santé), B (free price) or absent",
                field=f"{where}.rss_class",
            )
        if not rss_family:
            raise PricingError(
                "pricing.rss_not_applicable",
                f"family {line.family} has no 100 % Santé class",
                field=f"{where}.rss_class",
            )
        if rss == RssClass.A:
            plv = line.plv_cents
            if plv is None or plv < 0:
                raise PricingError(
                    "pricing.amounts_inconsistent",
                    "a 100 % Santé (class A) line needs its legal price limit",
                    field=f"{where}.plv_cents",
                )
            if line.billed_cents > plv:
                raise PricingError(
                    "pricing.above_legal_price",
                    f"billed {_eur(line.billed_cents)} above the 100 % Santé price limit "
                    f"{_eur(plv)}",
                    field=f"{where}.billed_cents",
                )
    if daily_charge:
        unit = (
            rules.hospital_daily_charge_psychiatry_cents
            if line.psychiatry
            else rules.hospital_daily_charge_cents
        )
        if line.br_cents != unit * line.quantity or line.billed_cents != line.br_cents:
            raise PricingError(
                "pricing.amounts_inconsistent",
                f"the forfait journalier is {_eur(unit)} per day: expected "
                f"{_eur(unit * line.quantity)} for {line.quantity} day(s)",
                field=f"{where}.br_cents",
            )


def _apply_ceilings(
    guarantee: Guarantee,
    amc: int,
    tm_part: int,
    quantity: int,
    counters: Mapping[str, tuple[int, int]],
    used: dict[str, list[int]],
    notes: list[str],
) -> int:
    """Cap ``amc`` by the guarantee's ceilings and record what it consumes in ``used``."""
    ceilings = guarantee.ceilings
    units_allowed: list[int] = []
    bound: list[bool] = []
    for ceiling in ceilings:
        # Unless the ceiling includes it, the ticket modérateur is paid outside it.
        base = 0 if ceiling.includes_tm else min(amc, tm_part)
        cappable = amc - base
        before = counters.get(ceiling.counter, _ZERO)
        now = used.get(ceiling.counter) or (0, 0)
        label = f"{PERIOD_LABELS[ceiling.period]} ceiling {ceiling.counter}"
        units = quantity
        binds = False
        if ceiling.count is not None:
            units = min(quantity, max(0, ceiling.count - before[1] - now[1]))
            if units < quantity:
                cappable = cappable * units // quantity
                binds = True
                notes.append(f"capped by {label} of {ceiling.count} per period ({units} left)")
        if ceiling.amount_cents is not None:
            left = max(0, ceiling.amount_cents - before[0] - now[0])
            if cappable > left:
                cappable = left
                binds = True
                notes.append(f"capped by {label} {_eur(ceiling.amount_cents)} ({_eur(left)} left)")
        units_allowed.append(units)
        bound.append(binds)
        amc = base + cappable
    # Consume what was finally paid under each ceiling (the tightest one bound them all).
    for ceiling, units, binds in zip(ceilings, units_allowed, bound, strict=True):
        consumed = amc - (0 if ceiling.includes_tm else min(amc, tm_part))
        slot = used.setdefault(ceiling.counter, [0, 0])
        slot[0] += consumed
        if consumed > 0:
            slot[1] += units
        if not binds and ceiling.amount_cents is not None:
            before = counters.get(ceiling.counter, _ZERO)
            left = max(0, ceiling.amount_cents - before[0] - slot[0])
            notes.append(
                f"{PERIOD_LABELS[ceiling.period]} ceiling {ceiling.counter} "
                f"{_eur(ceiling.amount_cents)}: {_eur(consumed)} used, {_eur(left)} left"
            )
    return amc


def max_equipment_cover(
    contract: Contract,
    rules: ReferenceRules,
    families: Sequence[str],
    age: int,
    include_amo: bool,
) -> int:
    """What ``contract`` alone pays at most for a class B equipment made of ``families``.

    Each item is priced at a huge price on the reference class B base, for a beneficiary of
    ``age`` with no history, without the contrat responsable caps. ``include_amo`` adds
    the AMO share (the hearing aid limit counts it).
    """
    lines = []
    for name in families:
        family = rules.families[name]
        domain = min(family.domains)
        if family.equipment == "hearing_aid":
            br = (
                rules.hearing_br_young_cents
                if age < rules.hearing_young_age
                else rules.hearing_br_adult_cents
            )
        else:
            br = rules.optics_class_b_br_cents
        lines.append(
            PricingLine(
                act_code=name,
                domain=domain,
                family=name,
                quantity=1,
                billed_cents=_NEVER_COVERED,
                br_cents=br,
                rss_class=RssClass.B,
            )
        )
    request = PricingRequest(
        care_date=rules.valid_from,
        age=age,
        coverage_start=date(1900, 1, 1),
        lines=tuple(lines),
        optam=True,
    )
    try:
        result = price_with_rules(contract, request, rules, legal_caps=False)
    except PricingError:
        return 0  # a domain the contract lacks: nothing covered
    return result.amc_cents + (result.amo_paid_cents if include_amo else 0)


_PCT_CACHE = {bp: f"{bp // 100} %" for bp in range(0, 100_001, 500)}


def _eur(cents: int) -> str:
    # The common case without thousands separators, fast: this runs several times a line.
    if 0 <= cents < 100_000:
        return f"{cents // 100},{cents % 100:02d} €"
    return format_euros(cents)


def _pct(bp: int) -> str:
    text = _PCT_CACHE.get(bp)
    if text is not None:
        return text
    whole, part = divmod(bp, 100)
    if part == 0:
        return f"{whole} %"
    return f"{whole},{part:02d}".rstrip("0") + " %"
