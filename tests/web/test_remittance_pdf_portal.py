"""The provider portal's payments page offers each remittance advice as CSV and as PDF;
both downloads are the owner's only and each one is audited once."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from tests.pdf_support import pdf_text
from tests.web.portal_client import PortalClient
from tests.web.test_portal_gaps import _paid_provider
from tests.web.world import World
from tierspayant.services import payments
from tierspayant.store.tables import audit_events


def _reads(world: World) -> list[tuple[str, str, dict[str, object]]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.actor, audit_events.c.decision, audit_events.c.detail)
            .where(audit_events.c.action == payments.REMITTANCE_READ)
            .order_by(audit_events.c.seq)
        ).all()
    return [(row.actor, row.decision, json.loads(row.detail)) for row in rows]


def test_a_provider_downloads_its_advice_as_pdf_and_each_download_is_audited(
    world: World, tmp_path: Path
) -> None:
    # Given a pharmacy paid today for one accepted and one rejected line
    owner, advice_id = _paid_provider(world, tmp_path)
    pdf_url = f"/portail/prestataire/paiements/{advice_id}/avis.pdf"
    csv_url = f"/portail/prestataire/paiements/{advice_id}/avis.csv"
    before = len(_reads(world))
    # When it opens its payments page
    listing = owner.get("/portail/prestataire/paiements")
    # Then the advice is offered as PDF next to the CSV
    assert listing.status_code == 200
    assert pdf_url in listing.text
    assert "Télécharger (PDF)" in listing.text
    assert csv_url in listing.text
    # And the PDF holds the advice, in French, as the API serves it
    response = owner.get(pdf_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="avis-{advice_id}.pdf"' in response.headers["content-disposition"]
    text = pdf_text(response.content)
    assert advice_id in text
    assert "rejetée" in text
    assert "rights.none - Pas de droits" in text
    # And the CSV download is audited too, once for the whole file
    assert owner.get(csv_url).status_code == 200
    reads = _reads(world)[before:]
    assert [(decision, detail["format"], detail["lines"]) for _, decision, detail in reads] == [
        ("allow", "pdf", 2),
        ("allow", "csv", 2),
    ]
    # And another provider gets a 404 for either format, audited as refused
    other = PortalClient(world)
    other.login_provider()
    for url in (pdf_url, csv_url):
        refused = other.get(url)
        assert refused.status_code == 404
        assert not refused.content.startswith(b"%PDF")
    denied = _reads(world)[before + 2 :]
    assert [(decision, detail["format"]) for _, decision, detail in denied] == [
        ("deny", "pdf"),
        ("deny", "csv"),
    ]
    assert {actor for actor, _, _ in denied}.isdisjoint({actor for actor, _, _ in reads})
