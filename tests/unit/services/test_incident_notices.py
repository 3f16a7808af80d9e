"""The wording of the incident notices: they say what the records say was done (a
suspension only if the account was suspended, with its date and time; a revocation if
revoked; containment if switched), what the answers disclosed, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierspayant.services.incident import NoticeContext, draft_notices

AMC = "912345678"
ACCOUNT = "provider:691234567/user:9"
NAME = "Marie Dupont, professionnel (portail) — Pharmacie des Lilas (FINESS 690000001)"
GUARD = "Contrôles automatiques de la plateforme"
OPERATOR = "Jean Martin, personnel de l'opérateur"


def _document(measures: list[dict[str, Any]] | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "tierspayant.incident-scope.v1",
        "criteria": {
            "principal": ACCOUNT,
            "structure": None,
            "from": "2026-03-02T23:00:00+00:00",
            "to": "2026-03-04T23:00:00+00:00",
        },
        "generated_at": "2026-03-05T09:15:00+00:00",
        "events_scanned": 42,
        "people": 2,
        "subject_name": NAME,
        "insurers": [
            {
                "amc_number": AMC,
                "name": "Mutuelle des Tilleuls",
                "people": 2,
                "reads": 3,
                "unresolved": 0,
                "actions": ["calculation", "eligibility.check"],
                "records": [
                    {
                        "insurer": AMC, "pseudonym": "p1", "reads": 2,
                        "first_read": "2026-03-03T08:01:00+00:00",
                        "last_read": "2026-03-03T08:02:00+00:00",
                        "beneficiary_id": 11, "last_name": None, "first_name": None,
                        "nir": None, "actions": ["eligibility.check"],
                    },
                    {
                        "insurer": AMC, "pseudonym": "p2", "reads": 1,
                        "first_read": "2026-03-03T08:03:00+00:00",
                        "last_read": "2026-03-03T08:03:00+00:00",
                        "beneficiary_id": 12, "last_name": None, "first_name": None,
                        "nir": None, "actions": ["calculation"],
                    },
                ],
            }
        ],
    }  # fmt: skip
    if measures is not None:
        document["measures"] = measures
    return document


SUSPENDED = {
    "kind": "suspension",
    "at": "2026-03-03T08:04:05+00:00",
    "principal": ACCOUNT,
    "name": NAME,
    "by": "system:guard",
    "by_name": GUARD,
    "reason": {"kind": "alert", "code": "guard.human_speed", "typed": None},
}
REVOKED = {
    "kind": "revocation",
    "at": "2026-03-03T10:30:00+00:00",
    "principal": ACCOUNT,
    "name": NAME,
    "by": "operator/staff:3",
    "by_name": OPERATOR,
}
CONTAINED = {
    "kind": "containment",
    "at": "2026-03-03T11:00:00+00:00",
    "switch": 7,
    "scope_kind": "structure",
    "scope_value": "690000001",
    "scope_name": "Pharmacie des Lilas (FINESS 690000001)",
    "mode": "card_proof_only",
    "lifted_at": "2026-03-04T16:45:00+00:00",
    "expires_at": None,
    "by_name": OPERATOR,
    "second_name": "Lucie Petit, personnel de l'opérateur",
}


def _drafts(tmp_path: Path, measures: list[dict[str, Any]] | None) -> tuple[str, str]:
    files = draft_notices(_document(measures), tmp_path, NoticeContext(dpo_contact="DPO"))
    cnil = files.cnil[0].read_text(encoding="utf-8")
    letter = next(p for p in files.letters if p.name == "courrier-12.md")
    return cnil, letter.read_text(encoding="utf-8")


def _measures_section(cnil: str) -> str:
    return cnil.split("## Mesures prises", 1)[1].split("## Mesures proposées", 1)[0]


def test_a_suspended_account_is_said_suspended_with_its_date_time_and_reason(
    tmp_path: Path,
) -> None:
    cnil, letter = _drafts(tmp_path, [SUSPENDED])
    taken = _measures_section(cnil)
    assert (
        f"- le 03/03/2026 à 09:04 (heure de Paris) : suspension du compte « {NAME} » "
        f"(par : {GUARD} ; motif : Consultations plus rapides qu'un humain)"
    ) in taken
    assert "révocation" not in taken
    assert "confinement" not in taken
    assert "aucune suspension" not in taken
    # The letter to the member says it without naming the professional or the operators
    assert "le 03/03/2026 à 09:04 (heure de Paris) : suspension du compte d'accès en cause" in (
        letter
    )
    assert "Marie Dupont" not in letter
    # And the CNIL draft names the account by name, the people and what was disclosed
    assert f"le compte d'accès « {NAME} »" in cnil
    assert "Nombre de personnes concernées : 2" in cnil
    assert "Vérification de droits : l'ouverture des droits" in cnil
    assert "Calcul de prise en charge : le montant pris en charge" in cnil
    assert "du 03/03/2026 à 00:00 (heure de Paris) au 05/03/2026 à 00:00" in cnil


def test_an_account_never_suspended_is_not_said_suspended(tmp_path: Path) -> None:
    cnil, letter = _drafts(tmp_path, [])
    taken = _measures_section(cnil)
    assert "suspension du compte" not in taken
    assert "suspension immédiate" not in cnil
    assert "aucune suspension, révocation ni mesure de confinement n'est enregistrée" in taken
    assert "identification, à partir du journal d'audit chaîné et signé" in taken
    assert "suspension du compte" not in letter
    # Each member's letter lists what their own reads disclosed
    assert "Calcul de prise en charge" in letter
    assert "Vérification de droits" not in letter
    assert "consultées une fois" in letter


def test_a_revoked_account_is_said_revoked_by_whom(tmp_path: Path) -> None:
    cnil, _ = _drafts(tmp_path, [SUSPENDED, REVOKED])
    taken = _measures_section(cnil)
    assert (
        "- le 03/03/2026 à 11:30 (heure de Paris) : révocation de toutes les sessions et de "
        f"tous les jetons d'accès du compte « {NAME} » (par : {OPERATOR})"
    ) in taken
    assert taken.index("suspension du compte") < taken.index("révocation de toutes")


def test_a_containment_switch_is_said_with_its_scope_mode_and_end(tmp_path: Path) -> None:
    cnil, letter = _drafts(tmp_path, [CONTAINED])
    taken = _measures_section(cnil)
    assert (
        "- le 03/03/2026 à 12:00 (heure de Paris) : confinement n° 7 de la structure "
        "Pharmacie des Lilas (FINESS 690000001), en mode « carte obligatoire », levé le "
        "04/03/2026 à 17:45 (heure de Paris)"
    ) in taken
    assert "suspension du compte" not in taken
    assert "aucune suspension" not in taken
    assert "Lucie Petit" not in letter


def test_a_scope_file_without_measures_asks_the_responder_instead_of_inventing(
    tmp_path: Path,
) -> None:
    cnil, letter = _drafts(tmp_path, None)
    assert "[à compléter : mesures prises, avec leur date et leur heure]" in cnil
    assert "suspension" not in _measures_section(cnil)
    assert "[à compléter : mesures prises" in letter
