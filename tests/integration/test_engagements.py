"""Engagement numbers end to end, on both engines: issued by a covered rights check only,
refused at intake with one answer when forged or not the provider's, honoured by
adjudication after a retroactive end of rights, booked, billed and listed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import SeededInsurer
from tests.integration.claims_world import (
    ACTOR,
    CARE_DAY,
    World,
    build_world,
    drug,
    submission,
)
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimLine
from tierspayant.domain.eligibility import DomainRight
from tierspayant.domain.engagements import RightsEngagement, rights_engagement
from tierspayant.domain.errors import DomainError
from tierspayant.domain.ledger import AccountKind, account
from tierspayant.security.principal import Principal
from tierspayant.services import billing, ledger_check, payments, portal_views
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import get_claim, submit_claim
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.engagements import open_rights, seal_rights
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.store import ledger
from tierspayant.store.claims_tables import claims


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path)


def rights(world: World, person: int, *domains: CareDomain, day: date = CARE_DAY) -> str | None:
    check = RightsCheck(world.people[person].card, day, domains or (CareDomain.PHAR,))
    return check_rights(world.platform, world.principal, check).engagement_number


def end_coverage_retroactively(world: World, tmp_path: Path, person: int = 0) -> None:
    """A full import dated before the care day that leaves ``person`` out: the rights
    end the day before the file date, after the check was answered."""
    source = tmp_path / f"people-{world.insurer.amc_number}.csv"
    rows = source.read_text(encoding="utf-8").splitlines()
    kept = [rows[0]] + [row for n, row in enumerate(rows[1:]) if n != person]
    path = tmp_path / "people-ended.csv"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    summary = import_beneficiaries(
        world.platform,
        world.insurer.amc_number,
        path,
        mode="full",
        file_date=CARE_DAY - timedelta(days=20),
        actor=ACTOR,
        confirm_terminations=1,
    )
    assert summary.rejected == 0


def send(
    world: World,
    invoice: str,
    *lines: ClaimLine,
    person: int = 0,
    engagement: str | None = None,
    principal: Principal | None = None,
) -> int:
    sub = submission(world.people[person], invoice, *lines)
    sub = replace(sub, content=replace(sub.content, engagement_number=engagement))
    return submit_claim(world.platform, principal or world.principal, sub).claim_id


def lines_of(world: World, claim_id: int) -> list[tuple[str, int, str | None]]:
    view = get_claim(world.platform, world.principal, claim_id)
    return [(ln.status, ln.amc_accepted_cents, ln.reason_code) for ln in view.lines]


def claim_count(world: World) -> int:
    with world.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(claims)).scalar_one())


def consultation(day: date = CARE_DAY) -> ClaimLine:
    """A GP consultation (MED), 30 € at 70 %, participation deducted: TM 9 €."""
    return ClaimLine(
        act_code="G",
        domain=CareDomain.MED,
        family="consultation",
        quantity=1,
        care_date=day,
        br_cents=3000,
        billed_cents=3000,
        amo_rate_bp=7000,
        amo_paid_cents=1900,
        amc_requested_cents=900,
    )


def test_a_covered_check_carries_an_engagement_and_an_unknown_person_none(world: World) -> None:
    # Given a covered person and card data that match nobody
    covered = world.people[0].card
    unknown = replace(covered, birth_date=date(1901, 1, 1))
    # When both are checked
    check = RightsCheck(covered, CARE_DAY, (CareDomain.PHAR, CareDomain.AUDI))
    answer = check_rights(world.platform, world.principal, check)
    nobody = check_rights(world.platform, world.principal, replace(check, card=unknown))
    # Then the covered answer binds: its number opens to this provider, person, date and
    # the covered domain only (AUDI is not in the contract)
    assert answer.engagement_number is not None
    assert answer.engagement_number.startswith("ENG1-R-")
    with world.platform.engine.connect() as conn:
        engagement = open_rights(world.platform, conn, answer.engagement_number)
    assert engagement.provider_id == world.provider.id
    assert engagement.insurer_id == world.insurer.id
    assert engagement.care_date == engagement.valid_until == CARE_DAY
    assert engagement.domains == {CareDomain.PHAR}
    assert engagement.contract_code == "BASE"
    # and the number shows no identifier of the person
    assert str(world.people[0].card.nir) not in answer.engagement_number
    # and nobody's answer carries none
    assert nobody.engagement_number is None
    assert not any(r.covered for r in nobody.rights)
    # and the same check gives the same number (deterministic seal)
    assert check_rights(world.platform, world.principal, check).engagement_number == (
        answer.engagement_number
    )


def test_forged_altered_malformed_or_another_providers_numbers_get_one_answer(
    world: World,
) -> None:
    # Given a genuine number of another provider, and numbers altered or made up
    _, other = world.add_provider("other")
    theirs = check_rights(
        world.platform, other, RightsCheck(world.people[0].card, CARE_DAY, (CareDomain.PHAR,))
    ).engagement_number
    mine = rights(world, 0)
    assert theirs is not None
    assert mine is not None
    last = mine[-1]
    altered = mine[:-1] + ("A" if last != "A" else "B")
    forged = seal_rights(
        world.platform,
        replace(_decoded(world, mine), beneficiary_id=_decoded(world, mine).beneficiary_id + 1),
    )
    forged = forged[:10] + ("Q" if forged[10] != "Q" else "R") + forged[11:]
    candidates = {
        "another provider's": theirs,
        "altered": altered,
        "forged": forged,
        "malformed": "ENG1-R-NOTANUMBER",
        "other kind": mine.replace("ENG1-R-", "ENG1-C-"),
        "no prefix": mine[7:],
    }
    before = claim_count(world)
    answers = {}
    # When each is sent on an invoice
    for n, (why, number) in enumerate(candidates.items()):
        with pytest.raises(DomainError) as refused:
            send(world, f"ENG-BAD-{n}", engagement=number)
        answers[why] = (refused.value.code, refused.value.message, refused.value.field)
    # Then every one is refused the same way, and nothing is stored
    assert set(answers.values()) == {
        ("engagement.invalid", "this engagement number cannot be accepted", "engagement_number")
    }, answers
    assert claim_count(world) == before
    # while the genuine number of this provider is accepted
    assert send(world, "ENG-GOOD", engagement=mine) > 0


def _decoded(world: World, number: str) -> RightsEngagement:
    with world.platform.engine.connect() as conn:
        return open_rights(world.platform, conn, number)


def test_an_engaged_invoice_is_paid_after_a_retroactive_end_of_rights(
    world: World, tmp_path: Path
) -> None:
    platform = world.platform
    # Given a rights check for PHAR on the care day, answered covered
    engagement = rights(world, 0, CareDomain.PHAR)
    assert engagement is not None
    # and a full import that then ends the person's rights before the care day
    end_coverage_retroactively(world, tmp_path)
    # When the invoice is sent with the number (a drug, and a consultation: MED was not
    # engaged), and the same invoice without it
    engaged = send(world, "ENG-WITH", drug(), consultation(), engagement=engagement)
    plain = send(world, "ENG-WITHOUT", drug(), consultation())
    adjudicate_pending(platform, insurer_amc=world.insurer.amc_number)
    # Then the engaged drug is paid (TM 3.50 € on 10 € at 65 %), the consultation follows
    # normal rules (no rights), and the invoice without the number is rejected for rights
    assert lines_of(world, engaged) == [("accepted", 350, None), ("rejected", 0, "rights.none")]
    assert lines_of(world, plain) == [("rejected", 0, "rights.none")] * 2
    view = get_claim(platform, world.principal, engaged)
    assert "engagement of 2026-11-02 honoured on contract BASE" in view.lines[0].rules
    # and the insurer's engagements account holds it, the ledger balances and reconciles
    with platform.engine.connect() as conn:
        amc = world.insurer.amc_number
        assert ledger.balance(conn, account(AccountKind.INSURER_ENGAGED, amc)) == 350
        assert ledger.balance(conn, account(AccountKind.ENGAGEMENT_CONTRA, amc)) == -350
        assert ledger.balance(conn, account(AccountKind.INSURER_RECEIVABLE, amc)) == 350
    report = ledger_check.check_ledger(platform)
    assert report.ok, report
    # and the insurer's portal lists it (claim, provider, care date, amount)
    listed = portal_views.honoured_engagements(platform, world.insurer.id)
    assert [(r.claim_id, r.care_date, r.domain, r.cents) for r in listed] == [
        (engaged, CARE_DAY, "PHAR", 350)
    ]
    assert listed[0].provider == world.provider.name
    # and re-adjudicating changes nothing (nothing left to judge, nothing posted twice)
    assert adjudicate_pending(platform, insurer_amc=world.insurer.amc_number).claims == 0
    assert ledger_check.check_ledger(platform).ok

    # When the month is paid and billed
    billing.set_mandate(
        platform, world.insurer.amc_number, iban="FR7630006000011234567890189", bic=None,
        mandate_id="RUM-ENG-1", signed_on=date(2026, 1, 2), actor="test",
    )  # fmt: skip
    platform.clock = lambda: datetime(2026, 11, 30, 9, tzinfo=UTC)
    payments.run_payments(platform, date(2026, 11, 30), out_dir=tmp_path / "pay")
    platform.clock = lambda: datetime(2026, 12, 2, 9, tzinfo=UTC)
    billing.run_billing(platform, "2026-11", out_dir=tmp_path / "bill")
    # Then the statement lists the honoured line apart, included in what was paid
    files = billing.statement_files(tmp_path / "bill", world.insurer.amc_number, "2026-11")
    statement = json.loads(files["statement_json"].read_text(encoding="utf-8"))
    assert statement["paid"] == "3.50"
    assert statement["engagements_honoured"]["amount"] == "3.50"
    [line] = statement["engagements_honoured"]["lines"]
    assert (line["claim"], line["care_date"], line["domain"], line["amount"]) == (
        engaged, "2026-11-02", "PHAR", "3.50",
    )  # fmt: skip
    assert "Total;Engagements honorés;3,50\r\n" in files["statement_csv"].read_bytes().decode()
    assert ledger_check.check_ledger(platform).ok


def test_an_engagement_of_another_person_or_day_does_not_bind_and_says_why(
    world: World, tmp_path: Path
) -> None:
    # Given engagements for another person, and for this person on the day before
    someone_else = rights(world, 1)
    day_before = rights(world, 0, day=CARE_DAY - timedelta(days=1))
    assert someone_else is not None
    assert day_before is not None
    end_coverage_retroactively(world, tmp_path)
    # When invoices for the ended person carry them
    wrong_person = send(world, "ENG-PERSON", engagement=someone_else)
    wrong_day = send(world, "ENG-DAY", engagement=day_before)
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    # Then each is judged as without rights, with the engagement's own reason
    assert lines_of(world, wrong_person) == [("rejected", 0, "engagement.not_yours")]
    assert lines_of(world, wrong_day) == [("rejected", 0, "engagement.expired")]
    assert portal_views.honoured_engagements(world.platform, world.insurer.id) == []
    assert ledger_check.check_ledger(world.platform).ok


def test_a_still_covered_person_is_judged_as_usual_and_nothing_is_engaged(world: World) -> None:
    # Given an engagement and rights that did not end
    engagement = rights(world, 0)
    # When the invoice carries it
    claim = send(world, "ENG-COVERED", engagement=engagement)
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    # Then it is paid by the ordinary rules, and no engagement is booked as honoured
    assert lines_of(world, claim) == [("accepted", 350, None)]
    assert portal_views.honoured_engagements(world.platform, world.insurer.id) == []


def test_signing_a_rights_engagement_costs_microseconds(platform: Platform) -> None:
    # Given the operator keys in memory, as on the rights check's path
    platform.operator_keys()
    engagement = rights_engagement(
        insurer_id=1,
        provider_id=2,
        beneficiary_id=3,
        care_date=date(2026, 11, 2),
        coverage_start=date(2024, 1, 1),
        contract_code="BASE",
        rights=(
            DomainRight(CareDomain.PHAR, True, True, "100", None),
            DomainRight(CareDomain.MED, True, False, "100", None),
            DomainRight(CareDomain.AUDI, False, False, None, None),
        ),
    )
    assert engagement is not None
    rounds = 20_000
    seal_rights(platform, engagement)
    # When it is sealed many times
    started = time.perf_counter()
    for _ in range(rounds):
        seal_rights(platform, engagement)
    per_answer = (time.perf_counter() - started) / rounds * 1e6
    # Then it costs microseconds, far below the check's own cost (figure printed for the
    # record: docs/money.md quotes it)
    print(f"engagement seal: {per_answer:.1f} µs per covered answer")
    assert per_answer < 500
