"""Insurer invoice figures and billing statements, and the security console's incident
downloads: each page for its role only, figures from rows we insert, one insurer never
seeing another's, files served from the session's own insurer only."""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from tests.money_support import ACCEPTED, REDUCED, REJECTED, Line, adjudicated_claim, make_provider
from tests.web.portal_client import PortalClient
from tests.web.world import AMC, World
from tierspayant.demo.accounts import demo_password
from tierspayant.demo.builder import DEMO_INSURERS
from tierspayant.formats import french_csv
from tierspayant.services import accounts, billing, insurers
from tierspayant.services.accounts import AccountKind, enrol_totp_now
from tierspayant.services.portal_views import invoice_figures
from tierspayant.store.ledger_tables import billing_statements
from tierspayant.store.tables import audit_events

OTHER_AMC, OTHER_NAME, OTHER_KIND, _ = DEMO_INSURERS[1]
PERIOD = "2026-10"


def _other_staff(world: World) -> tuple[int, str, str, str]:
    """A second insurer and its staff account: (insurer id, login, password, TOTP secret)."""
    other = insurers.add_insurer(world.platform, OTHER_AMC, OTHER_NAME, OTHER_KIND, "test")
    login, password = "gestion@autre.example", demo_password()
    accounts.create_account(
        world.platform,
        AccountKind.INSURER_STAFF,
        login,
        password,
        actor="test",
        insurer_id=other.id,
    )
    secret = enrol_totp_now(world.platform, login, password).secret
    return other.id, login, password, secret


@pytest.fixture(scope="module")
def other(world: World) -> tuple[int, str, str, str]:
    return _other_staff(world)


def _login_other(world: World, other: tuple[int, str, str, str]) -> PortalClient:
    _, login, password, secret = other
    client = PortalClient(world)
    client.get("/portail/assureur/connexion")
    client.post("/portail/assureur/connexion", {"login": login, "password": password})
    world.clock.advance(30)
    code = pyotp.TOTP(secret).at(world.clock())
    home = client.post("/portail/assureur/connexion/code", {"code": code})
    assert home.status_code == 200, home.text
    return client


def _staff(world: World) -> PortalClient:
    client = PortalClient(world)
    client.login("staff")
    return client


def test_invoice_figures_are_the_insurers_own(
    world: World, other: tuple[int, str, str, str]
) -> None:
    # Given two claims of our insurer this week and one of another insurer
    platform = world.platform
    today = platform.today()
    adjudicated_claim(
        platform,
        insurer_id=world.insurer_id,
        amc_number=AMC,
        provider_id=world.provider_id,
        lines=(ACCEPTED, REJECTED),
        beneficiary_id=world.beneficiary_id,
        care_date=today,
    )
    adjudicated_claim(
        platform,
        insurer_id=world.insurer_id,
        amc_number=AMC,
        provider_id=world.provider_id,
        lines=(ACCEPTED, REDUCED, Line(accepted=0, status="rejected", reason="rights.none")),
        beneficiary_id=world.beneficiary_id,
        care_date=today,
    )
    stranger = make_provider(platform, random.Random(11))
    adjudicated_claim(
        platform,
        insurer_id=other[0],
        amc_number=OTHER_AMC,
        provider_id=stranger.id,
        lines=(Line(accepted=123_456),),
        care_date=today,
    )
    # When our staff opens "Factures et rejets"
    page = _staff(world).get("/portail/assureur/factures")
    # Then the figures are ours: 5 lines in 3 domains, 14 € accepted, 3 refusals
    assert page.status_code == 200
    text = page.text
    week = f"semaine {today.isocalendar()[1]} ({today.isocalendar()[0]})"
    monday = today - timedelta(days=today.weekday())
    span = f"du={monday.isoformat()}&amp;au={(monday + timedelta(days=6)).isoformat()}"

    def domain_cell(code: str, name: str) -> str:
        search = f"/portail/assureur/factures/recherche?{span}&amp;domaine={code}"
        return f'<td><a href="{search}&amp;statut=adjudicated">{name}</a></td>'

    assert (
        f"<td>{week}</td>{domain_cell('PHAR', 'Pharmacie')}<td>3</td><td>7,00\u00a0€</td>" in text
    )
    assert (
        f"<td>{week}</td>{domain_cell('AUXM', 'Auxiliaires médicaux')}"
        "<td>1</td><td>0,00\u00a0€</td>"
    ) in text
    assert f"<td>{week}</td>{domain_cell('MED', 'Médecins')}<td>1</td><td>7,00\u00a0€</td>" in text
    assert "W" + f"{today.isocalendar()[1]:02d}" not in text  # no ISO week left for people
    assert (
        "Pas de droits complémentaires à la date des soins</a></td>"
        "<td><code>rights.none</code></td><td>2</td>"
    ) in text
    assert "<td><code>ceiling</code></td><td>1</td>" in text
    assert f"<td>{world.provider_am}</td><td>14,00\u00a0€</td>" in text
    assert stranger.name not in text
    assert "1\u202f234,56" not in text
    assert "<svg" in text
    # And the other insurer sees only its own claim
    theirs = _login_other(world, other).get("/portail/assureur/factures").text
    assert f"<td>{stranger.am_number}</td><td>1\u202f234,56\u00a0€</td>" in theirs
    assert world.provider_am not in theirs


