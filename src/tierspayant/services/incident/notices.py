"""Drafts, in French, of an incident's GDPR notices: to the CNIL and to each person.

One notification to the CNIL (art. 33) per insurer and one letter per affected person
(art. 34), to be completed and sent by the insurer (the controller; the operator is its
processor). They are written from the scope's JSON document (:func:`scope_document`),
not from the database: a responder can draft them from a scope file alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tierspayant.domain import labels
from tierspayant.domain.containment import ContainmentMode, ScopeKind
from tierspayant.services.incident.files import _write_private


@dataclass(frozen=True, slots=True)
class NoticeContext:
    """What the drafts cannot find in the records: whom to contact, any measure the
    responder took outside the platform (``measures_taken``, added as typed), and the
    measures proposed."""

    dpo_contact: str = "[nom et coordonnées du délégué à la protection des données]"
    measures_taken: tuple[str, ...] = ()
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


PARIS = ZoneInfo("Europe/Paris")

DISCLOSED_FIELDS: dict[str, str] = {
    "eligibility.check": (
        "l'ouverture des droits à la complémentaire santé et le niveau de prise en charge, "
        "à une date de soins"
    ),
    "calculation": "le montant pris en charge par la complémentaire pour les actes indiqués",
    "prior_auth.request": "la décision sur une demande d'accord préalable",
    "claim.receive": "la prise en charge des lignes d'une facture de tiers payant",
}
"""What each kind of answer told its caller about a person, in French."""

UNKNOWN_MEASURES = "[à compléter : mesures prises, avec leur date et leur heure]"


def _french_date(text: str) -> str:
    """An ISO moment as ``06/12/2026 à 14:32 (heure de Paris)``."""
    moment = datetime.fromisoformat(text)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M") + " (heure de Paris)"


def _who(document: dict[str, Any]) -> str:
    criteria = document["criteria"]
    name = document.get("subject_name")
    if criteria.get("principal"):
        return f"le compte d'accès « {name or criteria['principal']} »"
    return f"la structure de soins « {name or criteria['structure']} »"


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _fields(actions: Iterable[str]) -> list[str]:
    """What the answers disclosed, one line per kind of answer."""
    return [
        f"{labels.label(labels.Kind.OPERATION, a)} : "
        + DISCLOSED_FIELDS.get(a, "la réponse de la plateforme à cette opération")
        for a in actions
    ]


def _reason(measure: dict[str, Any]) -> str:
    reason = measure.get("reason")
    if not isinstance(reason, dict):
        return ""
    if reason.get("typed"):
        return f" ; motif : {reason['typed']}"
    if reason.get("kind") and reason.get("code"):
        return f" ; motif : {labels.label(str(reason['kind']), reason['code'])}"
    return ""


def _scope_text(measure: dict[str, Any]) -> str:
    kind, name = measure["scope_kind"], measure.get("scope_name") or measure["scope_value"]
    if kind == ScopeKind.PLATFORM:
        return "toute la plateforme"
    if kind == ScopeKind.STRUCTURE:
        return f"la structure {name}"
    if kind == ScopeKind.INSURER:
        return f"l'organisme {name}"
    if kind == ScopeKind.CATEGORY:
        category = labels.label(labels.Kind.PROVIDER_CATEGORY, measure["scope_value"])
        return f"la catégorie de professionnels « {category} »"
    route = labels.label(labels.Kind.CONTAINMENT_ROUTE, measure["scope_value"])
    return f"toutes les {route}"


def _containment_end(measure: dict[str, Any], generated_at: str) -> str:
    if measure.get("lifted_at"):
        return f"levé le {_french_date(measure['lifted_at'])}"
    expires = measure.get("expires_at")
    if expires and expires <= generated_at:
        return f"terminé le {_french_date(expires)}"
    if expires:
        return f"en vigueur jusqu'au {_french_date(expires)}"
    return "toujours en vigueur à la date de ce projet"


def _measure(measure: dict[str, Any], generated_at: str, *, named: bool) -> str:
    """One measure as a sentence; ``named`` False (letters to members) leaves out who
    the account and the operators are."""
    when = f"le {_french_date(measure['at'])}"
    kind = measure["kind"]
    if kind == "containment":
        return _containment(measure, when, generated_at, named=named)
    account = f"du compte « {measure['name']} »" if named else "du compte d'accès en cause"
    by = f" (par : {measure['by_name']}" if named else ""
    if kind == "suspension":
        tail = f"{by}{_reason(measure)})" if named else ""
        return f"{when} : suspension {account}{tail}"
    if kind == "revocation":
        tail = f"{by})" if named else ""
        return (
            f"{when} : révocation de toutes les sessions et de tous les jetons d'accès "
            f"{account}{tail}"
        )
    if kind == "reinstatement":
        tail = (
            f" (approuvé par : {measure['by_name']} et {measure.get('second_name', '—')})"
            if named
            else ""
        )
        return f"{when} : rétablissement {account}{tail}"
    return f"{when} : {kind}"


def _containment(measure: dict[str, Any], when: str, generated_at: str, *, named: bool) -> str:
    mode = ContainmentMode(measure["mode"]).label
    approvers = (
        f" (proposé par : {measure['by_name']} ; approuvé par : {measure['second_name']})"
        if named
        else ""
    )
    return (
        f"{when} : confinement n° {measure['switch']} de {_scope_text(measure)}, en mode "
        f"« {mode} », {_containment_end(measure, generated_at)}{approvers}"
    )


def _measures_taken(document: dict[str, Any], context: NoticeContext, *, named: bool) -> list[str]:
    """What the records say was done, then what the responder adds; nothing else."""
    recorded = document.get("measures")
    if not isinstance(recorded, list):
        return [UNKNOWN_MEASURES, *context.measures_taken]
    generated = str(document["generated_at"])
    lines = [_measure(m, generated, named=named) for m in recorded]
    if not any(m["kind"] in ("suspension", "revocation", "containment") for m in recorded):
        lines.append(
            "aucune suspension, révocation ni mesure de confinement n'est enregistrée à la "
            "date de ce projet [à compléter si d'autres mesures ont été prises]"
        )
    lines.append(
        "identification, à partir du journal d'audit chaîné et signé, des seules personnes "
        f"consultées (le {_french_date(generated)})"
    )
    return [*lines, *context.measures_taken]


def _cnil_notice(document: dict[str, Any], insurer: dict[str, Any], context: NoticeContext) -> str:
    criteria = document["criteria"]
    window = f"du {_french_date(criteria['from'])} au {_french_date(criteria['to'])}"
    fields = _fields(insurer.get("actions") or ())
    disclosed = _bullets(fields) if fields else "- [à compléter : données communiquées]"
    return f"""# Notification de violation de données personnelles (RGPD, article 33)

