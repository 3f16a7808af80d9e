"""The pure adjudication rules: worked cases per reason code, their order, ceilings and
agreements, and properties that hold for any line (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierspayant.domain.adjudication import (
    REASONS,
    Agreement,
    ClaimFacts,
    Reason,
    adjudicate,
)
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import ClaimLine, LineStatus, duplicate_key, near_key
from tierspayant.domain.eligibility import Coverage, DomainTerms
from tierspayant.domain.facts import CounterUse, counters_on
from tierspayant.domain.guarantees import Ceiling, Contract, Guarantee, Period
from tierspayant.formats.reference import load_default_reference

REFERENCE = load_default_reference()
DAY = date(2026, 3, 16)
TODAY = date(2026, 3, 20)
START = date(2024, 1, 1)
D = CareDomain
DEVICES = Ceiling("devices", Period.CALENDAR_YEAR, amount_cents=20_000)
CONTRACT = Contract(
    "BASE",
    "base",
    False,
    {d: DomainTerms(True, "100") for d in (D.PHAR, D.MED, D.LABO, D.OPTI, D.DENT)},
    (
        Guarantee(D.PHAR, "medical_device", rate_bp=10_000, flat_cents=5_000, ceilings=(DEVICES,)),
        Guarantee(D.OPTI, "optics_frame", rate_bp=10_000, flat_cents=6_000),
        Guarantee(D.DENT, "dental_implant", actual_costs=True, waiting_days=180),
        *(Guarantee(d, "*", rate_bp=10_000) for d in (D.PHAR, D.MED, D.LABO, D.DENT)),
    ),
)
NO_TP = DomainTerms(False, "100")  # listed, without tiers payant
ALL_CONVENTIONS = {d: (date(2020, 1, 1), None) for d in CareDomain}


def drug(**changes: object) -> ClaimLine:
    """Example 5 of DOMAIN.md with one box: BR 10 €, AMO 65 % − 1 € franchise."""
    line = ClaimLine("3400930000001", D.PHAR, "drug_65", 1, DAY, 1000, 1000, 6500, 550, 350)
    return replace(line, **changes)  # type: ignore[arg-type]


def gp(**changes: object) -> ClaimLine:
    """Example 1: GP 30 €, AMO 70 % − 2 € participation; TM 9 €."""
    line = ClaimLine("G", D.MED, "consultation", 1, DAY, 3000, 3000, 7000, 1900, 900)
    return replace(line, **changes)  # type: ignore[arg-type]


def device(day: date = DAY, amc: int = 9_000) -> ClaimLine:
    return ClaimLine("LPP1", D.PHAR, "medical_device", 1, day, 10_000, 20_000, 6000, 6000, amc)


def facts(*lines: ClaimLine, **changes: object) -> ClaimFacts:
    base = ClaimFacts(
        provider_id=7,
        beneficiary_id=42,
        age=40,
        lines=lines,
        coverage=Coverage("BASE", START, None),
        contract=CONTRACT,
        conventions=ALL_CONVENTIONS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def judged(*lines: ClaimLine, **changes: object) -> list[tuple[LineStatus, int, str | None]]:
    decision = adjudicate(facts(*lines, **changes), REFERENCE, TODAY)
    return [(d.status, d.accepted_cents, d.reason and d.reason.value) for d in decision.lines]


ACCEPTED, REDUCED, REJECTED = LineStatus.ACCEPTED, LineStatus.REDUCED, LineStatus.REJECTED


def test_worked_examples() -> None:
    assert judged(gp(), drug()) == [(ACCEPTED, 900, None), (ACCEPTED, 350, None)]
    # Two boxes: AMO 13 € − 2 € franchises, AMC 7 € (example 5).
    assert judged(
        drug(
            quantity=2,
            br_cents=2000,
            billed_cents=2000,
            amo_paid_cents=1100,
            amc_requested_cents=700,
        )
    ) == [(ACCEPTED, 700, None)]
    # A GP with 5 € of dépassement asking for it: 100 % BR pays the TM only.
    assert judged(gp(billed_cents=3500, amc_requested_cents=1600)) == [
        (REDUCED, 900, "amount.above_guarantee")
    ]
    # Asking less than covered is accepted as asked.
    assert judged(gp(amc_requested_cents=500)) == [(ACCEPTED, 500, None)]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"beneficiary_id": 0}, Reason.RIGHTS_NONE),
        ({"coverage": None}, Reason.RIGHTS_NONE),
        ({"coverage": Coverage("BASE", START, DAY - timedelta(days=1))}, Reason.RIGHTS_NONE),
        ({"coverage": Coverage("BASE", DAY + timedelta(days=1), None)}, Reason.RIGHTS_NONE),
        # A domain without tiers payant: the insurer pays the member, as for no rights.
        (
            {"contract": replace(CONTRACT, domains={**CONTRACT.domains, D.PHAR: NO_TP})},
            Reason.RIGHTS_NONE,
        ),
        ({"conventions": {}}, Reason.NO_CONVENTION),
        ({"conventions": {D.PHAR: (DAY + timedelta(days=1), None)}}, Reason.NO_CONVENTION),
        ({"paid_exact": frozenset({duplicate_key(42, "3400930000001", DAY, 7)})}, Reason.DUPLICATE),
        ({"paid_near": frozenset({near_key(42, "3400930000001", DAY)})}, Reason.NEAR_DUPLICATE),
    ],
)
def test_claim_facts_that_reject_a_line(changes: dict[str, object], reason: Reason) -> None:
    assert judged(drug(), **changes) == [(REJECTED, 0, reason.value)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (drug(care_date=TODAY + timedelta(days=1)), Reason.CARE_DATE_FUTURE),
        (replace(gp(), domain=D.AUDI, family="hearing_accessory"), Reason.DOMAIN_NOT_COVERED),
        (drug(family="no_such_family"), Reason.ACT_UNKNOWN),
        (drug(family="consultation"), Reason.ACT_UNKNOWN),
        (drug(act_code="bad code"), Reason.ACT_UNKNOWN),
        (drug(amo_paid_cents=651), Reason.AMO_ABOVE_RATE),
        (drug(amc_requested_cents=451), Reason.AMC_ABOVE_COST),
        (
            drug(billed_cents=900, amo_paid_cents=500, amc_requested_cents=300),
            Reason.AMOUNTS_INCONSISTENT,
        ),
    ],
)
def test_lines_that_are_rejected(line: ClaimLine, reason: Reason) -> None:
    assert judged(line, drug(act_code="3400930000002")) == [
        (REJECTED, 0, reason.value),
        (ACCEPTED, 350, None),
    ]


def test_rules_apply_in_their_documented_order() -> None:
    # Unknown act and no convention: the act comes first.
    assert judged(drug(family="x"), conventions={})[0][2] == Reason.ACT_UNKNOWN.value
    # No rights and inconsistent amounts: rights come first.
    assert judged(drug(amo_paid_cents=999), beneficiary_id=0)[0][2] == Reason.RIGHTS_NONE.value


def test_every_reason_has_a_text_for_providers() -> None:
    assert set(REASONS) == set(Reason)
    assert all(text and text[0].isupper() for text in REASONS.values())


def test_ceilings_use_the_history_and_report_their_consumption() -> None:
    history = (CounterUse("devices", date(2026, 1, 10), 15_000, 3),)
    decision = adjudicate(facts(device(), history=history), REFERENCE, TODAY)
    line = decision.lines[0]
    assert (line.status, line.accepted_cents, line.reason) == (ACCEPTED, 9_000, None)
    # 150 € used: 50 € left, so the whole flat is still paid; then nothing is left.
    assert decision.consumption == (CounterUse("devices", DAY, 5_000, 1),)
    full = (*history, CounterUse("devices", date(2026, 2, 1), 5_000, 1))
    assert judged(device(), history=full) == [(REDUCED, 4_000, Reason.CEILING_REACHED.value)]
    # Last year's use does not count in a calendar-year ceiling.
    old = (CounterUse("devices", date(2025, 12, 31), 20_000, 4),)
    assert judged(device(), history=old) == [(ACCEPTED, 9_000, None)]


def test_two_devices_in_one_claim_share_the_ceiling() -> None:
    history = (CounterUse("devices", date(2026, 1, 10), 15_000, 3),)
    earlier = device(day=DAY - timedelta(days=1))
    assert judged(earlier, device(), history=history) == [
        (ACCEPTED, 9_000, None),
        (REDUCED, 4_000, Reason.CEILING_REACHED.value),
    ]


def test_waiting_period_and_missing_guarantee() -> None:
    implant = ClaimLine("IMPL", D.DENT, "dental_implant", 1, DAY, 0, 100_000, 0, 0, 50_000)
    assert judged(implant, coverage=Coverage("BASE", DAY - timedelta(days=30), None)) == [
        (REJECTED, 0, Reason.WAITING_PERIOD.value)
    ]
    lens = ClaimLine("CL1", D.OPTI, "contact_lens", 1, DAY, 3949, 10_000, 6000, 2369, 1580)
    assert judged(lens) == [(REJECTED, 0, Reason.GUARANTEE_NONE.value)]


FRAME = ClaimLine("FRAME1", D.OPTI, "optics_frame", 1, DAY, 5, 15_000, 6000, 3, 6_002)


def agreement(**changes: object) -> Agreement:
    base = Agreement("PA1", "granted", 7, 42, DAY + timedelta(days=84), {"optics_frame": 6_002})
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("number", "found", "reason"),
    [
        (None, None, Reason.PRIOR_AUTH_MISSING),
        ("PA1", None, Reason.PRIOR_AUTH_NOT_FOUND),
        ("PA1", agreement(provider_id=8), Reason.PRIOR_AUTH_NOT_FOUND),
        ("PA1", agreement(beneficiary_id=43), Reason.PRIOR_AUTH_MISMATCH),
        ("PA1", agreement(status="pending"), Reason.PRIOR_AUTH_NOT_GRANTED),
        ("PA1", agreement(valid_until=DAY - timedelta(days=1)), Reason.PRIOR_AUTH_EXPIRED),
        ("PA1", agreement(used_by_other_claim=True), Reason.PRIOR_AUTH_USED),
    ],
)
def test_prior_authorisation_rules(
    number: str | None, found: Agreement | None, reason: Reason
) -> None:
    assert judged(FRAME, agreement_number=number, agreement=found) == [(REJECTED, 0, reason.value)]


def test_an_agreement_binds_the_amount() -> None:
    assert judged(FRAME, agreement_number="PA1", agreement=agreement()) == [(ACCEPTED, 6_002, None)]
    low = agreement(guaranteed_by_family={"optics_frame": 4_000})
    assert judged(FRAME, agreement_number="PA1", agreement=low) == [
        (REDUCED, 4_000, Reason.PRIOR_AUTH_EXCEEDED.value)
    ]


def test_counters_on_windows_and_renewals() -> None:
    history = (
        CounterUse("devices", date(2025, 6, 1), 1_000, 1),
        CounterUse("devices", date(2026, 2, 1), 2_000, 1),
        CounterUse("renewal.glasses", date(2025, 1, 5), 0, 1),
        CounterUse("renewal.glasses", date(2026, 9, 1), 0, 1),  # after the care date
    )
    counters, last = counters_on(CONTRACT, DAY, history)
    assert counters == {"devices": (2_000, 1)}
    assert last == {"glasses": date(2025, 1, 5)}


cents = st.integers(min_value=0, max_value=500_000)


@st.composite
def pharmacy_lines(draw: st.DrawFn) -> ClaimLine:
    family, rate = draw(
        st.sampled_from(
            [("drug_65", 6500), ("drug_30", 3000), ("drug_100", 10_000), ("medical_device", 6000)]
        )
    )
    br = draw(cents)
    billed = br + draw(st.integers(min_value=0, max_value=50_000))
    amo_max = br * rate // 10_000
    amo_paid = draw(st.integers(min_value=0, max_value=amo_max + 50))
    requested = draw(st.integers(min_value=0, max_value=max(0, billed - amo_paid) + 50))
    quantity = draw(st.integers(min_value=1, max_value=5))
    return ClaimLine(
        draw(st.sampled_from(["3400930000001", "3400930000002", "LPP1"])),
        D.PHAR,
        family,
        quantity,
        DAY - timedelta(days=draw(st.integers(min_value=0, max_value=60))),
        br,
        billed,
        rate,
        amo_paid,
        requested,
        exemption=draw(st.sampled_from([Exemption.NONE, Exemption.ALD])),
    )


def _half_up(cents: int, rate_bp: int) -> int:
    """``cents`` × ``rate_bp`` / 10 000, rounded half up, through Decimal (an oracle)."""
    exact = Decimal(cents) * Decimal(rate_bp) / Decimal(10_000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(pharmacy_lines(), min_size=1, max_size=6))
def test_any_claim_respects_the_money_invariants(lines: list[ClaimLine]) -> None:
    decision = adjudicate(facts(*lines), REFERENCE, TODAY)
    assert len(decision.lines) == len(lines)
    for line, judged_line in zip(lines, decision.lines, strict=True):
        accepted = judged_line.accepted_cents
        assert 0 <= accepted <= line.amc_requested_cents
        if judged_line.payable:
            # The patient's remainder, from the line's own figures, is never negative.
            assert line.billed_cents - line.amo_paid_cents - accepted >= 0
            # What CONTRACT covers, worked out apart from the engine. A payable line was
            # priced at its own rate (an ALD line below 100 % is refused before pricing):
            # AMO base = BR × rate rounded half up, ticket modérateur = BR − AMO base.
            amo_base = _half_up(line.br_cents, line.amo_rate_bp)
            tm = line.br_cents - amo_base
            if line.family == "medical_device":
                # 100 % BR + 50,00 € a unit, within what the AMO left; the annual
                # ceiling can only lower it.
                most = min(tm + 5_000 * line.quantity, line.billed_cents - amo_base)
                assert accepted <= most
            else:
                # Drugs: 100 % BR pays the ticket modérateur; asking less is paid as asked.
                assert accepted == min(line.amc_requested_cents, tm)
        if judged_line.status is REJECTED:
            assert accepted == 0
            assert judged_line.reason is not None
        if judged_line.status is REDUCED:
            assert 0 < accepted < line.amc_requested_cents
            assert judged_line.reason is not None
        if judged_line.status is ACCEPTED:
            assert accepted == line.amc_requested_cents
    # Counters are consumed only by what was accepted, never more.
    assert sum(use.cents for use in decision.consumption) <= decision.accepted_cents
    assert all(use.cents >= 0 for use in decision.consumption)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(pharmacy_lines(), min_size=1, max_size=6), seed=st.integers(0, 3))
def test_the_same_facts_always_get_the_same_decision(lines: list[ClaimLine], seed: int) -> None:
    history = tuple(CounterUse("devices", DAY - timedelta(days=d), 3_000, 1) for d in range(seed))
    first = adjudicate(facts(*lines, history=history), REFERENCE, TODAY)
    again = adjudicate(facts(*lines, history=history), REFERENCE, TODAY)
    assert first == again
