"""Drafts, in French, of an incident's GDPR notices: to the CNIL and to each person.

One notification to the CNIL (art. 33) per insurer and one letter per affected person
(art. 34), to be completed and sent by the insurer (the controller; the operator is its
processor). They are written from the scope's JSON document (:func:`scope_document`),
not from the database: a responder can draft them from a scope file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierspayant.services.incident.files import _write_private


@dataclass(frozen=True, slots=True)
class NoticeContext:
    """What the drafts cannot find in the log: whom to contact and what was done."""

    dpo_contact: str = "[nom et coordonnées du délégué à la protection des données]"
    measures_taken: tuple[str, ...] = (
        "suspension immédiate du compte en cause et révocation de tous ses jetons et sessions",
        "identification, à partir du journal d'audit signé, des seules personnes consultées",
    )
    measures_proposed: tuple[str, ...] = (
        "réinitialisation des moyens d'authentification du professionnel concerné",
        "surveillance renforcée des consultations de la structure pendant 90 jours",
    )


@dataclass(frozen=True, slots=True)
class NoticeFiles:
    cnil: tuple[Path, ...]
    letters: tuple[Path, ...]


def draft_notices(
    document: dict[str, Any], out_dir: Path, context: NoticeContext | None = None
) -> NoticeFiles:
    """Write one CNIL notification draft per insurer and one letter per affected person."""
    context = context or NoticeContext()
    out_dir.mkdir(parents=True, exist_ok=True)
    cnil: list[Path] = []
    letters: list[Path] = []
    for insurer in document["insurers"]:
        amc = str(insurer["amc_number"])
        path = out_dir / f"notification-cnil-{amc}.md"
        _write_private(path, _cnil_notice(document, insurer, context))
        cnil.append(path)
        letter_dir = out_dir / f"courriers-{amc}"
        letter_dir.mkdir(exist_ok=True)
        for record in insurer["records"]:
            if record["beneficiary_id"] is None:
                continue  # purged since: the insurer's archive, not us, can reach them
            letter = letter_dir / f"courrier-{record['beneficiary_id']}.md"
            _write_private(letter, _member_letter(document, insurer, record, context))
            letters.append(letter)
    return NoticeFiles(tuple(cnil), tuple(letters))


def _french_date(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%d/%m/%Y à %H:%M UTC")


def _who(criteria: dict[str, Any]) -> str:
    if criteria.get("principal"):
        return f"le compte d'accès « {criteria['principal']} »"
    return f"la structure de soins {criteria['structure']}"


def _bullets(items: tuple[str, ...]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _cnil_notice(document: dict[str, Any], insurer: dict[str, Any], context: NoticeContext) -> str:
    criteria = document["criteria"]
    window = f"du {_french_date(criteria['from'])} au {_french_date(criteria['to'])}"
    return f"""# Notification de violation de données personnelles (RGPD, article 33)

Projet établi par l'opérateur de tiers payant (sous-traitant) pour {insurer["name"]}
(AMC {insurer["amc_number"]}), responsable du traitement. À compléter et à transmettre
à la CNIL dans les 72 heures suivant la prise de connaissance de la violation.

## Nature de la violation

Violation de confidentialité : consultations de droits effectuées par {_who(criteria)}
{window}, au moyen d'identifiants valides dont l'usage par un tiers est suspecté.
Périmètre établi le {_french_date(document["generated_at"])} à partir du journal d'audit
chaîné et signé ({document["events_scanned"]} événements examinés).

## Catégories et nombre approximatif de personnes concernées

- Catégorie : bénéficiaires de contrats de complémentaire santé de l'organisme.
- Nombre de personnes concernées : {insurer["people"]}
  (dont {insurer["unresolved"]} dont la fiche a depuis été supprimée).

## Catégories et nombre approximatif d'enregistrements concernés

- Nombre de consultations ayant donné une réponse : {insurer["reads"]}.
- Données communiquées : ouverture des droits et niveau de prise en charge à une date
  de soins. Les réponses ne contiennent ni NIR, ni nom, ni date de naissance, ni
  adresse : l'auteur disposait déjà des identifiants saisis.

## Coordonnées du délégué à la protection des données

{context.dpo_contact}

## Conséquences probables

Confirmation, pour chaque personne, de son affiliation à l'organisme et de ses garanties,
qui peut servir à des tentatives d'hameçonnage ciblé ou d'usurpation d'identité.

## Mesures prises

{_bullets(context.measures_taken)}

## Mesures proposées pour atténuer les conséquences

{_bullets(context.measures_proposed)}
"""


def _member_letter(
    document: dict[str, Any],
    insurer: dict[str, Any],
    record: dict[str, Any],
    context: NoticeContext,
) -> str:
    names = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)
    greeting = f"{names}," if names else "Madame, Monsieur,"
    reference = record["beneficiary_id"] or record["pseudonym"]
    return f"""# Information sur une violation de vos données personnelles (RGPD, article 34)

{insurer["name"]} — référence du dossier : {insurer["amc_number"]}-{reference}

{greeting}

Nous vous informons qu'entre le {_french_date(record["first_read"])} et le
{_french_date(record["last_read"])}, des informations relatives à vos droits de
complémentaire santé ont été consultées {record["reads"]} fois par un tiers qui utilisait
les identifiants d'un professionnel de santé. Ont été communiqués : l'existence de votre
contrat et votre niveau de prise en charge. Votre numéro de sécurité sociale, votre nom,
votre date de naissance et votre adresse n'ont pas été transmis par notre service.

Conséquences possibles : vous pourriez recevoir des messages ou appels frauduleux se
réclamant de votre complémentaire santé ou de l'Assurance maladie. Nous ne vous
demanderons jamais vos codes, mots de passe ou coordonnées bancaires par courriel,
SMS ou téléphone.

Mesures prises :

{_bullets(context.measures_taken)}

Pour toute question ou pour exercer vos droits, vous pouvez contacter notre délégué à la
protection des données : {context.dpo_contact}. Vous pouvez également adresser une
réclamation à la CNIL (www.cnil.fr).
"""
