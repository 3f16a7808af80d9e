"""The incident scope lists exactly the people an answer told about, route by route and
outcome by outcome, from real requests through the real services (SQLite and PostgreSQL).

Each test acts with a provider of its own and scopes that provider's principal, so the
answer the scope must give is known: the people answered with person-dependent
information, nobody else.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import SeededInsurer
from tests.integration.claims_world import (
    CARE_DAY,
    NOW,
    Person,
    World,
    build_world,
    drug,
    submission,
)
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.security.audit import DISCLOSED, subject_pseudonym, verify_chain
from tierspayant.security.principal import Principal
from tierspayant.services import incident
from tierspayant.services.claims import file_principal, submit_claim
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.errors import ServiceError
from tierspayant.services.identification import CardData, identify
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.store import audit
from tierspayant.store.tables import audit_events

RESPONDER = "operator:scope-test"
FRAME = PricingLine("FRAME1", CareDomain.OPTI, "optics_frame", 1, 15000, 5)
STAY = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300000, 300000)
LASIK = PricingLine("LASIK1", CareDomain.OPTI, "refractive_surgery", 1, 100000, 0)
HEARING = PricingLine("AUD1", CareDomain.AUDI, "hearing_aid", 1, 150000, 40000)
DRUG = PricingLine("3400930000001", CareDomain.PHAR, "drug_65", 1, 1000, 1000)
# Person 3's coverage starts on 2026-06-01: on this day of care they are not covered.
UNCOVERED_DAY = date(2026, 5, 4)
_keys = itertools.count(1)


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path)


def fresh(world: World) -> Principal:
    """A provider of its own (own structure, own quotas) for one scenario."""
    return world.add_provider(f"p{next(_keys)}")[1]


def stranger(world: World) -> CardData:
    """Person 0's NIR with another birth rank: nobody."""
    return replace(world.people[0].card, birth_rank=3)


def scoped_ids(world: World, principal: Principal) -> set[int]:
    criteria = incident.ScopeCriteria(
        NOW - timedelta(hours=1), NOW + timedelta(hours=1), principal=principal.id
    )
    result = incident.scope_incident(world.platform, criteria, RESPONDER)
    ids = {r.beneficiary_id for scope in result.insurers for r in scope.records}
    assert None not in ids
    return {i for i in ids if i is not None}


def id_of(world: World, person: int) -> int:
    with world.platform.engine.connect() as conn:
        found = identify(world.platform, conn, world.people[person].card)[1]
    assert found is not None
    return found.record.id


def rights(world: World, principal: Principal, card: CardData, day: date = CARE_DAY) -> bool:
    answer = check_rights(world.platform, principal, RightsCheck(card, day, (CareDomain.PHAR,)))
    return any(r.covered for r in answer.rights)


def calc(world: World, principal: Principal, card: CardData, day: date = CARE_DAY) -> bool:
    try:
        calculate(world.platform, principal, Calculation(card, day, (DRUG,)))
    except ServiceError as refused:
        code = refused.code
    else:
        return True
    assert code == "calculation.no_rights"
    return False


def prior_auth(
    world: World,
    principal: Principal,
    card: CardData,
    line: PricingLine = FRAME,
    day: date = CARE_DAY,
) -> tuple[str, str | None]:
    request = PriorAuthRequest(card, day, f"k{next(_keys)}", (line,))
    answer, created = request_prior_auth(world.platform, principal, request)
    assert created
    return answer.status, answer.reason_code


def invoice(world: World, principal: Principal, card: CardData, day: date = CARE_DAY) -> None:
    person = Person(card, card.birth_date)
    claim = submission(person, f"F{next(_keys)}", drug(day=day))
    receipt = submit_claim(world.platform, principal, claim)
    assert receipt.created


# --- one test per route and outcome -------------------------------------------------------


def test_a_rights_check_that_answers_rights_discloses_that_person_only(world: World) -> None:
    principal = fresh(world)
    assert rights(world, principal, world.people[1].card)
    assert not rights(world, principal, stranger(world))
    assert scoped_ids(world, principal) == {id_of(world, 1)}


def test_a_rights_check_of_someone_not_covered_discloses_nobody(world: World) -> None:
    principal = fresh(world)
    assert not rights(world, principal, world.people[3].card, UNCOVERED_DAY)
    assert scoped_ids(world, principal) == set()


def test_a_calculation_that_prices_discloses_that_person_only(world: World) -> None:
    principal = fresh(world)
    assert calc(world, principal, world.people[2].card)
    assert not calc(world, principal, world.people[3].card, UNCOVERED_DAY)
    assert not calc(world, principal, stranger(world))
    assert scoped_ids(world, principal) == {id_of(world, 2)}


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        (FRAME, ("granted", None)),
        (STAY, ("pending", None)),
        (LASIK, ("refused", "guarantee.none")),
        (HEARING, ("refused", "rights.domain_not_covered")),
    ],
    ids=["granted", "pending", "refused-guarantee", "domain-not-covered"],
)
def test_a_prior_authorisation_that_depends_on_the_contract_discloses_that_person(
    world: World, line: PricingLine, outcome: tuple[str, str | None]
) -> None:
    principal = fresh(world)
    assert prior_auth(world, principal, world.people[1].card, line) == outcome
    assert scoped_ids(world, principal) == {id_of(world, 1)}


