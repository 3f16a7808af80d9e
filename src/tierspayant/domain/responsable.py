"""The contrat responsable checks of a contract: what a regulated contract may and must cover.

Apart from the guarantee model (:mod:`tierspayant.domain.guarantees`) because the caps of
optics and hearing aids are checked with the calculation engine, which itself reads the
model: guarantees <- pricing <- responsable, one way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CatalogueCode
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.guarantees import (
    ANY_FAMILY,
    Contract,
    Guarantee,
    validate_contract,
)
from tierspayant.domain.money import format_euros
from tierspayant.domain.pricing import max_equipment_cover
from tierspayant.domain.reference import (
    LENS_COMPLEXITIES,
    FamilyRule,
    ReferenceRules,
    ReferenceTable,
    lens_pair,
)

__all__ = ["validate_responsable"]


def validate_responsable(contract: Contract, reference: ReferenceTable, on_date: date) -> None:
    """Raise ``CatalogueError`` naming the first contrat responsable rule ``contract`` breaks.

    Checks the figures in force on ``on_date``: no participation, franchise or hors
    parcours cover; ticket modérateur covered in every domain; forfait journalier in full;
    100 % Santé in full; OPTAM / non-OPTAM levels; optics and hearing aid caps and
    renewal periods.
    """
    validate_contract(contract, reference, on_date)
    rules = reference.on(on_date)
    _check_flags(contract)
    _check_ticket_moderateur(contract, rules)
    _check_daily_charge(contract, rules)
    _check_doctors(contract, rules)
    _check_renewals(contract, rules)
    # The caps are checked by pricing an expensive equipment with the engine itself, so
    # the check and the computation cannot disagree.
    _check_optics(contract, rules)
    _check_hearing(contract, rules)


def _fail(code: CatalogueCode, message: str, field: str | None = None) -> CatalogueError:
    return CatalogueError(code, message, field=field)


def _check_flags(contract: Contract) -> None:
    if contract.covers_participation:
        raise _fail(
            CatalogueCode.RESPONSABLE_COVERS_PARTICIPATION,
            "a contrat responsable may not cover the participation forfaitaire",
            "covers_participation",
        )
    if contract.covers_franchises:
        raise _fail(
            CatalogueCode.RESPONSABLE_COVERS_FRANCHISES,
            "a contrat responsable may not cover the franchises médicales",
            "covers_franchises",
        )
    if contract.covers_hors_parcours:
        raise _fail(
            CatalogueCode.RESPONSABLE_COVERS_HORS_PARCOURS,
            "a contrat responsable may not cover the extra ticket modérateur charged outside "
            "the care pathway",
            "covers_hors_parcours",
        )
    if not contract.hundred_percent_sante:
        raise _fail(
            CatalogueCode.RESPONSABLE_RSS_NOT_FULL,
            "a contrat responsable must cover the 100 % Santé baskets (optics class A, "
            "dental 100 % Santé, hearing aids class I) in full",
            "hundred_percent_sante",
        )


def _age_boundaries(guarantees: Iterable[Guarantee]) -> list[int]:
    """Ages at which the rule in force may change: checking them checks every age."""
    ages = {0}
    for g in guarantees:
        if g.min_age is not None:
            ages.add(g.min_age)
        if g.max_age is not None:
            ages.add(g.max_age + 1)
    return sorted(a for a in ages if a < 150)


def _where(contract: Contract, guarantee: Guarantee) -> str:
    return f"guarantees[{contract.guarantees.index(guarantee)}]"


def _check_ticket_moderateur(contract: Contract, rules: ReferenceRules) -> None:
    for domain in CareDomain:
        families = [f for f in rules.families.values() if f.tm_required and domain in f.domains]
        if not families:
            continue
        if domain not in contract.domains:
            raise _fail(
                CatalogueCode.RESPONSABLE_TM_NOT_COVERED,
                f"care domain {domain} is missing: a contrat responsable must cover the "
                f"ticket modérateur of {families[0].label} ({families[0].name})",
                "domains",
            )
        for family in families:
            candidates = contract.candidates(domain, family.name)
            for age in _age_boundaries(candidates):
                guarantee = next((g for g in candidates if g.applies_at(age)), None)
                subject = f"{family.name} in {domain} at age {age}"
                if guarantee is None:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_TM_NOT_COVERED,
                        f"no guarantee covers the ticket modérateur of {subject}",
                        "guarantees",
                    )
                where = _where(contract, guarantee)
                if not guarantee.actual_costs and (guarantee.rate_bp or 0) < 10_000:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_TM_NOT_COVERED,
                        f"{subject} is covered below 100 % of the BR: the ticket modérateur "
                        "must be covered in full",
                        f"{where}.rate",
                    )
                if (
                    family.doctor_fees
                    and guarantee.rate_non_optam_bp is not None
                    and guarantee.rate_non_optam_bp < 10_000
                ):
                    raise _fail(
                        CatalogueCode.RESPONSABLE_TM_NOT_COVERED,
                        f"{subject} is covered below 100 % of the BR for non-OPTAM doctors",
                        f"{where}.rate_non_optam",
                    )
                if family.equipment is None and any(c.includes_tm for c in guarantee.ceilings):
                    raise _fail(
                        CatalogueCode.RESPONSABLE_TM_NOT_COVERED,
                        f"a ceiling of {subject} includes the ticket modérateur, which could "
                        "leave it to the patient",
                        f"{where}.ceilings",
                    )


def _check_daily_charge(contract: Contract, rules: ReferenceRules) -> None:
    for family in rules.families.values():
        if not family.daily_charge:
            continue
        for domain in family.domains:
            candidates = contract.candidates(domain, family.name)
            for age in _age_boundaries(candidates):
                guarantee = next((g for g in candidates if g.applies_at(age)), None)
                if guarantee is None:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_HOSPITAL_DAILY_CHARGE,
                        f"the forfait journalier hospitalier ({family.name}) is not covered "
                        f"at age {age}: a contrat responsable covers it in full, without "
                        "time limit",
                        "guarantees",
                    )
                where = _where(contract, guarantee)
                full = guarantee.actual_costs or (guarantee.rate_bp or 0) >= 10_000
                if not full or guarantee.ceilings or guarantee.frequency is not None:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_HOSPITAL_DAILY_CHARGE,
                        "the forfait journalier hospitalier must be covered in full (100 % "
                        "or actual costs) without ceiling, count or time limit",
                        where,
                    )


def _doctor_rules(contract: Contract, rules: ReferenceRules) -> list[tuple[Guarantee, str]]:
    """Guarantees that pay doctors' fees, with the family they pay it for."""
    found: list[tuple[Guarantee, str]] = []
    for guarantee in contract.guarantees:
        if guarantee.family == ANY_FAMILY:
            doctor = [
                f.name
                for f in rules.families.values()
                if f.doctor_fees and guarantee.domain in f.domains
            ]
            if doctor:
                found.append((guarantee, doctor[0]))
        else:
            family = rules.families.get(guarantee.family)
            if family is not None and family.doctor_fees:
                found.append((guarantee, family.name))
    return found


