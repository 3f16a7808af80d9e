"""The insurer's home page charts, on a world of their own (the rights checks they need
count in the guard's figures of the structure, which other modules' tests measure)."""

from __future__ import annotations

from tests.web.portal_client import PortalClient
from tests.web.world import World


def test_the_insurer_home_names_the_care_domains_of_its_rights_checks(world: World) -> None:
    # Given a pharmacy rights check on one of the insurer's members
    provider = PortalClient(world)
    provider.login_provider()
    card = {k: world.card[k] for k in ("amc_number", "nir", "birth_rank", "birth_date")}
    answer = provider.post("/portail/prestataire/droits", {**card, "domains": ["PHAR"]})
    assert answer.status_code == 200
    # When the insurer's staff open their home page
    staff = PortalClient(world)
    staff.login("staff")
    home = staff.get("/portail/assureur/")
    # Then the chart by care domain names the domain in French, not by its code
    chart = home.text.split("Vérifications de droits par domaine de soins", 1)[1]
    assert "Pharmacie" in chart.split("</table>", 1)[0]
    assert ">PHAR<" not in home.text
