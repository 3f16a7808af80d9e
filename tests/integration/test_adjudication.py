"""Adjudication on a real database: each rule's reason code, ceilings counted once,
duplicates, prior authorisations, ledger postings, determinism, the worker."""

from __future__ import annotations

import gc
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, func, select, update

from tests.conftest import SeededInsurer
from tests.integration.claims_world import (
    CARE_DAY,
    LATE_START,
    World,
    build_world,
    drug,
    submission,
)
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimError, ClaimLine
from tierspayant.domain.ledger import AccountKind, account
from tierspayant.domain.pricing import PricingLine
from tierspayant.jobs.adjudication import AdjudicationWorker
from tierspayant.services.adjudication import (
    BatchResult,
    adjudicate_batch,
    adjudicate_pending,
    pending_claims,
)
from tierspayant.services.claims import cancel_claim, get_claim, submit_claim
from tierspayant.services.errors import Unprocessable
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.store import adjudication as store
from tierspayant.store import ledger
from tierspayant.store.claims_tables import benefit_counters, claim_lines, claims
from tierspayant.store.ledger_tables import ledger_postings
from tierspayant.store.tables import catalogues


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path)


def run(world: World) -> None:
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)


def decisions(world: World, claim_id: int) -> list[tuple[str, int, str | None]]:
    view = get_claim(world.platform, world.principal, claim_id)
    return [(ln.status, ln.amc_accepted_cents, ln.reason_code) for ln in view.lines]


def send(world: World, invoice: str, *lines: ClaimLine, person: int = 0, **kw: object) -> int:
    sub = submission(world.people[person], invoice, *lines, **kw)  # type: ignore[arg-type]
    return submit_claim(world.platform, world.principal, sub).claim_id


def consultation(*, billed: int = 3000, amc: int = 900, amo_paid: int = 1900) -> ClaimLine:
    """Example 1 of DOMAIN.md: GP 30 €, AMO 70 % − 2 € participation."""
    return ClaimLine(
        act_code="G",
        domain=CareDomain.MED,
        family="consultation",
        quantity=1,
        care_date=CARE_DAY,
        br_cents=3000,
        billed_cents=billed,
        amo_rate_bp=7000,
        amo_paid_cents=amo_paid,
        amc_requested_cents=amc,
    )


def device(n: int, *, amc: int = 9000) -> ClaimLine:
    """A medical device: BR 100 €, billed 200 €, AMO 60 %: TM 40 € + 50 € flat (ceiling)."""
    return ClaimLine(
        act_code=f"LPP{n:04d}",
        domain=CareDomain.PHAR,
        family="medical_device",
        quantity=1,
        care_date=CARE_DAY - timedelta(days=n),
        br_cents=10000,
        billed_cents=20000,
        amo_rate_bp=6000,
        amo_paid_cents=6000,
        amc_requested_cents=amc,
    )


def test_worked_examples_are_accepted_at_the_computed_share(world: World) -> None:
    gp = send(world, "W-1", consultation())
    pharmacy = send(world, "W-2", drug(quantity=2, br=2000, amo_paid=1100, amc=700))
    run(world)
    assert decisions(world, gp) == [("accepted", 900, None)]
    assert decisions(world, pharmacy) == [("accepted", 700, None)]


def test_a_request_above_the_guarantee_is_reduced(world: World) -> None:
    # Given a GP billing 35 € on a 30 € BR and asking the whole 16 € remainder
    claim = send(world, "R-1", consultation(billed=3500, amc=1600))
    run(world)
    # Then a 100 % BR contract pays the ticket modérateur (9 €) only
    assert decisions(world, claim) == [("reduced", 900, "amount.above_guarantee")]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (drug(amo_paid=900, amc=100), "amounts.amo_above_rate"),  # 9 € > 65 % of 10 €
        (replace(drug(), family="drug_99"), "act.unknown"),
        (replace(drug(), family="consultation"), "act.unknown"),  # not a pharmacy family
        (replace(drug(amo_paid=50), amo_rate_bp=1000), "amounts.inconsistent"),
    ],
)
def test_inconsistent_lines_are_rejected_and_touch_nothing(
    world: World, line: ClaimLine, code: str
) -> None:
    claim = send(world, "I-1", line, drug(act="3400930000002"))
    run(world)
    result = decisions(world, claim)
    assert result[0] == ("rejected", 0, code)
    assert result[1][0] == "accepted"  # the other line of the invoice is judged on its own