def _check_doctors(contract: Contract, rules: ReferenceRules) -> None:
    for guarantee, family in _doctor_rules(contract, rules):
        where = _where(contract, guarantee)
        subject = f"{family} in {guarantee.domain}"
        if guarantee.actual_costs or guarantee.flat_cents:
            raise _fail(
                CatalogueCode.RESPONSABLE_NON_OPTAM_ABOVE_100,
                f"{subject}: actual costs or flat amounts on doctors' fees cannot keep "
                "non-OPTAM dépassements within 100 % of the BR; use rate and rate_non_optam",
                where,
            )
        optam = guarantee.rate_bp or 0
        non_optam = guarantee.rate_for(optam=False) or 0
        excess_optam = max(0, optam - 10_000)
        excess_non = max(0, non_optam - 10_000)
        if excess_non > rules.non_optam_max_excess_bp:
            raise _fail(
                CatalogueCode.RESPONSABLE_NON_OPTAM_ABOVE_100,
                f"{subject}: dépassements of non-OPTAM doctors covered up to "
                f"{_pct(excess_non)} of the BR, above the {_pct(rules.non_optam_max_excess_bp)}"
                " limit",
                f"{where}.rate_non_optam",
            )
        if excess_non > 0 and excess_optam - excess_non < rules.optam_min_gap_bp:
            raise _fail(
                CatalogueCode.RESPONSABLE_OPTAM_GAP,
                f"{subject}: non-OPTAM level {_pct(non_optam)} must be at least "
                f"{_pct(rules.optam_min_gap_bp)} of the BR below the OPTAM level "
                f"{_pct(optam)}",
                f"{where}.rate_non_optam",
            )


