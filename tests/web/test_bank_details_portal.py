"""The portals' bank details pages: a professional asks for a new account, insurer staff
verify it, and a transfer its bank returned is shown to both with what happens next."""

from __future__ import annotations

import random
import re
from datetime import timedelta

from tests.camt054_support import Returned, notification
from tests.factories import make_french_iban
from tests.money_support import ACCEPTED, adjudicated_claim
from tests.web.portal_client import PortalClient
from tests.web.world import World
from tierspayant.domain.banking_calendar import following_business_day
from tierspayant.services import billing, payments


def test_a_new_account_is_asked_verified_paid_and_its_return_shown(world: World) -> None:
    # Given a professional signed in to the portal
    provider = PortalClient(world)
    provider.login_provider()
    iban = make_french_iban(random.Random(2026))

    # When they ask for a malformed IBAN, then for a good one
    bad = provider.post("/portail/prestataire/coordonnees-bancaires", {"iban": "FR76 1234"})
    asked = provider.post("/portail/prestataire/coordonnees-bancaires", {"iban": iban})

    # Then the first is refused with its code, the second waits for a verification
    assert bad.status_code == 200
    assert "iban." in bad.text
    assert "Demande enregistrée" in asked.text
    assert f"<code>{iban[-4:]}</code>" in asked.text
    assert "En attente de vérification" in asked.text
    again = provider.post("/portail/prestataire/coordonnees-bancaires", {"iban": iban})
    assert "Un changement de coordonnées bancaires attend déjà sa vérification." in again.text

    # When insurer staff open the changes to verify and accept it after a phone call
    staff = PortalClient(world)
    staff.login("staff")
    listed = staff.get("/portail/assureur/coordonnees-bancaires")
    number = re.search(r'action="/portail/assureur/coordonnees-bancaires/(\d+)"', listed.text)
    assert number is not None
    assert f"<code>{iban[-4:]}</code>" in listed.text
    verified = staff.post(
        f"/portail/assureur/coordonnees-bancaires/{number[1]}",
        {"decision": "verify", "method": "provider_contact"},
    )

    # Then it is verified, with its first payment day, and the professional sees it
    assert "vérifié : premiers virements à partir du" in verified.text
    assert "Aucune demande en attente." in verified.text
    assert (
        "premiers virements à partir du"
        in provider.get("/portail/prestataire/coordonnees-bancaires").text
    )
    unknown = staff.post("/portail/assureur/coordonnees-bancaires/999999", {"decision": "refuse"})
    assert unknown.status_code == 404

    # When, a week later, a payment run pays the professional and the bank returns it
    world.clock.advance(7 * 86400)
    platform = world.platform
    adjudicated_claim(
        platform, insurer_id=world.insurer_id, amc_number=world.card["amc_number"],
        provider_id=world.provider_id, lines=(ACCEPTED,),
    )  # fmt: skip
    day = following_business_day(platform.today())  # a TARGET2 day, never past
    summary = payments.run_payments(platform, day)
    assert iban in summary.files[0].read_text(encoding="utf-8")
    e2e = f"TP{day:%Y%m%d}-{world.provider_id}"
    returned_on = (day + timedelta(days=2)).isoformat()
    recorded = billing.record_returns(
        platform, notification([Returned(e2e, "3.50")], created=f"{returned_on}T08:00:00")
    )
    assert [t.end_to_end_id for t in recorded.transfers] == [e2e]

    # Then both portals (signed in again: a week ended the sessions) show the returned
    # transfer and that it waits for new details
    provider = PortalClient(world)
    provider.login_provider()
    staff = PortalClient(world)
    staff.login("staff")
    seen_by_provider = provider.get("/portail/prestataire/paiements").text
    seen_by_insurer = staff.get("/portail/assureur/releves").text
    for page in (seen_by_provider, seen_by_insurer):
        assert f"<code>{e2e}</code>" in page
        assert "En attente de nouvelles coordonnées bancaires" in page
        assert "AC04" in page
    assert "Virements retournés par votre banque" in seen_by_provider
    assert "Virements retournés aux professionnels" in seen_by_insurer
