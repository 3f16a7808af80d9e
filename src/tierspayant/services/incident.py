"""Incident response: who was read, the notices to draft, and cutting an account off.

**Scope.** Given a principal (or a structure) and a time window, the audit log says
exactly which beneficiaries were disclosed, per insurer. Events name people only by a
keyed pseudonym of (insurer, internal id); scoping maps pseudonyms back by recomputing
them over the insurer's internal ids — one HMAC per id, no identity involved — so the
log itself never holds anything identifying.

Which events disclosed is read from the events themselves, never guessed from a list of
decisions that a new one would escape: every answer about a person (rights check,
calculation, prior authorisation, invoice receipt, card-proof refusal) records
``detail["disclosed"]`` (:data:`tierspayant.security.audit.DISCLOSED`), True when the
answer differed from the one an unknown person gets. Events written before that field
existed are classified by :data:`LEGACY_ANSWERS` (a refused prior authorisation by the
reason code stored with its agreement). Any other event naming a subject counts unless
its decision is a refusal (:data:`REFUSALS`): over-notifying is the safe side.

**Reveal.** Names and NIR are decrypted only with ``reveal``, for a responder holding an
approved bulk/export break-glass grant; each revealed person is one audit event; the NIR
stays masked unless explicitly asked for.

**Notices.** Drafts, in French, of the notification to the CNIL (GDPR art. 33) and one
letter per affected person (art. 34), to be completed and sent by the insurer (the
controller; the operator is its processor).

**Revoke.** Suspend a principal, revoke its tokens and end its portal sessions at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import IncidentCode
from tierspayant.security.audit import DISCLOSED, subject_pseudonym
from tierspayant.services.accounts import revoke_principal_sessions
from tierspayant.services.alerts import suspend_principal
from tierspayant.services.breakglass import (
    GrantScope,
    load_record,
    open_identity,
    require_grant,
)
from tierspayant.services.canaries import canary_touched
from tierspayant.services.errors import ServiceError
from tierspayant.services.insurers import Insurer, get_insurer
from tierspayant.store import audit
from tierspayant.store import incidents as store
from tierspayant.store.beneficiaries import ids_after

# Events from before answers recorded ``disclosed``: what each (action, decision) told
# the caller. None: a refused prior authorisation, disclosing unless its reason was
# ``rights.none`` (the unknown person's answer), read from the agreement.
LEGACY_ANSWERS: Mapping[tuple[str, str], bool | None] = MappingProxyType(
    {
        ("eligibility.check", "hit"): True,
        ("eligibility.check", "hit_not_covered"): False,
        ("eligibility.check", "miss"): False,
        ("calculation", "hit"): True,
        ("calculation", "hit_not_covered"): False,
        ("calculation", "miss"): False,
        ("prior_auth.request", "granted"): True,
        ("prior_auth.request", "pending"): True,
        ("prior_auth.request", "refused"): None,
        ("prior_auth.request", "miss"): False,
        ("claim.receive", "hit"): True,
        ("claim.receive", "miss"): False,
        ("card.proof_refused", "deny"): False,
    }
)
# Decisions of events that are not answers about a person (no ``disclosed`` field, not a
# legacy answer) after which nothing was handed over.
REFUSALS = frozenset({"deny", "denied", "blocked", "error", "step_up"})
NO_RIGHTS_REASON = "rights.none"
PSEUDONYM_PURPOSE = "audit.subject"
_RESOLVE_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class ScopeCriteria:
    """Whose reads to list: one principal or one structure, within [start, end)."""

    start: datetime
    end: datetime
    principal: str | None = None
    structure: str | None = None

    def __post_init__(self) -> None:
        if (self.principal is None) == (self.structure is None):
            raise ServiceError(IncidentCode.CRITERIA, "give either a principal or a structure")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ServiceError(IncidentCode.WINDOW, "the window needs time zones (UTC)")
        if self.end <= self.start:
            raise ServiceError(IncidentCode.WINDOW, "the window must end after it starts")

    def describe(self) -> dict[str, str | None]:
        return {
            "principal": self.principal,
            "structure": self.structure,
            "from": self.start.astimezone(UTC).isoformat(),
            "to": self.end.astimezone(UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Reveal:
    """Decrypt names (and NIR if ``show_nir``) under break-glass grant ``grant_id``."""

    grant_id: int
    show_nir: bool = False


@dataclass(slots=True)
class ScopedRecord:
    """One beneficiary disclosed in the window (``beneficiary_id`` None if since purged)."""

    insurer: str
    pseudonym: str
    reads: int
    first_read: datetime
    last_read: datetime
    beneficiary_id: int | None = None
    last_name: str | None = None
    first_name: str | None = None
    nir: str | None = None


@dataclass(frozen=True, slots=True)
class InsurerScope:
    amc_number: str
    name: str
    records: tuple[ScopedRecord, ...]

    @property
    def people(self) -> int:
        return len(self.records)

    @property
    def reads(self) -> int:
        return sum(r.reads for r in self.records)

    @property
    def unresolved(self) -> int:
        return sum(1 for r in self.records if r.beneficiary_id is None)


@dataclass(frozen=True, slots=True)
class IncidentScope:
    criteria: ScopeCriteria
    generated_at: datetime
    events_scanned: int
    insurers: tuple[InsurerScope, ...]
    seconds: float = field(default=0.0, compare=False)

    @property
    def people(self) -> int:
        return sum(i.people for i in self.insurers)


def scope_incident(
    platform: Platform, criteria: ScopeCriteria, actor: str, reveal: Reveal | None = None
) -> IncidentScope:
    """List every beneficiary disclosed to the principal/structure within the window."""
    started = time.perf_counter()
    now = platform.now()
    with platform.engine.begin() as conn:
        if reveal is not None:
            require_grant(
                conn, reveal.grant_id, actor, now, frozenset({GrantScope.BULK, GrantScope.EXPORT})
            )
        scanned, reads = _disclosures(conn, criteria)
        key = platform.operator_keys().derive(PSEUDONYM_PURPOSE)
        scopes = []
        for amc in sorted(reads):
            insurer = get_insurer(conn, amc)
            records = _resolve(conn, key, insurer, reads[amc])
            if reveal is not None:
                _reveal(platform, conn, insurer, records, reveal, actor)
            scopes.append(InsurerScope(amc, insurer.name, tuple(records)))
        result = IncidentScope(criteria, now, scanned, tuple(scopes))
        _record_run(conn, result, actor, revealed=result.people if reveal else 0)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="incident.scope",
            purpose="incident_response",
            decision="allow",
            detail={
                **criteria.describe(),
                "events": scanned,
                "people": result.people,
                "reveal": reveal is not None,
            },
        )
    return IncidentScope(
        criteria, now, scanned, tuple(scopes), seconds=time.perf_counter() - started
    )


def _disclosures(
    conn: Connection, criteria: ScopeCriteria
) -> tuple[int, dict[str, dict[str, ScopedRecord]]]:
    """Events of the window that disclosed someone, grouped by insurer and pseudonym."""
    scanned = 0
    found: dict[str, dict[str, ScopedRecord]] = {}
    # Legacy refused prior authorisations, settled by their agreements' reason codes.
    undecided: list[tuple[str, str, datetime, str | None]] = []
    rows = audit.events_in_window(
        conn, criteria.start, criteria.end, actor=criteria.principal, structure=criteria.structure
    )
    for insurer, subject, at, action, decision, detail in rows:
        scanned += 1
        if subject is None or insurer is None:
            continue
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        verdict, agreement = _verdict(action, decision, detail)
        if verdict is None:
            undecided.append((insurer, subject, at, agreement))
        elif verdict:
            _count(found, insurer, subject, at)
    reasons = store.agreement_reasons(conn, {a for *_, a in undecided if a is not None})
    for insurer, subject, at, agreement in undecided:
        # An agreement no longer held: counted (the safe side).
        if agreement is None or reasons.get(agreement) != NO_RIGHTS_REASON:
            _count(found, insurer, subject, at)
    return scanned, found


def _verdict(action: str, decision: str, detail: str) -> tuple[bool | None, str | None]:
    """Whether an event naming a subject disclosed it: (True/False, None), or (None,
    agreement number) when the legacy agreement's reason code decides."""
    fields = _detail(detail) if DISCLOSED in detail else {}
    recorded = fields.get(DISCLOSED)
    if isinstance(recorded, bool):
        return recorded, None
    if (action, decision) in LEGACY_ANSWERS:
        legacy = LEGACY_ANSWERS[(action, decision)]
        if legacy is not None:
            return legacy, None
        agreement = _detail(detail).get("agreement")
        return None, agreement if isinstance(agreement, str) else None
    return decision not in REFUSALS, None


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _count(
    found: dict[str, dict[str, ScopedRecord]], insurer: str, subject: str, at: datetime
) -> None:
    record = found.setdefault(insurer, {}).get(subject)
    if record is None:
        found[insurer][subject] = ScopedRecord(insurer, subject, 1, at, at)
    else:
        record.reads += 1
        record.first_read = min(record.first_read, at)
        record.last_read = max(record.last_read, at)


