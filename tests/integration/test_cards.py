"""Cards on SQLite and PostgreSQL: issue, supersede, revoke, canaries left out, atomic runs.

The helpers at the top build a small world (an insurer with the example catalogue, a
synthetic population, cards) that the canary and API tests reuse. The QR text of each
card is taken from the real ``write_card`` call as it happens: the platform keeps no copy
of a card's secret, so that is the only place a test can read it.
"""

from __future__ import annotations

import csv
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from tests.factories import make_am_number, make_finess
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.formats import card_pdf
from tierspayant.formats.beneficiaries import ImportMode
from tierspayant.security import cardsig
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.identity import open_column
from tierspayant.services import canaries, cards
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.errors import NotFound, ServiceError
from tierspayant.services.insurers import add_insurer, upload_catalogue
from tierspayant.services.providers import (
    NewProvider,
    add_provider,
    grant_client_token,
    issue_client,
)
from tierspayant.store import cards as card_store
from tierspayant.store.cards_tables import card_signing_keys
from tierspayant.store.cards_tables import cards as cards_table
from tierspayant.store.keys import insurer_scope
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import audit_events, insurers

CATALOGUE = (
    Path(__file__).parents[2]
    / "src"
    / "tierspayant"
    / "reference"
    / "demo"
    / "mutuelle-des-tilleuls.yaml"
)
ACTOR = "operator:test"


# --------------------------------------------------------------------------- world


@dataclass(frozen=True, slots=True)
class Person:
    member_number: str
    nir: str
    birth_rank: int
    birth_date: str


@dataclass
class World:
    platform: Platform
    amc: str
    insurer_id: int
    people: list[Person]
    out: Path
    qr_by_member: dict[str, str] = field(default_factory=dict)
    serial_by_member: dict[str, str] = field(default_factory=dict)

    def family(self, member_number: str) -> list[Person]:
        return [p for p in self.people if p.member_number == member_number]


def unique_amc() -> str:
    return f"{uuid.uuid4().int % 10**9:09d}"


def make_world(platform: Platform, tmp_path: Path, count: int = 30, seed: int = 7) -> World:
    """An insurer (example catalogue) with ``count`` synthetic beneficiaries."""
    amc = unique_amc()
    insurer = add_insurer(platform, amc, "Mutuelle des Tilleuls", "mutuelle", ACTOR)
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["insurer"] = amc
    upload_catalogue(platform, amc, document, ACTOR)
    codes = [c["code"] for c in document["contracts"]]
    path = tmp_path / f"benef-{amc}.csv"
    write_beneficiaries_csv(path, count, seed=seed, contracts=codes, start=platform.today())
    import_beneficiaries(
        platform, amc, path, mode=ImportMode.FULL, file_date=platform.today(), actor=ACTOR
    )
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    people = [
        Person(r["member_number"], r["nir"], int(r["birth_rank"]), r["birth_date"]) for r in rows
    ]
    return World(platform, amc, insurer.id, people, tmp_path / f"cards-{amc}")


@pytest.fixture
def capture_cards(monkeypatch: pytest.MonkeyPatch) -> list[card_pdf.CardPrint]:
    """Every card printed, as passed to the real ``write_card``."""
    printed: list[card_pdf.CardPrint] = []
    real = card_pdf.write_card

    def spy(card: card_pdf.CardPrint, directory: Path) -> Path:
        printed.append(card)
        return real(card, directory)

    monkeypatch.setattr(cards, "write_card", spy)
    return printed


def issue(world: World, printed: list[card_pdf.CardPrint]) -> cards.IssueSummary:
    """Issue the year's cards and remember each family's QR text and serial."""
    printed.clear()
    summary = cards.issue_cards(
        world.platform, world.amc, world.platform.today().year, world.out, ACTOR
    )
    for card in printed:
        world.qr_by_member[card.member_number] = card.qr_text
        world.serial_by_member[card.member_number] = card.serial
    return summary


def provider_token(platform: Platform, rng: random.Random) -> tuple[str, str]:
    """A fresh pharmacy with API credentials: (bearer token, principal id)."""
    am = make_am_number(rng, 2)
    add_provider(
        platform,
        NewProvider(am_number=am, category="pharmacy", name="Pharmacie", finess=make_finess(rng)),
        ACTOR,
    )
    client = issue_client(platform, am, "logiciel", ACTOR)
    token = grant_client_token(platform, client.client_id, client.client_secret).access_token
    return token, f"provider:{am}/client:{client.client_id}"