def test_care_in_the_future_is_rejected(world: World) -> None:
    tomorrow = world.platform.today() + timedelta(days=1)
    claim = send(world, "D-1", drug(day=tomorrow))
    run(world)
    assert decisions(world, claim) == [("rejected", 0, "claim.care_date_future")]


def test_care_before_coverage_is_rejected_like_no_rights(world: World) -> None:
    claim = send(world, "D-2", drug(day=LATE_START - timedelta(days=1)), person=3)
    run(world)
    assert decisions(world, claim) == [("rejected", 0, "rights.none")]


def test_a_domain_outside_the_contract_is_rejected(world: World) -> None:
    aid = ClaimLine(
        "HA01", CareDomain.AUDI, "hearing_accessory", 1, CARE_DAY, 1000, 1000, 6000, 600, 400
    )
    claim = send(world, "C-1", aid)
    run(world)
    assert decisions(world, claim) == [("rejected", 0, "rights.domain_not_covered")]


def test_a_provider_without_convention_for_the_domain_is_refused_at_intake(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a pharmacy under the PHAR convention only
    world = build_world(platform, seed_insurer, tmp_path, provider_domains=(CareDomain.PHAR,))
    # When it sends a consultation beside a drug, for a known or an unknown person
    stranger = replace(world.people[0], card=replace(world.people[0].card, birth_rank=3))
    for invoice, person in (("N-1", world.people[0]), ("N-2", stranger)):
        with pytest.raises(Unprocessable) as refused:
            submit_claim(
                platform, world.principal, submission(person, invoice, consultation(), drug())
            )
        # Then the same coded refusal at once, whoever the card designates, and nothing stored
        assert (refused.value.code, refused.value.field) == ("claim.no_convention", "lines")
    with platform.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).where(claims.c.insurer_id == world.insurer.id)
            ).scalar_one()
            == 0
        )
    # The drug alone is received; adjudication keeps its own check (see the domain tests).
    send(world, "N-3", drug())
    run(world)


def test_an_amc_share_above_the_cost_is_refused_at_intake(world: World) -> None:
    with pytest.raises(ClaimError) as refused:
        send(world, "A-1", drug(act="3400930000002"), drug(amc=1000))  # 10 € > billed − AMO
    assert (refused.value.code, refused.value.field) == (
        "claim.amc_above_cost",
        "lines[1].amc_requested_cents",
    )
    with world.platform.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).where(claims.c.insurer_id == world.insurer.id)
            ).scalar_one()
            == 0
        )


def test_duplicates_of_the_same_and_of_another_provider(world: World) -> None:
    first = send(world, "P-1", drug())
    same = send(world, "P-2", drug())  # same act, person and day, another invoice number
    _, other = world.add_provider("second pharmacy")
    sub = submission(world.people[0], "Q-1", drug())
    near = submit_claim(world.platform, other, sub).claim_id
    run(world)
    assert decisions(world, first) == [("accepted", 350, None)]
    assert decisions(world, same) == [("rejected", 0, "duplicate.same_provider")]
    view = get_claim(world.platform, other, near)
    assert [(ln.status, ln.reason_code) for ln in view.lines] == [
        ("rejected", "duplicate.other_provider")
    ]
    # A duplicate of a claim judged in an earlier run is refused too.
    later = send(world, "P-3", drug())
    run(world)
    assert decisions(world, later) == [("rejected", 0, "duplicate.same_provider")]


