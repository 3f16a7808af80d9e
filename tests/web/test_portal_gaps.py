"""Portal gaps of issue 5 over HTTP: the canary status of the security console and the
download of a remittance advice in the provider portal."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tests.factories import make_am_number, make_bic, make_french_iban, make_rpps
from tests.money_support import ACCEPTED, REJECTED, adjudicated_claim, next_pay_day
from tests.web.portal_client import PortalClient
from tests.web.world import AMC, INSURER_NAME, World
from tierspayant.security.guard import Level, Signal
from tierspayant.security.oidc import OidcIdentity
from tierspayant.services import accounts, alerts, canaries, payments, providers
from tierspayant.services.accounts import AccountKind
from tierspayant.web.render import local_time

CONSOLE_CANARIES = "/portail/securite/canaris"


def _canary_alert(world: World) -> None:
    """A canary alert that names the insurer, as ``canaries.canary_touched`` raises it."""
    signal = Signal(
        level=Level.HARD,
        code="canary.touched",
        message="canary rows reached by system:test (purpose export)",
        at=world.platform.now(),
        principal_id=None,
        structure=None,
        figures={"canaries": 1, "purpose": "export"},
    )
    with world.platform.engine.begin() as conn:
        alerts.raise_alert(world.platform, conn, signal, insurer=AMC)


def _row_of(page: str, amc: str) -> str:
    start = page.index(f"(AMC {amc})</td>")
    return page[page.rindex("<tr>", 0, start) : page.index("</tr>", start)]


def test_console_counts_canaries_and_their_alerts_for_operators_only(world: World) -> None:
    # Given seven canaries planted at the insurer and one canary alert
    canaries.plant(world.platform, AMC, 7, "test")
    _canary_alert(world)
    # When an operator opens the canary page
    operator = PortalClient(world)
    operator.login("operator1")
    page = operator.get(CONSOLE_CANARIES)
    # Then the insurer's row shows the count, the planting time and the alert, no row id
    assert page.status_code == 200
    row = _row_of(page.text, AMC)
    assert f"<td>{INSURER_NAME} (AMC {AMC})</td>" in row  # the insurer by name and number
    assert "<td>7</td>" in row
    assert "<td>1</td>" in row
    assert local_time(world.platform.now())[:10] in row
    assert "beneficiary" not in page.text
    # And insurer staff are refused
    staff = PortalClient(world)
    staff.login("staff")
    assert staff.get(CONSOLE_CANARIES, follow_redirects=False).status_code == 403


def _paid_provider(world: World, tmp_path: Path) -> tuple[PortalClient, str]:
    """A pharmacy with an IBAN, paid for one claim today; its portal client and advice id."""
    rng = random.Random(11)
    rpps = make_rpps(rng)
    pharmacy = providers.add_provider(
        world.platform,
        providers.NewProvider(
            make_am_number(rng, 2, department="75"),
            "pharmacy",
            "Pharmacie des Gaps",
            rpps=rpps,
            iban=make_french_iban(rng),
            bic=make_bic(rng),
        ),
        "test",
    )
    accounts.create_account(
        world.platform,
        AccountKind.PROVIDER_USER,
        None,
        None,
        actor="test",
        provider_id=pharmacy.id,
        rpps=rpps,
    )
    adjudicated_claim(
        world.platform,
        insurer_id=world.insurer_id,
        amc_number=AMC,
        provider_id=pharmacy.id,
        lines=(ACCEPTED, REJECTED),
        beneficiary_id=world.beneficiary_id,
    )
    payments.run_payments(world.platform, next_pay_day(world.platform), out_dir=tmp_path)
    identity = OidcIdentity(
        "https://psc.example", f"psc-{rpps}", rpps, "eidas2", ("pop",), world.clock()
    )
    session = accounts.login_oidc(world.platform, identity)
    client = PortalClient(world)
    client.http.cookies.set("tp_session", session.token)
    advice = payments.list_remittances(world.platform, session.principal)[0]
    return client, advice.remittance_id


def test_a_provider_downloads_its_own_remittance_advice_only(world: World, tmp_path: Path) -> None:
    # Given a pharmacy paid today for one accepted and one rejected line
    owner, advice_id = _paid_provider(world, tmp_path)
    url = f"/portail/prestataire/paiements/{advice_id}/avis.csv"
    # When it opens its payments and downloads the advice
    listing = owner.get("/portail/prestataire/paiements")
    response = owner.get(url)
    # Then the listing links to the advice, and the CSV holds its lines and totals
    assert url in listing.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="avis-{advice_id}.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(response.text.splitlines(), delimiter=";"))
    assert rows[0][:2] == ["avis", advice_id]
    lines = [r for r in rows if r[0] == "ligne"]
    assert [(r[4], r[9], r[10], r[11]) for r in lines] == [
        ("1", "3.50", "accepted", ""),
        ("2", "0.00", "rejected", "rights.none"),
    ]
    assert ["total_lignes", "2"] in rows
    # And another provider asking for the same advice gets a 404
    other = PortalClient(world)
    other.login_provider()
    refused = other.get(url)
    assert refused.status_code == 404
    assert "ligne" not in refused.text
