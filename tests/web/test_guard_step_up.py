"""The guard's step-up, end to end in the provider portal: a professional logs in with
Pro Santé Connect, checks rights without the patient's card until the guard asks for a
step-up, logs in again (a fresh CPS/e-CPS login) and goes on; the satisfied step-up is in
the audit log, and the hard limit on people answered without card proof still holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.web.portal_client import PortalClient
from tests.web.world import World, build_world
from tierspayant.security.guard import ActorKind, LookupContext, LookupOutcome, Verdict
from tierspayant.security.oidc import OidcIdentity
from tierspayant.services import accounts
from tierspayant.services.errors import ServiceError
from tierspayant.store.tables import audit_events

POLICY = {"no_proof_watch": 1, "no_proof_soft": 2, "no_proof_hard": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(
        tmp_path_factory.mktemp("step-up"),
        env={"TIERSPAYANT_GUARD_POLICY": json.dumps(POLICY)},
        beneficiaries=8,
    )
    try:
        yield built
    finally:
        built.platform.close()


def _check(client: PortalClient, card: dict[str, str]) -> str:
    form = {k: card[k] for k in ("amc_number", "nir", "birth_rank", "birth_date")}
    response = client.post("/portail/prestataire/droits", {**form, "domains": ["PHAR"]})
    assert "Formulaire expiré" not in response.text
    return response.text


def _actions(world: World, principal: str) -> list[tuple[str, dict[str, object]]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.detail)
            .where(audit_events.c.actor == principal)
            .order_by(audit_events.c.seq)
        ).all()
    return [
        (r.action, json.loads(r.detail) if isinstance(r.detail, str) else r.detail) for r in rows
    ]


def _login_again(world: World, *, amr: tuple[str, ...], age: timedelta) -> accounts.Session:
    now = world.clock()
    identity = OidcIdentity(
        "https://psc.example", f"psc-{world.rpps}", world.rpps, "eidas2", amr, now - age
    )
    return accounts.login_oidc(world.platform, identity)


def test_a_fresh_strong_login_satisfies_the_step_up_and_hard_limits_still_hold(
    world: World,
) -> None:
    client = PortalClient(world)
    principal = client.login_provider()
    cards = world.other_cards
    # Given two people answered without card proof, the third lookup asks for step-up
    for card in cards[:2]:
        assert "Vérification renforcée" not in _check(client, card)
    assert "Vérification renforcée demandée" in _check(client, cards[2])
    # A stale login (an SSO session reused, not a new authentication) or a password-only
    # one does not satisfy it
    _login_again(world, amr=("pop",), age=timedelta(minutes=30))
    _login_again(world, amr=("pwd",), age=timedelta(seconds=5))
    assert "Vérification renforcée demandée" in _check(client, cards[2])
    assert not [a for a, _ in _actions(world, principal) if a == "guard.step_up_satisfied"]
    # When the professional logs in again with the CPS card
    fresh = _login_again(world, amr=("pop",), age=timedelta(seconds=5))
    client.http.cookies.set("tp_session", fresh.token)
    client.get("/portail/prestataire/")
    # Then the lookups go on, and the satisfied step-up is audited with its factor
    assert "Vérification renforcée" not in _check(client, cards[2])
    satisfied = [d for a, d in _actions(world, principal) if a == "guard.step_up_satisfied"]
    assert len(satisfied) == 1
    assert (satisfied[0]["factor"], satisfied[0]["amr"]) == ("oidc", "pop")
    # And the hard limit is never waived: the 4th person answered suspends the account
    guard = world.platform.guard
    assert guard is not None
    for card in cards[3:]:
        if guard.suspended(principal):
            break
        _check(client, card)
    assert guard.suspended(principal)
    checks = [a for a, _ in _actions(world, principal) if a == "eligibility.check"]
    assert len(checks) <= POLICY["no_proof_hard"] + 1  # one lookup may be a miss
    # The step-up lasts 15 minutes (the guard's view)
    assert guard.step_up_active(principal, world.clock())
    assert not guard.step_up_active(principal, world.clock() + timedelta(minutes=16))


def test_a_totp_code_re_entered_satisfies_a_step_up_of_a_local_account(world: World) -> None:
    # Given a password + TOTP account logged in, and the guard asking it for a step-up
    login = world.logins["staff"]
    platform = world.platform
    challenge = accounts.begin_login(platform, login.login, login.password)
    session = accounts.complete_mfa(platform, challenge.challenge_id, totp_code=world.code("staff"))
    principal = session.principal.id
    guard = platform.guard
    assert guard is not None
    now = world.clock()
    for i in range(3):
        ctx = LookupContext(
            principal, ActorKind.HUMAN, "990000001", "pharmacy", False, now + timedelta(seconds=i)
        )
        if guard.admit(ctx).allowed:
            guard.observe(ctx, LookupOutcome.hit(f"totp-person-{i}"))
    assert (
        guard.admit(
            LookupContext(principal, ActorKind.HUMAN, "990000001", "pharmacy", False, now)
        ).verdict
        is Verdict.STEP_UP
    )
    # When it re-enters a TOTP code (a wrong one first: refused, nothing waived)
    with pytest.raises(ServiceError):
        accounts.step_up(platform, session.token, totp_code="000000")
    assert not guard.step_up_active(principal, world.clock())
    accounts.step_up(platform, session.token, totp_code=world.code("staff"))
    # Then the soft limit is waived, and the satisfied step-up is audited
    assert guard.step_up_active(principal, world.clock())
    satisfied = [d for a, d in _actions(world, principal) if a == "guard.step_up_satisfied"]
    assert [d["factor"] for d in satisfied] == ["totp"]