def test_an_annual_ceiling_is_consumed_once(world: World) -> None:
    # 50 € flat within 200 € a year: four devices get it in full, the fifth only the TM.
    ids = [send(world, f"K-{n}", device(n)) for n in range(1, 6)]
    run(world)
    results = [decisions(world, claim_id)[0] for claim_id in ids]
    # Claims are judged in id order; the fifth is the most recent care but came last.
    assert results[:4] == [("accepted", 9000, None)] * 4
    assert results[4] == ("reduced", 4000, "ceiling.reached")
    with world.platform.engine.connect() as conn:
        used = conn.execute(
            select(func.sum(benefit_counters.c.used_cents)).where(
                benefit_counters.c.insurer_id == world.insurer.id,
                benefit_counters.c.counter_key == "devices",
            )
        ).scalar_one()
        counted = conn.execute(
            select(func.count()).where(
                claim_lines.c.insurer_id == world.insurer.id, claim_lines.c.is_counted.is_(True)
            )
        ).scalar_one()
    assert used == 20000
    assert counted == 5
    # A rerun finds nothing to do and consumes nothing more.
    run(world)
    with world.platform.engine.connect() as conn:
        again = conn.execute(
            select(func.sum(benefit_counters.c.used_cents)).where(
                benefit_counters.c.insurer_id == world.insurer.id
            )
        ).scalar_one()
    assert again == 20000


def test_cancelling_a_claim_gives_its_ceiling_back(world: World) -> None:
    ids = [send(world, f"G-{n}", device(n)) for n in range(1, 5)]
    run(world)
    cancel_claim(world.platform, world.principal, ids[0])
    fifth = send(world, "G-5", device(5))
    run(world)
    assert decisions(world, fifth) == [("accepted", 9000, None)]


def optics_quote() -> tuple[PricingLine, ...]:
    frame = PricingLine("FRAME1", CareDomain.OPTI, "optics_frame", 1, 15000, 5)
    lens = PricingLine("LENS1", CareDomain.OPTI, "optics_lens_simple", 2, 20000, 10)
    return frame, lens


def optics_claim(*, frame_amc: int, lens_amc: int) -> tuple[ClaimLine, ...]:
    return (
        ClaimLine(
            "FRAME1", CareDomain.OPTI, "optics_frame", 1, CARE_DAY, 5, 15000, 6000, 3, frame_amc
        ),
        ClaimLine(
            "LENS1",
            CareDomain.OPTI,
            "optics_lens_simple",
            2,
            CARE_DAY,
            10,
            20000,
            6000,
            6,
            lens_amc,
        ),
    )


def test_optics_need_a_respected_prior_authorisation(world: World) -> None:
    answer, _ = request_prior_auth(
        world.platform,
        world.principal,
        PriorAuthRequest(world.people[0].card, CARE_DAY, "quote-1", optics_quote()),
    )
    assert answer.status == "granted"
    frame_ok, lens_ok = (line.guaranteed_cents for line in answer.lines)
    assert (frame_ok, lens_ok) == (6002, 10004)  # TM + 60 € frame; TM + 2 × 50 € lenses
    missing = send(world, "O-1", *optics_claim(frame_amc=6002, lens_amc=10004))
    bound = send(
        world,
        "O-2",
        *optics_claim(frame_amc=6002, lens_amc=10004),
        agreement=answer.agreement_number,
    )
    reused = send(
        world, "O-3", *optics_claim(frame_amc=10, lens_amc=10), agreement=answer.agreement_number
    )
    run(world)
    assert decisions(world, missing) == [("rejected", 0, "prior_auth.missing")] * 2
    assert decisions(world, bound) == [("accepted", 6002, None), ("accepted", 10004, None)]
    assert decisions(world, reused) == [("rejected", 0, "prior_auth.already_used")] * 2