def test_two_prior_authorisations_are_two_people_in_the_scope(world: World) -> None:
    """The reported replay: two requests, and the scope said 0 people."""
    principal = fresh(world)
    assert prior_auth(world, principal, world.people[0].card, STAY)[0] == "pending"
    assert prior_auth(world, principal, world.people[2].card, LASIK)[0] == "refused"
    assert scoped_ids(world, principal) == {id_of(world, 0), id_of(world, 2)}


def test_a_prior_authorisation_refused_for_rights_discloses_nobody(world: World) -> None:
    principal = fresh(world)
    uncovered = prior_auth(world, principal, world.people[3].card, FRAME, UNCOVERED_DAY)
    unknown = prior_auth(world, principal, stranger(world))
    assert uncovered == unknown == ("refused", "rights.none")
    assert scoped_ids(world, principal) == set()


def test_an_invoice_received_for_someone_discloses_them(world: World) -> None:
    principal = fresh(world)
    invoice(world, principal, world.people[2].card)
    invoice(world, principal, stranger(world))
    assert scoped_ids(world, principal) == {id_of(world, 2)}


def test_an_invoice_from_a_file_import_discloses_under_the_file_principal(world: World) -> None:
    claim = submission(world.people[0], f"F{next(_keys)}")
    submit_claim(world.platform, file_principal(world.provider), claim, source="file")
    assert scoped_ids(world, file_principal(world.provider)) == {id_of(world, 0)}


def test_a_canary_answered_is_in_the_scope(world: World) -> None:
    from tests.integration.test_cards import canary_people
    from tierspayant.services import canaries

    canaries.plant(world.platform, world.insurer.amc_number, 1, RESPONDER)
    canary = canary_people(world.platform, world.insurer.amc_number)[0]
    principal = fresh(world)
    card = CardData(
        world.insurer.amc_number,
        date.fromisoformat(canary.birth_date),
        canary.nir,
        canary.birth_rank,
    )
    assert rights(world, principal, card)  # the synthetic rights, like anyone's
    with world.platform.engine.connect() as conn:
        found = identify(world.platform, conn, card)[1]
    assert found is not None
    assert found.canary
    assert scoped_ids(world, principal) == {found.record.id}


def test_every_answer_about_a_person_records_whether_it_disclosed(world: World) -> None:
    principal = fresh(world)
    rights(world, principal, world.people[3].card, UNCOVERED_DAY)
    calc(world, principal, world.people[0].card)
    prior_auth(world, principal, world.people[0].card, STAY)
    invoice(world, principal, world.people[1].card)
    with world.platform.engine.connect() as conn:
        events = list(audit.iter_events(conn))
    mine = [e for e in events if e.actor == principal.id and e.subject is not None]
    assert len(mine) == 4
    assert [e.detail[DISCLOSED] for e in mine] == [False, True, True, True]


# --- events written before the field existed ---------------------------------------------


def test_legacy_events_are_classified_and_the_chain_still_verifies(world: World) -> None:
    """Events of the old format (no ``disclosed``) keep their meaning: the old decisions
    map to what they told the caller, a refused prior authorisation by its reason code."""
    other = fresh(world)
    prior_auth(world, other, world.people[3].card, FRAME, UNCOVERED_DAY)  # rights.none
    prior_auth(world, other, world.people[2].card, LASIK)  # guarantee.none
    with world.platform.engine.connect() as conn:
        agreements = [
            str(detail)
            for (detail,) in conn.execute(
                select(audit_events.c.detail)
                .where(audit_events.c.actor == other.id)
                .order_by(audit_events.c.seq)
            )
        ]
    uncovered_pa, refused_pa = (json.loads(d)["agreement"] for d in agreements)
    attacker = "provider:legacy/client:old"
    key = world.platform.operator_keys().derive(incident.PSEUDONYM_PURPOSE)

    def subject(person: int) -> str:
        return subject_pseudonym(key, world.insurer.amc_number, str(id_of(world, person)))

    legacy = [
        ("eligibility.check", "hit", 0, {}),
        ("eligibility.check", "hit_not_covered", 3, {}),
        ("calculation", "hit_not_covered", 3, {}),
        ("prior_auth.request", "refused", 3, {"agreement": uncovered_pa}),
        ("prior_auth.request", "refused", 2, {"agreement": refused_pa}),
        ("prior_auth.request", "pending", 1, {"agreement": "PA-not-held"}),
        ("card.proof_refused", "deny", 3, {"fault": "mismatch"}),
    ]
    with world.platform.engine.begin() as conn:
        for action, decision, person, detail in legacy:
            audit.append(
                conn,
                at=NOW,
                actor=attacker,
                action=action,
                decision=decision,
                subject=subject(person),
                insurer=world.insurer.amc_number,
                detail=detail,
            )
    scope = incident.scope_incident(
        world.platform,
        incident.ScopeCriteria(
            NOW - timedelta(hours=1), NOW + timedelta(hours=1), principal=attacker
        ),
        RESPONDER,
    )
    listed = {r.beneficiary_id for s in scope.insurers for r in s.records}
    assert listed == {id_of(world, 0), id_of(world, 1), id_of(world, 2)}
    with world.platform.engine.connect() as conn:
        assert verify_chain(audit.iter_events(conn)).ok


