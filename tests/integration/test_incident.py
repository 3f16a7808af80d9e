"""Incident scope from real lookups, reveal under break-glass, notices, revocation."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.integration.operations_support import (
    NOW,
    SeedInsurer,
    enrol,
    provider_principal,
    rights_check,
)
from tierspayant.app.platform import Platform
from tierspayant.domain.identifiers import parse_nir
from tierspayant.services import breakglass, containment, incident
from tierspayant.services.breakglass import GrantScope
from tierspayant.services.errors import Forbidden, ServiceError
from tierspayant.services.identification import CardData
from tierspayant.store import audit
from tierspayant.store.accounts_tables import accounts, sessions
from tierspayant.store.operations_tables import incident_runs
from tierspayant.store.tables import access_tokens, audit_events, principals

RESPONDER = "operator:alice"
START, END = NOW - timedelta(hours=1), NOW + timedelta(hours=1)


def _window(**who: str) -> incident.ScopeCriteria:
    return incident.ScopeCriteria(START, END, **who)


@pytest.fixture
def attacked(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> tuple[Platform, str, str, list[int], int]:
    """An attacker reads 5 people (one twice) and misses 2; an honest pharmacy reads 1.

    Returns the platform, the attacker's principal id, its structure, the line numbers of
    the people it was answered about, and the honest pharmacy's single line.
    """
    platform.clock = lambda: NOW
    insurer, people = enrol(platform, seed_insurer, tmp_path, 12)
    attacker = provider_principal(platform, insurer.amc_number, seed=1)
    honest = provider_principal(platform, insurer.amc_number, seed=2)
    read = [0, 3, 4, 7, 9]
    for line in [*read, 3]:
        assert rights_check(platform, attacker, people[line].card(insurer.amc_number))
    for line in (5, 6):  # right NIR, wrong birth date: a miss, nothing disclosed
        person = people[line]
        wrong = CardData(insurer.amc_number, person.birth + timedelta(days=1), person.nir, 1)
        assert not rights_check(platform, attacker, wrong)
    assert rights_check(platform, honest, people[11].card(insurer.amc_number))
    return platform, attacker.id, str(attacker.structure), read, 11


def test_given_real_lookups_when_scoping_a_principal_then_exactly_the_people_answered(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, read, honest_line = attacked
    result = incident.scope_incident(platform, _window(principal=attacker), RESPONDER)
    assert len(result.insurers) == 1
    records = result.insurers[0].records
    # Beneficiary ids follow the file order (the import numbers new rows 1, 2, …).
    assert sorted(r.beneficiary_id for r in records if r.beneficiary_id) == [
        line + 1 for line in read
    ]
    assert honest_line + 1 not in {r.beneficiary_id for r in records}
    assert {r.beneficiary_id: r.reads for r in records}[4] == 2
    assert result.events_scanned == 8  # 6 hits and 2 misses, misses not counted
    assert all(r.last_name is None and r.nir is None for r in records)


def test_given_real_lookups_when_scoping_a_structure_then_same_people(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, _, structure, read, _ = attacked
    result = incident.scope_incident(platform, _window(structure=structure), RESPONDER)
    assert result.people == len(read)


def test_given_a_window_before_the_reads_when_scoping_then_nobody(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, _, _ = attacked
    before = incident.ScopeCriteria(
        NOW - timedelta(days=2), NOW - timedelta(days=1), principal=attacker
    )
    assert incident.scope_incident(platform, before, RESPONDER).people == 0


def test_given_a_scope_then_it_is_audited_and_recorded(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, read, _ = attacked
    incident.scope_incident(platform, _window(principal=attacker), RESPONDER)
    with platform.engine.connect() as conn:
        last = audit.last_event(conn)
        run = conn.execute(select(incident_runs).order_by(incident_runs.c.id.desc())).first()
    assert last is not None
    assert (last.action, last.actor, last.detail["people"]) == ("incident.scope", RESPONDER, 5)
    assert run is not None
    assert (run.kind, run.subjects, run.revealed) == ("scope", len(read), 0)


def test_given_no_grant_when_revealing_then_refused(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, _, _ = attacked
    with pytest.raises(Forbidden) as refused:
        incident.scope_incident(
            platform, _window(principal=attacker), RESPONDER, incident.Reveal(grant_id=999)
        )
    assert refused.value.code == "breakglass.no_grant"


def test_given_an_unapproved_bulk_grant_when_revealing_then_refused(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, _, _ = attacked
    grant = breakglass.request_grant(
        platform, RESPONDER, "incident INC-2025-03 scoping", GrantScope.BULK, 2
    )
    with pytest.raises(Forbidden, match="usable break-glass grant"):
        incident.scope_incident(
            platform, _window(principal=attacker), RESPONDER, incident.Reveal(grant.id)
        )


def test_given_an_approved_grant_when_revealing_then_names_masked_nir_and_one_event_each(
    attacked: tuple[Platform, str, str, list[int], int], tmp_path: Path
) -> None:
    platform, attacker, _, read, _ = attacked
    grant = breakglass.request_grant(
        platform, RESPONDER, "incident INC-2025-03 scoping", GrantScope.EXPORT, 2
    )
    breakglass.approve_grant(platform, grant.id, "operator:bob")
    result = incident.scope_incident(
        platform, _window(principal=attacker), RESPONDER, incident.Reveal(grant.id)
    )
    records = result.insurers[0].records
    assert all(r.last_name and r.first_name for r in records)
    assert all(r.nir is not None and r.nir.endswith("** ** *** *** **") for r in records)
    with platform.engine.connect() as conn:
        reveals = conn.execute(
            select(audit_events.c.subject).where(audit_events.c.action == "incident.reveal")
        ).all()
    assert sorted(s for (s,) in reveals) == sorted(r.pseudonym for r in records)
    out = tmp_path / "scope.csv"
    incident.write_scope(result, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(read) + 1
    letters = incident.draft_notices(incident.scope_document(result), tmp_path / "n").letters
    first = records[0]
    assert first.first_name is not None
    assert first.last_name is not None
    letter = next(p for p in letters if p.name == f"courrier-{first.beneficiary_id}.md")
    assert f"{first.first_name} {first.last_name}," in letter.read_text(encoding="utf-8")
    assert stat.S_IMODE(letter.stat().st_mode) == 0o600


def test_given_show_nir_when_revealing_then_nir_in_clear_and_valid(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    platform, attacker, _, _, _ = attacked
    grant = breakglass.request_grant(
        platform, RESPONDER, "insurer request, NIR needed", GrantScope.EXPORT, 1
    )
    breakglass.approve_grant(platform, grant.id, "operator:bob")
    result = incident.scope_incident(
        platform, _window(principal=attacker), RESPONDER, incident.Reveal(grant.id, True)
    )
    for record in result.insurers[0].records:
        assert record.nir is not None
        assert parse_nir(record.nir).value == record.nir


def test_given_a_scope_file_when_drafting_notices_then_french_cnil_fields_and_letters(
    attacked: tuple[Platform, str, str, list[int], int], tmp_path: Path
) -> None:
    platform, attacker, _, read, _ = attacked
    result = incident.scope_incident(platform, _window(principal=attacker), RESPONDER)
    scope_file = tmp_path / "scope.json"
    incident.write_scope(result, scope_file)
    document = incident.load_scope_document(scope_file)
    files = incident.draft_notices(
        document, tmp_path / "notices", incident.NoticeContext(dpo_contact="DPO <dpo@x.fr>")
    )
    assert len(files.cnil) == 1
    assert len(files.letters) == len(read)
    cnil = files.cnil[0].read_text(encoding="utf-8")
    for heading in (
        "Nature de la violation",
        "Catégories et nombre approximatif de personnes",
        "Catégories et nombre approximatif d'enregistrements",
        "délégué à la protection des données",
        "Conséquences probables",
        "Mesures prises",
        "Mesures proposées",
    ):
        assert heading in cnil
    assert "Nombre de personnes concernées : 5" in cnil
    assert "DPO <dpo@x.fr>" in cnil
    letter = files.letters[0].read_text(encoding="utf-8")
    assert "article 34" in letter
    assert "Madame, Monsieur," in letter  # scope made without reveal: no names


def test_given_a_non_scope_file_when_drafting_notices_then_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ServiceError) as refused:
        incident.load_scope_document(bogus)
    assert refused.value.code == "incident.scope_file"


def test_given_both_or_neither_criteria_then_refused() -> None:
    with pytest.raises(ServiceError):
        incident.ScopeCriteria(START, END)
    with pytest.raises(ServiceError):
        incident.ScopeCriteria(START, END, principal="a", structure="b")
    with pytest.raises(ServiceError):
        incident.ScopeCriteria(END, START, principal="a")


def test_given_a_principal_with_tokens_and_sessions_when_revoked_then_all_end(
    platform: Platform,
) -> None:
    principal = "staff:eve"
    now = platform.now()
    with platform.engine.begin() as conn:
        conn.execute(
            principals.insert().values(id=principal, kind="operator_staff", status="active")
        )
        account_id = conn.execute(
            accounts.insert()
            .values(
                kind="operator_staff",
                login="eve@example.org",
                principal_id=principal,
                created_at=now,
                status="active",
            )
            .returning(accounts.c.id)
        ).scalar_one()
        for n in range(3):
            conn.execute(
                access_tokens.insert().values(
                    token_digest=bytes([n]) * 32,
                    principal=principal,
                    issued_at=now,
                    expires_at=now + timedelta(minutes=10),
                )
            )
        for n in range(2):
            conn.execute(
                sessions.insert().values(
                    token_digest=bytes([n + 10]) * 32,
                    account_id=account_id,
                    principal_id=principal,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(hours=8),
                    csrf_secret=bytes(32),
                    method="password+totp",
                )
            )
    done = incident.revoke(platform, principal, RESPONDER, "phished credentials")
    assert (done.tokens, done.sessions) == (3, 2)
    with platform.engine.connect() as conn:
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == principal)
        ).scalar_one()
        live_tokens = conn.execute(
            select(access_tokens.c.token_digest).where(
                access_tokens.c.principal == principal, access_tokens.c.revoked_at.is_(None)
            )
        ).all()
        live_sessions = conn.execute(
            select(sessions.c.token_digest).where(
                sessions.c.principal_id == principal, sessions.c.revoked_at.is_(None)
            )
        ).all()
        actions = [
            a for (a,) in conn.execute(select(audit_events.c.action).order_by(audit_events.c.seq))
        ]
    assert status == "suspended"
    assert live_tokens == live_sessions == []
    assert actions[-2:] == ["principal.suspend", "incident.revoke"]
    again = incident.revoke(platform, principal, RESPONDER, "phished credentials")
    assert (again.tokens, again.sessions) == (0, 0)


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_given_the_cli_then_every_operations_command_runs_and_exits_cleanly(
    attacked: tuple[Platform, str, str, list[int], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tierspayant.cli.main import app

    platform, attacker, _, read, _ = attacked
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    runner = CliRunner()
    scope_file = tmp_path / "scope.json"
    checkpoints_dir = tmp_path / "cp"
    commands = [
        ["incident", "scope", "--principal", attacker, "--from", START.isoformat(),
         "--to", END.isoformat(), "--out", str(scope_file)],
        ["incident", "notices", "--scope", str(scope_file), "--out", str(tmp_path / "n")],
        ["audit", "checkpoint", "--out", str(checkpoints_dir)],
        ["audit", "verify-checkpoints", "--checkpoints", str(checkpoints_dir)],
        ["keys", "rotate-kek"],
        ["keys", "retire-kek"],
        ["purge", "--dry-run"],
        ["breakglass", "request", "--as", "operator:alice", "--scope", "bulk",
         "--reason", "incident INC-7 member letters"],
        ["breakglass", "approve", "1", "--as", "operator:bob"],
        ["breakglass", "list", "--usable"],
        ["breakglass", "close", "1", "--as", "operator:alice"],
        ["revoke", "--principal", attacker],
    ]  # fmt: skip
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
    assert len(incident.load_scope_document(scope_file)["insurers"][0]["records"]) == len(read)
    refused = runner.invoke(app, ["breakglass", "approve", "1", "--as", "operator:bob"])
    assert refused.exit_code == 4  # conflict: not waiting for approval
    assert "breakglass.not_pending" in refused.output


def test_given_a_canary_in_the_scope_when_revealing_then_it_stays_sealed_and_alerts(
    attacked: tuple[Platform, str, str, list[int], int],
) -> None:
    """The attacker also read a canary: the responder sees it in the scope, its identity is
    never decrypted, and touching it raises the canary alert."""
    from tests.integration.test_cards import canary_people
    from tierspayant.security.audit import subject_pseudonym
    from tierspayant.services import canaries
    from tierspayant.store.security_tables import security_alerts
    from tierspayant.store.tables import insurers

    platform, attacker, structure, read, _ = attacked
    with platform.engine.connect() as conn:
        # The insurer the attacker read (on PostgreSQL the module's database holds others).
        amc = str(
            conn.execute(
                select(audit_events.c.insurer)
                .where(audit_events.c.actor == attacker, audit_events.c.insurer.is_not(None))
                .limit(1)
            ).scalar_one()
        )
        insurer_id = int(
            conn.execute(select(insurers.c.id).where(insurers.c.amc_number == amc)).scalar_one()
        )
    canaries.plant(platform, amc, 2, RESPONDER)
    planted = canary_people(platform, amc)
    canary_id = canaries_ids(platform, insurer_id)[0]
    key = platform.operator_keys().derive("audit.subject")
    with platform.engine.begin() as conn:
        audit.append(
            conn,
            at=NOW,
            actor=attacker,
            structure=structure,
            action="rights.check",
            purpose="rights",
            subject=subject_pseudonym(key, amc, str(canary_id)),
            insurer=amc,
            decision="allow",
        )
    grant = breakglass.request_grant(
        platform, RESPONDER, "incident INC-2025-07 scoping", GrantScope.EXPORT, 2
    )
    breakglass.approve_grant(platform, grant.id, "operator:bob")
    result = incident.scope_incident(
        platform, _window(principal=attacker), RESPONDER, incident.Reveal(grant.id)
    )
    records = {r.beneficiary_id: r for r in result.insurers[0].records}
    assert len(records) == len(read) + 1
    sealed = records[canary_id]
    assert (sealed.last_name, sealed.first_name, sealed.nir) == (None, None, None)
    assert all(r.last_name for i, r in records.items() if i != canary_id)
    with platform.engine.connect() as conn:
        codes = set(conn.execute(select(security_alerts.c.code)).scalars())
    assert "canary.touched" in codes
    document = json.dumps(incident.scope_document(result))
    assert all(person.nir not in document for person in planted)


def canaries_ids(platform: Platform, insurer_id: int) -> list[int]:
    """The canaries' row ids, as only the operator key reveals them (test oracle)."""
    from tierspayant.security.crypto import FieldCipher, row_aad
    from tierspayant.store import cards as card_store

    with platform.engine.connect() as conn:
        operator = FieldCipher(platform.operator_keys())
        return [
            int(operator.decrypt(ref, row_aad(insurer_id, "canary_marks", mark.hex(), "ref")))
            for mark, ref, _ in card_store.marks_of(conn, insurer_id)
        ]


