"""The claims officer's desk of the insurer portal over HTTP, on SQLite and PostgreSQL: a
prior authorisation in detail (quote lines, contract, remaining ceilings, decision with a
field-level refusal), the invoice search and an invoice in detail, the provider page, the
drill-down from the invoice figures; each read audited, another insurer seeing nothing.

Each test makes its own provider (and its own claims, on its own care dates), so that the
module's shared world does not make one test depend on another.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select

from tests.money_support import (
    ACCEPTED,
    REJECTED,
    Line,
    adjudicated_claim,
    make_provider,
    next_pay_day,
)
from tests.web.portal_client import PortalClient
from tests.web.world import AMC, World, build_world
from tierspayant.demo.accounts import demo_password
from tierspayant.demo.builder import DEMO_INSURERS
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.services import accounts, insurers, payments, providers
from tierspayant.services.accounts import AccountKind, enrol_totp_now
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.services.providers import Provider
from tierspayant.store.beneficiaries import record_by_id
from tierspayant.store.tables import audit_events
from tierspayant.web.charts import Bar, bar_chart, wrap_label

OTHER_AMC, OTHER_NAME, OTHER_KIND, _ = DEMO_INSURERS[1]
DESK = "/portail/assureur"
STAY = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300_000, 300_000)
ROOM = PricingLine("CHP0001", CareDomain.HOSP, "hospital_private_room", 5, 45_000, 0)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    built = build_world(tmp_path_factory.mktemp("desk"), url=url)
    providers.add_conventions(
        built.platform, built.provider_am, AMC, [CareDomain.HOSP], date(2024, 1, 1), "test"
    )
    try:
        yield built
    finally:
        built.platform.close()


@pytest.fixture(scope="module")
def other(world: World) -> tuple[int, str, str, str]:
    """A second insurer and its staff account: (insurer id, login, password, secret)."""
    added = insurers.add_insurer(world.platform, OTHER_AMC, OTHER_NAME, OTHER_KIND, "test")
    login, password = "gestion@bureau-autre.example", demo_password()
    accounts.create_account(
        world.platform, AccountKind.INSURER_STAFF, login, password, actor="test",
        insurer_id=added.id,
    )  # fmt: skip
    return added.id, login, password, enrol_totp_now(world.platform, login, password).secret


def _other_client(world: World, other: tuple[int, str, str, str]) -> PortalClient:
    _, login, password, secret = other
    client = PortalClient(world)
    client.get(f"{DESK}/connexion")
    client.post(f"{DESK}/connexion", {"login": login, "password": password})
    world.clock.advance(30)
    home = client.post(f"{DESK}/connexion/code", {"code": pyotp.TOTP(secret).at(world.clock())})
    assert home.status_code == 200, home.text
    return client


def _staff(world: World) -> PortalClient:
    client = PortalClient(world)
    client.login("staff")
    return client


def _audits(world: World, action: str) -> list[tuple[str, str | None, dict[str, object]]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.actor, audit_events.c.subject, audit_events.c.detail)
            .where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        ).all()
    return [(r.actor, r.subject, json.loads(r.detail) if r.detail else {}) for r in rows]


def _provider(world: World, seed: int) -> Provider:
    return make_provider(world.platform, random.Random(seed))


def _claim(
    world: World, provider: Provider, care_date: date, lines: tuple[Line, ...] = (ACCEPTED,)
) -> int:
    return adjudicated_claim(
        world.platform, insurer_id=world.insurer_id, amc_number=AMC, provider_id=provider.id,
        lines=lines, beneficiary_id=world.beneficiary_id, care_date=care_date,
    )  # fmt: skip


def _invoice(claim_id: int) -> str:
    return f"F{claim_id:08d}"  # as tests.money_support numbers them


def _card_with_contract(world: World, code: str) -> CardData:
    """The card of a beneficiary of the world whose contract is ``code``."""
    from tests.support.world import beneficiary_id

    for fields in [world.card, *world.other_cards]:
        card = CardData(
            AMC, date.fromisoformat(fields["birth_date"]), fields["nir"], int(fields["birth_rank"])
        )
        found = beneficiary_id(world.platform, card)
        with world.platform.engine.connect() as conn:
            record = record_by_id(conn, world.insurer_id, found)
        if record is not None and record.contract_code == code:
            return card
    pytest.skip(f"no beneficiary of the world has the contract {code}")


def _pending(world: World, card: CardData, key: str) -> str:
    principal = world.provider_session().principal
    asked = PriorAuthRequest(card, world.platform.today(), key, (STAY, ROOM))
    answer, _ = request_prior_auth(world.platform, principal, asked)
    assert answer.status == "pending", answer
    return answer.agreement_number


# ------------------------------------------------------------------ prior authorisation


def test_an_agreement_shows_its_quote_the_contract_and_the_remaining_ceilings(
    world: World,
) -> None:
    card = _card_with_contract(world, "EQUILIBRE")
    number = _pending(world, card, "desk-detail-1")
    staff = _staff(world)
    # The waiting list links to the agreement
    listing = staff.get(f"{DESK}/accords")
    assert f'<a href="{DESK}/accords/{number}">' in listing.text
    before = len(_audits(world, "insurer.prior_auth_read"))
    page = staff.get(f"{DESK}/accords/{number}")
    assert page.status_code == 200, page.text
    text = page.text
    # The quote lines: act, family in French, amounts
    assert "<td><code>GHS0001</code></td><td>Séjour hospitalier</td><td>1</td>" in text
    assert "<td>3\u202f000,00\u00a0€</td>" in text
    assert "<td><code>CHP0001</code></td><td>Chambre particulière</td><td>5</td>" in text
    assert "<td>450,00\u00a0€</td>" in text
    assert "Total" in text
    assert "3\u202f450,00\u00a0€" in text
    # The contract in force and what remains of the private room ceiling (30 days a year)
    assert "Équilibre" in text
    assert "<code>EQUILIBRE</code>" in text
    assert "Plafonds restants en Hospitalisation" in text
    assert "Chambre particulière</th>" in text
    assert "par année civile" in text
    assert "30 actes" in text
    # No identity, and the decision form is there
    assert card.nir is not None
    assert card.nir not in text
    assert card.birth_date.strftime("%d/%m/%Y") not in text
    assert 'action="/portail/assureur/accords/' + number + '/decision"' in text
    # The read is audited under the person's pseudonym
    reads = _audits(world, "insurer.prior_auth_read")
    assert len(reads) == before + 1
    _, subject, detail = reads[-1]
    assert subject
    assert len(subject) == 32
    assert detail["agreement"] == number


def test_refusing_without_a_reason_is_a_field_error_then_the_officer_accepts(
    world: World,
) -> None:
    card = _card_with_contract(world, "ESSENTIEL")
    number = _pending(world, card, "desk-decide-1")
    staff = _staff(world)
    staff.get(f"{DESK}/accords/{number}")
    bare = staff.post(f"{DESK}/accords/{number}/decision", {"decision": "refuser"})
    assert bare.status_code == 422
    assert 'aria-invalid="true" aria-describedby="motif-erreur"' in bare.text
    assert "Indiquez le motif du refus." in bare.text
    assert "en attente de décision" in bare.text  # nothing decided
    done = staff.post(
        f"{DESK}/accords/{number}/decision", {"decision": "accepter", "reason": "Séjour justifié"}
    )
    assert done.status_code == 200
    assert f"Accord {number} : accordé." in done.text
    assert "accordée" in done.text
    assert "Valable jusqu'au" in done.text
    assert 'name="decision"' not in done.text  # decided: no form any more
    # Refusing it now is a conflict, said in French
    late = staff.post(f"{DESK}/accords/{number}/decision", {"decision": "refuser", "reason": "x"})
    assert late.status_code == 409
    assert "Cette demande a déjà été décidée." in late.text


# ------------------------------------------------------------------ search and claim


def test_the_search_filters_pages_and_refuses_bad_criteria(world: World) -> None:
    mine = _provider(world, 301)
    day = world.platform.today() - timedelta(days=9)
    ids = [_claim(world, mine, day) for _ in range(26)]
    capped = Line("C", "MED", billed=3000, amo=1900, accepted=700, status="reduced",
                  reason="ceiling.reached")  # fmt: skip
    reduced = _claim(world, mine, day - timedelta(days=1), (ACCEPTED, capped))
    staff = _staff(world)
    # By provider (its AM number): 27 claims, 25 on the first page, then the 2 others
    first = staff.get(f"{DESK}/factures/recherche", params={"prestataire": mine.am_number})
    assert first.status_code == 200
    assert first.text.count(f"n° AM {mine.am_number}") == 25
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None
    second = staff.get(following.group(1).replace("&amp;", "&"))
    assert second.text.count(f"n° AM {mine.am_number}") == 2
    assert 'rel="next"' not in second.text
    assert 'rel="prev"' in second.text
    # By part of its name, and by invoice number (one row, linked to its detail)
    named = staff.get(f"{DESK}/factures/recherche", params={"prestataire": mine.name[-9:]})
    assert named.text.count(f"n° AM {mine.am_number}") == 25
    one = staff.get(f"{DESK}/factures/recherche", params={"facture": _invoice(ids[3])})
    assert f'<a href="{DESK}/factures/{ids[3]}">{_invoice(ids[3])}</a>' in one.text
    assert one.text.count('<span class="code">n° AM') == 1
    # By care dates, domain and reason: only the reduced claim
    narrowed = staff.get(
        f"{DESK}/factures/recherche",
        params={
            "prestataire": mine.am_number,
            "du": (day - timedelta(days=1)).isoformat(),
            "au": (day - timedelta(days=1)).strftime("%d/%m/%Y"),
            "domaine": "MED",
            "motif": "ceiling.reached",
            "statut": "adjudicated",
        },
    )
    assert narrowed.text.count('<span class="code">n° AM') == 1
    assert f"{DESK}/factures/{reduced}" in narrowed.text
    assert "<td>traitée</td><td>40,00\u00a0€</td><td>10,50\u00a0€</td>" in narrowed.text
    none = staff.get(
        f"{DESK}/factures/recherche", params={"prestataire": mine.am_number, "statut": "cancelled"}
    )
    assert "Aucune facture ne correspond à ces critères." in none.text
    # Bad criteria: field-level French errors, no search made
    searches = len(_audits(world, "insurer.claim_search"))
    bad = staff.get(
        f"{DESK}/factures/recherche",
        params={"du": "31/02/2026", "statut": "payee", "prestataire": "ab"},
    )
    assert bad.status_code == 422
    assert 'id="du-erreur" role="alert">Date invalide' in bad.text
    assert 'id="statut-erreur" role="alert">Choisissez une valeur de la liste.' in bad.text
    assert 'id="prestataire-erreur" role="alert">Au moins 3 caractères' in bad.text
    reversed_dates = staff.get(
        f"{DESK}/factures/recherche", params={"du": "2026-03-02", "au": "2026-03-01"}
    )
    assert "La fin de la période précède son début." in reversed_dates.text
    assert len(_audits(world, "insurer.claim_search")) == searches
    # Each search made is audited with the filters used, not their values
    _, subject, detail = _audits(world, "insurer.claim_search")[-1]
    assert subject is None
    assert detail == {"filters": "provider,status", "page": 1, "rows": 0}
    assert mine.am_number not in json.dumps(detail)
    # The form offers statuses in French, and no field names a person
    form = staff.get(f"{DESK}/factures/recherche").text
    assert '<option value="adjudicated">traitée</option>' in form
    assert "Indiquez au moins un critère." in form
    assert "nir" not in form.lower()
    assert "nom du patient" not in form.lower()


def test_a_claim_shows_its_lines_decisions_and_payment_and_its_provider(
    world: World, tmp_path: Path
) -> None:
    mine = _provider(world, 302)
    day = world.platform.today() - timedelta(days=12)
    paid = _claim(world, mine, day, (ACCEPTED, REJECTED))
    payments.run_payments(world.platform, next_pay_day(world.platform), out_dir=tmp_path)
    later = _claim(world, mine, day, (Line(accepted=275),))
    staff = _staff(world)
    reads = len(_audits(world, "insurer.claim_read"))
    page = staff.get(f"{DESK}/factures/{paid}")
    assert page.status_code == 200, page.text
    text = page.text
    assert f"<h1>Facture {_invoice(paid)}</h1>" in text
    assert f'<a href="{DESK}/prestataires/{mine.id}">{mine.name}</a>' in text
    assert "<td>acceptée</td><td>—</td><td>3,50\u00a0€</td>" in text
    assert "<td>rejetée</td><td>Pas de droits complémentaires à la date des soins</td>" in text
    pay_day = next_pay_day(world.platform).strftime("%d/%m/%Y")
    # A paid line links to the undue form filled in; a rejected one has nothing to recover
    undue = f"/portail/assureur/indus?facture={_invoice(paid)}&amp;ligne=1"
    assert f'<td>3,50\u00a0€ le {pay_day}<br><a href="{undue}">Déclarer un indu</a></td>' in text
    assert f"<td>0,00\u00a0€ le {pay_day}</td>" in text  # advised as rejected in the same run
    assert "non payée" in staff.get(f"{DESK}/factures/{later}").text
    audited = _audits(world, "insurer.claim_read")
    assert len(audited) == reads + 2
    assert audited[-2][2] == {"claim": paid, "lines": 2}
    assert audited[-2][1]
    # The provider page: identity, figures of the weeks, reject rate, reasons, payments
    provider_page = staff.get(f"{DESK}/prestataires/{mine.id}")
    assert provider_page.status_code == 200
    shown = provider_page.text
    assert f"<h1>{mine.name}</h1>" in shown
    assert "<td>Pharmacie</td>" in shown
    assert f"<td>{mine.am_number}</td>" in shown
    assert "Aucune convention avec votre organisme." in shown
    assert "<td>2</td><td>3</td><td>35,00\u00a0€</td><td>6,25\u00a0€</td>" in shown
    assert "33,33 %" in shown
    assert "(1 sur 3 lignes traitées)" in shown
    assert "Pas de droits complémentaires à la date des soins</a></td><td>1</td>" in shown
    assert f"<td>{pay_day}</td><td>2</td><td>3,50\u00a0€</td>" in shown
    assert f"prestataire={mine.am_number}" in shown


def test_the_world_provider_page_shows_its_conventions(world: World) -> None:
    page = _staff(world).get(f"{DESK}/prestataires/{world.provider_id}")
    assert page.status_code == 200
    assert "<td>Hospitalisation</td><td>01/01/2024</td><td>—</td><td>en vigueur</td>" in page.text


def test_another_insurer_sees_none_of_it(world: World, other: tuple[int, str, str, str]) -> None:
    mine = _provider(world, 303)
    day = world.platform.today() - timedelta(days=15)
    claim_id = _claim(world, mine, day)
    number = _pending(world, _card_with_contract(world, "ESSENTIEL"), "desk-scope-1")
    theirs = _other_client(world, other)
    for path in (
        f"{DESK}/accords/{number}",
        f"{DESK}/factures/{claim_id}",
        f"{DESK}/prestataires/{mine.id}",
    ):
        answer = theirs.get(path)
        assert answer.status_code == 404, path
        assert mine.name not in answer.text
        assert number not in answer.text
    refused = theirs.post(f"{DESK}/accords/{number}/decision", {"decision": "accepter"})
    assert refused.status_code == 404
    found = theirs.get(f"{DESK}/factures/recherche", params={"facture": _invoice(claim_id)})
    assert "Aucune facture ne correspond à ces critères." in found.text
    by_provider = theirs.get(f"{DESK}/factures/recherche", params={"prestataire": mine.am_number})
    assert mine.name not in by_provider.text
    # Nothing of ours was read on their behalf
    assert not [a for a in _audits(world, "insurer.claim_read") if a[2].get("claim") == claim_id]
    # And ours still sees it
    assert _staff(world).get(f"{DESK}/factures/{claim_id}").status_code == 200


# ------------------------------------------------------------------ drill-down


def test_every_figure_leads_to_the_claims_it_counts(world: World) -> None:
    mine = _provider(world, 304)
    day = world.platform.today() - timedelta(days=20)
    counted = _claim(
        world,
        mine,
        day,
        (
            Line(accepted=900_000),
            Line(accepted=0, status="rejected", reason="amounts.inconsistent"),
        ),
    )
    staff = _staff(world)
    page = staff.get(f"{DESK}/factures").text
    monday = day - timedelta(days=day.weekday())
    week_href = (
        f"{DESK}/factures/recherche?du={monday.isoformat()}&amp;"
        f"au={(monday + timedelta(days=6)).isoformat()}&amp;statut=adjudicated"
    )
    # The week's bar in the SVG, and the week × domain row of the table
    assert f'<a href="{week_href}" class="chart-link">' in page
    assert f'<a href="{week_href.replace("&amp;statut", "&amp;domaine=PHAR&amp;statut")}">' in page
    # The reason bar and row
    reason = re.search(
        r'<a href="([^"]*motif=amounts.inconsistent[^"]*)" class="chart-link">', page
    )
    assert reason is not None
    lines = staff.get(reason.group(1).replace("&amp;", "&")).text
    assert f"{DESK}/factures/{counted}" in lines
    # The top provider (the largest amount of the module): its page and its claims
    assert f'<a href="{DESK}/prestataires/{mine.id}">{mine.name}</a>' in page
    claims_link = re.search(rf'<a href="([^"]*prestataire={mine.am_number}[^"]*)">', page)
    assert claims_link is not None
    listed = staff.get(claims_link.group(1).replace("&amp;", "&")).text
    assert f"{DESK}/factures/{counted}" in listed


def test_long_labels_wrap_instead_of_being_cut() -> None:
    label = "Montants incohérents entre la facture, la base de remboursement et la part AMO"
    wrapped = wrap_label(label)
    assert 1 < len(wrapped) <= 3
    assert all(len(line) <= 36 for line in wrapped)
    assert " ".join(wrapped) == label
    longer = wrap_label(label * 2)
    assert len(longer) == 3
    assert longer[-1].endswith("…")
    svg = str(bar_chart("x", "Motifs", [Bar(label, 3, href="/portail/assureur/x?a=1&b=2")]))
    assert svg.count("<tspan") == len(wrapped)
    assert '<a href="/portail/assureur/x?a=1&amp;b=2" class="chart-link">' in svg
    assert f"<title>{label} : 3</title>" in svg
    assert "<a " not in str(bar_chart("y", "Sans lien", [Bar("court", 1)]))


def test_the_search_is_planned_on_the_insurer_indexes(world: World) -> None:
    """On PostgreSQL, over a few thousand analysed claims, each filter reaches the claims
    through an index that leads with the insurer (the plan, not the timing)."""
    engine = world.platform.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("plans are checked on PostgreSQL")
    from tierspayant.store.claims_tables import claims
    from tierspayant.store.read_models.desk import ClaimFilters, matching_providers, search_query

    bulk = _provider(world, 305)
    start = date(2023, 1, 2)  # care long before the figures' weeks: no other test sees them
    with engine.begin() as conn:
        first = int(conn.execute(select(func.max(claims.c.id))).scalar_one() or 0) + 1
        conn.execute(
            claims.insert(),
            [
                {
                    "insurer_id": world.insurer_id,
                    "id": first + n,
                    "provider_id": bulk.id if n % 50 == 0 else world.provider_id,
                    "invoice_number": f"PLAN{n:06d}",
                    "version": 1,
                    "beneficiary_id": world.beneficiary_id,
                    "care_date": start + timedelta(days=n % 700),
                    "request_digest": n.to_bytes(32, "big"),
                    "status": "adjudicated",
                    "source": "file",
                    "received_at": world.clock(),
                    "billed_cents": 1000,
                    "amc_requested_cents": 350,
                    "amc_accepted_cents": 350,
                }
                for n in range(5000)
            ],
        )
        conn.exec_driver_sql("ANALYZE claims")
        conn.exec_driver_sql("ANALYZE providers")
    cases = {
        "ix_claims_insurer_invoice": ClaimFilters(invoice="PLAN001234"),
        "ix_claims_insurer_provider": ClaimFilters(provider=bulk.am_number),
        "ix_claims_insurer_care": ClaimFilters(care_from=date(2024, 11, 20)),
    }
    with engine.connect() as conn:
        for index, filters in cases.items():
            named = matching_providers(conn, filters.provider) if filters.provider else []
            query = search_query(world.insurer_id, filters, named).limit(26)
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert index in plan, plan
            assert "Seq Scan on claims" not in plan, plan
