"""The provider portal shows the provider's own payment delay on its payments page."""

from __future__ import annotations

from pathlib import Path

from tests.web.test_portal_gaps import _paid_provider
from tests.web.world import World
from tierspayant.services.delays import invoice_delays


def test_the_payments_page_shows_the_providers_own_delay(world: World, tmp_path: Path) -> None:
    # Given a pharmacy paid for one invoice (an accepted and a rejected line)
    owner, _ = _paid_provider(world, tmp_path)
    paid = invoice_delays(world.platform)
    assert len(paid) == 1
    # When it opens its payments
    page = owner.get("/portail/prestataire/paiements")
    # Then it reads the delay of that one invoice, in business days
    assert page.status_code == 200
    days = paid[0].business_days
    assert f"médiane {days}, 95 % en {days} jour(s) au plus" in page.text
    assert "(1 facture(s) payée(s))" in page.text
