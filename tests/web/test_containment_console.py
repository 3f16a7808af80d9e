"""Containment from the security console: one operator proposes card-proof-only mode for
the platform, a second approves, the provider portal then serves the patient who shows
the card and refuses (in French) the lookup without it; lifting takes two operators too.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from sqlalchemy import select

from tests.web.portal_client import PortalClient
from tests.web.world import PHARMACY_NAME, World, card_payload
from tierspayant.store.tables import audit_events

CARD_REQUIRED = "Consultation possible uniquement avec la carte du patient : scannez sa carte."


def _rights(client: PortalClient, world: World, payload: str | None) -> str:
    form = {
        "amc_number": world.card["amc_number"],
        "nir": world.card["nir"],
        "birth_rank": world.card["birth_rank"],
        "birth_date": world.card["birth_date"],
        "domains": ["PHAR"],
    }
    if payload is not None:
        form["card_payload"] = payload
    return client.post("/portail/prestataire/droits", form).text


def _containment_events(world: World) -> list[tuple[str, str]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.actor)
            .where(audit_events.c.action.like("containment.%"))
            .order_by(audit_events.c.seq)
        )
        return [(str(action), str(actor)) for action, actor in rows]


def _switch_id(page: str) -> str:
    found = re.search(r"Bascule n° (\d+) proposée", page)
    assert found, page
    return found.group(1)


def test_two_operators_contain_the_platform_and_card_holders_are_still_served(
    world: World, tmp_path: Path
) -> None:
    payload = card_payload(world, tmp_path)
    pro = PortalClient(world)
    pro.login_provider()
    # Given the first operator on the containment page
    first, second = PortalClient(world), PortalClient(world)
    first.login("operator1")
    second.login("operator2")
    page = first.get("/portail/securite/confinement")
    assert page.status_code == 200
    assert "Aucune bascule." in page.text
    # When they propose card-proof-only mode for the whole platform
    proposed = first.post(
        "/portail/securite/confinement/proposer",
        {"scope_kind": "platform", "scope_value": "", "mode": "card_proof_only",
         "reason": "identifiants de pharmacie hameçonnés"},
    )  # fmt: skip
    switch_id = _switch_id(proposed.text)
    assert "proposée, en attente" in proposed.text
    # Then nothing changes yet: a lookup without the card is still answered
    assert "Droits au" in _rights(pro, world, None)
    # And the proposer cannot approve it themselves
    self_approved = first.post(f"/portail/securite/confinement/{switch_id}/approuver")
    assert self_approved.status_code == 403
    assert "Un second opérateur, différent de celui qui a proposé, doit approuver." in (
        self_approved.text
    )
    # When the second operator approves
    approved = second.post(f"/portail/securite/confinement/{switch_id}/approuver")
    assert f"Bascule n° {switch_id} en vigueur." in approved.text
    # Then the page lists the switch with its proposer and approver
    listing = second.get("/portail/securite/confinement").text
    row = listing[listing.index(f"<td>{switch_id}</td>") :]
    assert "toute la plateforme" in row
    assert "carte obligatoire" in row
    proposer, approver = (world.logins[n] for n in ("operator1", "operator2"))
    assert "operator/staff:" in row
    assert proposer.login != approver.login
    # And the professional is refused without the card, in French, and served with it
    refused = _rights(pro, world, None)
    assert CARD_REQUIRED in refused
    assert "Droits au" not in refused
    assert "Droits au" in _rights(pro, world, payload)
    # When the second operator proposes the lift: still in force until another approves
    lift = second.post(
        f"/portail/securite/confinement/{switch_id}/lever",
        {"reason": "comptes compromis révoqués"},
    )
    assert "Levée de la bascule" in lift.text
    assert CARD_REQUIRED in _rights(pro, world, None)
    assert second.post(f"/portail/securite/confinement/{switch_id}/approuver").status_code == 403
    lifted = first.post(f"/portail/securite/confinement/{switch_id}/approuver")
    assert f"Bascule n° {switch_id} levée." in lifted.text
    # Then lookups without the card are answered again
    assert "Droits au" in _rights(pro, world, None)
    # And each step is one audit event, by the operator who took it
    events = _containment_events(world)
    actions = [action for action, _ in events]
    assert actions == [
        "containment.propose",
        "containment.approve",
        "containment.lift_propose",
        "containment.lift",
    ]
    assert events[0][1] == events[3][1] != events[1][1] == events[2][1]
    with world.platform.engine.connect() as conn:
        refusals = [
            json.loads(d)
            for d in conn.execute(
                select(audit_events.c.detail).where(audit_events.c.action == "lookup.refused")
            ).scalars()
        ]
    assert {
        "code": "containment.card_proof_required",
        "switch": int(switch_id),
        "proof": False,
    } in (refusals)


def test_a_bad_scope_is_refused_in_french_and_a_provider_cannot_open_the_page(
    world: World,
) -> None:
    operator = PortalClient(world)
    operator.login("operator1")
    refused = operator.post(
        "/portail/securite/confinement/proposer",
        {"scope_kind": "category", "scope_value": "plombier", "mode": "off",
         "reason": "un motif assez long"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert "Indiquez une catégorie de professionnels de la liste." in refused.text
    assert "(containment.scope)" in refused.text
    assert 'value="plombier"' in refused.text
    pro = PortalClient(world)
    pro.login_provider()
    page = pro.get("/portail/securite/confinement", follow_redirects=False)
    assert page.status_code in (303, 403)


def _text(page: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", page))


def test_every_bad_field_of_a_proposal_gets_its_french_message_and_keeps_its_value(
    engine_world: World,
) -> None:
    operator = PortalClient(engine_world)
    operator.login("operator2")
    before = len(_containment_events(engine_world))
    refused = operator.post(
        "/portail/securite/confinement/proposer",
        {"scope_kind": "structure", "scope_value": "ABC", "mode": "",
         "reason": "court", "hours": "500"},
    )  # fmt: skip
    assert refused.status_code == 422
    text = _text(refused.text)
    assert "La bascule n'a pas été proposée : corrigez les champs signalés." in text
    assert "Indiquez le numéro de la structure : FINESS, SIRET ou n° AM (chiffres)." in text
    assert "Mode invalide : carte obligatoire ou hors service. (containment.mode)" in text
    assert "Motif trop court ou trop long (10 à 500 caractères). (containment.reason)" in text
    assert "Durée : un nombre entier d'heures de 1 à 168, ou vide. (containment.duration)" in text
    assert "Demande refusée" not in text
    for kept in ('value="ABC"', 'value="court"', 'value="500"'):
        assert kept in refused.text
    assert 'id="reason" name="reason" maxlength="500" value="court" aria-invalid="true"' in (
        refused.text
    )
    # And nothing was proposed
    assert len(_containment_events(engine_world)) == before


def test_switches_name_their_structure_and_operators_and_a_short_lift_reason_is_refused(
    engine_world: World,
) -> None:
    world = engine_world
    first, second = PortalClient(world), PortalClient(world)
    first.login("operator1")
    second.login("operator2")
    proposed = first.post(
        "/portail/securite/confinement/proposer",
        {"scope_kind": "structure", "scope_value": world.structure,
         "mode": "card_proof_only", "reason": "pharmacie compromise, carte exigée"},
    )  # fmt: skip
    switch_id = _switch_id(proposed.text)
    approved = second.post(f"/portail/securite/confinement/{switch_id}/approuver")
    row = approved.text[approved.text.index(f"<td>{switch_id}</td>") :].split("</tr>", 1)[0]
    text = _text(row)
    assert f"structure {PHARMACY_NAME} (FINESS {world.structure})" in text
    assert f"{world.logins['operator1'].login}, personnel de l'opérateur" in text
    assert f"{world.logins['operator2'].login}, personnel de l'opérateur" in text
    # When the lift is proposed with a reason too short
    short = first.post(f"/portail/securite/confinement/{switch_id}/lever", {"reason": "ok"})
    # Then the row's own field says so, the value kept, and the switch stays in force
    assert short.status_code == 422
    row = short.text[short.text.index(f"<td>{switch_id}</td>") :].split("</tr>", 1)[0]
    assert 'value="ok" aria-invalid="true"' in row
    assert "Motif trop court ou trop long (10 à 500 caractères)." in _text(row)
    assert "en vigueur" in _text(row)
    lifted = first.post(
        f"/portail/securite/confinement/{switch_id}/lever", {"reason": "faux positif confirmé"}
    )
    assert "Levée de la bascule" in lifted.text
    assert (
        f"Bascule n° {switch_id} levée."
        in second.post(f"/portail/securite/confinement/{switch_id}/approuver").text
    )