def _write_statement(world: World, insurer_id: int, amc: str, due: int) -> dict[str, str]:
    """A statement row and the four files a billing run writes for it."""
    files = billing.statement_files(billing.default_out_dir(world.platform, PERIOD), amc, PERIOD)
    contents = {key: f"{key} of {amc}\n" for key in files}
    for key, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(contents[key], encoding="utf-8")
    with world.platform.engine.begin() as conn:
        conn.execute(
            billing_statements.insert().values(
                insurer_id=insurer_id,
                period=PERIOD,
                run_key=f"billing:{PERIOD}",
                lines=3,
                paid_cents=due,
                undue_cents=0,
                due_cents=due,
                collection_date=date(2026, 11, 5),
                created_at=datetime(2026, 11, 2, tzinfo=UTC),
            )
        )
    return contents


def _downloads(world: World) -> int:
    with world.platform.engine.connect() as conn:
        query = select(func.count()).where(audit_events.c.action == "billing.download")
        return int(conn.execute(query).scalar_one())


def test_statements_list_and_download_own_files(
    world: World, other: tuple[int, str, str, str]
) -> None:
    ours = _write_statement(world, world.insurer_id, AMC, 98_765)
    _write_statement(world, other[0], OTHER_AMC, 4_321)
    staff = _staff(world)
    page = staff.get("/portail/assureur/releves")
    assert page.status_code == 200
    assert "987,65\u00a0€" in page.text
    assert "43,21" not in page.text
    assert f"/portail/assureur/releves/{PERIOD}/pain008.xml" in page.text
    before = _downloads(world)
    fund_call = staff.get(f"/portail/assureur/releves/{PERIOD}/pain008.xml")
    assert fund_call.status_code == 200
    assert fund_call.text == ours["fund_call"]
    assert f"pain008-{AMC}-{PERIOD}.xml" in fund_call.headers["content-disposition"]
    assert (
        staff.get(f"/portail/assureur/releves/{PERIOD}/releve.json").text == ours["statement_json"]
    )
    assert _downloads(world) == before + 2
    for missing in ("2026-09/pain008.xml", "2026-13/pain008.xml", f"{PERIOD}/autre.xml"):
        assert staff.get(f"/portail/assureur/releves/{missing}").status_code == 404
    assert _downloads(world) == before + 2
    theirs = _login_other(world, other).get(f"/portail/assureur/releves/{PERIOD}/releve.csv")
    assert theirs.text == f"statement_csv of {OTHER_AMC}\n"


@pytest.mark.parametrize(
    "path", ["/portail/assureur/factures", "/portail/assureur/releves", "/portail/securite/"]
)
def test_pages_refuse_other_roles(world: World, path: str) -> None:
    member = PortalClient(world)
    member.login("member")
    assert member.get(path, follow_redirects=False).status_code == 403


