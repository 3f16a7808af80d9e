"""Prior authorisation: granted, refused, pending then decided; idempotent; guarded and
audited; visible to the requesting provider only (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from tests.conftest import SeededInsurer
from tests.integration.claims_world import CARE_DAY, World, build_world
from tierspayant.app.platform import Platform
from tierspayant.config import SettingError, load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.domain.prior_auth import PriorAuthPolicy
from tierspayant.security.guard import context_for
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.services.prior_auth import (
    PriorAuthRequest,
    decide_prior_auth,
    get_prior_auth,
    prior_auth_policy,
    request_prior_auth,
)
from tierspayant.store.prior_auth import AgreementRow
from tierspayant.store.tables import audit_events

FRAME = PricingLine("FRAME1", CareDomain.OPTI, "optics_frame", 1, 15000, 5)
LENSES = PricingLine("LENS1", CareDomain.OPTI, "optics_lens_simple", 2, 20000, 10)
CROWN = PricingLine("HBLD036", CareDomain.DENT, "dental_prosthesis", 1, 55000, 12000)
STAY = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300000, 300000)


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path)


def ask(world: World, key: str, *lines: PricingLine, person: int = 0) -> PriorAuthRequest:
    return PriorAuthRequest(world.people[person].card, CARE_DAY, key, lines)


def test_an_optical_quote_is_granted_with_amounts_per_line(world: World) -> None:
    answer, created = request_prior_auth(
        world.platform, world.principal, ask(world, "q1", FRAME, LENSES)
    )
    assert created
    assert answer.status == "granted"
    assert answer.reason_code is None
    # Frame: TM 0,02 € + 60 € flat; lenses: TM 0,04 € + 2 × 50 € flat.
    assert [line.guaranteed_cents for line in answer.lines] == [6002, 10004]
    assert answer.guaranteed_cents == 16006
    assert answer.valid_until == CARE_DAY + timedelta(days=84)
    assert answer.agreement_number.startswith("PA")
    assert get_prior_auth(world.platform, world.principal, answer.agreement_number) == answer


def test_the_same_request_key_answers_the_same_agreement(world: World) -> None:
    first, _ = request_prior_auth(world.platform, world.principal, ask(world, "q2", FRAME))
    again, created = request_prior_auth(world.platform, world.principal, ask(world, "q2", FRAME))
    assert not created
    assert again == first
    with pytest.raises(Conflict) as refused:
        request_prior_auth(world.platform, world.principal, ask(world, "q2", LENSES))
    assert refused.value.code == "prior_auth.key_reused"


def test_an_unknown_person_and_an_uncovered_domain_are_refused_with_a_code(world: World) -> None:
    stranger = replace(world.people[0].card, birth_rank=3)
    unknown, _ = request_prior_auth(
        world.platform, world.principal, PriorAuthRequest(stranger, CARE_DAY, "q3", (FRAME,))
    )
    assert (unknown.status, unknown.reason_code) == ("refused", "rights.none")
    assert unknown.guaranteed_cents == 0
    aid = PricingLine("AUD1", CareDomain.AUDI, "hearing_aid", 1, 150000, 40000)
    hearing, _ = request_prior_auth(world.platform, world.principal, ask(world, "q4", aid))
    assert (hearing.status, hearing.reason_code) == ("refused", "rights.domain_not_covered")


def test_other_domains_and_mixed_quotes_are_not_prior_authorisations(world: World) -> None:
    drug = PricingLine("3400930000001", CareDomain.PHAR, "drug_65", 1, 1000, 1000)
    with pytest.raises(ServiceError) as pharmacy:
        request_prior_auth(world.platform, world.principal, ask(world, "q5", drug))
    assert pharmacy.value.code == "prior_auth.domain"
    with pytest.raises(ServiceError) as mixed:
        request_prior_auth(world.platform, world.principal, ask(world, "q6", FRAME, CROWN))
    assert mixed.value.code == "prior_auth.one_domain"


def test_hospital_stays_and_large_amounts_wait_for_the_insurer(world: World) -> None:
    stay, _ = request_prior_auth(world.platform, world.principal, ask(world, "q7", STAY))
    assert stay.status == "pending"
    assert stay.valid_until is None
    strict = PriorAuthPolicy(review_above_cents=10_000)
    crown, _ = request_prior_auth(
        world.platform, world.principal, ask(world, "q8", CROWN), policy=strict
    )
    assert crown.status == "pending"
    assert crown.guaranteed_cents > 10_000


def test_insurer_staff_decide_pending_requests_of_their_insurer_only(
    world: World, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    stay, _ = request_prior_auth(world.platform, world.principal, ask(world, "q9", STAY))
    other = seed_insurer(world.platform, ("X",))
    with pytest.raises(NotFound):
        decide_prior_auth(
            world.platform,
            stay.agreement_number,
            accept=True,
            reason="",
            actor="staff:other",
            insurer_id=other.id,
        )
    with pytest.raises(ServiceError) as no_reason:
        decide_prior_auth(
            world.platform, stay.agreement_number, accept=False, reason=" ", actor="staff:a"
        )
    assert no_reason.value.code == "prior_auth.reason_required"
    granted = decide_prior_auth(
        world.platform,
        stay.agreement_number,
        accept=True,
        reason="séjour programmé",
        actor="staff:a",
        insurer_id=world.insurer.id,
    )
    assert granted.status == "granted"
    assert granted.valid_until == world.platform.today() + timedelta(days=84)
    # The same decision again answers the same; the opposite one is refused.
    again = decide_prior_auth(
        world.platform, stay.agreement_number, accept=True, reason="", actor="staff:a"
    )
    assert again == granted
    with pytest.raises(Conflict) as decided:
        decide_prior_auth(
            world.platform, stay.agreement_number, accept=False, reason="non", actor="staff:a"
        )
    assert decided.value.code == "prior_auth.decided"


def test_a_refusal_by_the_insurer_is_coded(world: World) -> None:
    stay, _ = request_prior_auth(world.platform, world.principal, ask(world, "q10", STAY))
    refused = decide_prior_auth(
        world.platform, stay.agreement_number, accept=False, reason="hors garantie", actor="s"
    )
    assert (refused.status, refused.reason_code) == ("refused", "prior_auth.refused_by_insurer")
    assert refused.guaranteed_cents == 0


def test_only_the_requesting_provider_reads_an_agreement(world: World) -> None:
    answer, _ = request_prior_auth(world.platform, world.principal, ask(world, "q11", FRAME))
    _, intruder = world.add_provider("other", "optician")
    with pytest.raises(NotFound) as hidden:
        get_prior_auth(world.platform, intruder, answer.agreement_number)
    with pytest.raises(NotFound) as unknown:
        get_prior_auth(world.platform, world.principal, "PA0000000000NOPE")
    assert (hidden.value.code, hidden.value.message) == (unknown.value.code, unknown.value.message)


def test_requests_go_through_the_guard_and_the_audit_log(world: World) -> None:
    request_prior_auth(world.platform, world.principal, ask(world, "q12", FRAME))
    guard = world.platform.guard
    assert guard is not None
    structure = context_for(
        world.principal, category="x", with_proof=False, at=world.platform.now()
    ).structure
    day = guard.day_of(world.platform.now())
    assert guard.counters.count_distinct(f"seen:{structure}:{day}") == 1
    with world.platform.engine.connect() as conn:
        events = conn.execute(
            select(audit_events.c.decision, audit_events.c.subject).where(
                audit_events.c.action == "prior_auth.request",
                audit_events.c.insurer == world.insurer.amc_number,
            )
        ).all()
    assert len(events) == 1
    assert events[0].decision == "granted"
    assert events[0].subject


def test_a_granted_agreement_past_its_validity_reads_as_expired(world: World) -> None:
    request = PriorAuthRequest(
        world.people[0].card, CARE_DAY - timedelta(days=200), "q13", (FRAME,)
    )
    answer, _ = request_prior_auth(world.platform, world.principal, request)
    assert answer.status == "granted"
    shown = get_prior_auth(world.platform, world.principal, answer.agreement_number)
    assert shown.status == "expired"
    assert shown.valid_until == answer.valid_until


def _configured(platform: Platform, **values: str) -> None:
    """Give the platform the settings a process started with ``TIERSPAYANT_<NAME>`` gets."""
    env = {
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
        **{f"TIERSPAYANT_{name.upper()}": value for name, value in values.items()},
    }
    platform.settings = load_settings(env)


def test_the_review_threshold_and_the_validity_come_from_the_settings(world: World) -> None:
    crown, _ = request_prior_auth(world.platform, world.principal, ask(world, "q20", CROWN))
    assert crown.status == "granted"
    assert crown.valid_until == CARE_DAY + timedelta(days=84)
    # Threshold just under what the crown guarantees: the same quote now waits for a person;
    # a smaller one is still granted, valid for the configured number of days.
    _configured(
        world.platform,
        prior_auth_review_above_cents=str(crown.guaranteed_cents - 1),
        prior_auth_validity_days="30",
    )
    assert prior_auth_policy(world.platform.settings) == PriorAuthPolicy(
        review_above_cents=crown.guaranteed_cents - 1, validity_days=30
    )
    waiting, _ = request_prior_auth(world.platform, world.principal, ask(world, "q21", CROWN))
    assert (waiting.status, waiting.valid_until) == ("pending", None)
    frame, _ = request_prior_auth(world.platform, world.principal, ask(world, "q22", FRAME))
    assert frame.status == "granted"
    assert frame.valid_until == CARE_DAY + timedelta(days=30)
    decided = decide_prior_auth(
        world.platform, waiting.agreement_number, accept=True, reason="", actor="staff:a"
    )
    assert decided.valid_until == world.platform.today() + timedelta(days=30)
    # "Above" the threshold: a guarantee equal to it is granted without review.
    _configured(world.platform, prior_auth_review_above_cents=str(crown.guaranteed_cents))
    equal, _ = request_prior_auth(world.platform, world.principal, ask(world, "q23", CROWN))
    assert equal.status == "granted"
    assert equal.valid_until == CARE_DAY + timedelta(days=84)


def test_a_bad_policy_setting_stops_the_start() -> None:
    # Each bad value and its message: tests/unit/test_config.py
    with pytest.raises(SettingError) as bad:
        load_settings({"TIERSPAYANT_PRIOR_AUTH_VALIDITY_DAYS": "trois mois"})
    assert bad.value.variable == "TIERSPAYANT_PRIOR_AUTH_VALIDITY_DAYS"


def test_two_staff_deciding_at_once_cannot_both_decide(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the request pending before either writes (a barrier holds them there):
    one decision lands, the other answers as if it had read it (a conflict the other way),
    and only one decision is audited."""
    import threading

    from tierspayant.store import prior_auth as agreements

    stay, _ = request_prior_auth(world.platform, world.principal, ask(world, "q-race", STAY))
    barrier = threading.Barrier(2, timeout=10)
    first_read: set[int] = set()
    read = agreements.agreement_by_number

    def read_then_wait(conn: Connection, number: str) -> AgreementRow | None:
        row = read(conn, number)
        if threading.get_ident() not in first_read:
            first_read.add(threading.get_ident())
            barrier.wait()
        return row

    monkeypatch.setattr(agreements, "agreement_by_number", read_then_wait)
    outcomes: dict[str, object] = {}

    def decide(accept: bool) -> None:
        try:
            outcomes[str(accept)] = decide_prior_auth(
                world.platform,
                stay.agreement_number,
                accept=accept,
                reason="décision",
                actor=f"staff:{accept}",
            )
        except Conflict as conflict:
            outcomes[str(accept)] = conflict.code

    threads = [threading.Thread(target=decide, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()
    assert sorted(map(str, outcomes.values())).count("prior_auth.decided") == 1, outcomes
    winner = next(a for a in outcomes.values() if not isinstance(a, str))
    assert get_prior_auth(world.platform, world.principal, stay.agreement_number) == winner
    with world.platform.engine.connect() as conn:
        decisions = conn.execute(
            select(audit_events.c.decision).where(
                audit_events.c.action == "prior_auth.decide",
                audit_events.c.actor.in_(["staff:True", "staff:False"]),
            )
        ).all()
    assert len(decisions) == 1


def test_a_request_and_its_replay_say_whether_the_card_proof_came_with_them(
    world: World,
) -> None:
    """Read back when the guard's counters are rebuilt after an empty restart."""
    first, _ = request_prior_auth(world.platform, world.principal, ask(world, "q-proof", FRAME))
    request_prior_auth(world.platform, world.principal, ask(world, "q-proof", FRAME))
    with world.platform.engine.connect() as conn:
        details = [
            json.loads(text)
            for text in conn.execute(
                select(audit_events.c.detail)
                .where(audit_events.c.action == "prior_auth.request")
                .order_by(audit_events.c.seq)
            ).scalars()
        ]
    details = [d for d in details if d.get("agreement") == first.agreement_number]
    assert len(details) == 2
    assert [d["proof"] for d in details] == [False, False]
    assert [d.get("replay", False) for d in details] == [False, True]
