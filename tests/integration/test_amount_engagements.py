"""Engagements on amounts (``ENG1-C-…``) end to end, on both engines: a calculation
reserves its AMC amount against the person's ceilings, so that two engagements never
promise the same ceiling; the reservation ends when cancelled, past its validity, or
consumed by the invoice that carries its number, which is then paid the engaged amount
even after a retroactive end of rights."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.claims_world import NOW, World
from tests.integration.test_counter_binds import crown, device, drug, invoice_of
from tests.integration.test_counter_binds import platform as platform
from tests.integration.test_counter_binds import world as world
from tests.integration.test_engagements import end_coverage_retroactively
from tierspayant.domain.claims import ClaimContent
from tierspayant.domain.pricing import PricingLine, PricingResult
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, get_claim, submit_claim
from tierspayant.services.engagements import cancel_amount, provider_engagements
from tierspayant.services.errors import NotFound, Unprocessable
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth

TODAY = NOW.date()
CEILING = 20_000  # devices: 200 € a calendar year, 50 € flat per device
_acts = itertools.count(1)


def devices(*billed: int) -> tuple[PricingLine, ...]:
    return tuple(device(f"DEV{next(_acts):06d}", cents) for cents in billed)


def calc(
    world: World, person: int, lines: tuple[PricingLine, ...], day: date = TODAY
) -> PricingResult:
    card = world.people[person].card
    return calculate(world.platform, world.principal, Calculation(card, day, lines))


def held(result: PricingResult) -> int:
    """What a calculation takes of the devices ceiling (its AMC beyond is not capped)."""
    return result.counter_consumption.get("devices", (0, 0))[0]


def cancel_all(world: World) -> None:
    for number, _ in provider_engagements(world.platform, world.principal):
        cancel_amount(world.platform, world.principal, number)


people = itertools.cycle(range(12))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(st.integers(500, 12_000), min_size=1, max_size=3), min_size=2, max_size=3))
def test_calculations_for_one_person_never_promise_more_than_the_ceiling(
    world: World, billed: list[list[int]]
) -> None:
    person = next(people)
    try:
        # Given calculations in a random order, each with one to three devices
        promised = 0
        for amounts in billed:
            result = calc(world, person, devices(*amounts))
            assert result.engagement_number is not None
            assert result.engagement_number.startswith("ENG1-C-")
            promised += held(result)
        # Then all together promise no more than the ceiling
        assert promised <= CEILING
        # When they are cancelled, the ceiling is free at once: all the lines in one
        # calculation are promised exactly what the engagements promised together
        cancel_all(world)
        together = calc(world, person, devices(*(b for amounts in billed for b in amounts)))
        assert held(together) == promised
    finally:
        cancel_all(world)


def test_the_fourth_open_engagement_is_refused_and_others_learn_nothing(world: World) -> None:
    for _ in range(3):
        calc(world, 0, devices(1_000))
    # When the same professional calculates a fourth time for the person's pharmacy
    with pytest.raises(Unprocessable) as mine:
        calc(world, 0, (drug(f"3400930{next(_acts):06d}"),))
    assert mine.value.code == "calculation.too_many_open"
    # Then another professional, who holds none of them, gets the answer of no rights
    _, other = world.add_provider("other")
    card = world.people[0].card
    with pytest.raises(Unprocessable) as theirs:
        calculate(world.platform, other, Calculation(card, TODAY, devices(1_000)))
    assert theirs.value.code == "calculation.no_rights"
    # and cancelling one makes room again
    number = provider_engagements(world.platform, world.principal)[0][0]
    cancel_amount(world.platform, world.principal, number)
    assert calc(world, 0, devices(1_000)).engagement_number is not None


def test_cancellation_is_idempotent_and_only_for_its_professional(world: World) -> None:
    result = calc(world, 1, devices(12_000, 12_000, 12_000))
    number = result.engagement_number
    assert number is not None
    assert held(result) == 15_000
    _, other = world.add_provider("other")
    # Another professional, a rights-less made-up number: the same 404 code
    for who, what in ((other, number), (world.principal, "ENG1-C-AAAA")):
        with pytest.raises(NotFound) as refused:
            cancel_amount(world.platform, who, what)
        assert refused.value.code == "engagement.not_found"
    assert held(calc(world, 1, devices(12_000, 12_000))) == 5_000  # still reserved
    cancel_amount(world.platform, world.principal, number)
    cancel_amount(world.platform, world.principal, number)  # again: the same answer
    assert held(calc(world, 1, devices(12_000, 12_000))) == 10_000


def test_a_retried_calculation_answers_the_same_engagement(world: World) -> None:
    lines = devices(12_000, 12_000)
    first, again = calc(world, 2, lines), calc(world, 2, lines)
    assert first.engagement_number == again.engagement_number
    assert first.amc_cents == again.amc_cents
    assert held(first) == held(again) == 10_000
    assert len(provider_engagements(world.platform, world.principal)) == 1


def test_expiry_frees_the_ceiling_without_a_job(world: World) -> None:
    calc(world, 3, devices(12_000, 12_000, 12_000, 12_000))  # the whole ceiling
    assert held(calc(world, 3, devices(12_000))) == 0
    # The next day (pharmacy: valid the care day only), the reservations no longer count
    world.platform.clock = lambda: NOW + timedelta(days=1)
    assert held(calc(world, 3, devices(12_000), day=TODAY)) == 5_000


def test_the_invoice_with_the_engagement_consumes_it_and_is_paid_after_rights_end(
    world: World, tmp_path: Path
) -> None:
    platform, principal = world.platform, world.principal
    lines = devices(12_000, 12_000)
    result = calc(world, 0, lines)
    number = result.engagement_number
    assert number is not None
    assert held(result) == 10_000
    # Meanwhile another professional's calculation gets what is left of the ceiling
    _, other = world.add_provider("other")
    card = world.people[0].card
    theirs = calculate(platform, other, Calculation(card, TODAY, devices(12_000, 12_000)))
    assert held(theirs) == 10_000
    cancel_amount(platform, other, theirs.engagement_number or "")
    # and the rights then ended retroactively
    end_coverage_retroactively(world, tmp_path, person=0)
    # When the invoice carrying the number is sent and adjudicated
    content = ClaimContent(
        "AMT-1", TODAY, invoice_of(result, TODAY, lines), engagement_number=number
    )
    receipt = submit_claim(platform, principal, ClaimSubmission(world.people[0].card, content))
    adjudicate_pending(platform, insurer_amc=world.insurer.amc_number)
    view = get_claim(platform, principal, receipt.claim_id)
    # Then it is paid the engaged amount, on the engagement, and the reservation is consumed
    assert [ln.amc_accepted_cents for ln in view.lines] == [ln.amc_cents for ln in result.lines]
    assert [ln.reason_code for ln in view.lines] == [None, None]
    assert provider_engagements(platform, principal) == []
    # and the same number on a second invoice is refused with its own reason
    relines = devices(12_000, 12_000)
    again = ClaimContent(
        "AMT-2", TODAY, invoice_of(result, TODAY, relines), engagement_number=number
    )
    second = submit_claim(platform, principal, ClaimSubmission(world.people[0].card, again))
    adjudicate_pending(platform, insurer_amc=world.insurer.amc_number)
    reasons = {ln.reason_code for ln in get_claim(platform, principal, second.claim_id).lines}
    assert reasons == {"engagement.cancelled"}


def test_the_agreement_for_the_calculated_lines_is_not_cut_by_their_own_engagement(
    world: World,
) -> None:
    platform, card = world.platform, world.people[5].card
    lines = (crown(f"HBL{next(_acts):06d}", 45_000),)  # dental: 500 € a year, actual costs
    result = calc(world, 5, lines)
    assert result.amc_cents > 0
    # When the same professional asks the agreement for the very lines calculated
    key = f"amt-pa-{next(_acts)}"
    answer, _ = request_prior_auth(
        platform, world.principal, PriorAuthRequest(card, TODAY, key, lines)
    )
    # Then it guarantees what the calculation promised (its reservation is its own)
    assert [ln.guaranteed_cents for ln in answer.lines] == [ln.amc_cents for ln in result.lines]
    # while other lines, or another professional, still find that amount reserved
    others = (crown(f"HBL{next(_acts):06d}", 45_000),)
    mine, _ = request_prior_auth(
        platform, world.principal, PriorAuthRequest(card, TODAY, f"{key}-b", others)
    )
    _, other = world.add_provider("dentist", "dentist")
    theirs, _ = request_prior_auth(platform, other, PriorAuthRequest(card, TODAY, key, lines))
    left = 50_000 - result.counter_consumption["dental"][0]
    assert 0 < left < result.amc_cents
    assert [ln.guaranteed_cents for ln in mine.lines] == [left]
    assert [ln.guaranteed_cents for ln in theirs.lines] == [left]
