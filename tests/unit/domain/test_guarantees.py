"""The guarantee model and the contrat responsable checks: one failing contract per rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.guarantees import (
    Catalogue,
    Ceiling,
    Contract,
    DomainTerms,
    Frequency,
    Guarantee,
    Period,
    add_months,
    counter_window,
    validate_contract,
)
from tierspayant.domain.responsable import validate_responsable
from tierspayant.formats.catalogue import read_catalogue
from tierspayant.formats.reference import load_default_reference

REFERENCE = load_default_reference()
DAY = date(2026, 3, 16)
D = CareDomain
ALL_DOMAINS = {d: DomainTerms(True, "100") for d in CareDomain}
GLASSES = Frequency("glasses", 24, months_young=12)
HEARING = Frequency("hearing_aid", 48)
EXAMPLES = Path(__file__).resolve().parents[3] / "src" / "tierspayant" / "reference" / "demo"


def rate(
    domain: CareDomain, family: str, percent: int, non_optam: int | None = None, **kw: Any
) -> Guarantee:
    return Guarantee(
        domain,
        family,
        rate_bp=percent * 100,
        rate_non_optam_bp=None if non_optam is None else non_optam * 100,
        **kw,
    )


def optics(frame: int | None = 3000, simple: int | None = 1000, **kw: Any) -> list[Guarantee]:
    """Class B optics rules that meet the legal floors (30 € + 10 € + 10 € … 85 €)."""
    return [
        rate(D.OPTI, "optics_frame", 100, flat_cents=frame, frequency=GLASSES),
        rate(D.OPTI, "optics_lens_simple", 100, flat_cents=simple, frequency=GLASSES),
        rate(
            D.OPTI,
            "optics_lens_complex",
            100,
            flat_cents=kw.get("complex", 8500),
            frequency=GLASSES,
        ),
        rate(D.OPTI, "optics_lens_very_complex", 100, flat_cents=8500, frequency=GLASSES),
    ]


def valid_guarantees() -> list[Guarantee]:
    """A minimal contrat responsable: 100 % BR everywhere, legal optics, 200/180 doctors."""
    return [
        rate(D.MED, "specialist", 200, 180),
        *(rate(d, "*", 100) for d in CareDomain),
        Guarantee(D.HOSP, "hospital_daily_charge", actual_costs=True),
        *optics(),
        rate(D.AUDI, "hearing_aid", 100, frequency=HEARING),
    ]


def responsable(guarantees: list[Guarantee] | None = None, **flags: Any) -> Contract:
    domains = flags.pop("domains", ALL_DOMAINS)
    return Contract(
        "RESP", "responsable", True, domains, tuple(guarantees or valid_guarantees()), **flags
    )


def without(family: str) -> list[Guarantee]:
    return [g for g in valid_guarantees() if g.family != family]


def test_the_minimal_contract_is_valid() -> None:
    validate_responsable(responsable(), REFERENCE, DAY)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
@pytest.mark.parametrize("day", [date(2023, 9, 1), date(2024, 6, 1), DAY], ids=str)
def test_example_catalogues_are_responsable_and_valid(path: Path, day: date) -> None:
    catalogue = read_catalogue(path)
    assert len(catalogue.contracts) >= 2
    for contract in catalogue.contracts:
        assert contract.responsable
        assert set(contract.domains) == set(CareDomain)
        validate_responsable(contract, REFERENCE, day)


# One contract per rule it breaks: (contract factory, expected code, words of the message).
BROKEN: list[Any] = [
    pytest.param(
        lambda: responsable(covers_participation=True),
        "covers_participation",
        "participation forfaitaire",
        id="covers-participation",
    ),
    pytest.param(
        lambda: responsable(covers_franchises=True),
        "covers_franchises",
        "franchises",
        id="covers-franchises",
    ),
    pytest.param(
        lambda: responsable(covers_hors_parcours=True),
        "covers_hors_parcours",
        "care pathway",
        id="covers-hors-parcours",
    ),
    pytest.param(
        lambda: responsable(hundred_percent_sante=False),
        "rss_not_full",
        "100 % Santé",
        id="rss-not-full",
    ),
    pytest.param(
        lambda: responsable(
            [g for g in valid_guarantees() if g.domain is not D.TRAN],
            domains={d: t for d, t in ALL_DOMAINS.items() if d is not D.TRAN},
        ),
        "tm_not_covered",
        "care domain TRAN is missing",
        id="tm-domain-missing",
    ),
    pytest.param(
        lambda: responsable([rate(D.PHAR, "drug_65", 90), *valid_guarantees()]),
        "tm_not_covered",
        "drug_65 in PHAR",
        id="tm-rate-below-100",
    ),
    pytest.param(
        lambda: responsable([rate(D.MED, "consultation", 150, 90), *valid_guarantees()]),
        "tm_not_covered",
        "non-OPTAM",
        id="tm-non-optam-below-100",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(
                    D.AUXM,
                    "nursing",
                    100,
                    ceilings=(
                        Ceiling("aux", Period.CALENDAR_YEAR, amount_cents=50000, includes_tm=True),
                    ),
                ),
                *valid_guarantees(),
            ]
        ),
        "tm_not_covered",
        "includes the ticket modérateur",
        id="tm-capped-by-ceiling",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(D.LABO, "lab_test", 100, min_age=18),
                *(g for g in valid_guarantees() if g.domain is not D.LABO),
            ]
        ),
        "tm_not_covered",
        "at age 0",
        id="tm-age-gap",
    ),
    pytest.param(
        lambda: responsable(
            [rate(D.HOSP, "hospital_daily_charge", 50), *without("hospital_daily_charge")]
        ),
        "hospital_daily_charge",
        "in full",
        id="daily-charge-partly",
    ),
    pytest.param(
        lambda: responsable(
            [
                Guarantee(
                    D.HOSP,
                    "hospital_daily_charge",
                    actual_costs=True,
                    ceilings=(Ceiling("days", Period.CALENDAR_YEAR, count=30),),
                ),
                *without("hospital_daily_charge"),
            ]
        ),
        "hospital_daily_charge",
        "without ceiling",
        id="daily-charge-limited-to-30-days",
    ),
    pytest.param(
        lambda: responsable([rate(D.MED, "specialist", 300, 220), *without("specialist")]),
        "non_optam_above_100",
        "above the 100 % limit",
        id="non-optam-above-100",
    ),
    pytest.param(
        lambda: responsable(
            [
                Guarantee(D.MED, "specialist", rate_bp=10_000, flat_cents=2000),
                *without("specialist"),
            ]
        ),
        "non_optam_above_100",
        "flat amounts",
        id="flat-on-doctors-fees",
    ),
    pytest.param(
        lambda: responsable([rate(D.MED, "specialist", 200, 190), *without("specialist")]),
        "optam_gap",
        "at least 20 %",
        id="optam-gap-10-points",
    ),
    pytest.param(
        lambda: responsable(
            [rate(D.RADIO, "*", 150), *(g for g in valid_guarantees() if g.domain is not D.RADIO)]
        ),
        "optam_gap",
        "imaging in RADIO",
        id="optam-gap-forgotten-non-optam-level",
    ),
    pytest.param(
        lambda: responsable(
            [rate(D.OPTI, "optics_frame", 100, flat_cents=3000), *without("optics_frame")]
        ),
        "renewal_period",
        "add a frequency",
        id="renewal-missing",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(
                    D.OPTI,
                    "optics_lens_simple",
                    100,
                    flat_cents=1000,
                    frequency=Frequency("glasses", 12),
                ),
                *without("optics_lens_simple"),
            ]
        ),
        "renewal_period",
        "every 12 months at age 16",
        id="renewal-adult-yearly",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(
                    D.OPTI,
                    "optics_lens_simple",
                    100,
                    flat_cents=1000,
                    frequency=Frequency("glasses", 24, months_young=6),
                ),
                *without("optics_lens_simple"),
            ]
        ),
        "renewal_period",
        "every 6 months at age 0",
        id="renewal-child-half-yearly",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(D.AUDI, "hearing_aid", 100, frequency=Frequency("hearing_aid", 24)),
                *without("hearing_aid"),
            ]
        ),
        "renewal_period",
        "legal 48 months",
        id="renewal-hearing-2-years",
    ),
    pytest.param(
        lambda: responsable(
            [
                *optics(frame=15000),
                *(g for g in valid_guarantees() if not g.family.startswith("optics")),
            ]
        ),
        "frame_cap",
        "at most 100,00 €",
        id="frame-above-100",
    ),
    pytest.param(
        lambda: responsable(
            [
                *optics(simple=30000),
                *(g for g in valid_guarantees() if not g.family.startswith("optics")),
            ]
        ),
        "optics_ceiling",
        "simple/simple",
        id="equipment-above-420",
    ),
    pytest.param(
        lambda: responsable(
            [
                *optics(frame=None, simple=None, complex=None),
                *(g for g in valid_guarantees() if not g.family.startswith("optics")),
            ]
        ),
        "optics_floor",
        "below the 50,00 € floor",
        id="equipment-below-50",
    ),
    pytest.param(
        lambda: responsable(
            [
                *optics(complex=2000),
                *(g for g in valid_guarantees() if not g.family.startswith("optics")),
            ]
        ),
        "optics_floor",
        "simple/complex",
        id="equipment-below-125-mixed",
    ),
    pytest.param(
        lambda: responsable(
            [
                rate(D.AUDI, "hearing_aid", 100, flat_cents=200_000, frequency=HEARING),
                *without("hearing_aid"),
            ]
        ),
        "hearing_ceiling",
        "1\u202f700,00 €",
        id="hearing-above-1700",
    ),
]


@pytest.mark.parametrize(("make", "code", "words"), BROKEN)
def test_each_responsable_rule_is_enforced(
    make: Callable[[], Contract], code: str, words: str
) -> None:
    # Given a contract breaking one contrat responsable rule
    contract = make()
    # When it is validated, then the error names that rule
    with pytest.raises(CatalogueError) as caught:
        validate_responsable(contract, REFERENCE, DAY)
    assert caught.value.code == f"catalogue.responsable.{code}"
    assert words in caught.value.message


def test_every_documented_responsable_code_has_a_failing_contract() -> None:
    codes = {p.values[1] for p in BROKEN}
    assert codes >= {
        "covers_participation",
        "tm_not_covered",
        "optam_gap",
        "non_optam_above_100",
        "optics_ceiling",
        "optics_floor",
        "frame_cap",
        "rss_not_full",
        "hospital_daily_charge",
    }


def test_error_points_at_the_guarantee() -> None:
    contract = responsable([rate(D.MED, "specialist", 200, 190), *without("specialist")])
    with pytest.raises(CatalogueError) as caught:
        validate_responsable(contract, REFERENCE, DAY)
    assert caught.value.field == "guarantees[0].rate_non_optam"


def test_non_responsable_contract_may_cover_participation() -> None:
    # validate_contract checks the families only: the law on contrats responsables does
    # not bind other contracts
    contract = replace(responsable(covers_participation=True), responsable=False)
    validate_contract(contract, REFERENCE, DAY)


@pytest.mark.parametrize(
    ("guarantee", "code"),
    [
        pytest.param(
            rate(D.MED, "homeopathy", 100), "catalogue.unknown_family", id="unknown-family"
        ),
        pytest.param(
            rate(D.MED, "drug_65", 100), "catalogue.family_domain_mismatch", id="drug-in-med"
        ),
        pytest.param(
            rate(D.AUXM, "nursing", 150, 130),
            "catalogue.conflicting_formula",
            id="non-optam-on-nurses",
        ),
    ],
)
def test_validate_contract_checks_families(guarantee: Guarantee, code: str) -> None:
    contract = responsable([guarantee, *valid_guarantees()])
    with pytest.raises(CatalogueError) as caught:
        validate_contract(contract, REFERENCE, DAY)
    assert caught.value.code == code


# --- the model's own invariants ---------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "code"),
    [
        pytest.param(
            lambda: Guarantee(D.MED, "consultation"), "catalogue.empty_guarantee", id="no-formula"
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_bp=10_000, actual_costs=True),
            "catalogue.conflicting_formula",
            id="actual-and-rate",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_non_optam_bp=10_000, flat_cents=1),
            "catalogue.conflicting_formula",
            id="non-optam-without-rate",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_bp=-1),
            "catalogue.bad_rate",
            id="negative-rate",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_bp=100_100),
            "catalogue.bad_rate",
            id="rate-above-1000",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", flat_cents=-5),
            "catalogue.negative_amount",
            id="negative-flat",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "Consultation", rate_bp=1),
            "catalogue.bad_family",
            id="family-upper-case",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_bp=1, min_age=30, max_age=20),
            "catalogue.bad_age",
            id="ages-reversed",
        ),
        pytest.param(
            lambda: Guarantee(D.MED, "consultation", rate_bp=1, waiting_days=-1),
            "catalogue.bad_waiting_period",
            id="negative-waiting",
        ),
        pytest.param(
            lambda: Ceiling("amo.participation.year", Period.CALENDAR_YEAR, amount_cents=1),
            "catalogue.bad_counter",
            id="reserved-counter",
        ),
        pytest.param(
            lambda: Ceiling("dental", Period.CALENDAR_YEAR),
            "catalogue.empty_ceiling",
            id="empty-ceiling",
        ),
        pytest.param(
            lambda: Ceiling("dental", Period.CALENDAR_YEAR, count=0),
            "catalogue.bad_count",
            id="zero-count",
        ),
        pytest.param(lambda: Frequency("glasses", 0), "catalogue.bad_frequency", id="zero-months"),
        pytest.param(
            lambda: Contract("BAD CODE", "x", False, ALL_DOMAINS, ()),
            "catalogue.bad_code",
            id="contract-code-with-space",
        ),
        pytest.param(
            lambda: Contract(
                "C", "x", False, {D.PHAR: DomainTerms(True, "1")}, (rate(D.MED, "*", 100),)
            ),
            "catalogue.guarantee_domain_not_covered",
            id="guarantee-outside-domains",
        ),
        pytest.param(
            lambda: Catalogue("75012345", "1", (responsable(), responsable())),
            "catalogue.duplicate_contract",
            id="duplicate-contract",
        ),
    ],
)
def test_model_refuses_impossible_values(build: Callable[[], object], code: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        build()
    assert caught.value.code == code


def test_specific_rule_before_wildcard_and_age_selection() -> None:
    child = rate(D.DENT, "orthodontics", 200, max_age=15)
    everyone = rate(D.DENT, "*", 100)
    contract = Contract("C", "x", False, ALL_DOMAINS, (everyone, child))
    assert contract.guarantee_for(D.DENT, "orthodontics", 12) is child
    assert contract.guarantee_for(D.DENT, "orthodontics", 16) is everyone
    assert contract.guarantee_for(D.DENT, "dental_care", 12) is everyone
    assert contract.guarantee_for(D.MED, "consultation", 12) is None


def test_catalogue_finds_contracts_by_code() -> None:
    catalogue = Catalogue("75012345", "1", (responsable(),))
    assert catalogue.contract("RESP").code == "RESP"
    with pytest.raises(CatalogueError) as caught:
        catalogue.contract("NOPE")
    assert caught.value.code == "catalogue.unknown_contract"


def test_contract_domains_cannot_be_changed_after_creation() -> None:
    contract = responsable()
    with pytest.raises(TypeError):
        contract.domains[D.MED] = DomainTerms(False, "0")  # type: ignore[index]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2026, 3, 16), -24, date(2024, 3, 16)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
    ],
    ids=str,
)
def test_add_months_clamps_to_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_counter_windows() -> None:
    assert counter_window(Period.CALENDAR_YEAR, DAY) == (date(2026, 1, 1), date(2026, 12, 31))
    assert counter_window(Period.MONTHS_24, DAY) == (date(2024, 3, 17), DAY)
    assert counter_window(Period.MONTHS_12, date(2024, 2, 29)) == (
        date(2023, 3, 1),
        date(2024, 2, 29),
    )


def test_frequency_next_allowed_depends_on_age() -> None:
    assert GLASSES.next_allowed(date(2025, 3, 1), age=10) == date(2026, 3, 1)
    assert GLASSES.next_allowed(date(2025, 3, 1), age=16) == date(2027, 3, 1)
