"""Principal ids resolved to names for the security console, on SQLite and PostgreSQL:
the person's or software's name, its kind, and its structure by its one number; a whole
screen in a fixed number of queries; a member account never named."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from tests.conftest import SeededInsurer
from tests.support import world as core
from tierspayant.app.platform import Platform
from tierspayant.domain.structures import NumberKind
from tierspayant.security.guard import Level, Signal
from tierspayant.services import accounts, alerts, providers
from tierspayant.services.accounts import AccountKind
from tierspayant.store.read_models.principal_names import (
    insurer_refs,
    resolve_principals,
    resolve_structures,
)


@contextmanager
def _counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_principals_are_named_with_their_structure_in_four_queries(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    # Given a pharmacy (with a FINESS), a doctor without one, their accounts and software
    insurer = seed_insurer(platform)
    rng = random.Random(uuid.uuid4().int)
    tag = uuid.uuid4().hex[:6]
    pharmacy = core.add_provider(
        platform, rng, "pharmacy", name=f"Pharmacie des Lilas {tag}", finess=True, rpps=True
    )
    doctor = core.add_provider(platform, rng, "gp", name=f"Cabinet Martin {tag}", rpps=True)
    assert pharmacy.rpps is not None
    assert doctor.rpps is not None
    assert pharmacy.finess
    pharmacist = accounts.create_account(
        platform, AccountKind.PROVIDER_USER, None, None, actor="test",
        provider_id=pharmacy.id, rpps=pharmacy.rpps, display_name="Marie Dupont",
    )  # fmt: skip
    nameless = accounts.create_account(
        platform, AccountKind.PROVIDER_USER, None, None, actor="test",
        provider_id=doctor.id, rpps=doctor.rpps,
    )  # fmt: skip
    client = providers.issue_client(platform, pharmacy.am_number, f"Logiciel LGO {tag}", "test")
    client_id = providers.client_principal_id(pharmacy.am_number, client.client_id)
    staff = accounts.create_account(
        platform, AccountKind.INSURER_STAFF, f"gestion-{tag}@mutuelle.example",
        "cheval bleu mardi pluie", actor="test", insurer_id=insurer.id,
        display_name="Paul Bernard",
    )  # fmt: skip
    unknown = f"provider:{pharmacy.am_number}/user:999999999"
    ids = [
        pharmacist.principal_id,
        nameless.principal_id,
        client_id,
        staff.principal_id,
        f"provider:{doctor.am_number}/file",
        "system:guard",
        "operator:alice",
        unknown,
        None,
    ]
    # When a screen's principals are resolved together
    with _counted(platform.engine) as statements, platform.engine.connect() as conn:
        names = resolve_principals(conn, ids)
    # Then each is named, with its structure's name and one number
    finess = f"FINESS {pharmacy.finess}"
    assert names[pharmacist.principal_id].text == (
        f"Marie Dupont, professionnel (portail) — Pharmacie des Lilas {tag} ({finess})"
    )
    assert names[nameless.principal_id].text == (
        f"RPPS {doctor.rpps}, professionnel (portail) — Cabinet Martin {tag} "
        f"(n° AM {doctor.am_number})"
    )
    assert names[client_id].text == (
        f"Logiciel LGO {tag}, logiciel de professionnel — Pharmacie des Lilas {tag} ({finess})"
    )
    assert names[staff.principal_id].text.startswith("Paul Bernard, personnel d'organisme — ")
    assert f"(AMC {insurer.amc_number})" in names[staff.principal_id].text
    assert names[f"provider:{doctor.am_number}/file"].kind == "provider_file"
    assert names["system:guard"].text == "Contrôles automatiques de la plateforme"
    assert names["operator:alice"].text == "alice, personnel de l'opérateur"
    assert names[unknown].person is None  # no such account: the structure still shows
    assert names[unknown].structure is not None
    assert None not in names
    # And in a bounded number of queries (accounts, clients, providers, insurers), not one
    # per row
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4, selects


def test_a_member_account_is_never_named(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    insurer = seed_insurer(platform)
    member = f"insurer:{insurer.amc_number}/member:123456"
    with platform.engine.connect() as conn:
        named = resolve_principals(conn, [member])[member]
    assert named.kind == "member"
    assert named.person is None
    assert named.text.startswith("Adhérent — ")
    assert insurer.amc_number in named.text


def test_structure_numbers_are_named_by_the_number_the_guard_keys_on(
    platform: Platform,
) -> None:
    rng = random.Random(uuid.uuid4().int)
    tag = uuid.uuid4().hex[:6]
    lab = core.add_provider(platform, rng, "laboratory", name=f"Labo {tag}", siret=True, rpps=True)
    nurse = core.add_provider(platform, rng, "nurse", name=f"Infirmière {tag}", rpps=True)
    assert lab.siret is not None
    with platform.engine.connect() as conn:
        found = resolve_structures(conn, [lab.siret, nurse.am_number, "000000000", None])
        insurers = insurer_refs(conn, ["999999999"])
    assert found[lab.siret].kind is NumberKind.SIRET
    assert found[lab.siret].text == f"Labo {tag} (SIRET {lab.siret})"
    assert found[nurse.am_number].text == f"Infirmière {tag} (n° AM {nurse.am_number})"
    assert found["000000000"].name is None  # held by no provider: the number alone
    assert found["000000000"].text == "FINESS 000000000"
    assert insurers["999999999"].text == "AMC 999999999"


def test_an_alert_text_names_the_professional_and_the_structure_in_french(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    insurer = seed_insurer(platform)
    rng = random.Random(uuid.uuid4().int)
    tag = uuid.uuid4().hex[:6]
    pharmacy = core.add_provider(
        platform, rng, "pharmacy", name=f"Pharmacie du Port {tag}", finess=True, rpps=True
    )
    assert pharmacy.rpps is not None
    account = accounts.create_account(
        platform, AccountKind.PROVIDER_USER, None, None, actor="test",
        provider_id=pharmacy.id, rpps=pharmacy.rpps, display_name="Luc Girard",
    )  # fmt: skip
    signal = Signal(
        level=Level.HARD,
        code="guard.human_speed",
        message="portal lookups faster than a person can type",
        at=platform.now(),
        principal_id=account.principal_id,
        structure=pharmacy.structure,
        figures={},
    )
    with platform.engine.connect() as conn:
        text = alerts.alert_text(conn, signal, account.principal_id, insurer.amc_number, True)
    assert text == (
        "Consultations plus rapides qu'un humain — compte : Luc Girard, professionnel "
        f"(portail) — Pharmacie du Port {tag} (FINESS {pharmacy.finess}) "
        f"({account.principal_id}) — organisme : Mutuelle {insurer.amc_number} "
        f"(AMC {insurer.amc_number}) — compte suspendu"
    )
