"""Containment over HTTP, on SQLite and PostgreSQL: a switch approved by two operators
refuses lookups without card proof (403 ``containment.card_proof_required``) or all
lookups (503 ``containment.off``) of its scope, in the same body whoever the card
names, as an OperationOutcome under /fhir; lookups with card proof go on; lifting it
(two operators again) restores the service. Each step and each refusal is audited.
"""

from __future__ import annotations

import ast
import json
import time
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tests.api.fhir_support import FHIR, eligibility_request, outcome_code
from tests.api.test_card_proof_api import Counter, flip, holders
from tests.integration.test_cards import Person, World, issue, make_world
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform, open_platform
from tierspayant.demo.synthetic import nir_key
from tierspayant.domain.containment import PROPOSAL_VALIDITY, SwitchState
from tierspayant.formats import card_pdf
from tierspayant.formats.fhir import systems
from tierspayant.services import cards, containment
from tierspayant.services.errors import Conflict, Forbidden, NotFound
from tierspayant.store import containment as store
from tierspayant.store.tables import audit_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ALICE, BOB, CAROL = "operator:alice", "operator:bob", "operator:carol"
SRC = Path(__file__).resolve().parents[2] / "src" / "tierspayant"


@pytest.fixture
def carded(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, list[tuple[Person, str]], TestClient]:
    printed: list[card_pdf.CardPrint] = []
    real = card_pdf.write_card

    def spy(card: card_pdf.CardPrint, directory: Path) -> Path:
        printed.append(card)
        return real(card, directory)

    monkeypatch.setattr(cards, "write_card", spy)
    world = make_world(platform, tmp_path, count=12, seed=5)
    issue(world, printed)
    return world, holders(world, printed), TestClient(create_app(platform))


@pytest.fixture(autouse=True)
def lift_everything(platform: Platform) -> Iterator[None]:
    """The PostgreSQL database serves the whole module: lift what a test left in force."""
    yield
    for view in containment.status(platform):
        switch = view.switch
        if switch.state is SwitchState.ACTIVE:
            switch = containment.propose_lift(platform, CAROL, switch.id, "end of the test")
        if switch.state is SwitchState.LIFT_PROPOSED:
            approver = BOB if switch.lift_proposer != BOB else ALICE
            containment.approve(platform, approver, switch.id)


def switch_on(platform: Platform, scope: str, mode: str) -> int:
    proposed = containment.propose(platform, ALICE, scope, mode, "phishing campaign on pharmacies")
    return containment.approve(platform, BOB, proposed.id).id


def fhir_check(counter: Counter, world: World, person: Person, proof: str | None) -> Any:
    card = {"amc_number": world.amc, "nir": person.nir, "birth_rank": person.birth_rank,
            "birth_date": person.birth_date}  # fmt: skip
    resource = eligibility_request(card, ["PHAR"], counter.platform.today())
    if proof is not None:
        resource["extension"] = [{"url": systems.CARD_PROOF, "valueString": proof}]
    return counter.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=json.dumps(resource),
        headers={**counter.headers, "Content-Type": FHIR},
    )


def actions(platform: Platform, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.actor, audit_events.c.detail)
            .where(audit_events.c.action.like(f"{prefix}%"))
            .order_by(audit_events.c.seq)
        )
        return [(str(a), str(who), json.loads(d)) for a, who, d in rows]