def canary_people(platform: Platform, amc: str) -> list[Person]:
    """The canaries' identities, decrypted as only a key holder can (test oracle)."""
    with platform.engine.connect() as conn:
        insurer_id = conn.execute(
            select(insurers.c.id).where(insurers.c.amc_number == amc)
        ).scalar_one()
        operator = FieldCipher(platform.operator_keys())
        ids = [
            int(operator.decrypt(ref, row_aad(insurer_id, "canary_marks", mark.hex(), "ref")))
            for mark, ref, _ in card_store.marks_of(conn, insurer_id)
        ]
        keys = platform.keys.active(conn, insurer_scope(amc))
        cipher = FieldCipher(keys)
        found = []
        for record in card_store.rows_by_id(conn, insurer_id, ids):

            def clear(column: str, blob: bytes, r: Any = record) -> str:
                return open_column(cipher, insurer_id, r.idx_nir, column, blob)

            found.append(
                Person(
                    clear("member_number", record.member_number_ct),
                    clear("nir", record.nir_ct),
                    record.birth_rank,
                    clear("birth_date", record.birth_date_ct),
                )
            )
    return found


# --------------------------------------------------------------------------- tests


def test_given_a_population_then_one_signed_card_per_family_with_rights(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path)
    with capture_logs() as logs:
        summary = issue(world, capture_cards)
    families = {p.member_number for p in world.people}
    assert summary.cards == len(capture_cards) > 0
    assert summary.cards + summary.families_without_rights == len(families)
    assert summary.canaries_skipped == 0
    keys = {
        k.key_id: k.public_key for k in cards.public_keys(platform) if k.amc_number == world.amc
    }
    for card in capture_cards:
        payload = cardsig.verify(card.qr_text, keys[cardsig.peek(card.qr_text).key_id])
        assert payload.serial_text == card.serial
        assert payload.valid_until.year == platform.today().year
        assert len(card.beneficiaries) <= len(world.family(card.member_number))
        assert {b.birth_date.isoformat() for b in card.beneficiaries} <= {
            p.birth_date for p in world.family(card.member_number)
        }
        assert card.contracts
        assert card.contracts[0].domains
        pdf = (world.out / f"carte-{card.serial}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF")
    assert not list(world.out.glob(".issuing-*"))
    with platform.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.action == "card.issue")
            ).scalar_one()
            == summary.cards
        )
        stored = conn.execute(select(cards_table)).all()
    secrets_in_db = {bytes(r.secret_digest) for r in stored}
    for card in capture_cards:
        secret = cardsig.peek(card.qr_text).secret
        assert secret not in secrets_in_db
        assert cardsig.secret_digest(secret) in secrets_in_db
    logged = repr(logs)
    for person in world.people:
        assert person.nir not in logged
        assert person.member_number not in logged


def test_given_a_second_issue_then_earlier_cards_are_superseded(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path, count=12)
    first = issue(world, capture_cards)
    old = dict(world.serial_by_member)
    second = issue(world, capture_cards)
    assert second.superseded == first.cards
    with platform.engine.connect() as conn:
        rows = {r.serial: r for r in conn.execute(select(cards_table)).all()}
    for member, serial in old.items():
        assert rows[serial].status == "superseded"
        assert rows[serial].superseded_by == world.serial_by_member[member]
        assert rows[world.serial_by_member[member]].status == "active"


def test_given_a_card_then_revocation_is_recorded_once_and_refused_twice(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path, count=6)
    issue(world, capture_cards)
    serial = next(iter(world.serial_by_member.values()))
    dashed = "-".join(serial[i : i + 4] for i in range(0, 16, 4)).lower()
    cards.revoke_card(platform, world.amc, dashed, "carte perdue", ACTOR)
    with platform.engine.connect() as conn:
        row = conn.execute(select(cards_table).where(cards_table.c.serial == serial)).one()
    assert (row.status, row.status_reason) == ("revoked", "carte perdue")
    with pytest.raises(ServiceError) as again:
        cards.revoke_card(platform, world.amc, serial, "carte perdue", ACTOR)
    assert again.value.code == "card.not_active"
    with pytest.raises(NotFound):
        cards.revoke_card(platform, world.amc, "A" * 16, "carte perdue", ACTOR)
    with pytest.raises(ServiceError) as bad:
        cards.revoke_card(platform, world.amc, "not-a-serial", "carte perdue", ACTOR)
    assert bad.value.code == "card.serial"


