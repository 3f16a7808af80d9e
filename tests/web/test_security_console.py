"""Security console over HTTP: a scrape through the provider portal is suspended, shown
live, and reinstated only when a second operator confirms."""

from __future__ import annotations

import time

from sqlalchemy import select

from tests.web.portal_client import PortalClient
from tests.web.world import World, reinstate
from tierspayant.services import checkpoints
from tierspayant.store.tables import principals


def _principal_status(world: World, principal_id: str) -> str:
    with world.platform.engine.connect() as conn:
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == principal_id)
        ).scalar_one()
    return str(status)


def scrape(client: PortalClient, world: World, limit: int = 40) -> tuple[int, int]:
    """Rights checks without card proof, at bot speed, until refused; returns
    (answers before the refusal, status of the refusal)."""
    cards = [world.card, *world.other_cards]
    for index in range(limit):
        card = cards[index % len(cards)]
        response = client.post(
            "/portail/prestataire/droits",
            {"amc_number": card["amc_number"], "nir": card["nir"],
             "birth_rank": card["birth_rank"], "birth_date": card["birth_date"],
             "domains": ["PHAR"]},
            follow_redirects=False,
        )  # fmt: skip
        if response.status_code != 200 or "Droits au" not in response.text:
            return index, response.status_code
        time.sleep(0.01)
    return limit, 200


def test_scrape_is_suspended_and_reinstated_by_two_operators(world: World) -> None:
    # Given a professional scraping through the portal
    pro = PortalClient(world)
    pro.login_provider()
    session = world.provider_session()
    principal_id = session.principal.id
    answered, status = scrape(pro, world)
    print(f"portal scrape: {answered} answers before suspension")
    # Then the guard suspends them within a dozen answers, and the session is gone
    assert answered <= 12
    assert status in (200, 303, 403)
    assert _principal_status(world, principal_id) == "suspended"
    assert pro.get("/portail/prestataire/droits", follow_redirects=False).status_code == 303
    # And the security console shows the alert and the suspended principal
    first = PortalClient(world)
    console = first.login("operator1")
    assert "guard.human_speed" in console.text
    assert principal_id in console.text
    live = first.get("/portail/securite/alertes", headers={"HX-Request": "true"})
    assert "<html" not in live.text
    assert 'hx-trigger="every 5s"' in live.text
    # When the first operator asks for reinstatement, twice
    asked = first.post("/portail/securite/principaux/retablir", {"principal": principal_id})
    again = first.post("/portail/securite/principaux/retablir", {"principal": principal_id})
    # Then the principal is still suspended: one operator is not enough
    assert "second opérateur" in asked.text
    assert "second opérateur" in again.text
    assert _principal_status(world, principal_id) == "suspended"
    # When a second operator confirms
    second = PortalClient(world)
    page = second.login("operator2")
    assert "Confirmer le rétablissement" in page.text
    done = second.post("/portail/securite/principaux/retablir", {"principal": principal_id})
    # Then the principal is active again
    assert "Accès rétabli" in done.text
    assert _principal_status(world, principal_id) == "active"


def test_revoke_audit_status_and_structure_chart(world: World) -> None:
    pro = PortalClient(world)
    pro.login_provider()
    assert scrape(pro, world, limit=1) == (1, 200)
    operator = PortalClient(world)
    operator.login("operator1")
    audit = operator.get("/portail/securite/audit", headers={"HX-Request": "true"})
    assert "Chaîne intègre" in audit.text
    page = operator.get("/portail/securite/")
    assert "Consultations par structure" in page.text
    assert world.structure in page.text  # today's lookups of the pharmacy, against its cap
    session = world.provider_session()
    revoked = operator.post(
        "/portail/securite/principaux/revoquer", {"principal": session.principal.id}
    )
    assert "Accès révoqués" in revoked.text
    assert _principal_status(world, session.principal.id) == "suspended"
    reinstate(world, session.principal.id)


def test_incident_scope_and_last_checkpoint(world: World) -> None:
    pro = PortalClient(world)
    principal_id = pro.login_provider()
    assert scrape(pro, world, limit=2) == (2, 200)
    written = checkpoints.write_checkpoint(
        world.platform, world.platform.settings.data_dir / "checkpoints"
    )
    assert written is not None
    operator = PortalClient(world)
    operator.login("operator2")
    audit = operator.get("/portail/securite/audit", headers={"HX-Request": "true"})
    assert f"n° {written.checkpoint.up_to_seq}" in audit.text
    today = world.clock().date().isoformat()
    scope = operator.post(
        "/portail/securite/incident",
        {"principal": principal_id, "start": today, "end": today},
        headers={"HX-Request": "true"},
    )
    assert scope.status_code == 200
    assert "personne(s) lue(s)" in scope.text
    assert "Mutuelle des Tilleuls" in scope.text
    assert world.card["nir"] not in scope.text


def test_payments_and_statements_pages(world: World) -> None:
    pro = PortalClient(world)
    pro.login_provider()
    assert "Mes paiements" in pro.get("/portail/prestataire/paiements").text
    member = PortalClient(world)
    member.login("member")
    page = member.get("/portail/adherent/remboursements")
    assert page.status_code == 200
    assert "Mes remboursements" in page.text