# --- any mix of routes and people ----------------------------------------------------------

ROUTES = ("rights", "calculation", "prior_auth", "prior_auth_stay", "invoice")
KINDS = ("covered", "not_covered", "unknown")


def _act(world: World, principal: Principal, route: str, kind: str, who: int) -> int | None:
    """Make one request; return the id of the person it must have told about, if any.

    Only a covered person gets rights, a price or an agreement (or a refusal that depends
    on their contract); an invoice about anyone identified is a disclosure, covered or not.
    """
    if kind == "unknown":
        card, day = replace(world.people[who].card, birth_rank=3), CARE_DAY
    elif kind == "not_covered":
        card, day = world.people[3].card, UNCOVERED_DAY
    else:
        card, day = world.people[who].card, CARE_DAY
    covered = kind == "covered"
    if route == "rights":
        assert rights(world, principal, card, day) == covered
    elif route == "calculation":
        assert calc(world, principal, card, day) == covered
    elif route == "prior_auth":
        status = prior_auth(world, principal, card, FRAME, day)
        assert status == (("granted", None) if covered else ("refused", "rights.none"))
    elif route == "prior_auth_stay":
        status = prior_auth(world, principal, card, STAY, day)
        assert status == (("pending", None) if covered else ("refused", "rights.none"))
    else:
        invoice(world, principal, card, day)
        covered = kind != "unknown"
    if not covered:
        return None
    person = 3 if kind == "not_covered" else who
    return id_of(world, person)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    requests=st.lists(
        st.tuples(st.sampled_from(ROUTES), st.sampled_from(KINDS), st.integers(0, 2)),
        min_size=1,
        max_size=6,
    )
)
def test_the_scope_is_the_set_of_people_answered_whatever_the_mix(
    world: World, requests: list[tuple[str, str, int]]
) -> None:
    principal = fresh(world)
    answered = {_act(world, principal, route, kind, who) for route, kind, who in requests}
    assert scoped_ids(world, principal) == answered - {None}


def test_a_calculation_refused_for_a_found_person_is_audited_as_disclosing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine refusal reached only once the person is found and covered (the lines'
    own checks run before anyone is looked up; the beneficiary file's rules leave no
    real case today, so the engine is made to refuse): the refusal tells the caller the
    card matched, so it is recorded as disclosing and the person is in the scope."""
    from tierspayant.domain.codes import CalculationCode
    from tierspayant.domain.errors import PricingError
    from tierspayant.services import pricing

    def refusing(*_args: object, **_kwargs: object) -> None:
        raise PricingError(CalculationCode.INVALID_REQUEST, "age must be between 0 and 149")

    monkeypatch.setattr(pricing, "price", refusing)
    principal = fresh(world)
    with pytest.raises(PricingError) as refused:
        calculate(world.platform, principal, Calculation(world.people[0].card, CARE_DAY, (DRUG,)))
    assert refused.value.code is CalculationCode.INVALID_REQUEST
    assert not calc(world, principal, stranger(world))  # unknown: no rights, not disclosing
    with world.platform.engine.connect() as conn:
        events = [e for e in audit.iter_events(conn) if e.actor == principal.id]
    assert [(e.decision, e.detail[DISCLOSED]) for e in events] == [("hit", True), ("miss", False)]
    assert scoped_ids(world, principal) == {id_of(world, 0)}


def test_a_prior_authorisation_retried_by_another_account_is_audited_for_it(
    world: World,
) -> None:
    """Two accounts of one professional send the same request under the same key: the
    second gets the stored answer, and that answer is recorded for the second account
    too, so scoping either account finds the person; the retry of an unknown person's
    request stays a miss."""
    first = fresh(world)
    second = replace(first, id=f"{first.id}-second")
    known = PriorAuthRequest(world.people[0].card, CARE_DAY, "retry-known", (FRAME,))
    unknown = PriorAuthRequest(stranger(world), CARE_DAY, "retry-unknown", (FRAME,))
    for request in (known, unknown):
        answer, created = request_prior_auth(world.platform, first, request)
        again, created_again = request_prior_auth(world.platform, second, request)
        assert created
        assert not created_again
        assert again == answer
    assert scoped_ids(world, first) == {id_of(world, 0)}
    assert scoped_ids(world, second) == {id_of(world, 0)}
    with world.platform.engine.connect() as conn:
        replays = [
            (e.decision, e.detail[DISCLOSED])
            for e in audit.iter_events(conn)
            if e.actor == second.id
        ]
    assert replays == [("replay", True), ("miss", False)]