def test_given_card_proof_only_then_card_holders_are_served_and_others_refused_alike(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    counter = Counter(platform, client)
    (alice, alice_qr), (bob, _) = pairs[:2]
    stranger = Person("Z", "1800175001001" + nir_key("1800175001001"), 1, "1980-01-01")
    # Given a proposal for the whole platform: not in force until a second operator approves
    proposed = containment.propose(
        platform, ALICE, "platform", "card_proof_only", "phishing campaign on pharmacies"
    )
    assert counter.check(world, bob, None).status_code == 200
    with pytest.raises(Forbidden) as itself:
        containment.approve(platform, ALICE, proposed.id)
    assert itself.value.code == "containment.second_operator_required"
    # When a second operator approves
    containment.approve(platform, BOB, proposed.id)
    # Then a lookup with the card's code is answered, on /v1 and on /fhir
    assert counter.check(world, alice, alice_qr).status_code == 200
    assert fhir_check(counter, world, alice, alice_qr).status_code == 200
    # And without it, one refusal whoever the card names: a member, a stranger
    refusals = [counter.check(world, person, None) for person in (alice, bob, stranger)]
    assert {r.status_code for r in refusals} == {403}
    assert {r.text for r in refusals} == {refusals[0].text}
    assert refusals[0].json()["error"]["code"] == "containment.card_proof_required"
    # And a code that is not the patient's card reaches the usual verification, no answer
    misread = counter.check(world, alice, "TP1:" + "A" * 12)
    assert misread.json()["error"]["code"] == "card.misread"
    forger = Counter(platform, client)
    forged = forger.check(world, alice, flip(alice_qr, 40))
    assert forged.json()["error"]["code"] == "card.proof_invalid"
    by_fhir = fhir_check(counter, world, bob, None)
    assert by_fhir.status_code == 403
    assert outcome_code(by_fhir) == "containment.card_proof_required"
    # And each refusal is audited with the switch that made it, nothing about a person
    refused = [
        (who, detail)
        for _, who, detail in actions(platform, "lookup.refused")
        if who == counter.principal and detail.get("switch") == proposed.id
    ]
    assert len(refused) == 4
    assert all(who == counter.principal for who, _ in refused)
    # When lifted by two operators (the one who asks cannot approve)
    containment.propose_lift(platform, CAROL, proposed.id, "compromised accounts revoked")
    assert counter.check(world, bob, None).status_code == 403  # still in force
    with pytest.raises(Forbidden):
        containment.approve(platform, CAROL, proposed.id)
    containment.approve(platform, ALICE, proposed.id)
    # Then lookups without card proof are answered again
    assert counter.check(world, bob, None).status_code == 200
    assert [(a, who) for a, who, _ in actions(platform, "containment.")] == [
        ("containment.propose", ALICE),
        ("containment.approve", BOB),
        ("containment.lift_propose", CAROL),
        ("containment.lift", ALICE),
    ]


def test_given_a_route_off_then_that_route_answers_503_and_the_others_go_on(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    counter = Counter(platform, client)
    person, qr = pairs[0]
    # Given calculations switched off
    switch_id = switch_on(platform, "route:calculation", "off")
    # Then a calculation is refused even with the card's code, a rights check is not
    calculation = counter.calculate(world, person, qr)
    assert calculation.status_code == 503
    assert calculation.json()["error"]["code"] == "containment.off"
    assert counter.check(world, person, qr).status_code == 200
    assert counter.check(world, person, None).status_code == 200
    # Given the pharmacies' category card-proof-only on top
    switch_on(platform, "category:pharmacy", "card_proof_only")
    assert counter.check(world, person, None).json()["error"]["code"] == (
        "containment.card_proof_required"
    )
    assert counter.check(world, person, qr).status_code == 200
    assert counter.calculate(world, person, qr).json()["error"]["code"] == "containment.off"
    # And another insurer's scope leaves this one alone
    switch_on(platform, "insurer:99999999", "off")
    assert counter.check(world, person, qr).status_code == 200
    assert any(d.get("switch") == switch_id for _, _, d in actions(platform, "lookup.refused"))


def test_given_a_switch_made_by_another_process_then_it_is_enforced_within_a_second(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    counter = Counter(platform, client)
    person, _ = pairs[0]
    assert counter.check(world, person, None).status_code == 200  # the cache holds "none"
    # Given a second platform on the same database (another process: the CLI, a worker)
    other = open_platform(platform.settings)
    try:
        # When it switches the platform off
        proposed = containment.propose(other, ALICE, "platform", "off", "ransomware suspected")
        containment.approve(other, BOB, proposed.id)
        approved = time.monotonic()
        # Then this process refuses within REFRESH_SECONDS (polling every 50 ms)
        while counter.check(world, person, None).status_code == 200:
            assert time.monotonic() - approved < 5
            time.sleep(0.05)
        delay = time.monotonic() - approved
    finally:
        other.close()
    print(f"propagation to another platform object: {delay:.2f} s")
    assert delay <= containment.REFRESH_SECONDS + 0.5


def test_given_an_expiry_then_the_switch_ends_by_itself(
    platform: Platform,
    carded: tuple[World, list[tuple[Person, str]], TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, pairs, client = carded
    counter = Counter(platform, client)
    person, _ = pairs[0]
    # Given the platform off for one hour
    proposed = containment.propose(
        platform, ALICE, "platform", "off", "night shift, no one", hours=1
    )
    containment.approve(platform, BOB, proposed.id)
    assert counter.check(world, person, None).status_code == 503
    # When the hour is over (the switch list is cached, its expiry compared at each lookup)
    later = platform.now() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(platform, "now", lambda: later)
    # Then lookups are answered again, and the status says it is no longer in force
    assert counter.check(world, person, None).status_code != 503
    view = next(v for v in containment.status(platform) if v.switch.id == proposed.id)
    assert not view.in_force


def test_refusals_of_the_steps_have_their_codes(platform: Platform) -> None:
    with pytest.raises(NotFound):
        containment.approve(platform, BOB, 4242)
    with pytest.raises(Forbidden) as outsider:
        containment.propose(platform, "provider:1", "platform", "off", "not an operator here")
    assert outsider.value.code == "containment.operator_only"
    proposed = containment.propose(platform, ALICE, "structure:750012346", "off", "stolen login")
    with pytest.raises(Conflict) as not_active:
        containment.propose_lift(platform, BOB, proposed.id, "nothing to lift yet")
    assert not_active.value.code == "containment.not_in_force"
    containment.approve(platform, BOB, proposed.id)
    with pytest.raises(Conflict) as twice:
        containment.approve(platform, CAROL, proposed.id)
    assert twice.value.code == "containment.not_waiting"
    # And the database itself refuses a switch approved by its proposer
    second = containment.propose(platform, ALICE, "route:claims", "off", "claims flood seen")
    with pytest.raises(IntegrityError), platform.engine.begin() as conn:
        store.approve(conn, second.id, ALICE, platform.now())
    shown = {view.switch.id: view for view in containment.status(platform)}
    assert shown[proposed.id].in_force
    assert shown[proposed.id].switch.approver == BOB


def test_a_proposal_lapses_after_an_hour(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    proposed = containment.propose(platform, ALICE, "platform", "off", "suspected breach")
    later = platform.now() + PROPOSAL_VALIDITY + PROPOSAL_VALIDITY / 60
    monkeypatch.setattr(platform, "now", lambda: later)
    with pytest.raises(Conflict) as lapsed:
        containment.approve(platform, BOB, proposed.id)
    assert lapsed.value.code == "containment.proposal_lapsed"
    assert containment.status(platform)[0].lapsed


def test_every_use_case_that_reaches_the_guarded_lookup_has_a_route() -> None:
    # Given every module of services/ that calls guarded_lookup, guarded_read or guarded_answer
    callers = set()
    for path in (SRC / "services").rglob("*.py"):
        if path.name == "lookup.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"guarded_lookup", "guarded_read", "guarded_answer"}
            ):
                module = path.relative_to(SRC.parent).with_suffix("").as_posix()
                callers.add(module.replace("/", "."))
    # Then each has its route, so a route switch covers all it answers
    assert callers == set(containment.ROUTES_BY_MODULE)