def _resolve(
    conn: Connection, key: bytes, insurer: Insurer, wanted: dict[str, ScopedRecord]
) -> list[ScopedRecord]:
    """Attach internal ids by recomputing the pseudonyms of the insurer's beneficiaries."""
    remaining = dict(wanted)
    for beneficiary_id in _ids(conn, insurer.id):
        if not remaining:
            break
        pseudonym = subject_pseudonym(key, insurer.amc_number, str(beneficiary_id))
        record = remaining.pop(pseudonym, None)
        if record is not None:
            record.beneficiary_id = beneficiary_id
    return sorted(wanted.values(), key=lambda r: (r.beneficiary_id is None, r.beneficiary_id or 0))


def _ids(conn: Connection, insurer_id: int) -> Iterator[int]:
    after = 0
    while True:
        ids = ids_after(conn, insurer_id, after, _RESOLVE_BATCH)
        if not ids:
            return
        yield from ids
        after = ids[-1]


def _reveal(
    platform: Platform,
    conn: Connection,
    insurer: Insurer,
    records: list[ScopedRecord],
    reveal: Reveal,
    actor: str,
) -> None:
    now = platform.now()
    # Canaries in the scope are reported (the attacker read them) but never decrypted:
    # touching one raises the canary alert like any other decryption would.
    ids = [r.beneficiary_id for r in records if r.beneficiary_id is not None]
    canaries = set(canary_touched(platform, conn, insurer.id, ids, actor, "incident_reveal"))
    for record in records:
        if record.beneficiary_id is None or record.beneficiary_id in canaries:
            continue
        row = load_record(conn, insurer.id, record.beneficiary_id)
        identity = open_identity(platform, conn, insurer.amc_number, row, show_nir=reveal.show_nir)
        record.last_name, record.first_name, record.nir = (
            identity.last_name,
            identity.first_name,
            identity.nir,
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="incident.reveal",
            purpose="incident_response",
            decision="allow",
            subject=record.pseudonym,
            insurer=insurer.amc_number,
            detail={"grant": reveal.grant_id, "nir": "clear" if reveal.show_nir else "masked"},
        )