def test_operator_cannot_open_insurer_pages(world: World) -> None:
    operator = PortalClient(world)
    operator.login("operator1")
    assert operator.get("/portail/assureur/factures").status_code == 403
    assert operator.get(f"/portail/assureur/releves/{PERIOD}/releve.csv").status_code == 403


def test_incident_downloads_have_ids_and_no_identity(world: World) -> None:
    # Given a professional who read one member's rights today
    pro = PortalClient(world)
    principal_id = pro.login_provider()
    card = world.card
    answer = pro.post(
        "/portail/prestataire/droits",
        {"amc_number": card["amc_number"], "nir": card["nir"],
         "birth_rank": card["birth_rank"], "birth_date": card["birth_date"],
         "domains": ["PHAR"]},
    )  # fmt: skip
    assert "Droits au" in answer.text
    operator = PortalClient(world)
    operator.login("operator1")
    # A window of three days around the clock's: the form's days are Paris days, which
    # differ from the UTC date for an hour each night (the test then ran at 00:30 Paris).
    yesterday = (world.clock() - timedelta(days=1)).date().isoformat()
    tomorrow = (world.clock() + timedelta(days=1)).date().isoformat()
    criteria = {"principal": principal_id, "start": yesterday, "end": tomorrow}
    shown = operator.post("/portail/securite/incident", criteria)
    assert "/portail/securite/incident/perimetre.csv" in shown.text
    # When the operator downloads the scope as CSV
    scope = operator.post("/portail/securite/incident/perimetre.csv", criteria)
    # Then it lists the member's internal id, no NIR and no name
    assert scope.status_code == 200
    header, *lines = french_csv.read(scope.content)
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    assert [(r["N° AMC"], r["Id bénéficiaire"]) for r in rows] == [(AMC, str(world.beneficiary_id))]
    assert card["nir"] not in scope.text
    assert "NIR" not in rows[0]
    # in the French format: a BOM, and the times of the reads as 06/12/2026 10:05
    assert scope.content.startswith("\ufeff".encode())
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", rows[0]["Première consultation"])
    # And the notice drafts come as a ZIP: one CNIL draft, one letter without a name
    notices = operator.post("/portail/securite/incident/notifications.zip", criteria)
    assert notices.status_code == 200
    with zipfile.ZipFile(io.BytesIO(notices.content)) as bundle:
        names = sorted(bundle.namelist())
        letter = bundle.read(f"courriers-{AMC}/courrier-{world.beneficiary_id}.md").decode()
    assert names == [f"courriers-{AMC}/courrier-{world.beneficiary_id}.md",
                     f"notification-cnil-{AMC}.md"]  # fmt: skip
    assert "Madame, Monsieur," in letter
    assert card["nir"] not in letter
    with world.platform.engine.connect() as conn:
        details = conn.execute(
            select(audit_events.c.detail).where(audit_events.c.action == "incident.download")
        ).scalars()
        documents = sorted(json.loads(d)["document"] for d in details)
    assert documents == ["notices_zip", "scope_csv"]
    # And a bad window is refused without a file, the field saying why in French
    refused = operator.post(
        "/portail/securite/incident/perimetre.csv", {**criteria, "start": "pas une date"}
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("text/html")
    assert "Date de début invalide : écrivez-la JJ/MM/AAAA." in refused.text
    # And staff of an insurer cannot download it
    staff = _staff(world)
    assert staff.post("/portail/securite/incident/perimetre.csv", criteria).status_code == 403


def test_weeks_cover_eight_iso_weeks(world: World) -> None:
    figures = invoice_figures(world.platform, world.insurer_id)
    assert len(figures.weeks) == 8
    last = world.platform.today()
    first = last - timedelta(days=last.weekday(), weeks=7)
    assert figures.weeks[0] == f"{first.isocalendar()[0]}-W{first.isocalendar()[1]:02d}"
