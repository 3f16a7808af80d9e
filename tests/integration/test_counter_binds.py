"""The counter's answer binds: an invoice that repeats a calculation's lines the same day is
accepted for exactly the AMC amount calculated, whatever the person's history (ceilings
partly consumed, equipment renewals, waiting period); the counter refuses what
adjudication would refuse (no convention, no tiers payant). SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.api.world import RELAXED_GUARD
from tests.conftest import SeededInsurer
from tests.integration.claims_world import (
    COVERAGE_START,
    LATE_START,
    NOW,
    Person,
    World,
    build_world,
)
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.pricing import PricingLine, PricingResult
from tierspayant.domain.prior_auth import PRIOR_AUTH_DOMAINS
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, get_claim, submit_claim
from tierspayant.services.errors import Unprocessable
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.store.claims_tables import claims, prior_authorisations

TODAY = NOW.date()
D = CareDomain


def facts_catalogue(amc: str) -> dict[str, Any]:
    """BASE: a device ceiling of 200 € a year, dental prostheses at actual costs within
    500 € a calendar year (ticket modérateur included) after 90 days' waiting, one frame
    per 24 months; hearing aids listed without tiers payant."""
    with_tp = {"tiers_payant": True, "coverage_code": "100"}
    return {
        "format": "tierspayant-catalogue/1",
        "insurer": amc,
        "name": "Mutuelle des faits",
        "version": "1",
        "contracts": [
            {
                "code": "BASE",
                "label": "Base",
                "responsable": False,
                "domains": {
                    **dict.fromkeys(("PHAR", "MED", "DENT", "OPTI"), with_tp),
                    "AUDI": {"tiers_payant": False, "coverage_code": "100"},
                },
                "guarantees": [
                    {"domain": "PHAR", "family": "*", "rate": 100},
                    {
                        "domain": "PHAR",
                        "family": "medical_device",
                        "rate": 100,
                        "flat": "50.00",
                        "ceilings": [
                            {"counter": "devices", "period": "calendar_year", "amount": "200.00"}
                        ],
                    },
                    {"domain": "MED", "family": "*", "rate": 100},
                    {"domain": "DENT", "family": "*", "rate": 100},
                    {
                        "domain": "DENT",
                        "family": "dental_prosthesis",
                        "actual_costs": True,
                        "waiting_days": 90,
                        "ceilings": [
                            {
                                "counter": "dental",
                                "period": "calendar_year",
                                "amount": "500.00",
                                "includes_tm": True,
                            }
                        ],
                    },
                    {
                        "domain": "OPTI",
                        "family": "optics_frame",
                        "rate": 100,
                        "flat": "60.00",
                        "frequency": {"key": "glasses", "months": 24},
                    },
                    {"domain": "AUDI", "family": "*", "rate": 100},
                ],
            }
        ],
    }


@pytest.fixture
def platform(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    """The conftest's platform under a relaxed guard: one principal looks many people up
    here (three lookups per invoice), which is what the guard is there to stop."""
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    env = {
        "TIERSPAYANT_DATA_DIR": str(data_dir),
        "TIERSPAYANT_DATABASE_URL": url,
        "TIERSPAYANT_GUARD_POLICY": json.dumps(RELAXED_GUARD),
    }
    built = initialise(load_settings(env))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def world(platform: Any, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path, people=12, catalogue_of=facts_catalogue)


def device(act: str, billed: int) -> PricingLine:
    return PricingLine(act, D.PHAR, "medical_device", 1, billed, billed // 2)


def drug(act: str) -> PricingLine:
    return PricingLine(act, D.PHAR, "drug_65", 1, 1000, 1000)


def crown(act: str, billed: int) -> PricingLine:
    return PricingLine(act, D.DENT, "dental_prosthesis", 1, billed, 12000)


def frame(act: str, billed: int) -> PricingLine:
    return PricingLine(act, D.OPTI, "optics_frame", 1, billed, 5)


def invoice_of(
    result: PricingResult, day: date, lines: tuple[PricingLine, ...]
) -> tuple[ClaimLine, ...]:
    """The calculation's lines unchanged, with the AMO's share and the AMC share it gave."""
    return tuple(
        ClaimLine(
            act_code=line.act_code,
            domain=line.domain,
            family=line.family,
            quantity=line.quantity,
            care_date=day,
            br_cents=line.br_cents,
            billed_cents=line.billed_cents,
            amo_rate_bp=priced.amo_rate_bp,
            amo_paid_cents=priced.amo_paid_cents,
            amc_requested_cents=priced.amc_cents,
        )
        for line, priced in zip(lines, result.lines, strict=True)
    )


_invoices = itertools.count(1)


def at_the_counter_then_invoiced(
    world: World, person: Person, day: date, lines: tuple[PricingLine, ...]
) -> tuple[PricingResult, list[int]]:
    """Calculate, ask the agreement the lines need, invoice the same lines, adjudicate:
    the calculation and the AMC amount accepted per line."""
    platform, principal = world.platform, world.principal
    result = calculate(platform, principal, Calculation(person.card, day, lines))
    agreement = None
    if lines[0].domain in PRIOR_AUTH_DOMAINS:
        key = f"facts-{next(_invoices)}"
        answer, _ = request_prior_auth(
            platform, principal, PriorAuthRequest(person.card, day, key, lines)
        )
        # The agreement guarantees what the calculation says (the same facts, one engine).
        assert [ln.guaranteed_cents for ln in answer.lines] == [ln.amc_cents for ln in result.lines]
        agreement = answer.agreement_number
    # The invoice carries the calculation's engagement on amounts, so that what it reserved
    # is its own (an invoice without it would see the reservation as consumed).
    content = ClaimContent(
        f"FX-{next(_invoices)}",
        day,
        invoice_of(result, day, lines),
        agreement,
        engagement_number=result.engagement_number,
    )
    receipt = submit_claim(platform, principal, ClaimSubmission(person.card, content))
    adjudicate_pending(platform, insurer_amc=world.insurer.amc_number)
    view = get_claim(platform, principal, receipt.claim_id)
    assert view.status == "adjudicated"
    return result, [ln.amc_accepted_cents for ln in view.lines]


# One kind of care per invoice (an agreement covers one domain): (kind, billed in cents).
KINDS = ("devices", "crown", "frame")
care = st.tuples(
    st.sampled_from(KINDS),
    st.integers(1_000, 30_000),  # devices: 10 € to 300 € each
    st.integers(15_000, 80_000),  # crown: 150 € to 800 €
    st.integers(3_000, 25_000),  # frame: 30 € to 250 €
    st.booleans(),  # devices: two on one invoice, or one beside a drug
)
past_day = st.integers(1, 700).map(lambda days: TODAY - timedelta(days=days))


def lines_of(drawn: tuple[str, int, int, int, bool], serial: int) -> tuple[PricingLine, ...]:
    kind, device_billed, crown_billed, frame_billed, double = drawn
    # Act codes differ between invoices: a repeated act is a duplicate, not a pricing fact.
    act = f"X{serial:04d}"
    if kind == "devices":
        second = device(act + "B", device_billed // 2 + 500) if double else drug(act + "D")
        return (device(act + "A", device_billed), second)
    if kind == "crown":
        return (crown(act + "C", crown_billed),)
    return (frame(act + "F", frame_billed),)


_people = itertools.count()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(st.tuples(past_day, care), max_size=4), now=care)
def test_an_invoice_repeating_a_calculation_is_accepted_for_the_amount_calculated(
    world: World, history: list[tuple[date, tuple[str, int, int, int, bool]]], now: tuple[Any, ...]
) -> None:
    # Given a person of their own (one per example; the fourth one's coverage began late)
    person = world.people[next(_people) % len(world.people)]
    # and a history of invoices adjudicated for them, in any order of care dates
    steps = [*history, (TODAY, now)]
    for serial, (day, drawn) in enumerate(steps):
        lines = lines_of(drawn, serial)
        if day < person_start(world, person):
            # Before the coverage the counter answers no rights: nothing to invoice.
            assert no_rights_of(world, person.card, lines, day)[0] == "calculation.no_rights"
            continue
        result, accepted = at_the_counter_then_invoiced(world, person, day, lines)
        # Then each invoice, the last one too, is accepted for exactly what was calculated
        assert accepted == [line.amc_cents for line in result.lines]
        assert sum(accepted) == result.amc_cents


def person_start(world: World, person: Person) -> date:
    return LATE_START if person is world.people[3] else COVERAGE_START


def test_a_ceiling_partly_consumed_is_what_the_calculation_has_left(world: World) -> None:
    person = world.people[0]
    # Given a crown accepted in March for 450 €: BR 120 €, AMO 60 % = 72 €, billed 522 €,
    # actual costs 522 − 72 = 450 € under the 500 € annual ceiling
    first, accepted = at_the_counter_then_invoiced(
        world, person, date(2026, 3, 2), (crown("HBLD036", 52_200),)
    )
    assert (first.amc_cents, accepted) == (45_000, [45_000])
    # When a second crown billed 800 € is calculated in November
    second, accepted = at_the_counter_then_invoiced(
        world, person, TODAY, (crown("HBLD037", 80_000),)
    )
    # Then the calculation says 50 € (500 − 450), and the invoice is accepted for 50 €
    assert second.amc_cents == 5_000
    assert accepted == [5_000]
    assert any("50,00 € left" in rule or "50.00" in rule for rule in second.lines[0].rules), (
        second.lines[0].rules
    )


def test_a_frame_within_its_renewal_period_is_calculated_at_the_ticket_moderateur(
    world: World,
) -> None:
    person = world.people[1]
    first, _ = at_the_counter_then_invoiced(world, person, date(2025, 6, 2), (frame("F1", 15_000),))
    again, accepted = at_the_counter_then_invoiced(world, person, TODAY, (frame("F2", 15_000),))
    # 17 months later the 60 € forfait is not due again; the calculation says so
    assert first.amc_cents > again.amc_cents
    assert accepted == [again.amc_cents]


def no_rights_of(
    world: World, card: Any, lines: tuple[PricingLine, ...], day: date = TODAY
) -> tuple[str, str]:
    with pytest.raises(Unprocessable) as refused:
        calculate(world.platform, world.principal, Calculation(card, day, lines))
    return refused.value.code, refused.value.message


def test_a_domain_without_tiers_payant_is_refused_like_an_unknown_person(world: World) -> None:
    person = world.people[0]
    stranger = replace(person.card, birth_rank=3)
    aid = (PricingLine("AUD1", D.AUDI, "hearing_aid", 1, 150_000, 40_000),)
    # The calculation: the same code and message as for nobody
    assert no_rights_of(world, person.card, aid) == no_rights_of(world, stranger, aid)
    assert no_rights_of(world, person.card, aid)[0] == "calculation.no_rights"
    # The prior authorisation: the refusal of an unknown person
    known, _ = request_prior_auth(
        world.platform, world.principal, PriorAuthRequest(person.card, TODAY, "tp-1", aid)
    )
    unknown, _ = request_prior_auth(
        world.platform, world.principal, PriorAuthRequest(stranger, TODAY, "tp-2", aid)
    )
    assert (known.status, known.reason_code) == (unknown.status, unknown.reason_code)
    assert (known.reason_code, known.guaranteed_cents) == ("rights.none", 0)


def test_a_professional_without_convention_is_refused_at_the_counter(
    platform: Any, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a pharmacy under the PHAR convention only
    world = build_world(
        platform, seed_insurer, tmp_path, provider_domains=(D.PHAR,), catalogue_of=facts_catalogue
    )
    person = world.people[0]
    stranger = replace(person.card, birth_rank=3)
    quote = (frame("FRAME1", 15_000),)
    for card in (person.card, stranger):
        # When it calculates or asks an agreement for glasses, for anyone
        with pytest.raises(Unprocessable) as calc:
            calculate(platform, world.principal, Calculation(card, TODAY, quote))
        with pytest.raises(Unprocessable) as pec:
            request_prior_auth(
                platform,
                world.principal,
                PriorAuthRequest(card, TODAY, f"nc-{card.birth_rank}", quote),
            )
        # Then its own code, whoever the card designates, and nothing stored
        assert (calc.value.code, pec.value.code) == (
            "calculation.no_convention",
            "prior_auth.no_convention",
        )
    with platform.engine.connect() as conn:
        for table in (prior_authorisations, claims):
            mine = table.c.insurer_id == world.insurer.id
            assert conn.execute(select(func.count()).where(mine)).scalar_one() == 0
    # The drugs it sells are calculated as before
    assert calculate(platform, world.principal, Calculation(person.card, TODAY, (drug("D1"),)))
