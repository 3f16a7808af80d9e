"""Receiving invoices: stored once, replays answered, corrections, cancellation, ownership,
guard and audit records, and claim files (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from tests.conftest import SeededInsurer
from tests.integration.claims_world import (
    CARE_DAY,
    World,
    build_world,
    drug,
    submission,
)
from tests.money_support import next_pay_day
from tierspayant.app.platform import Platform
from tierspayant.domain.ledger import AccountKind, account
from tierspayant.formats.claims import ClaimRecord, FileCard, claim_json
from tierspayant.security.guard import context_for
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import (
    cancel_claim,
    get_claim,
    import_claims_file,
    submit_claim,
)
from tierspayant.services.errors import Conflict, NotFound
from tierspayant.services.payments import run_payments
from tierspayant.store import ledger
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.payments import claim_is_paid
from tierspayant.store.tables import audit_events


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    return build_world(platform, seed_insurer, tmp_path)


def count_claims(conn: Connection, world: World) -> int:
    query = select(func.count()).where(claims.c.insurer_id == world.insurer.id)
    return int(conn.execute(query).scalar_one())


def payable(world: World) -> int:
    with world.platform.engine.connect() as conn:
        return -ledger.balance(conn, account(AccountKind.PROVIDER_PAYABLE, world.provider.id))


def test_a_claim_is_received_then_adjudicated(world: World) -> None:
    # Given a drug at 65 % on BR 10.00 € (example 5 of DOMAIN.md, one box)
    receipt = submit_claim(world.platform, world.principal, submission(world.people[0], "F-1"))
    assert receipt.created
    assert receipt.status == "received"
    # When adjudication runs
    run = adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    # Then the ticket modérateur (3.50 €) is accepted and owed to the provider
    assert (run.claims, run.lines) == (1, 1)
    view = get_claim(world.platform, world.principal, receipt.claim_id)
    assert view.status == "adjudicated"
    assert [line.status for line in view.lines] == ["accepted"]
    assert view.amc_accepted_cents == 350
    assert payable(world) == 350


def test_the_same_invoice_twice_answers_the_first_receipt(world: World) -> None:
    first = submit_claim(world.platform, world.principal, submission(world.people[0], "F-2"))
    again = submit_claim(world.platform, world.principal, submission(world.people[0], "F-2"))
    assert not again.created
    assert again.claim_id == first.claim_id
    with world.platform.engine.connect() as conn:
        assert count_claims(conn, world) == 1


def test_another_invoice_under_a_used_number_is_refused(world: World) -> None:
    submit_claim(world.platform, world.principal, submission(world.people[0], "F-3"))
    with pytest.raises(Conflict) as refused:
        submit_claim(
            world.platform, world.principal, submission(world.people[0], "F-3", drug(br=2000))
        )
    assert refused.value.code == "claim.number_reused"


def test_a_correction_before_adjudication_replaces_the_claim(world: World) -> None:
    first = submit_claim(world.platform, world.principal, submission(world.people[0], "F-4"))
    fixed = submit_claim(
        world.platform,
        world.principal,
        submission(world.people[0], "F-4", drug(br=2000), correction=True),
    )
    assert fixed.created
    assert fixed.version == 2
    assert fixed.claim_id != first.claim_id
    assert get_claim(world.platform, world.principal, first.claim_id).status == "superseded"
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    assert get_claim(world.platform, world.principal, fixed.claim_id).amc_accepted_cents == 700
    assert payable(world) == 700


def test_a_correction_after_adjudication_reverses_the_first_posting(world: World) -> None:
    first = submit_claim(world.platform, world.principal, submission(world.people[0], "F-5"))
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    assert payable(world) == 350
    fixed = submit_claim(
        world.platform,
        world.principal,
        submission(world.people[0], "F-5", drug(br=2000), correction=True),
    )
    # The first version's 3.50 € is reversed at once; the new one is owed once judged.
    assert payable(world) == 0
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    assert payable(world) == 700
    old = get_claim(world.platform, world.principal, first.claim_id)
    assert old.status == "superseded"
    assert {line.status for line in old.lines} == {"cancelled"}
    assert get_claim(world.platform, world.principal, fixed.claim_id).version == 2
    with world.platform.engine.connect() as conn:
        assert ledger.check(conn).ok


def test_cancellation_before_payment(world: World) -> None:
    receipt = submit_claim(world.platform, world.principal, submission(world.people[0], "F-6"))
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    view = cancel_claim(world.platform, world.principal, receipt.claim_id)
    assert view.status == "cancelled"
    assert payable(world) == 0
    # Cancelling again changes nothing; a correction of a cancelled invoice is refused.
    assert cancel_claim(world.platform, world.principal, receipt.claim_id).status == "cancelled"
    assert payable(world) == 0
    with pytest.raises(Conflict) as refused:
        submit_claim(
            world.platform,
            world.principal,
            submission(world.people[0], "F-6", drug(br=2000), correction=True),
        )
    assert refused.value.code == "claim.cancelled"


def test_only_the_sending_provider_sees_or_cancels_a_claim(world: World) -> None:
    receipt = submit_claim(world.platform, world.principal, submission(world.people[0], "F-7"))
    _, intruder = world.add_provider("other")
    for action in (get_claim, cancel_claim):
        with pytest.raises(NotFound) as hidden:
            action(world.platform, intruder, receipt.claim_id)
        assert hidden.value.code == "claim.unknown"
    with pytest.raises(NotFound) as unknown:
        get_claim(world.platform, world.principal, receipt.claim_id + 1000)
    assert (unknown.value.code, unknown.value.message) == (
        hidden.value.code,
        hidden.value.message,
    )


def test_an_unknown_card_is_stored_and_rejected_like_no_rights(world: World) -> None:
    stranger = replace(world.people[0], card=replace(world.people[0].card, birth_rank=2))
    receipt = submit_claim(world.platform, world.principal, submission(stranger, "F-8"))
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    view = get_claim(world.platform, world.principal, receipt.claim_id)
    assert [(line.status, line.reason_code) for line in view.lines] == [("rejected", "rights.none")]
    assert payable(world) == 0


def test_invoices_are_recorded_in_the_guard_and_audited(world: World) -> None:
    submit_claim(world.platform, world.principal, submission(world.people[0], "F-9"))
    submit_claim(world.platform, world.principal, submission(world.people[1], "F-10"))
    guard = world.platform.guard
    assert guard is not None
    structure = context_for(
        world.principal, category="x", with_proof=False, at=world.platform.now()
    ).structure
    assert guard.counters.count_distinct(f"inv:{structure}:{CARE_DAY}") == 2
    with world.platform.engine.connect() as conn:
        events = conn.execute(
            select(audit_events.c.action, audit_events.c.subject).where(
                audit_events.c.action == "claim.receive",
                audit_events.c.insurer == world.insurer.amc_number,
            )
        ).all()
    assert len(events) == 2
    assert all(subject for _, subject in events)


def test_claim_lines_keep_no_identity(world: World) -> None:
    person = world.people[0]
    submit_claim(world.platform, world.principal, submission(person, "F-11"))
    assert person.card.nir is not None
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(claims, claim_lines).join(claim_lines, claim_lines.c.claim_id == claims.c.id)
        ).all()
    flat = " ".join(str(value) for row in rows for value in row)
    assert person.card.nir not in flat
    assert person.birth.isoformat() not in flat


def write_file(world: World, path: Path, invoices: int, bad: dict[int, str]) -> None:
    """A claim file of ``invoices`` good lines, with ``bad`` lines replaced (1-based)."""
    lines = []
    for n in range(1, invoices + 1):
        if n in bad:
            lines.append(bad[n])
            continue
        person = world.people[n % len(world.people)]
        record = ClaimRecord(
            line_no=n,
            card=FileCard(person.card.amc_number, person.card.birth_date, person.card.nir, 1, None),
            content=submission(person, f"B-{n}", drug(act=f"34009300{n:05d}")).content,
            correction=False,
        )
        lines.append(claim_json(record))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_claim_file_applies_good_lines_and_reports_bad_ones(world: World, tmp_path: Path) -> None:
    path = tmp_path / "claims.jsonl"
    bad = {
        3: "{not json",
        5: json.dumps({"invoice_number": "X-5", "card": {}, "lines": []}),
        7: '{"invoice_number": "B-7", "colour": "blue"}',
    }
    write_file(world, path, 10, bad)
    report = tmp_path / "errors.csv"
    summary = import_claims_file(
        world.platform, path, world.provider.am_number, error_report=report
    )
    assert (summary.lines, summary.received, summary.replayed) == (10, 7, 0)
    assert [line for line, _, _ in summary.rejected] == [3, 5, 7]
    assert [code for _, code, _ in summary.rejected] == [
        "file.json",
        "file.lines",
        "file.unknown_field",
    ]
    assert report.read_text(encoding="utf-8").splitlines()[0] == "\ufeffligne;code;message"
    # A rerun of the same file stores nothing new.
    again = import_claims_file(world.platform, path, world.provider.am_number)
    assert (again.received, again.replayed, len(again.rejected)) == (0, 7, 3)
    with world.platform.engine.connect() as conn:
        assert count_claims(conn, world) == 7
    run = adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    assert run.claims == 7
    assert payable(world) == 7 * 350


def test_a_correction_of_a_paid_claim_makes_the_paid_amount_undue(
    world: World, tmp_path: Path
) -> None:
    first = submit_claim(world.platform, world.principal, submission(world.people[0], "F-12"))
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    summary = run_payments(world.platform, next_pay_day(world.platform), out_dir=tmp_path / "pay")
    assert world.provider.am_number not in summary.waiting_for_iban
    with world.platform.engine.connect() as conn:
        assert claim_is_paid(conn, world.insurer.id, first.claim_id)
    with pytest.raises(Conflict) as paid:
        cancel_claim(world.platform, world.principal, first.claim_id)
    assert paid.value.code == "claim.already_paid"
    fixed = submit_claim(
        world.platform,
        world.principal,
        submission(world.people[0], "F-12", drug(br=2000), correction=True),
    )
    assert get_claim(world.platform, world.principal, first.claim_id).status == "superseded"
    with world.platform.engine.connect() as conn:
        overpaid = ledger.balance(conn, account(AccountKind.PROVIDER_OVERPAID, world.provider.id))
        assert ledger.check(conn).ok
    assert overpaid == 350  # the provider owes back what the first version was paid
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    assert get_claim(world.platform, world.principal, fixed.claim_id).amc_accepted_cents == 700


def test_an_invoice_received_through_the_guard_says_whether_the_card_proof_came_with_it(
    world: World,
) -> None:
    """The guard's counters are rebuilt from these events after an empty restart
    (``security/guard/restore.py``): an invoice without the flag would be read back as a
    lookup without card proof, whatever came with it."""
    receipt = submit_claim(world.platform, world.principal, submission(world.people[0], "F-P"))
    with world.platform.engine.connect() as conn:
        detail = conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.action == "claim.receive",
                audit_events.c.detail.contains(f'"claim":{receipt.claim_id}'),
            )
        ).scalar_one()
    assert json.loads(detail)["proof"] is False