def test_an_invoice_above_its_agreement_is_reduced_to_it(world: World) -> None:
    quote = optics_quote()
    cheap = replace(quote[0], billed_cents=4000)  # a 40 € frame: 39,97 € guaranteed
    answer, _ = request_prior_auth(
        world.platform,
        world.principal,
        PriorAuthRequest(world.people[1].card, CARE_DAY, "quote-2", (cheap,)),
    )
    other, _ = request_prior_auth(
        world.platform,
        world.principal,
        PriorAuthRequest(world.people[2].card, CARE_DAY, "quote-3", (quote[0],)),
    )
    frame = optics_claim(frame_amc=6002, lens_amc=0)[0]
    # The invoice's frame costs more than the quoted one: the contract would pay more.
    dearer = replace(frame, billed_cents=15000, amc_requested_cents=6002)
    over = send(world, "A-1", dearer, person=1, agreement=answer.agreement_number)
    wrong_person = send(world, "A-2", frame, person=1, agreement=other.agreement_number)
    old, _ = request_prior_auth(
        world.platform,
        world.principal,
        PriorAuthRequest(world.people[1].card, date(2026, 6, 1), "quote-4", (quote[0],)),
    )
    assert old.valid_until is not None
    assert old.valid_until < CARE_DAY
    expired = send(world, "A-3", frame, person=1, agreement=old.agreement_number)
    run(world)
    assert decisions(world, over) == [("reduced", 3997, "prior_auth.exceeded")]
    assert decisions(world, wrong_person) == [("rejected", 0, "prior_auth.mismatch")]
    assert decisions(world, expired) == [("rejected", 0, "prior_auth.expired")]


def test_one_posting_per_claim_with_an_accepted_amount(world: World) -> None:
    paid = send(world, "L-1", drug())
    nothing = send(world, "L-2", drug(amo_paid=900, amc=100))  # rejected: nothing to post
    run(world)
    run(world)
    with world.platform.engine.connect() as conn:
        references = conn.execute(
            select(ledger_postings.c.reference, ledger_postings.c.total_cents).where(
                ledger_postings.c.journal == "adjudication",
                ledger_postings.c.insurer_id == world.insurer.id,
            )
        ).all()
        assert ledger.check(conn).ok
        receivable = ledger.balance(
            conn, account(AccountKind.INSURER_RECEIVABLE, world.insurer.amc_number)
        )
    assert references == [(f"claim:{world.insurer.id}:{paid}:v1", 350)]
    assert receivable == 350
    assert nothing != paid


def snapshot(world: World) -> list[tuple[object, ...]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(
                claim_lines.c.claim_id,
                claim_lines.c.line_no,
                claim_lines.c.status,
                claim_lines.c.amc_accepted_cents,
                claim_lines.c.reason_code,
                claim_lines.c.rules,
            )
            .where(claim_lines.c.insurer_id == world.insurer.id)
            .order_by(claim_lines.c.claim_id, claim_lines.c.line_no)
        )
        return [tuple(row) for row in rows]


def test_the_same_claims_get_the_same_decisions(world: World) -> None:
    for n in range(1, 6):
        send(world, f"S-{n}", device(n), drug(act=f"34009300{n:05d}"), person=n % 3)
    send(world, "S-6", drug(act="3400930000001"), person=1)
    send(world, "S-7", drug(act="3400930000001"), person=1)  # duplicate of S-6
    run(world)
    first = snapshot(world)
    assert len(first) == 12
    # Put every claim back as received, forget the counters, and judge again.
    with world.platform.engine.begin() as conn:
        conn.execute(
            update(claims).where(claims.c.insurer_id == world.insurer.id).values(status="received")
        )
        conn.execute(
            update(claim_lines)
            .where(claim_lines.c.insurer_id == world.insurer.id)
            .values(status="received", amc_accepted_cents=0, reason_code=None, rules=None)
        )
        conn.execute(
            delete(benefit_counters).where(benefit_counters.c.insurer_id == world.insurer.id)
        )
    run(world)
    assert snapshot(world) == first