Projet établi par l'opérateur de tiers payant (sous-traitant) pour {insurer["name"]}
(AMC {insurer["amc_number"]}), responsable du traitement. À compléter et à transmettre
à la CNIL dans les 72 heures suivant la prise de connaissance de la violation.

## Nature de la violation

Violation de confidentialité : consultations effectuées par {_who(document)}
{window}, au moyen d'identifiants valides dont l'usage illégitime est suspecté.
Périmètre établi le {_french_date(document["generated_at"])} à partir du journal d'audit
chaîné et signé ({document["events_scanned"]} événements examinés).

## Catégories et nombre approximatif de personnes concernées

- Catégorie : bénéficiaires de contrats de complémentaire santé de l'organisme.
- Nombre de personnes concernées : {insurer["people"]}
  (dont {insurer["unresolved"]} dont la fiche a depuis été supprimée).

## Catégories et nombre approximatif d'enregistrements concernés

- Nombre de consultations ayant donné une réponse : {insurer["reads"]}.
- Données communiquées :
{disclosed}
- Les réponses ne contiennent ni NIR, ni nom, ni date de naissance, ni adresse :
  l'auteur disposait déjà des identifiants saisis.

## Coordonnées du délégué à la protection des données

{context.dpo_contact}

## Conséquences probables

Confirmation, pour chaque personne, de son affiliation à l'organisme et de ses garanties,
qui peut servir à des tentatives d'hameçonnage ciblé ou d'usurpation d'identité.

## Mesures prises

{_bullets(_measures_taken(document, context, named=True))}

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
    reads = int(record["reads"])
    times = "une fois" if reads == 1 else f"{reads} fois"
    fields = _fields(record.get("actions") or insurer.get("actions") or ())
    disclosed = _bullets(fields) if fields else "- [à compléter : données communiquées]"
    return f"""# Information sur une violation de vos données personnelles (RGPD, article 34)

{insurer["name"]} — référence du dossier : {insurer["amc_number"]}-{reference}

{greeting}

Nous vous informons qu'entre le {_french_date(record["first_read"])} et le
{_french_date(record["last_read"])}, des informations relatives à vos droits de
complémentaire santé ont été consultées {times} au moyen des identifiants d'accès d'un
professionnel de santé, dans des conditions qui font suspecter un usage illégitime.
Ont été communiqués :

{disclosed}

Votre numéro de sécurité sociale, votre nom, votre date de naissance et votre adresse
n'ont pas été transmis par notre service.

Conséquences possibles : vous pourriez recevoir des messages ou appels frauduleux se
réclamant de votre complémentaire santé ou de l'Assurance maladie. Nous ne vous
demanderons jamais vos codes, mots de passe ou coordonnées bancaires par courriel,
SMS ou téléphone.

Mesures prises :

{_bullets(_measures_taken(document, context, named=False))}

Pour toute question ou pour exercer vos droits, vous pouvez contacter notre délégué à la
protection des données : {context.dpo_contact}. Vous pouvez également adresser une
réclamation à la CNIL (www.cnil.fr).
"""