def _cnil_measures(result: incident.IncidentScope, out: Path) -> str:
    files = incident.draft_notices(incident.scope_document(result), out)
    text = files.cnil[0].read_text(encoding="utf-8")
    return text.split("## Mesures prises", 1)[1].split("## Mesures proposées", 1)[0]


def test_given_measures_taken_then_the_scope_and_its_notices_say_exactly_those(
    attacked: tuple[Platform, str, str, list[int], int], tmp_path: Path
) -> None:
    platform, attacker, structure, _, _ = attacked
    # Given nothing done yet: the notices say so, and invent no suspension
    before = incident.scope_incident(platform, _window(principal=attacker), RESPONDER)
    assert before.measures == ()
    assert f"(FINESS {structure})" in before.subject_name
    untouched = _cnil_measures(before, tmp_path / "before")
    assert "suspension du compte" not in untouched
    assert "aucune suspension, révocation ni mesure de confinement" in untouched
    # When the account is cut off and its structure put in card-proof-only mode
    incident.revoke(platform, attacker, RESPONDER, "identifiants vus en vente")
    switch = containment.propose(
        platform, RESPONDER, f"structure:{structure}", "card_proof_only", "pharmacie compromise"
    )
    containment.approve(platform, "operator:bob", switch.id)
    after = incident.scope_incident(platform, _window(principal=attacker), RESPONDER)
    # Then the scope records the three measures, in order, with the reason as typed
    assert [m["kind"] for m in after.measures] == ["suspension", "revocation", "containment"]
    assert after.measures[0]["reason"]["typed"] == "identifiants vus en vente"
    assert after.measures[2]["switch"] == switch.id
    # And the notices state them with their date and time, and the account by name
    taken = _cnil_measures(after, tmp_path / "after")
    moment = NOW.astimezone(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y à %H:%M")
    assert f"le {moment} (heure de Paris) : suspension du compte « {after.subject_name} »" in (
        taken
    )
    assert "motif : identifiants vus en vente" in taken
    assert "révocation de toutes les sessions et de tous les jetons d'accès" in taken
    assert f"confinement n° {switch.id} de la structure" in taken
    assert "« carte obligatoire », toujours en vigueur" in taken
    assert "aucune suspension" not in taken