def test_the_worker_adjudicates_in_the_background(world: World) -> None:
    claim = send(world, "J-1", drug())
    worker = AdjudicationWorker(world.platform, interval_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while get_claim(world.platform, world.principal, claim).status != "adjudicated":
            assert time.monotonic() < deadline, "the worker did not adjudicate"
            time.sleep(0.05)
    finally:
        worker.stop()
    assert worker.runs >= 1
    assert decisions(world, claim) == [("accepted", 350, None)]


def test_two_workers_never_take_the_same_claim(world: World, engine_name: str) -> None:
    if engine_name != "postgres":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite runs one worker")
    for n in range(12):
        send(world, f"T-{n}", drug(act=f"34009301{n:05d}"), person=n % 3)
    engine = world.platform.engine
    # Two open transactions are handed different claims.
    with engine.connect() as a, engine.connect() as b, a.begin(), b.begin():
        first = store.claim_batch(a, 5, insurer_id=world.insurer.id)
        second = store.claim_batch(b, 5, insurer_id=world.insurer.id)
        assert len(first) == len(second) == 5
        assert not {c.id for c in first} & {c.id for c in second}
    # Two workers running side by side judge every claim exactly once.
    runs: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            done = adjudicate_pending(
                world.platform, insurer_amc=world.insurer.amc_number, batch_size=2
            )
            runs.append(done.claims)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(runs) == 12
    with engine.connect() as conn:
        postings = conn.execute(
            select(func.count()).where(
                ledger_postings.c.journal == "adjudication",
                ledger_postings.c.insurer_id == world.insurer.id,
            )
        ).scalar_one()
    assert postings == 12


def test_claims_given_back_behind_the_run_are_still_judged(world: World, engine_name: str) -> None:
    """A run reads the queue past the last claim it took; claims another worker held and
    gave back behind that point are judged by the run's last look from the start."""
    if engine_name != "postgres":
        pytest.skip("only SKIP LOCKED can leave claims behind a run; SQLite runs one worker")
    for n in range(8):
        send(world, f"G-{n}", drug(act=f"34009302{n:05d}"), person=n % 3)
    engine = world.platform.engine
    holder = engine.connect()
    holding = holder.begin()
    held = store.claim_batch(holder, 2, insurer_id=world.insurer.id)
    assert len(held) == 2
    batches: list[BatchResult] = []

    def give_back(batch: BatchResult) -> None:
        batches.append(batch)
        if holding.is_active:
            holding.rollback()  # the other worker gives its two claims back

    try:
        done = adjudicate_pending(
            world.platform, insurer_amc=world.insurer.amc_number, batch_size=2, progress=give_back
        )
    finally:
        holder.close()
    assert done.claims == 8
    assert sum(b.claims for b in batches) == 8
    for claim in held:
        assert decisions(world, claim.id) == [("accepted", 350, None)]


def _beneficiary_of(world: World, claim_id: int) -> int:
    with world.platform.engine.connect() as conn:
        return int(
            conn.execute(
                select(claims.c.beneficiary_id).where(
                    claims.c.insurer_id == world.insurer.id, claims.c.id == claim_id
                )
            ).scalar_one()
        )


def _status(world: World, claim_id: int) -> str:
    with world.platform.engine.connect() as conn:
        return str(
            conn.execute(
                select(claims.c.status).where(
                    claims.c.insurer_id == world.insurer.id, claims.c.id == claim_id
                )
            ).scalar_one()
        )


def test_a_person_held_elsewhere_waits_whole_for_a_later_batch(
    world: World, engine_name: str
) -> None:
    """A batch judges no claim of a person before an earlier one: when another worker
    holds the person's first claim (or their advisory lock), all of the person's claims
    of the batch are left received, the others judged."""
    if engine_name != "postgres":
        pytest.skip("only PostgreSQL runs workers side by side")
    first = send(world, "H-1", device(1), person=0)
    other = send(world, "H-2", device(2), person=1)
    second = send(world, "H-3", device(3), person=0)
    third = send(world, "H-4", device(4), person=2)
    engine = world.platform.engine
    with engine.connect() as holder, holder.begin():
        taken = store.claim_batch(holder, 1, insurer_id=world.insurer.id)
        assert [c.id for c in taken] == [first]
        # Another transaction reserving person 2's ceilings (a counter's calculation).
        store.lock_beneficiaries(holder, world.insurer.id, [_beneficiary_of(world, third)])
        batch = adjudicate_batch(world.platform, insurer_id=world.insurer.id, limit=10)
        assert (batch.claims, batch.deferred) == (1, 2)
        assert _status(world, other) == "adjudicated"
        assert _status(world, second) == _status(world, third) == "received"
    run(world)  # the holder gave everything back
    for claim_id in (first, other, second, third):
        assert decisions(world, claim_id) == [("accepted", 9000, None)]


def test_a_person_is_not_judged_past_a_claim_another_worker_holds(
    world: World, engine_name: str
) -> None:
    """A batch takes the received rows no one holds, so it can hold a person's first and
    third claims while another worker holds the second (the first left behind by an
    earlier batch, say): judging the third before the second would decide ceilings and
    duplicates out of order. The person's claims wait whole; the others are judged."""
    if engine_name != "postgres":
        pytest.skip("only PostgreSQL runs workers side by side")
    first = send(world, "G-1", device(1), person=0)
    second = send(world, "G-2", device(2), person=0)
    other = send(world, "G-3", device(3), person=1)
    third = send(world, "G-4", device(4), person=0)
    engine = world.platform.engine
    with engine.connect() as holder, holder.begin():
        # Another worker's batch holds the person's second claim only.
        holder.execute(
            select(claims.c.id)
            .where(claims.c.insurer_id == world.insurer.id, claims.c.id == second)
            .with_for_update()
        )
        batch = adjudicate_batch(world.platform, insurer_id=world.insurer.id, limit=10)
        assert (batch.claims, batch.deferred) == (1, 2)
        assert _status(world, other) == "adjudicated"
        assert _status(world, first) == _status(world, third) == "received"
    run(world)  # the holder gave the second claim back: all three in order
    for claim_id in (first, second, other, third):
        assert decisions(world, claim_id) == [("accepted", 9000, None)]


def _received_again(world: World) -> None:
    """Every claim of the world back to received, its counters forgotten."""
    with world.platform.engine.begin() as conn:
        conn.execute(
            update(claims).where(claims.c.insurer_id == world.insurer.id).values(status="received")
        )
        conn.execute(
            update(claim_lines)
            .where(claim_lines.c.insurer_id == world.insurer.id)
            .values(status="received", amc_accepted_cents=0, reason_code=None, rules=None)
        )
        conn.execute(
            delete(benefit_counters).where(benefit_counters.c.insurer_id == world.insurer.id)
        )


def _two_workers(world: World) -> tuple[list[int], list[BaseException]]:
    """Two runs side by side, each on its own connection, started together."""
    judged: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work() -> None:
        try:
            start.wait(10)
            done = adjudicate_pending(
                world.platform, insurer_amc=world.insurer.amc_number, batch_size=2
            )
            judged.append(done.claims)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return judged, errors


def test_two_workers_decide_as_one_with_ceilings_and_duplicates(
    world: World, engine_name: str
) -> None:
    """Two workers on two connections share three people's claims, whose decisions depend
    on their order (a yearly ceiling reached on the fifth device, duplicates refused after
    the first): the decisions are those of one worker alone."""
    if engine_name != "postgres":
        pytest.skip("only PostgreSQL runs workers side by side")
    for n in range(1, 7):
        for person in range(3):
            send(world, f"W-{person}-{n}", device(n), person=person)
            if n % 2 == 0:
                send(world, f"D-{person}-{n}", drug(act="3400930000001"), person=person)
    run(world)
    alone = snapshot(world)
    reasons = {row[4] for row in alone}
    assert {"ceiling.reached", "duplicate.same_provider"} <= reasons
    for round_no in range(3):
        _received_again(world)
        judged, errors = _two_workers(world)
        assert not errors
        assert sum(judged) == 27, (round_no, judged)
        assert snapshot(world) == alone, round_no


def test_a_claim_the_rules_cannot_judge_is_rejected_not_left_blocking(world: World) -> None:
    claim = send(world, "U-1", drug())
    # Given a catalogue version that no longer parses (a broken upload got through)
    with world.platform.engine.begin() as conn:
        conn.execute(
            catalogues.insert().values(
                insurer_id=world.insurer.id,
                version=2,
                document=json.dumps({"insurer": world.insurer.amc_number, "contracts": "x"}),
                digest="1" * 64,
                uploaded_at=world.platform.now(),
                uploaded_by="test",
            )
        )
    run(world)
    assert decisions(world, claim) == [("rejected", 0, "claim.unprocessable")]
    later = send(world, "U-2", drug(act="3400930000009"))
    run(world)
    assert decisions(world, later) == [("rejected", 0, "claim.unprocessable")]


@pytest.mark.parametrize("one_insurer", [False, True])
@pytest.mark.parametrize("past_a_claim", [False, True])
def test_the_queue_is_read_in_order_from_its_index(
    world: World, one_insurer: bool, past_a_claim: bool
) -> None:
    """The next received claims come from ``ix_claims_queue`` in order, without a sort and
    without stepping over the claims already judged (the old (insurer, status) index let
    SQLite walk the primary key: each batch cost grew with the claims judged before it)."""
    insurer_id = world.insurer.id if one_insurer else None
    after = (world.insurer.id, 1000) if past_a_claim else None
    with world.platform.engine.begin() as conn:
        plan = _plan(conn, *store.queue_query(conn, 1000, insurer_id, after))
    assert "ix_claims_queue" in plan, plan
    # A Merge Append of the partitions' ordered scans (PostgreSQL, migration 0018) names
    # its "Sort Key" but sorts nothing: only a Sort node would.
    assert not re.search(r"(^|->)\s*(Incremental )?Sort\s+\(", plan, re.MULTILINE), plan
    assert "TEMP B-TREE" not in plan, plan


def _plan(conn: Connection, sql: str, parameters: Sequence[object] = ()) -> str:
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        if conn.dialect.name == "postgresql":
            # A test database is tiny: without this the planner rightly prefers a scan.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), parameters)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())
    finally:
        cursor.close()


def test_queries_of_judged_claims_never_go_through_the_queue_index(world: World) -> None:
    """The queue index holds received claims only: a full (status, insurer, id) index
    drew SQLite's per-provider payment query into a scan of every adjudicated claim."""
    query = select(claims.c.id).where(
        claims.c.provider_id == world.provider.id, claims.c.status == "adjudicated"
    )
    with world.platform.engine.begin() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = _plan(conn, sql)
    assert "ix_claims_queue" not in plan, plan


def test_a_run_over_one_insurer_goes_on_only_after_one_of_its_claims(world: World) -> None:
    with world.platform.engine.begin() as conn, pytest.raises(ValueError, match="one insurer"):
        store.queue_query(conn, 10, world.insurer.id, (world.insurer.id + 1, 5))


def test_the_backlog_counts_received_claims_only(world: World) -> None:
    for n in range(3):
        send(world, f"P-{n}", drug(act=f"34009303{n:05d}"), person=n)
    amc = world.insurer.amc_number
    assert pending_claims(world.platform) == pending_claims(world.platform, amc) == 3
    run(world)
    assert pending_claims(world.platform, amc) == 0
    send(world, "P-9", drug(act="3400930399999"))
    assert pending_claims(world.platform, amc) == 1


def test_a_batch_pauses_cyclic_collection_and_gives_it_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierspayant.services import adjudication as service

    seen: list[bool] = []
    send(world, "GC-1", drug())
    # Inside the batch's transaction the collector is off: watched through the rules'
    # encoding (the real one, called through), which runs once per line judged.
    encode = store.rules_json

    def watching(rules: tuple[str, ...]) -> str:
        seen.append(gc.isenabled())
        return encode(rules)

    monkeypatch.setattr(store, "rules_json", watching)
    run(world)
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        with service._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left off, as the caller had it
    finally:
        gc.enable()


def test_a_run_stuck_behind_a_held_claim_ends_and_leaves_it_for_the_next(
    world: World, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that keeps a person's first claim (a stuck session) does not keep the
    run waiting for ever: past its patience it ends, the person's later claim still
    received, judged by the next run once the first is."""
    if engine_name != "postgres":
        pytest.skip("only PostgreSQL runs workers side by side")
    from tierspayant.services import adjudication as service

    monkeypatch.setattr(service, "DEFERRED_PATIENCE", 0.3)
    first = send(world, "S-1", device(1), person=0)
    later = send(world, "S-2", device(2), person=0)
    with world.platform.engine.connect() as holder, holder.begin():
        assert [c.id for c in store.claim_batch(holder, 1, insurer_id=world.insurer.id)] == [first]
        started = time.monotonic()
        done = adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
        assert time.monotonic() - started < 10
        assert (done.claims, _status(world, later)) == (0, "received")
        assert done.deferred >= 2
    run(world)
    assert decisions(world, first) == decisions(world, later) == [("accepted", 9000, None)]