def _record_run(conn: Connection, result: IncidentScope, actor: str, revealed: int) -> None:
    store.insert_run(
        conn,
        kind="scope",
        actor=actor[:120],
        criteria=json.dumps(result.criteria.describe(), sort_keys=True),
        started_at=result.generated_at,
        finished_at=result.generated_at,
        events_scanned=result.events_scanned,
        subjects=result.people,
        revealed=revealed,
    )


# --- output files ------------------------------------------------------------------------

CSV_COLUMNS = (
    "insurer",
    "beneficiary_id",
    "pseudonym",
    "reads",
    "first_read",
    "last_read",
    "last_name",
    "first_name",
    "nir",
)


def _row(record: ScopedRecord) -> dict[str, Any]:
    values = asdict(record)
    values["first_read"] = record.first_read.astimezone(UTC).isoformat()
    values["last_read"] = record.last_read.astimezone(UTC).isoformat()
    return values


def scope_document(result: IncidentScope) -> dict[str, Any]:
    """The scope as a JSON-ready document (what ``incident notices`` reads back)."""
    return {
        "format": "tierspayant.incident-scope.v1",
        "criteria": result.criteria.describe(),
        "generated_at": result.generated_at.astimezone(UTC).isoformat(),
        "events_scanned": result.events_scanned,
        "people": result.people,
        "insurers": [
            {
                "amc_number": s.amc_number,
                "name": s.name,
                "people": s.people,
                "reads": s.reads,
                "unresolved": s.unresolved,
                "records": [_row(r) for r in s.records],
            }
            for s in result.insurers
        ],
    }


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: scopes and letters may name people."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_scope(result: IncidentScope, path: Path) -> None:
    """Write the scope as JSON (``.json``) or CSV (any other suffix), mode 0600."""
    if path.suffix == ".json":
        document = json.dumps(scope_document(result), indent=2, ensure_ascii=False)
        _write_private(path, document + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, delimiter=";")
    writer.writeheader()
    for scope in result.insurers:
        for record in scope.records:
            writer.writerow(_row(record))
    _write_private(path, buffer.getvalue())


# --- revocation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revocation:
    principal: str
    tokens: int
    sessions: int


def revoke(platform: Platform, principal_id: str, actor: str, reason: str) -> Revocation:
    """Suspend ``principal_id``, revoke every token and end every session, in one commit."""
    if not principal_id or len(principal_id) > 120:
        raise ServiceError(IncidentCode.PRINCIPAL, "name the principal to revoke")
    now = platform.now()
    with platform.engine.begin() as conn:
        tokens = suspend_principal(platform, conn, principal_id, reason or "incident response")
        sessions = revoke_principal_sessions(conn, principal_id, now)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="incident.revoke",
            purpose="incident_response",
            decision="allow",
            detail={"principal": principal_id, "tokens": tokens, "sessions": sessions},
        )
    return Revocation(principal_id, tokens, sessions)


# --- notices (GDPR articles 33 and 34) ---------------------------------------------------


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


def load_scope_document(path: Path) -> dict[str, Any]:
    """Read a scope written by :func:`write_scope` as JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ServiceError(IncidentCode.SCOPE_FILE, f"{path.name} is not a scope file") from exc
    if not isinstance(document, dict) or document.get("format") != "tierspayant.incident-scope.v1":
        raise ServiceError(IncidentCode.SCOPE_FILE, f"{path.name} is not a JSON scope file")
    return document


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
