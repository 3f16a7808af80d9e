"""Who was read: the scope of an incident, from the audit log, and its reveal.

**Scope.** Given a principal (or a structure) and a time window, the audit log says
exactly which beneficiaries were disclosed, per insurer. Events name people only by a
keyed pseudonym of (insurer, internal id); scoping reads the events of the window through
the (actor, at) or (structure, at) index and maps the pseudonyms of the people read back
to ids through the subject index (``subjects``: one keyed lookup per person read, never a
pass over the beneficiaries), so the log itself never holds anything identifying.

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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import IncidentCode
from tierspayant.security.audit import DISCLOSED
from tierspayant.services.breakglass import (
    GrantScope,
    load_record,
    open_identity,
    require_grant,
)
from tierspayant.services.canaries import canary_touched
from tierspayant.services.errors import ServiceError
from tierspayant.services.incident import measures, subjects
from tierspayant.services.insurers import Insurer, get_insurer
from tierspayant.store import audit
from tierspayant.store import incidents as store

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
PSEUDONYM_PURPOSE = subjects.PSEUDONYM_PURPOSE
PROGRESS_EVENTS = 10_000  # audit events examined between two progress calls


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
    # The audit actions that disclosed this person (what was read: rights, amounts…).
    actions: set[str] = field(default_factory=set)


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

    @property
    def actions(self) -> tuple[str, ...]:
        """Every audit action that disclosed someone of this insurer, sorted."""
        return tuple(sorted({a for r in self.records for a in r.actions}))


@dataclass(frozen=True, slots=True)
class IncidentScope:
    criteria: ScopeCriteria
    generated_at: datetime
    events_scanned: int
    insurers: tuple[InsurerScope, ...]
    seconds: float = field(default=0.0, compare=False)
    # The account or structure in cause, named, and the measures taken since the window
    # opened (``measures``: suspensions, revocations, containment), for the notices.
    subject_name: str = ""
    measures: tuple[dict[str, Any], ...] = ()

    @property
    def people(self) -> int:
        return sum(i.people for i in self.insurers)


def scope_incident(
    platform: Platform,
    criteria: ScopeCriteria,
    actor: str,
    reveal: Reveal | None = None,
    progress: Callable[[int], None] | None = None,
) -> IncidentScope:
    """List every beneficiary disclosed to the principal/structure within the window;
    ``progress(n)`` with the audit events examined so far, every ``PROGRESS_EVENTS``."""
    started = time.perf_counter()
    now = platform.now()
    with platform.engine.begin() as conn:
        if reveal is not None:
            require_grant(
                conn, reveal.grant_id, actor, now, frozenset({GrantScope.BULK, GrantScope.EXPORT})
            )
        scanned, reads = _disclosures(conn, criteria, progress)
        keys = subjects.SubjectKeys.of(platform)
        scopes = []
        for amc in sorted(reads):
            insurer = get_insurer(conn, amc)
            records = _resolve(conn, keys, insurer, reads[amc], now)
            if reveal is not None:
                _reveal(platform, conn, insurer, records, reveal, actor)
            scopes.append(InsurerScope(amc, insurer.name, tuple(records)))
        who = measures.subject(conn, criteria.principal, criteria.structure)
        taken = tuple(measures.measures(conn, who, criteria.start, sorted(reads)))
        result = IncidentScope(criteria, now, scanned, tuple(scopes), 0.0, who.name, taken)
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
        criteria, now, scanned, tuple(scopes), time.perf_counter() - started, who.name, taken
    )


def _disclosures(
    conn: Connection, criteria: ScopeCriteria, progress: Callable[[int], None] | None = None
) -> tuple[int, dict[str, dict[str, ScopedRecord]]]:
    """Events of the window that disclosed someone, grouped by insurer and pseudonym."""
    scanned = 0
    found: dict[str, dict[str, ScopedRecord]] = {}
    # Legacy refused prior authorisations, settled by their agreements' reason codes.
    undecided: list[tuple[str, str, datetime, str | None, str]] = []
    rows = audit.events_in_window(
        conn, criteria.start, criteria.end, actor=criteria.principal, structure=criteria.structure
    )
    for insurer, subject, at, action, decision, detail in rows:
        scanned += 1
        if progress is not None and scanned % PROGRESS_EVENTS == 0:
            progress(scanned)
        if subject is None or insurer is None:
            continue
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        verdict, agreement = _verdict(action, decision, detail)
        if verdict is None:
            undecided.append((insurer, subject, at, agreement, action))
        elif verdict:
            _count(found, insurer, subject, at, action)
    if progress is not None:
        progress(scanned)
    reasons = store.agreement_reasons(conn, {u[3] for u in undecided if u[3] is not None})
    for insurer, subject, at, agreement, action in undecided:
        # An agreement no longer held: counted (the safe side).
        if agreement is None or reasons.get(agreement) != NO_RIGHTS_REASON:
            _count(found, insurer, subject, at, action)
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
    found: dict[str, dict[str, ScopedRecord]],
    insurer: str,
    subject: str,
    at: datetime,
    action: str,
) -> None:
    record = found.setdefault(insurer, {}).get(subject)
    if record is None:
        found[insurer][subject] = ScopedRecord(insurer, subject, 1, at, at, actions={action})
    else:
        record.actions.add(action)
        record.reads += 1
        record.first_read = min(record.first_read, at)
        record.last_read = max(record.last_read, at)


def _resolve(
    conn: Connection,
    keys: subjects.SubjectKeys,
    insurer: Insurer,
    wanted: dict[str, ScopedRecord],
    now: datetime,
) -> list[ScopedRecord]:
    """Attach internal ids through the subject index: one lookup per person read."""
    for pseudonym, beneficiary_id in subjects.resolve(conn, keys, insurer, wanted, now).items():
        wanted[pseudonym].beneficiary_id = beneficiary_id
    return sorted(wanted.values(), key=lambda r: (r.beneficiary_id is None, r.beneficiary_id or 0))


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
