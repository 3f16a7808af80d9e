"""The portals show payment delays: the provider its own, insurer staff their providers'."""

from __future__ import annotations

import pytest

from tests.web.portal_client import PortalClient
from tests.web.test_portal_gaps import _paid_provider
from tests.web.world import World
from tierspayant.services.delays import invoice_delays


@pytest.fixture(scope="module")
def owner(world: World, tmp_path_factory: pytest.TempPathFactory) -> PortalClient:
    """A pharmacy paid for one invoice (an accepted and a rejected line), once per module."""
    client, _ = _paid_provider(world, tmp_path_factory.mktemp("paid"))
    return client


def test_the_payments_page_shows_the_providers_own_delay(world: World, owner: PortalClient) -> None:
    paid = invoice_delays(world.platform)
    assert len(paid) == 1
    # When it opens its payments
    page = owner.get("/portail/prestataire/paiements")
    # Then it reads the delay of that one invoice, in business days
    assert page.status_code == 200
    days = paid[0].business_days
    assert f"médiane {days}, 95 % en {days} jour(s) au plus" in page.text
    assert "(1 facture(s) payée(s))" in page.text


def test_the_insurer_sees_its_own_providers_delays(world: World, owner: PortalClient) -> None:
    """Insurer staff read, on their statements page, the delay of the invoices paid on
    their insurer's behalf, per provider; another insurer's staff see none of them."""
    from tests.web.test_backoffice_extras import _login_other, _other_staff, _staff

    paid = invoice_delays(world.platform)
    assert len(paid) == 1
    page = _staff(world).get("/portail/assureur/releves")
    assert page.status_code == 200
    days = paid[0].business_days
    assert "Délai de paiement des professionnels" in page.text
    assert f"médiane {days}, 95 % en {days} jour(s) au plus" in page.text
    assert f"<td>{paid[0].provider_am}</td><td>1</td>" in page.text
    theirs = _login_other(world, _other_staff(world)).get("/portail/assureur/releves")
    assert theirs.status_code == 200
    assert paid[0].provider_am not in theirs.text
    assert "Délai de paiement des professionnels" not in theirs.text
