"""Break-glass: reason, time limit, scope, second approver for bulk, audit, DPO notice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from tests.integration.operations_support import NOW, Person, SeedInsurer, enrol
from tierspayant.app.platform import Platform
from tierspayant.services import breakglass
from tierspayant.services.breakglass import GrantScope
from tierspayant.services.errors import Conflict, Forbidden, NotFound, ServiceError
from tierspayant.store.tables import audit_events

ALICE = "operator:alice"
BOB = "operator:bob"
REASON = "ticket SUP-4521: member disputes a refused claim"


@pytest.fixture
def world(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> tuple[Platform, str, list[Person]]:
    platform.clock = lambda: NOW
    insurer, people = enrol(platform, seed_insurer, tmp_path, 3, seed=21)
    return platform, insurer.amc_number, people


def _actions(platform: Platform, actor: str) -> list[tuple[str, str]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.decision)
            .where(audit_events.c.actor == actor)
            .order_by(audit_events.c.seq)
        ).all()
    return [(a, d) for a, d in rows]


def test_given_a_one_beneficiary_grant_then_usable_at_once_masked_and_audited(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, people = world
    with capture_logs() as logs:
        grant = breakglass.request_grant(
            platform, ALICE, REASON, GrantScope.BENEFICIARY, 2, insurer_amc=amc, beneficiary_id=2
        )
    assert grant.status == "active"
    identity = breakglass.reveal_beneficiary(platform, grant.id, ALICE)
    person = people[1]
    assert (identity.last_name, identity.first_name) == (person.last_name, person.first_name)
    assert identity.nir.endswith("** ** *** *** **")
    assert person.nir not in identity.nir
    assert _actions(platform, ALICE)[-2:] == [
        ("breakglass.request", "allow"),
        ("breakglass.reveal", "allow"),
    ]
    notice = Path(str(grant.dpo_notice))
    text = notice.read_text(encoding="utf-8")
    assert "Motif : " + REASON in text
    assert person.nir not in text
    assert person.last_name not in text
    assert any(entry["event"] == "breakglass.dpo_notice" for entry in logs)


def test_given_a_grant_of_alice_when_bob_uses_it_then_refused(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    grant = breakglass.request_grant(
        platform, ALICE, REASON, GrantScope.BENEFICIARY, 1, insurer_amc=amc, beneficiary_id=1
    )
    with pytest.raises(Forbidden) as refused:
        breakglass.reveal_beneficiary(platform, grant.id, BOB)
    assert refused.value.code == "breakglass.no_grant"


def test_given_an_expired_grant_then_refused(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    grant = breakglass.request_grant(
        platform, ALICE, REASON, GrantScope.BENEFICIARY, 1, insurer_amc=amc, beneficiary_id=1
    )
    platform.clock = lambda: NOW + timedelta(hours=1, seconds=1)
    with pytest.raises(Forbidden):
        breakglass.reveal_beneficiary(platform, grant.id, ALICE)
    assert grant.id not in {g.id for g in breakglass.list_grants(platform, usable_only=True)}


def test_given_a_bulk_grant_then_it_waits_for_a_different_approver(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, _, _ = world
    grant = breakglass.request_grant(platform, ALICE, REASON, GrantScope.BULK, 4)
    assert grant.status == "pending"
    assert grant.id not in {g.id for g in breakglass.list_grants(platform, usable_only=True)}
    with pytest.raises(Forbidden) as same:
        breakglass.approve_grant(platform, grant.id, ALICE)
    assert same.value.code == "breakglass.second_approver_required"
    with pytest.raises(Forbidden):
        breakglass.approve_grant(platform, grant.id, "insurer:carol")
    approved = breakglass.approve_grant(platform, grant.id, BOB)
    assert (approved.status, approved.approver) == ("active", BOB)
    assert grant.id in {g.id for g in breakglass.list_grants(platform, usable_only=True)}
    with pytest.raises(Conflict):
        breakglass.approve_grant(platform, grant.id, "operator:dave")
    assert _actions(platform, BOB)[-1] == ("breakglass.approve", "allow")
    notice = Path(str(approved.dpo_notice)).read_text(encoding="utf-8")
    assert "Approuvé par : operator:bob" in notice
    closed = breakglass.close_grant(platform, grant.id, ALICE)
    assert not closed.usable_at(platform.now())


def test_given_a_bulk_grant_approved_too_late_then_refused(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, _, _ = world
    grant = breakglass.request_grant(platform, ALICE, REASON, GrantScope.EXPORT, 1)
    platform.clock = lambda: NOW + timedelta(hours=2)
    with pytest.raises(Conflict) as late:
        breakglass.approve_grant(platform, grant.id, BOB)
    assert late.value.code == "breakglass.expired"


@pytest.mark.parametrize(
    ("actor", "reason", "hours", "code"),
    [
        ("staff:alice", REASON, 2, "auth.forbidden"),
        (ALICE, "because", 2, "breakglass.reason"),
        (ALICE, REASON, 0, "breakglass.duration"),
        (ALICE, REASON, 73, "breakglass.duration"),
    ],
)
def test_given_a_bad_request_then_refused_with_its_code(
    world: tuple[Platform, str, list[Person]], actor: str, reason: str, hours: int, code: str
) -> None:
    platform, _, _ = world
    with pytest.raises(ServiceError) as refused:
        breakglass.request_grant(platform, actor, reason, GrantScope.BULK, hours)
    assert refused.value.code == code


def test_given_a_one_beneficiary_grant_for_nobody_then_refused(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    with pytest.raises(NotFound):
        breakglass.request_grant(
            platform, ALICE, REASON, GrantScope.BENEFICIARY, 1, insurer_amc=amc, beneficiary_id=99
        )
    with pytest.raises(ServiceError) as missing:
        breakglass.request_grant(platform, ALICE, REASON, GrantScope.BENEFICIARY, 1)
    assert missing.value.code == "breakglass.target"