def test_given_canaries_then_they_get_no_card_and_a_targeted_issue_alerts(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path, count=10)
    canaries.plant(platform, world.amc, 3, ACTOR)
    summary = issue(world, capture_cards)
    assert summary.canaries_skipped == 3
    planted = canary_people(platform, world.amc)
    assert not {p.member_number for p in planted} & set(world.qr_by_member)
    with pytest.raises(NotFound) as refused:
        cards.issue_family_card(
            platform, world.amc, planted[0].member_number, platform.today().year, world.out, ACTOR
        )
    assert refused.value.code == "card.family_unknown"
    with platform.engine.connect() as conn:
        codes = (
            conn.execute(
                select(security_alerts.c.code).where(security_alerts.c.insurer == world.amc)
            )
            .scalars()
            .all()
        )
    assert codes == ["canary.touched"]


def test_given_a_family_number_then_only_that_family_gets_a_new_card(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path, count=8)
    issue(world, capture_cards)
    member, old = next(iter(world.serial_by_member.items()))
    new = cards.issue_family_card(
        platform, world.amc, member, platform.today().year, world.out, ACTOR
    )
    with platform.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(cards_table.c.serial, cards_table.c.status).where(
                    cards_table.c.insurer_id == world.insurer_id
                )
            ).all()
        )
    assert statuses[old] == "superseded"
    assert statuses[new] == "active"
    assert list(statuses.values()).count("active") == len(world.serial_by_member)


def test_given_a_failure_mid_run_then_no_card_and_no_pdf_remain(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(platform, tmp_path, count=20)
    real = card_pdf.write_card
    calls: list[int] = []

    def failing(card: card_pdf.CardPrint, directory: Path) -> Path:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(card, directory)

    monkeypatch.setattr(cards, "write_card", failing)
    with pytest.raises(OSError, match="disk full"):
        cards.issue_cards(platform, world.amc, platform.today().year, world.out, ACTOR)
    with platform.engine.connect() as conn:
        assert card_store.count_cards(conn, world.insurer_id) == 0
    assert list(world.out.iterdir()) == []


def test_given_a_year_far_away_then_issue_is_refused(platform: Platform, tmp_path: Path) -> None:
    world = make_world(platform, tmp_path, count=2)
    with pytest.raises(ServiceError) as refused:
        cards.issue_cards(platform, world.amc, platform.today().year + 5, world.out, ACTOR)
    assert refused.value.code == "card.year"


def test_given_a_rotated_key_then_old_cards_still_verify_and_both_keys_are_published(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> None:
    world = make_world(platform, tmp_path, count=4)
    issue(world, capture_cards)
    old_qr = next(iter(world.qr_by_member.values()))
    new_kid = cards.rotate_signing_key(platform, world.amc, ACTOR)
    published = {k.key_id: k for k in cards.public_keys(platform) if k.amc_number == world.amc}
    assert len(published) == 2
    assert published[new_kid].active
    old_kid = cardsig.peek(old_qr).key_id
    assert cardsig.verify(old_qr, published[old_kid].public_key)
    with platform.engine.connect() as conn:
        wrapped = conn.execute(select(card_signing_keys.c.wrapped_private)).scalars().all()
    assert all(len(bytes(w)) > 32 for w in wrapped)


def test_given_the_commands_then_cards_and_canaries_are_run_from_the_cli(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(platform, tmp_path, count=6)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    year = str(platform.today().year)
    assert run("canaries", "plant", "--insurer", world.amc, "--count", "2")[0] == 0
    code, out = run(
        "cards", "issue", "--insurer", world.amc, "--year", year, "--out", str(world.out)
    )
    assert code == 0, out
    assert "cartes émises" in out
    assert len(list(world.out.glob("carte-*.pdf"))) > 0
    code, out = run("canaries", "status")
    assert code == 0
    assert world.amc in out
    code, out = run("cards", "revoke", "--insurer", world.amc, "--serial", "x", "--reason", "vol")
    assert code == 2
    assert "[card.serial]" in out
    assert run("cards", "rotate-key", "--insurer", world.amc)[0] == 0