def _check_renewals(contract: Contract, rules: ReferenceRules) -> None:
    for guarantee in contract.guarantees:
        family = rules.families.get(guarantee.family)
        if family is None or family.equipment is None:
            continue
        where = _where(contract, guarantee)
        if family.equipment == "hearing_aid":
            adult, young = rules.hearing_renewal_months, rules.hearing_renewal_months
        else:
            adult, young = rules.glasses_renewal_months, rules.glasses_renewal_months_young
        frequency = guarantee.frequency
        if frequency is None:
            raise _fail(
                CatalogueCode.RESPONSABLE_RENEWAL_PERIOD,
                f"{family.name}: a contrat responsable covers one equipment per {adult} months "
                "at most; add a frequency",
                f"{where}.frequency",
            )
        limit_age = rules.renewal_young_age
        for age in sorted(
            {0, frequency.young_age - 1, frequency.young_age, limit_age - 1, limit_age, 149}
        ):
            legal = young if age < limit_age else adult
            if age >= 0 and frequency.months_for(age) < legal:
                raise _fail(
                    CatalogueCode.RESPONSABLE_RENEWAL_PERIOD,
                    f"{family.name}: one equipment every {frequency.months_for(age)} months "
                    f"at age {age} is more frequent than the legal {legal} months",
                    f"{where}.frequency",
                )


def _optics_families(rules: ReferenceRules) -> tuple[FamilyRule, dict[str, FamilyRule]]:
    frame = next(f for f in rules.families.values() if f.equipment == "frame")
    lenses = {
        f.lens_complexity: f
        for f in rules.families.values()
        if f.equipment == "lens" and f.lens_complexity is not None
    }
    return frame, lenses


def _check_optics(contract: Contract, rules: ReferenceRules) -> None:
    if CareDomain.OPTI not in contract.domains:
        return  # the ticket modérateur check already refused the contract
    frame, lenses = _optics_families(rules)
    for age in (30, 10):  # an adult and a child: rules may be selected by age
        frame_cover = max_equipment_cover(contract, rules, [frame.name], age, False)
        if frame_cover > rules.optics_frame_cap_cents:
            raise _fail(
                CatalogueCode.RESPONSABLE_FRAME_CAP,
                f"a class B frame is covered up to {format_euros(frame_cover)} at age {age}; "
                "a contrat responsable covers at most "
                f"{format_euros(rules.optics_frame_cap_cents)}",
                "guarantees",
            )
        for i, first in enumerate(LENS_COMPLEXITIES):
            for second in LENS_COMPLEXITIES[i:]:
                cap = rules.optics_cap(first, second)
                names = [frame.name, lenses[first].name, lenses[second].name]
                total = max_equipment_cover(contract, rules, names, age, False)
                pair = "/".join(lens_pair(first, second))
                if total > cap.ceiling_cents:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_OPTICS_CEILING,
                        f"a class B equipment with {pair} lenses is covered up to "
                        f"{format_euros(total)} at age {age}, above the "
                        f"{format_euros(cap.ceiling_cents)} ceiling",
                        "guarantees",
                    )
                if total < cap.floor_cents:
                    raise _fail(
                        CatalogueCode.RESPONSABLE_OPTICS_FLOOR,
                        f"a class B equipment with {pair} lenses is covered only up to "
                        f"{format_euros(total)} at age {age}, below the "
                        f"{format_euros(cap.floor_cents)} floor",
                        "guarantees",
                    )


def _check_hearing(contract: Contract, rules: ReferenceRules) -> None:
    if CareDomain.AUDI not in contract.domains:
        return
    for family in rules.families.values():
        if family.equipment != "hearing_aid":
            continue
        for age in (30, 10):
            total = max_equipment_cover(contract, rules, [family.name], age, True)
            if total > rules.hearing_class_ii_cap_cents:
                raise _fail(
                    CatalogueCode.RESPONSABLE_HEARING_CEILING,
                    f"a class II hearing aid is covered up to {format_euros(total)} per ear "
                    f"(AMO included) at age {age}, above the "
                    f"{format_euros(rules.hearing_class_ii_cap_cents)} limit",
                    "guarantees",
                )


def _pct(bp: int) -> str:
    whole, part = divmod(bp, 100)
    return f"{whole} %" if part == 0 else f"{whole},{part:02d}".rstrip("0") + " %"
