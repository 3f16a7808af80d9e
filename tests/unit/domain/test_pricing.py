"""The calculation engine: the worked examples of DOMAIN.md, cases across the 13 care
domains, errors, and properties that hold for any contract and any line."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.errors import PricingError
from tierspayant.domain.guarantees import (
    Ceiling,
    Contract,
    DomainTerms,
    Frequency,
    Guarantee,
    Period,
)
from tierspayant.domain.pricing import (
    COUNTER_FRANCHISE_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_PARTICIPATION_YEAR,
    PricingLine,
    PricingRequest,
    PricingResult,
    RssClass,
    check_lines,
    price,
)
from tierspayant.domain.reference import ReferenceDataError
from tierspayant.formats.catalogue import read_catalogue
from tierspayant.formats.reference import load_default_reference

REFERENCE = load_default_reference()
DAY = date(2026, 3, 16)
START = date(2024, 1, 1)
ALL_DOMAINS = {d: DomainTerms(True, "100") for d in CareDomain}
EXAMPLES = Path(__file__).resolve().parents[3] / "src" / "tierspayant" / "reference" / "demo"

D = CareDomain
A, B = RssClass.A, RssClass.B
YEAR = Period.CALENDAR_YEAR
GLASSES = Frequency("glasses", 24, months_young=12)


def contract(
    *guarantees: Guarantee, responsable: bool = True, wildcard: bool = True, **flags: bool
) -> Contract:
    """A contract over the 13 domains: the guarantees given, then 100 % BR everywhere."""
    base = tuple(Guarantee(d, "*", rate_bp=10_000) for d in CareDomain) if wildcard else ()
    return Contract("TEST", "test", responsable, ALL_DOMAINS, (*guarantees, *base), **flags)


def pct(
    domain: CareDomain, family: str, rate: int, non_optam: int | None = None, **kw: Any
) -> Guarantee:
    return Guarantee(
        domain,
        family,
        rate_bp=rate * 100,
        rate_non_optam_bp=None if non_optam is None else non_optam * 100,
        **kw,
    )


def line(
    domain: CareDomain, family: str, billed: int, br: int | None = None, q: int = 1, **kw: Any
) -> PricingLine:
    return PricingLine(
        act_code=family[:8].upper(),
        domain=domain,
        family=family,
        quantity=q,
        billed_cents=billed,
        br_cents=billed if br is None else br,
        **kw,
    )


def request(*lines: PricingLine, **kw: Any) -> PricingRequest:
    values: dict[str, Any] = {"care_date": DAY, "age": 40, "coverage_start": START}
    values.update(kw)
    return PricingRequest(lines=lines, **values)


BASIC = contract()
OPTICS = contract(
    Guarantee(D.OPTI, "optics_frame", rate_bp=10_000, flat_cents=3000, frequency=GLASSES),
    Guarantee(D.OPTI, "optics_lens_simple", rate_bp=10_000, flat_cents=1000, frequency=GLASSES),
    Guarantee(D.OPTI, "optics_lens_complex", rate_bp=10_000, flat_cents=8500, frequency=GLASSES),
)
PROSTHESIS = contract(
    pct(D.DENT, "dental_prosthesis", 250, ceilings=(Ceiling("dental", YEAR, amount_cents=100_000),))
)
OSTEO = Guarantee(
    D.AUXM, "alternative_medicine", flat_cents=3000, ceilings=(Ceiling("alt", YEAR, count=3),)
)
HEARING_FREQ = Frequency("hearing_aid", 48)


# --- the worked examples of DOMAIN.md, every field --------------------------------------


def shares(result: PricingResult, index: int = 0) -> tuple[int, ...]:
    r = result.lines[index]
    return (
        r.amo_base_cents,
        r.participation_cents,
        r.franchise_cents,
        r.amo_paid_cents,
        r.tm_cents,
        r.depassement_cents,
        r.amc_cents,
        r.patient_cents,
    )


def test_example_1_gp_in_care_pathway_contract_100_br() -> None:
    # Given a GP consultation of 30,00 € on a BR of 30,00 €, a "100 % BR" contract
    result = price(BASIC, request(line(D.MED, "consultation", 3000)), REFERENCE)
    # Then AMO 21,00 − 2,00 = 19,00; TM 9,00; AMC 9,00; patient 2,00
    assert shares(result) == (2100, 200, 0, 1900, 900, 0, 900, 200)
    assert result.lines[0].rules[:3] == (
        "AMO 70 % of BR 30,00 € = 21,00 €",
        "participation forfaitaire 2,00 € deducted (not covered: contrat responsable)",
        "AMC 100 % BR including AMO → ticket modérateur 9,00 €",
    )


def test_example_2_gp_hors_parcours_contrat_responsable() -> None:
    # Given the same GP outside the care pathway
    gp = line(D.MED, "consultation", 3000, in_care_pathway=False)
    result = price(BASIC, request(gp), REFERENCE)
    # Then AMO 30 % → 9,00 − 2,00 = 7,00; the AMC pays the ordinary TM 9,00, not the
    # extra 12,00; the patient pays 14,00
    assert shares(result) == (900, 200, 0, 700, 2100, 0, 900, 1400)
    assert any("extra ticket modérateur 12,00 €" in r for r in result.lines[0].rules)


@pytest.mark.parametrize(
    ("optam", "amc", "patient"),
    [pytest.param(True, 3900, 1200, id="optam"), pytest.param(False, 3300, 1800, id="non-optam")],
)
def test_example_3_specialist_200_br_optam_180_non_optam(
    optam: bool, amc: int, patient: int
) -> None:
    # Given a specialist billing 70,00 € on a BR of 30,00 €, contract 200 % / 180 % BR
    c = contract(pct(D.MED, "specialist", 200, 180))
    result = price(c, request(line(D.MED, "specialist", 7000, 3000), optam=optam), REFERENCE)
    # Then AMC = min(70, 60 or 54) − 21
    assert shares(result) == (2100, 200, 0, 1900, 900, 4000, amc, patient)


def test_example_4_optics_class_a_nothing_left_to_the_patient() -> None:
    # Given a class A frame at its price limit 30,00 € (BR 9,00 €)
    frame = line(D.OPTI, "optics_frame", 3000, 900, rss_class=A, plv_cents=3000)
    result = price(BASIC, request(frame), REFERENCE)
    # Then the AMC pays PLV − AMO share = 30,00 − 5,40; the patient pays 0,00
    assert shares(result) == (540, 0, 0, 540, 360, 2100, 2460, 0)


def test_example_5_pharmacy_two_boxes_drug_65() -> None:
    # Given 2 boxes of a 65 % drug, BR 10,00 € each
    result = price(BASIC, request(line(D.PHAR, "drug_65", 2000, q=2)), REFERENCE)
    # Then AMO 13,00 − 2 × 1,00 franchise; AMC 7,00; patient 2,00
    assert shares(result) == (1300, 0, 200, 1100, 700, 0, 700, 200)


# --- cases across the 13 care domains: (AMO paid, AMC, patient) per line ------------------

CASES = [
    # PHAR
    pytest.param(
        BASIC, [line(D.PHAR, "drug_65", 1000)], {}, [(550, 350, 100)], id="phar-drug65-one-box"
    ),
    pytest.param(BASIC, [line(D.PHAR, "drug_30", 800)], {}, [(140, 560, 100)], id="phar-drug30"),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_15", 500)],
        {},
        [(0, 425, 75)],
        id="phar-drug15-franchise-limited-to-amo-share",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_100", 50000, exemption=Exemption.ALD)],
        {},
        [(49900, 0, 100)],
        id="phar-drug100-ald",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_65", 1000)],
        {"age": 10},
        [(650, 350, 0)],
        id="phar-child-no-franchise",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_65", 1000)],
        {"counters": {COUNTER_FRANCHISE_YEAR: (5000, 50)}},
        [(650, 350, 0)],
        id="phar-franchise-annual-cap-reached",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_65", 3000, q=3)],
        {"counters": {COUNTER_FRANCHISE_YEAR: (4950, 49)}},
        [(1900, 1050, 50)],
        id="phar-franchise-annual-cap-partly-left",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "medical_device", 2500, 2000)],
        {},
        [(1200, 800, 500)],
        id="phar-device-above-br",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_65", 1000)],
        {"css": True},
        [(650, 350, 0)],
        id="phar-css-no-franchise",
    ),
    pytest.param(
        BASIC,
        [line(D.PHAR, "drug_65", 1000)],
        {"care_date": date(2024, 3, 30)},
        [(600, 350, 50)],
        id="phar-franchise-050-before-2024-03-31",
    ),
    pytest.param(
        contract(pct(D.PHAR, "drug_65", 100), wildcard=False),
        [line(D.PHAR, "drug_30", 800)],
        {},
        [(140, 0, 660)],
        id="phar-no-guarantee-for-family",
    ),
    # MED
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000, in_care_pathway=False)],
        {"age": 15},
        [(2100, 900, 0)],
        id="med-under-16-no-hors-parcours-no-participation",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"care_date": date(2024, 5, 14)},
        [(2000, 900, 100)],
        id="med-participation-1-euro-until-2024-05-14",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"care_date": date(2024, 5, 15)},
        [(1900, 900, 200)],
        id="med-participation-2-euros-from-2024-05-15",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"counters": {COUNTER_PARTICIPATION_YEAR: (4900, 40)}},
        [(2000, 900, 100)],
        id="med-participation-annual-cap-partly-used",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"counters": {COUNTER_PARTICIPATION_YEAR: (5000, 40)}},
        [(2100, 900, 0)],
        id="med-participation-annual-cap-reached",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"counters": {COUNTER_PARTICIPATION_DAY: (800, 4)}},
        [(2100, 900, 0)],
        id="med-participation-daily-cap-reached",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000, exemption=Exemption.ALD)],
        {},
        [(2800, 0, 200)],
        id="med-ald-100-percent-participation-kept",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000)],
        {"maternity": True},
        [(2100, 900, 0)],
        id="med-maternity-beneficiary-no-participation",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000, exemption=Exemption.MATERNITY)],
        {},
        [(3000, 0, 0)],
        id="med-maternity-line-100-percent",
    ),
    pytest.param(
        contract(responsable=False, covers_participation=True),
        [line(D.MED, "consultation", 3000)],
        {},
        [(1900, 1100, 0)],
        id="med-non-responsable-covers-participation",
    ),
    pytest.param(
        contract(responsable=False, covers_hors_parcours=True),
        [line(D.MED, "consultation", 3000, in_care_pathway=False)],
        {},
        [(700, 2100, 200)],
        id="med-non-responsable-covers-hors-parcours",
    ),
    pytest.param(
        contract(pct(D.MED, "specialist", 150)),
        [line(D.MED, "specialist", 5000, 3000)],
        {},
        [(1900, 2400, 700)],
        id="med-single-level-applies-to-non-optam",
    ),
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000, amo_rate_bp=9000)],
        {},
        [(2500, 300, 200)],
        id="med-caller-rate-90-alsace-moselle",
    ),
    pytest.param(
        contract(pct(D.MED, "technical_act", 300, 200)),
        [line(D.MED, "technical_act", 20000, 6990)],
        {"optam": True},
        [(4693, 15107, 200)],
        id="med-technical-act-optam-300",
    ),
    pytest.param(
        contract(pct(D.MED, "technical_act", 300, 200)),
        [line(D.MED, "technical_act", 20000, 6990)],
        {},
        [(4693, 9087, 6220)],
        id="med-technical-act-non-optam-200",
    ),
    # LABO
    pytest.param(BASIC, [line(D.LABO, "lab_test", 2000)], {}, [(1000, 800, 200)], id="labo-test"),
    pytest.param(
        BASIC,
        [line(D.LABO, "lab_test", 2000)],
        {"css": True},
        [(1200, 800, 0)],
        id="labo-css-no-participation",
    ),
    # RADIO
    pytest.param(
        contract(pct(D.RADIO, "*", 300, 200)),
        [line(D.RADIO, "imaging", 8000, 2500)],
        {"optam": True},
        [(1550, 5750, 700)],
        id="radio-optam-300",
    ),
    pytest.param(
        contract(pct(D.RADIO, "*", 300, 200)),
        [line(D.RADIO, "imaging", 8000, 2500)],
        {},
        [(1550, 3250, 3200)],
        id="radio-non-optam-200",
    ),
    # AUXM
    pytest.param(
        BASIC,
        [line(D.AUXM, "nursing", 945, q=3)],
        {},
        [(267, 378, 300)],
        id="auxm-nursing-three-acts",
    ),
    pytest.param(
        BASIC,
        [line(D.AUXM, "nursing", 945, q=3)],
        {"counters": {"amo.franchise.paramedical.day": (300, 3)}},
        [(467, 378, 100)],
        id="auxm-nursing-franchise-daily-cap",
    ),
    pytest.param(
        BASIC,
        [line(D.AUXM, "physiotherapy", 1800, exemption=Exemption.ALD)],
        {},
        [(1700, 0, 100)],
        id="auxm-physio-ald",
    ),
    pytest.param(
        contract(pct(D.AUXM, "physiotherapy", 100, flat_cents=500)),
        [line(D.AUXM, "physiotherapy", 2500, 1800)],
        {},
        [(980, 1220, 300)],
        id="auxm-physio-percent-plus-flat",
    ),
    pytest.param(
        contract(OSTEO),
        [line(D.AUXM, "alternative_medicine", 6000, 0)],
        {"counters": {"alt": (6000, 2)}},
        [(0, 3000, 3000)],
        id="auxm-osteopathy-count-left",
    ),
    pytest.param(
        contract(OSTEO),
        [line(D.AUXM, "alternative_medicine", 6000, 0)],
        {"counters": {"alt": (9000, 3)}},
        [(0, 0, 6000)],
        id="auxm-osteopathy-count-exhausted",
    ),
    pytest.param(
        contract(OSTEO),
        [line(D.AUXM, "alternative_medicine", 12000, 0, q=2)],
        {"counters": {"alt": (6000, 2)}},
        [(0, 3000, 9000)],
        id="auxm-osteopathy-two-sessions-one-left",
    ),
    pytest.param(
        contract(replace(OSTEO, waiting_days=90)),
        [line(D.AUXM, "alternative_medicine", 6000, 0)],
        {"coverage_start": date(2026, 1, 1)},
        [(0, 0, 6000)],
        id="auxm-osteopathy-waiting-period",
    ),
    # SAGE
    pytest.param(
        BASIC,
        [line(D.SAGE, "midwife", 2500)],
        {},
        [(1750, 750, 0)],
        id="sage-midwife-no-participation",
    ),
    pytest.param(
        contract(pct(D.SAGE, "*", 150)),
        [line(D.SAGE, "midwife", 3500, 2500)],
        {},
        [(1750, 1750, 0)],
        id="sage-midwife-150",
    ),
    # DENT
    # Dental care: 70 % until 14 October 2023, 60 % from the 15th (the arrêté published
    # on the 14th, not 1 October as first announced). BR 23,00: AMO 16,10 then 13,80.
    pytest.param(
        BASIC,
        [line(D.DENT, "dental_care", 2300)],
        {"care_date": date(2023, 10, 1), "coverage_start": date(2023, 1, 1)},
        [(1610, 690, 0)],
        id="dent-care-still-70-on-2023-10-01",
    ),
    pytest.param(
        BASIC,
        [line(D.DENT, "dental_care", 2300)],
        {"care_date": date(2023, 10, 14), "coverage_start": date(2023, 1, 1)},
        [(1610, 690, 0)],
        id="dent-care-70-until-2023-10-14",
    ),
    pytest.param(
        BASIC,
        [line(D.DENT, "dental_care", 2300)],
        {"care_date": date(2023, 10, 15), "coverage_start": date(2023, 1, 1)},
        [(1380, 920, 0)],
        id="dent-care-60-from-2023-10-15",
    ),
    # A crown billed 600,00 on a BR of 120,00 under 250 % BR: the AMC pays
    # min(600, 300) − AMO. On 14 October 2023 AMO 70 % = 84,00, AMC 216,00; from the 15th
    # AMO 60 % = 72,00, AMC 228,00; the patient pays 300,00 either way.
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)],
        {"care_date": date(2023, 10, 14), "coverage_start": date(2023, 1, 1)},
        [(8400, 21600, 30000)],
        id="dent-crown-70-until-2023-10-14",
    ),
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)],
        {"care_date": date(2023, 10, 15), "coverage_start": date(2023, 1, 1)},
        [(7200, 22800, 30000)],
        id="dent-crown-60-from-2023-10-15",
    ),
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)],
        {},
        [(7200, 22800, 30000)],
        id="dent-crown-class-b-250",
    ),
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)],
        {"counters": {"dental": (90000, 3)}},
        [(7200, 14800, 38000)],
        id="dent-crown-ceiling-partly-consumed",
    ),
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)],
        {"counters": {"dental": (100000, 5)}},
        [(7200, 4800, 48000)],
        id="dent-crown-ceiling-exhausted-tm-still-paid",
    ),
    pytest.param(
        PROSTHESIS,
        [line(D.DENT, "dental_prosthesis", 50000, 12000, rss_class=A, plv_cents=50000)],
        {"counters": {"dental": (100000, 5)}},
        [(7200, 42800, 0)],
        id="dent-crown-100-sante",
    ),
    pytest.param(
        contract(Guarantee(D.DENT, "dental_implant", flat_cents=15000, waiting_days=180)),
        [line(D.DENT, "dental_implant", 120000, 0)],
        {"coverage_start": date(2025, 1, 1)},
        [(0, 15000, 105000)],
        id="dent-implant-flat-after-waiting",
    ),
    pytest.param(
        contract(pct(D.DENT, "orthodontics", 200, max_age=15)),
        [line(D.DENT, "orthodontics", 60000, 19350)],
        {"age": 12},
        [(19350, 19350, 21300)],
        id="dent-orthodontics-child-rule",
    ),
    pytest.param(
        contract(pct(D.DENT, "orthodontics", 200, max_age=15)),
        [line(D.DENT, "orthodontics", 60000, 19350)],
        {"age": 16},
        [(19350, 0, 40650)],
        id="dent-orthodontics-age-16-wildcard",
    ),
    # OPTI
    pytest.param(
        OPTICS,
        [
            line(D.OPTI, "optics_frame", 12000, 5, rss_class=B),
            line(D.OPTI, "optics_lens_simple", 8000, 5, rss_class=B),
            line(D.OPTI, "optics_lens_simple", 8000, 5, rss_class=B),
        ],
        {},
        [(3, 3002, 8995), (3, 1002, 6995), (3, 1002, 6995)],
        id="opti-class-b-simple-equipment",
    ),
    pytest.param(
        OPTICS,
        [line(D.OPTI, "optics_frame", 12000, 5, rss_class=B)],
        {"last_equipment": {"glasses": date(2025, 6, 1)}},
        [(3, 0, 11997)],
        id="opti-renewal-not-due",
    ),
    pytest.param(
        OPTICS,
        [line(D.OPTI, "optics_frame", 12000, 5, rss_class=B)],
        {"age": 10, "last_equipment": {"glasses": date(2025, 3, 1)}},
        [(3, 3002, 8995)],
        id="opti-renewal-child-yearly",
    ),
    pytest.param(
        contract(pct(D.OPTI, "optics_frame", 100, flat_cents=15000)),
        [line(D.OPTI, "optics_frame", 20000, 5, rss_class=B)],
        {},
        [(3, 10000, 9997)],
        id="opti-legal-frame-cap-100",
    ),
    pytest.param(
        contract(pct(D.OPTI, "optics_lens_simple", 100, flat_cents=30000)),
        [
            line(D.OPTI, "optics_frame", 10000, 5),
            line(D.OPTI, "optics_lens_simple", 40000, 5),
            line(D.OPTI, "optics_lens_simple", 40000, 5),
        ],
        {},
        [(3, 2, 9995), (3, 30002, 9995), (3, 11996, 28001)],
        id="opti-legal-equipment-ceiling-420",
    ),
    pytest.param(
        contract(pct(D.OPTI, "optics_lens_simple", 100, flat_cents=30000), responsable=False),
        [
            line(D.OPTI, "optics_frame", 10000, 5),
            line(D.OPTI, "optics_lens_simple", 40000, 5),
            line(D.OPTI, "optics_lens_simple", 40000, 5),
        ],
        {},
        [(3, 2, 9995), (3, 30002, 9995), (3, 30002, 9995)],
        id="opti-non-responsable-no-legal-cap",
    ),
    pytest.param(
        contract(
            Guarantee(
                D.OPTI,
                "contact_lens",
                actual_costs=True,
                ceilings=(Ceiling("contact", YEAR, amount_cents=10000),),
            )
        ),
        [line(D.OPTI, "contact_lens", 20000, 3948)],
        {"counters": {"contact": (6000, 1)}},
        [(2369, 5579, 12052)],
        id="opti-contact-lens-annual-forfait-partly-used",
    ),
    pytest.param(
        contract(
            Guarantee(
                D.OPTI,
                "refractive_surgery",
                flat_cents=40000,
                ceilings=(Ceiling("lasik", Period.MONTHS_24, count=2),),
            )
        ),
        [line(D.OPTI, "refractive_surgery", 300000, 0, q=2)],
        {},
        [(0, 80000, 220000)],
        id="opti-refractive-surgery-per-eye",
    ),
    pytest.param(
        OPTICS,
        [line(D.OPTI, "optics_lens_simple", 3200, 1900, rss_class=A, plv_cents=3200)],
        {"age": 8},
        [(1140, 2060, 0)],
        id="opti-class-a-lens-child",
    ),
    # AUDI
    pytest.param(
        BASIC,
        [line(D.AUDI, "hearing_aid", 95000, 40000, rss_class=A, plv_cents=95000)],
        {},
        [(24000, 71000, 0)],
        id="audi-class-i-100-sante",
    ),
    pytest.param(
        contract(pct(D.AUDI, "hearing_aid", 100, flat_cents=30000, frequency=HEARING_FREQ)),
        [line(D.AUDI, "hearing_aid", 150000, 40000, rss_class=B)],
        {},
        [(24000, 46000, 80000)],
        id="audi-class-ii-forfait",
    ),
    pytest.param(
        contract(pct(D.AUDI, "hearing_aid", 100, flat_cents=150000)),
        [line(D.AUDI, "hearing_aid", 250000, 40000, rss_class=B)],
        {},
        [(24000, 146000, 80000)],
        id="audi-class-ii-legal-cap-1700-with-amo",
    ),
    pytest.param(
        contract(
            pct(D.AUDI, "hearing_aid", 100, flat_cents=30000, max_age=19),
            pct(D.AUDI, "hearing_aid", 100, flat_cents=100000, min_age=20),
        ),
        [line(D.AUDI, "hearing_aid", 200000, 140000, rss_class=B)],
        {"age": 10},
        [(84000, 86000, 30000)],
        id="audi-rule-chosen-by-age",
    ),
    pytest.param(
        contract(pct(D.AUDI, "hearing_aid", 100, flat_cents=30000, frequency=HEARING_FREQ)),
        [line(D.AUDI, "hearing_aid", 150000, 40000, rss_class=B)],
        {"last_equipment": {"hearing_aid": date(2023, 1, 1)}},
        [(24000, 0, 126000)],
        id="audi-renewal-4-years",
    ),
    pytest.param(
        BASIC, [line(D.AUDI, "hearing_accessory", 3000)], {}, [(1800, 1200, 0)], id="audi-batteries"
    ),
    # HOSP
    pytest.param(
        contract(Guarantee(D.HOSP, "hospital_daily_charge", actual_costs=True)),
        [line(D.HOSP, "hospital_daily_charge", 6000, q=3)],
        {},
        [(0, 6000, 0)],
        id="hosp-daily-charge-3-days",
    ),
    pytest.param(
        BASIC,
        [line(D.HOSP, "hospital_daily_charge", 15000, q=10, psychiatry=True)],
        {},
        [(0, 15000, 0)],
        id="hosp-daily-charge-psychiatry-15",
    ),
    pytest.param(
        BASIC, [line(D.HOSP, "hospital_stay", 200000)], {}, [(160000, 40000, 0)], id="hosp-stay-80"
    ),
    pytest.param(
        contract(pct(D.HOSP, "hospital_fees", 300, 200)),
        [line(D.HOSP, "hospital_fees", 50000, 20000)],
        {"optam": True},
        [(16000, 34000, 0)],
        id="hosp-fees-optam-300",
    ),
    pytest.param(
        contract(pct(D.HOSP, "hospital_fees", 300, 200)),
        [line(D.HOSP, "hospital_fees", 50000, 20000)],
        {},
        [(16000, 24000, 10000)],
        id="hosp-fees-non-optam-200",
    ),
    pytest.param(
        contract(
            Guarantee(
                D.HOSP,
                "hospital_private_room",
                flat_cents=4000,
                ceilings=(Ceiling("room", YEAR, count=30),),
            )
        ),
        [line(D.HOSP, "hospital_private_room", 45000, 0, q=5)],
        {"counters": {"room": (112000, 28)}},
        [(0, 8000, 37000)],
        id="hosp-private-room-two-days-left",
    ),
    # TRAN
    pytest.param(
        BASIC, [line(D.TRAN, "transport", 5000)], {}, [(2350, 2250, 400)], id="tran-ambulance"
    ),
    pytest.param(
        BASIC,
        [line(D.TRAN, "transport", 5000)],
        {"care_date": date(2024, 3, 30)},
        [(2550, 2250, 200)],
        id="tran-franchise-2-before-2024-03-31",
    ),
    pytest.param(
        BASIC,
        [line(D.TRAN, "transport", 5000)],
        {"counters": {"amo.franchise.transport.day": (600, 2)}},
        [(2550, 2250, 200)],
        id="tran-franchise-daily-cap",
    ),
    pytest.param(
        BASIC,
        [line(D.TRAN, "transport", 5000, exemption=Exemption.ALD)],
        {},
        [(4600, 0, 400)],
        id="tran-ald",
    ),
    # CSTE
    pytest.param(BASIC, [line(D.CSTE, "consultation", 3000)], {}, [(1900, 900, 200)], id="cste-gp"),
    pytest.param(BASIC, [line(D.CSTE, "nursing", 315)], {}, [(89, 126, 100)], id="cste-nursing"),
    # EXTE
    pytest.param(
        BASIC, [line(D.EXTE, "specialist", 3000)], {}, [(1900, 900, 200)], id="exte-specialist"
    ),
    pytest.param(BASIC, [line(D.EXTE, "lab_test", 1500)], {}, [(700, 600, 200)], id="exte-lab"),
    # several lines
    pytest.param(
        BASIC,
        [line(D.MED, "consultation", 3000), line(D.MED, "consultation", 3000)],
        {"counters": {COUNTER_PARTICIPATION_YEAR: (4700, 30)}},
        [(1900, 900, 200), (2000, 900, 100)],
        id="multi-participation-cap-across-lines",
    ),
    pytest.param(
        BASIC,
        [
            line(D.AUXM, "nursing", 315),
            line(D.AUXM, "nursing", 315),
            line(D.AUXM, "nursing", 315),
            line(D.AUXM, "nursing", 315),
            line(D.AUXM, "nursing", 315),
        ],
        {},
        [(89, 126, 100)] * 4 + [(189, 126, 0)],
        id="multi-paramedical-daily-cap-4",
    ),
]


@pytest.mark.parametrize(("c", "lines", "facts", "expected"), CASES)
def test_cases_across_domains(
    c: Contract,
    lines: list[PricingLine],
    facts: dict[str, Any],
    expected: list[tuple[int, int, int]],
) -> None:
    # Given a contract, beneficiary facts and the lines of an invoice
    req = request(*lines, **facts)
    result = price(c, req, REFERENCE)
    # Then each line has the AMO paid, AMC and patient shares worked out by hand
    got = [(r.amo_paid_cents, r.amc_cents, r.patient_cents) for r in result.lines]
    assert got == expected
    _check_invariants(c, req, result)


def test_at_least_sixty_cases_cover_all_thirteen_domains() -> None:
    domains = {ln.domain for case in CASES for ln in cast(list[PricingLine], case.values[1])}
    assert len(CASES) >= 60
    assert domains == set(CareDomain)


# --- explanations, counters, renewals ---------------------------------------------------


def test_ceiling_partly_consumed_is_explained_and_consumed() -> None:
    # Given a crown under a 1 000 € annual dental ceiling of which 900 € are used
    crown = line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)
    result = price(PROSTHESIS, request(crown, counters={"dental": (90000, 3)}), REFERENCE)
    # Then the explanation names the ceiling and what was left; 100 € are consumed
    assert any(
        r.startswith("capped by annual ceiling dental") and r.endswith("(100,00 € left)")
        for r in result.lines[0].rules
    )
    assert result.counter_consumption["dental"] == (10000, 1)


def test_class_a_line_consumes_no_ceiling() -> None:
    crown = line(D.DENT, "dental_prosthesis", 50000, 12000, rss_class=A, plv_cents=50000)
    result = price(PROSTHESIS, request(crown), REFERENCE)
    assert "dental" not in result.counter_consumption


def test_amo_counters_are_reported_for_the_caller_to_record() -> None:
    # Given a GP consultation and two boxes of a drug on the same day
    lines = (line(D.MED, "consultation", 3000), line(D.PHAR, "drug_65", 2000, q=2))
    result = price(BASIC, request(*lines), REFERENCE)
    assert result.counter_consumption == {
        COUNTER_PARTICIPATION_YEAR: (200, 1),
        COUNTER_PARTICIPATION_DAY: (200, 1),
        COUNTER_FRANCHISE_YEAR: (200, 1),
    }


def test_covered_equipment_is_reported_as_a_renewal() -> None:
    frame = line(D.OPTI, "optics_frame", 12000, 5, rss_class=B)
    assert price(OPTICS, request(frame), REFERENCE).renewals == {"glasses": DAY}
    too_early = request(frame, last_equipment={"glasses": date(2025, 6, 1)})
    assert price(OPTICS, too_early, REFERENCE).renewals == {}


def test_waiting_period_explains_when_cover_starts() -> None:
    c = contract(replace(OSTEO, waiting_days=90))
    ln = line(D.AUXM, "alternative_medicine", 6000, 0)
    result = price(c, request(ln, coverage_start=date(2026, 1, 1)), REFERENCE)
    assert "waiting period of 90 days: covered from 2026-04-01" in result.lines[0].rules


def test_the_engine_never_changes_its_inputs() -> None:
    counters = {COUNTER_PARTICIPATION_YEAR: (100, 1), "dental": (500, 1)}
    last = {"glasses": date(2020, 1, 1)}
    crown = line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B)
    req = request(line(D.MED, "consultation", 3000), crown, counters=counters, last_equipment=last)
    first = price(PROSTHESIS, req, REFERENCE)
    assert counters == {COUNTER_PARTICIPATION_YEAR: (100, 1), "dental": (500, 1)}
    assert last == {"glasses": date(2020, 1, 1)}
    assert price(PROSTHESIS, req, REFERENCE) == first


def test_totals_and_json_form() -> None:
    lines = (line(D.MED, "specialist", 7000, 3000), line(D.PHAR, "drug_65", 2000, q=2))
    result = price(contract(pct(D.MED, "specialist", 200, 180)), request(*lines), REFERENCE)
    assert (result.billed_cents, result.amo_paid_cents, result.amc_cents, result.patient_cents) == (
        9000,
        3000,
        4000,
        2000,
    )
    document = json.loads(json.dumps(result.as_dict()))
    assert document["totals"]["amc_cents"] == 4000
    assert document["lines"][1]["franchise_cents"] == 200
    assert document["counter_consumption"]["amo.franchise.year"] == {
        "amount_cents": 200,
        "count": 1,
    }


# --- errors ------------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        line(D.MED, "homeopathy", 1000),
        {},
        "pricing.unknown_family",
        "lines[0].family",
        id="unknown-family",
    ),
    pytest.param(
        line(D.OPTI, "drug_65", 1000),
        {},
        "pricing.family_domain_mismatch",
        "lines[0].domain",
        id="family-in-wrong-domain",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, -1),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].br_cents",
        id="negative-br",
    ),
    pytest.param(
        line(D.MED, "consultation", -1, 0),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].billed_cents",
        id="negative-billed",
    ),
    pytest.param(
        line(D.MED, "consultation", 2000, 3000),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].billed_cents",
        id="billed-below-br",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, q=0),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].quantity",
        id="quantity-zero",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, amo_rate_bp=10_100),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].amo_rate_bp",
        id="amo-rate-above-100",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, amo_rate_bp=6000),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].amo_rate_bp",
        id="amo-rate-below-reference",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, amo_rate_bp=7000, exemption=Exemption.ALD),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].amo_rate_bp",
        id="amo-rate-below-100-under-ald",
    ),
    pytest.param(
        line(D.HOSP, "hospital_daily_charge", 5000, q=3),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].br_cents",
        id="daily-charge-not-20-per-day",
    ),
    pytest.param(
        line(D.OPTI, "optics_frame", 3000, 900, rss_class=A),
        {},
        "pricing.amounts_inconsistent",
        "lines[0].plv_cents",
        id="class-a-without-price-limit",
    ),
    pytest.param(
        line(D.OPTI, "optics_frame", 3500, 900, rss_class=A, plv_cents=3000),
        {},
        "pricing.above_legal_price",
        "lines[0].billed_cents",
        id="class-a-above-price-limit",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000, rss_class=B),
        {},
        "pricing.rss_not_applicable",
        "lines[0].rss_class",
        id="rss-class-on-consultation",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000),
        {"age": -1},
        "pricing.invalid_request",
        "age",
        id="negative-age",
    ),
    pytest.param(
        line(D.MED, "consultation", 3000),
        {"coverage_start": date(2026, 4, 1)},
        "pricing.not_covered_yet",
        "care_date",
        id="care-before-coverage",
    ),
]


@pytest.mark.parametrize(("ln", "facts", "code", "where"), ERRORS)
def test_errors_name_the_rule_and_the_field(
    ln: PricingLine, facts: dict[str, Any], code: str, where: str
) -> None:
    with pytest.raises(PricingError) as caught:
        price(BASIC, request(ln, **facts), REFERENCE)
    assert (caught.value.code, caught.value.field) == (code, where)


def test_domain_not_covered_by_the_contract() -> None:
    only_pharmacy = Contract(
        "PH", "pharmacy only", False, {D.PHAR: DomainTerms(True, "PH")}, (pct(D.PHAR, "*", 100),)
    )
    with pytest.raises(PricingError) as caught:
        price(only_pharmacy, request(line(D.MED, "consultation", 3000)), REFERENCE)
    assert caught.value.code == "pricing.domain_not_covered"


def test_no_lines_is_an_error() -> None:
    with pytest.raises(PricingError) as caught:
        price(BASIC, request(), REFERENCE)
    assert caught.value.code == "pricing.no_lines"


def test_care_date_without_reference_figures() -> None:
    early = request(
        line(D.MED, "consultation", 3000),
        care_date=date(2020, 6, 1),
        coverage_start=date(2020, 1, 1),
    )
    with pytest.raises(ReferenceDataError) as caught:
        price(BASIC, early, REFERENCE)
    assert caught.value.code == "reference.not_in_force"


# --- the example catalogues price every domain ------------------------------------------

ONE_LINE_PER_DOMAIN = (
    line(D.PHAR, "drug_65", 1000),
    line(D.MED, "specialist", 6000, 3000),
    line(D.LABO, "lab_test", 2000),
    line(D.RADIO, "imaging", 5000, 2500),
    line(D.AUXM, "physiotherapy", 1800),
    line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B),
    line(D.OPTI, "optics_lens_complex", 25000, 5, rss_class=B),
    line(D.AUDI, "hearing_aid", 150000, 40000, rss_class=B),
    line(D.HOSP, "hospital_daily_charge", 4000, q=2),
    line(D.SAGE, "midwife", 2500),
    line(D.TRAN, "transport", 5000),
    line(D.CSTE, "consultation", 3000),
    line(D.EXTE, "lab_test", 1500),
)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_catalogues_price_a_line_in_every_domain(path: Path) -> None:
    for c in read_catalogue(path).contracts:
        req = request(*ONE_LINE_PER_DOMAIN)
        result = price(c, req, REFERENCE)
        _check_invariants(c, req, result)
        # The forfait journalier is always paid in full by a contrat responsable
        assert result.lines[8].patient_cents == 0


def test_premium_pays_more_than_essentiel_for_a_specialist_with_fees() -> None:
    premium = read_catalogue(EXAMPLES / "azur-assurances-sante.yaml").contract("PREMIUM")
    basic = read_catalogue(EXAMPLES / "mutuelle-des-tilleuls.yaml").contract("ESSENTIEL")
    req = request(line(D.MED, "specialist", 9000, 3000), optam=True)
    assert price(premium, req, REFERENCE).amc_cents == 9000 - 2100  # min(90, 90) − 21
    assert price(basic, req, REFERENCE).amc_cents == 900


# --- properties -------------------------------------------------------------------------

RULES = REFERENCE.on(DAY)
FAMILIES = sorted(RULES.families)
_AMOUNTS = st.integers(min_value=0, max_value=300_000)


@st.composite
def ceilings_strategy(draw: st.DrawFn) -> Ceiling:
    amount = draw(st.one_of(st.none(), _AMOUNTS))
    count = draw(st.integers(1, 5) if amount is None else st.one_of(st.none(), st.integers(1, 5)))
    return Ceiling(
        draw(st.sampled_from(["a", "b", "c"])),
        draw(st.sampled_from(list(Period))),
        amount_cents=amount,
        count=count,
        includes_tm=draw(st.booleans()),
    )


@st.composite
def guarantees(draw: st.DrawFn) -> Guarantee:
    domain = draw(st.sampled_from(list(CareDomain)))
    families = [f for f in FAMILIES if domain in RULES.families[f].domains]
    family = draw(st.sampled_from(["*", *families]))
    kind = draw(st.sampled_from(["rate", "rate_non_optam", "flat", "rate_flat", "actual"]))
    rate = draw(st.integers(0, 50)) * 1000
    ceilings = draw(st.lists(ceilings_strategy(), max_size=2))
    frequency = draw(
        st.one_of(
            st.none(),
            st.builds(Frequency, st.sampled_from(["glasses", "hearing"]), st.integers(1, 48)),
        )
    )
    return Guarantee(
        domain,
        family,
        rate_bp=rate if kind != "flat" and kind != "actual" else None,
        rate_non_optam_bp=draw(st.integers(0, 30)) * 1000 if kind == "rate_non_optam" else None,
        flat_cents=draw(_AMOUNTS) if kind in ("flat", "rate_flat") else None,
        actual_costs=kind == "actual",
        ceilings=tuple(ceilings),
        waiting_days=draw(st.sampled_from([0, 0, 30, 365])),
        min_age=draw(st.one_of(st.none(), st.integers(0, 40))),
        max_age=draw(st.one_of(st.none(), st.integers(40, 100))),
        frequency=frequency,
    )


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    responsable = draw(st.booleans())
    return Contract(
        "RANDOM",
        "random",
        responsable,
        ALL_DOMAINS,
        tuple(draw(st.lists(guarantees(), max_size=12))),
        hundred_percent_sante=draw(st.booleans()),
        covers_participation=draw(st.booleans()),
        covers_franchises=draw(st.booleans()),
        covers_hors_parcours=draw(st.booleans()),
    )


@st.composite
def lines(draw: st.DrawFn) -> PricingLine:
    family = RULES.families[draw(st.sampled_from(FAMILIES))]
    domain = draw(st.sampled_from(sorted(family.domains)))
    quantity = draw(st.integers(1, 4))
    psychiatry = draw(st.booleans())
    if family.daily_charge:
        unit = (
            RULES.hospital_daily_charge_psychiatry_cents
            if psychiatry
            else RULES.hospital_daily_charge_cents
        )
        br = billed = unit * quantity
    else:
        br = draw(_AMOUNTS)
        billed = br + draw(st.one_of(st.just(0), _AMOUNTS))
    rss = draw(st.sampled_from([None, B, A])) if family.rss else None
    return PricingLine(
        "X",
        domain,
        family.name,
        quantity,
        billed,
        br,
        exemption=draw(st.sampled_from(list(Exemption))),
        in_care_pathway=draw(st.booleans()),
        rss_class=rss,
        plv_cents=billed + draw(st.integers(0, 1000)) if rss is A else None,
        psychiatry=psychiatry,
    )


_COUNTER_KEYS = [
    "a",
    "b",
    "c",
    COUNTER_PARTICIPATION_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_FRANCHISE_YEAR,
    "amo.franchise.paramedical.day",
    "amo.franchise.transport.day",
]


@st.composite
def requests(draw: st.DrawFn) -> PricingRequest:
    return PricingRequest(
        care_date=draw(st.dates(date(2021, 6, 1), date(2026, 12, 31))),
        age=draw(st.integers(0, 99)),
        coverage_start=date(2021, 1, 1),
        lines=tuple(draw(st.lists(lines(), min_size=1, max_size=6))),
        optam=draw(st.booleans()),
        maternity=draw(st.booleans()),
        css=draw(st.booleans()),
        counters=draw(
            st.dictionaries(
                st.sampled_from(_COUNTER_KEYS),
                st.tuples(st.integers(0, 10_000), st.integers(0, 10)),
            )
        ),
        last_equipment=draw(
            st.dictionaries(
                st.sampled_from(["glasses", "hearing"]),
                st.dates(date(2019, 1, 1), date(2026, 12, 31)),
            )
        ),
    )


def _half_up(cents: int, rate_bp: int) -> int:
    """``cents`` × ``rate_bp`` / 10 000, rounded half up, through Decimal (an oracle)."""
    exact = Decimal(cents) * Decimal(rate_bp) / Decimal(10_000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


_FULL_RATE = {Exemption.ALD, Exemption.MATERNITY, Exemption.WORK_ACCIDENT}
_SPARED = {Exemption.MATERNITY, Exemption.CSS}


def _amo_rate(line: PricingLine, req: PricingRequest) -> int:
    """The AMO rate of ``line`` as the regulation states it (DOMAIN.md), apart from the engine."""
    rules = REFERENCE.on(req.care_date)
    if line.amo_rate_bp is not None:
        return line.amo_rate_bp
    if line.exemption in _FULL_RATE:
        return 10_000
    ordinary = rules.family_rates_bp[line.family]
    hors_parcours = (
        rules.families[line.family].care_pathway
        and not line.in_care_pathway
        and req.age >= rules.care_pathway_min_age
    )
    # Outside the pathway the patient never gets *more* than the ordinary rate.
    return min(ordinary, rules.hors_parcours_rate_bp) if hors_parcours else ordinary


def _check_invariants(c: Contract, req: PricingRequest, result: PricingResult) -> None:
    """Check each line against figures worked out from the request, not read from the result."""
    rules = REFERENCE.on(req.care_date)
    spared = req.age < rules.exemption_age or req.maternity or req.css
    assert len(result.lines) == len(req.lines)
    for line, r in zip(req.lines, result.lines, strict=True):
        # The line comes back as sent, in its place
        assert (r.act_code, r.family, r.quantity) == (line.act_code, line.family, line.quantity)
        assert (r.billed_cents, r.br_cents) == (line.billed_cents, line.br_cents)
        # AMO base = the regulation's rate × BR, rounded half up; TM and dépassement follow
        rate = _amo_rate(line, req)
        base = _half_up(line.br_cents, rate)
        assert (r.amo_rate_bp, r.amo_base_cents) == (rate, base)
        assert r.tm_cents == line.br_cents - base
        assert r.depassement_cents == line.billed_cents - line.br_cents
        # Deductions: at most the unit amount per unit, none for whoever is spared them
        family = rules.families[line.family]
        exempt = spared or line.exemption in _SPARED
        most_part = 0 if exempt or not family.participation else rules.participation_cents
        kind = family.franchise
        most_fr = 0 if exempt or kind is None else rules.franchise_cents[kind]
        assert 0 <= r.participation_cents <= most_part * line.quantity
        assert 0 <= r.franchise_cents <= most_fr * line.quantity
        # AMO paid: that base less the deductions, never negative
        amo_paid = base - r.participation_cents - r.franchise_cents
        assert r.amo_paid_cents == amo_paid
        assert amo_paid >= 0
        # AMC: never negative, never more than the cost the AMO left
        assert 0 <= r.amc_cents <= line.billed_cents - amo_paid
        # Patient: what the line was billed, less what the AMO and the AMC pay
        assert r.patient_cents == line.billed_cents - amo_paid - r.amc_cents
        if c.responsable:
            # Participation and franchises are never covered by a contrat responsable
            assert r.patient_cents >= r.participation_cents + r.franchise_cents
    # Totals: what was sent, and the sums of the lines
    assert result.billed_cents == sum(line.billed_cents for line in req.lines)
    assert result.br_cents == sum(line.br_cents for line in req.lines)
    for name in ("amo_base_cents", "amo_paid_cents", "amc_cents", "patient_cents"):
        assert getattr(result, name) == sum(getattr(r, name) for r in result.lines), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=contracts(), req=requests())
def test_invariants_hold_for_any_contract_and_lines(c: Contract, req: PricingRequest) -> None:
    result = price(c, req, REFERENCE)
    _check_invariants(c, req, result)
    rules = REFERENCE.on(req.care_date)
    # The AMO's annual caps hold, counting what was already deducted
    before_part = req.counters.get(COUNTER_PARTICIPATION_YEAR, (0, 0))[0]
    assert result.participation_cents <= max(0, rules.participation_annual_cap_cents - before_part)
    before_fr = req.counters.get(COUNTER_FRANCHISE_YEAR, (0, 0))[0]
    assert result.franchise_cents <= max(0, rules.franchise_annual_cap_cents - before_fr)


@settings(max_examples=150, deadline=None)
@given(c=contracts(), req=requests())
def test_contract_ceilings_are_never_exceeded(c: Contract, req: PricingRequest) -> None:
    # Given contracts whose ceilings do not share counter keys with another ceiling
    seen: dict[str, list[Ceiling]] = {}
    for g in c.guarantees:
        for ceiling in g.ceilings:
            seen.setdefault(ceiling.counter, []).append(ceiling)
    result = price(c, req, REFERENCE)
    for key, (amount, count) in result.counter_consumption.items():
        own = seen.get(key)
        if own is None or len(own) != 1:
            continue
        before_amount, before_count = req.counters.get(key, (0, 0))
        if own[0].amount_cents is not None:
            assert amount <= max(0, own[0].amount_cents - before_amount)
        if own[0].count is not None:
            assert count <= max(0, own[0].count - before_count)


@settings(max_examples=100, deadline=None)
@given(req=requests())
def test_class_a_lines_leave_nothing_to_the_patient_under_a_responsable_contract(
    req: PricingRequest,
) -> None:
    result = price(BASIC, replace(req, last_equipment={}), REFERENCE)
    for ln, r in zip(req.lines, result.lines, strict=True):
        if ln.rss_class is A:
            assert r.patient_cents == r.participation_cents + r.franchise_cents == 0


@pytest.mark.parametrize(
    ("ln", "optam", "expected"),
    [
        pytest.param(line(D.MED, "consultation", 3000), False, (1900, 900, 200), id="gp"),
        pytest.param(line(D.MED, "specialist", 7000, 3000), True, (1900, 2400, 2700), id="optam"),
        pytest.param(
            line(D.MED, "specialist", 7000, 3000), False, (1900, 1800, 3300), id="non-optam"
        ),
        pytest.param(line(D.PHAR, "drug_65", 2000, q=2), False, (1100, 700, 200), id="drugs"),
        pytest.param(
            line(D.DENT, "dental_prosthesis", 60000, 12000, rss_class=B),
            False,
            (7200, 22800, 30000),
            id="crown",
        ),
    ],
)
def test_the_table_of_the_format_documentation(
    ln: PricingLine, optam: bool, expected: tuple[int, int, int]
) -> None:
    # docs/formats/catalogue.md shows what the EQUILIBRE example pays: keep it true
    equilibre = read_catalogue(EXAMPLES / "mutuelle-des-tilleuls.yaml").contract("EQUILIBRE")
    r = price(equilibre, request(ln, optam=optam), REFERENCE).lines[0]
    assert (r.amo_paid_cents, r.amc_cents, r.patient_cents) == expected


def test_plain_strings_from_a_json_body_work_like_the_enums() -> None:
    # Given the values an HTTP layer may pass without converting them to enums
    loose: dict[str, Any] = {"rss_class": "A", "plv_cents": 3000}
    frame = PricingLine("MON", cast(CareDomain, "OPTI"), "optics_frame", 1, 3000, 900, **loose)
    maternity: dict[str, Any] = {"exemption": "maternity"}
    gp = PricingLine("G", cast(CareDomain, "MED"), "consultation", 1, 3000, 3000, **maternity)
    result = price(BASIC, request(frame, gp), REFERENCE)
    assert (result.lines[0].amc_cents, result.lines[0].patient_cents) == (2460, 0)
    # Then a maternity line is at 100 % and spared the participation
    assert (result.lines[1].amo_paid_cents, result.lines[1].patient_cents) == (3000, 0)


def test_unknown_rss_class_is_refused() -> None:
    frame = line(D.OPTI, "optics_frame", 3000, 900, rss_class="C")
    with pytest.raises(PricingError) as caught:
        price(BASIC, request(frame), REFERENCE)
    assert (caught.value.code, caught.value.field) == (
        "pricing.amounts_inconsistent",
        "lines[0].rss_class",
    )


def test_contracts_and_results_survive_pickling_for_worker_processes() -> None:
    result = price(PROSTHESIS, request(line(D.DENT, "dental_prosthesis", 60000, 12000)), REFERENCE)
    assert pickle.loads(pickle.dumps(PROSTHESIS)) == PROSTHESIS  # noqa: S301
    assert pickle.loads(pickle.dumps(PROSTHESIS)).guarantee_for(D.DENT, "dental_care", 40)  # noqa: S301
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301


LINE_ONLY_ERRORS = [p for p in ERRORS if p.values[1] == {}]


@pytest.mark.parametrize(("ln", "facts", "code", "where"), LINE_ONLY_ERRORS)
def test_check_lines_refuses_before_anyone_is_looked_up(
    ln: PricingLine, facts: dict[str, Any], code: str, where: str
) -> None:
    with pytest.raises(PricingError) as caught:
        check_lines([ln], REFERENCE.on(DAY))
    assert (caught.value.code, caught.value.field) == (code, where)


def test_check_lines_accepts_valid_lines_and_refuses_none() -> None:
    check_lines(ONE_LINE_PER_DOMAIN, REFERENCE.on(DAY))
    with pytest.raises(PricingError) as caught:
        check_lines([], REFERENCE.on(DAY))
    assert caught.value.code == "pricing.no_lines"


def test_a_supplied_rate_is_judged_on_the_line_not_on_the_person() -> None:
    # Given the AMO applied the hors parcours rate to a 15-year-old (it is the AMO's call)
    gp = line(D.MED, "consultation", 3000, in_care_pathway=False, amo_rate_bp=3000)
    # Then the engine takes the rate: an error here would reveal the person's age
    result = price(BASIC, request(gp, age=15), REFERENCE)
    assert result.lines[0].amo_base_cents == 900
