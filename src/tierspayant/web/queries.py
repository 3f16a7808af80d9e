"""Read models of the portal pages: small, bounded queries, no identity data.

These are reads the services do not offer yet (lists for screens). Each is scoped by the
caller's own tenant (insurer, provider, beneficiary) before it is run, and none returns a
NIR, a name or a birth date. Reads of a member's own data are audited by the callers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select

from tierspayant.security.audit import subject_pseudonym
from tierspayant.services.platform import Platform
from tierspayant.store.cards_tables import cards
from tierspayant.store.claims_tables import prior_authorisations
from tierspayant.store.db import begin_write
from tierspayant.store.security_tables import guard_daily, security_alerts
from tierspayant.store.tables import (
    audit_events,
    conventions,
    import_runs,
    insurers,
    principals,
    providers,
)

LOOKUP_ACTIONS = ("eligibility.check", "calculation")
SCREEN_ROWS = 50  # rows of a list on one screen
REINSTATE_REQUEST = "principal.reinstate_request"
REQUEST_LIFETIME = timedelta(hours=1)


@contextmanager
def write_transaction(platform: Platform) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement.

    On SQLite the driver opens a transaction only at the first write, so the read of the
    audit chain's last event inside ``audit.append`` could see a state another writer is
    about to change, and two appends would take the same ``seq``. ``db.begin_write``
    takes the process's write gate, then SQLite's lock (``BEGIN IMMEDIATE``), the one
    order of every writer. PostgreSQL needs nothing: the append takes an advisory lock.
    """
    with platform.engine.begin() as conn:
        begin_write(conn)
        yield conn


def aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ConventionRow:
    insurer: str
    amc_number: str
    domain: str
    valid_from: date
    valid_to: date | None


def provider_conventions(platform: Platform, provider_id: int) -> list[ConventionRow]:
    """The tiers payant agreements of one provider (its own only)."""
    query = (
        select(
            insurers.c.name,
            insurers.c.amc_number,
            conventions.c.domain,
            conventions.c.valid_from,
            conventions.c.valid_to,
        )
        .join(insurers, insurers.c.id == conventions.c.insurer_id)
        .where(conventions.c.provider_id == provider_id)
        .order_by(insurers.c.name, conventions.c.domain)
    )
    with platform.engine.connect() as conn:
        return [ConventionRow(*row) for row in conn.execute(query)]


def insurer_amc(platform: Platform, insurer_id: int) -> tuple[str, str]:
    """AMC number and name of an insurer."""
    with platform.engine.connect() as conn:
        row = conn.execute(
            select(insurers.c.amc_number, insurers.c.name).where(insurers.c.id == insurer_id)
        ).one()
    return str(row.amc_number), str(row.name)


@dataclass(frozen=True, slots=True)
class LookupStats:
    per_day: list[tuple[str, int]]
    per_domain: list[tuple[str, int]]


def insurer_lookup_stats(platform: Platform, amc: str, days: int = 14) -> LookupStats:
    """Rights checks on the insurer's members per day and per care domain (audit log)."""
    since = platform.now() - timedelta(days=days)
    query = select(audit_events.c.at, audit_events.c.detail).where(
        audit_events.c.insurer == amc,
        audit_events.c.action == "eligibility.check",
        audit_events.c.at >= since,
    )
    by_day: Counter[date] = Counter()
    by_domain: Counter[str] = Counter()
    with platform.engine.connect() as conn:
        for at, detail in conn.execute(query):
            by_day[aware(at).date()] += 1
            for domain in str(json.loads(detail).get("domains") or "").split(","):
                if domain:
                    by_domain[domain] += 1
    today = platform.today()
    per_day = [
        ((today - timedelta(days=n)).strftime("%d/%m"), by_day[today - timedelta(days=n)])
        for n in range(days - 1, -1, -1)
    ]
    return LookupStats(per_day, sorted(by_domain.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True, slots=True)
class ImportRow:
    id: int
    mode: str
    started_at: datetime
    status: str
    lines: int
    inserted: int
    updated: int
    terminated: int
    rejected: int


def import_history(platform: Platform, insurer_id: int) -> list[ImportRow]:
    """The insurer's latest beneficiary imports, newest first."""
    query = (
        select(
            import_runs.c.id,
            import_runs.c.mode,
            import_runs.c.started_at,
            import_runs.c.status,
            import_runs.c.lines,
            import_runs.c.inserted,
            import_runs.c.updated,
            import_runs.c.terminated,
            import_runs.c.rejected,
        )
        .where(import_runs.c.insurer_id == insurer_id)
        .order_by(import_runs.c.id.desc())
        .limit(SCREEN_ROWS)
    )
    with platform.engine.connect() as conn:
        return [
            ImportRow(
                int(r.id),
                r.mode,
                aware(r.started_at),
                r.status,
                int(r.lines),
                int(r.inserted),
                int(r.updated),
                int(r.terminated),
                int(r.rejected),
            )
            for r in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    at: datetime
    level: str
    code: str
    principal: str | None
    structure: str | None
    insurer: str | None
    message: str
    acknowledged: bool


def alerts(platform: Platform, *, insurer: str | None = None) -> list[AlertRow]:
    """Latest security alerts; an insurer sees only those naming it."""
    query = select(security_alerts).order_by(security_alerts.c.id.desc()).limit(SCREEN_ROWS)
    if insurer is not None:
        query = query.where(security_alerts.c.insurer == insurer)
    with platform.engine.connect() as conn:
        return [
            AlertRow(
                int(r.id),
                aware(r.at),
                r.level,
                r.code,
                r.principal,
                r.structure,
                r.insurer,
                r.message,
                r.acknowledged_at is not None,
            )
            for r in conn.execute(query)
        ]


CANARY_ALERT_CODES = ("canary.touched", "guard.canary")


def canary_alert_counts(platform: Platform) -> dict[str | None, int]:
    """Canary alerts per insurer's AMC number (None: alerts that name no insurer).

    Counts only: an alert's figures never say which rows were canaries, and neither does
    this.
    """
    query = (
        select(security_alerts.c.insurer, func.count())
        .where(security_alerts.c.code.in_(CANARY_ALERT_CODES))
        .group_by(security_alerts.c.insurer)
    )
    with platform.engine.connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class Consultation:
    at: datetime
    who: str  # structure's name, or "vous-même"
    structure: str | None
    action: str
    purpose: str | None
    decision: str


def member_pseudonym(platform: Platform, amc: str, beneficiary_id: int) -> str:
    """The audit subject of a beneficiary (as ``services.identification`` computes it)."""
    key = platform.operator_keys().derive("audit.subject")
    return subject_pseudonym(key, amc, str(beneficiary_id))


def consultations(conn: Connection, subject: str) -> list[Consultation]:
    """Every audited access to one subject, newest first (the subject's own view)."""
    rows = conn.execute(
        select(
            audit_events.c.at,
            audit_events.c.actor,
            audit_events.c.structure,
            audit_events.c.action,
            audit_events.c.purpose,
            audit_events.c.decision,
        )
        .where(audit_events.c.subject == subject)
        .order_by(audit_events.c.seq.desc())
        .limit(200)
    ).all()
    names = _structure_names(conn, {r.structure for r in rows if r.structure})
    return [
        Consultation(
            aware(r.at),
            "vous-même" if r.action.startswith("member.") else names.get(r.structure or "", "—"),
            r.structure,
            r.action,
            r.purpose,
            r.decision,
        )
        for r in rows
    ]


def _structure_names(conn: Connection, structures: set[str]) -> dict[str, str]:
    if not structures:
        return {}
    rows = conn.execute(
        select(
            providers.c.name, providers.c.finess, providers.c.siret, providers.c.am_number
        ).where(
            or_(
                providers.c.finess.in_(structures),
                providers.c.siret.in_(structures),
                providers.c.am_number.in_(structures),
            )
        )
    ).all()
    names: dict[str, str] = {}
    for row in rows:
        for number in (row.am_number, row.siret, row.finess):
            if number in structures:
                names[number] = row.name
    return names


@dataclass(frozen=True, slots=True)
class SuspendedRow:
    id: str
    kind: str
    reason: str | None
    since: datetime | None
    requested_by: str | None  # operator who asked to reinstate, waiting for a second one


def suspended_principals(platform: Platform) -> list[SuspendedRow]:
    """Suspended principals, with any pending reinstatement request."""
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(principals)
            .where(principals.c.status == "suspended")
            .order_by(principals.c.status_changed_at.desc())
            .limit(SCREEN_ROWS)
        ).all()
        return [
            SuspendedRow(
                r.id,
                r.kind,
                r.status_reason,
                aware(r.status_changed_at) if r.status_changed_at else None,
                pending_request(conn, platform.now(), r.id),
            )
            for r in rows
        ]


def pending_request(conn: Connection, now: datetime, principal_id: str) -> str | None:
    """The operator who asked to reinstate ``principal_id`` since its suspension, within
    the last hour, if any: the request is an audit event, so it cannot be forged silently.
    """
    since = conn.execute(
        select(principals.c.status_changed_at).where(principals.c.id == principal_id)
    ).scalar()
    floor = now - REQUEST_LIFETIME
    if since is not None and aware(since) > floor:
        floor = aware(since)
    rows = conn.execute(
        select(audit_events.c.actor, audit_events.c.detail)
        .where(and_(audit_events.c.action == REINSTATE_REQUEST, audit_events.c.at >= floor))
        .order_by(audit_events.c.seq.desc())
        .limit(SCREEN_ROWS)
    ).all()
    for actor, detail in rows:
        if json.loads(detail).get("principal") == principal_id:
            return str(actor)
    return None


@dataclass(frozen=True, slots=True)
class StructureDay:
    structure: str
    category: str
    distinct: int
    soft: int
    cap: int


def structure_figures(platform: Platform) -> list[StructureDay]:
    """Today's distinct beneficiaries per structure against its cap (live guard counters),
    or the last recorded day when the guard is off."""
    guard = platform.guard
    if guard is not None:
        day = guard.day_of(platform.now())
        figures = []
        for item in guard.day_summary(day):
            caps = guard.caps(item.structure, item.category, day)
            figures.append(
                StructureDay(
                    item.structure, item.category, item.distinct_lookups, caps.soft, caps.hard
                )
            )
        return sorted(figures, key=lambda f: -f.distinct / max(f.cap, 1))[:20]
    with platform.engine.connect() as conn:
        last = conn.execute(select(func.max(guard_daily.c.day))).scalar()
        if last is None:
            return []
        rows = conn.execute(select(guard_daily).where(guard_daily.c.day == last)).all()
    return [StructureDay(r.structure, r.category, int(r.distinct_lookups), 0, 0) for r in rows]


@dataclass(frozen=True, slots=True)
class PendingAgreement:
    number: str
    provider: str
    domain: str
    care_date: date
    guaranteed_cents: int
    requested_at: datetime


def pending_agreements(platform: Platform, insurer_id: int) -> list[PendingAgreement]:
    """Prior authorisations of one insurer waiting for a person, oldest first (no
    identity: the provider's name, the domain, the date and the amount)."""
    query = (
        select(
            prior_authorisations.c.agreement_number,
            providers.c.name,
            prior_authorisations.c.domain,
            prior_authorisations.c.care_date,
            prior_authorisations.c.guaranteed_cents,
            prior_authorisations.c.requested_at,
        )
        .join(providers, providers.c.id == prior_authorisations.c.provider_id)
        .where(
            prior_authorisations.c.insurer_id == insurer_id,
            prior_authorisations.c.status == "pending",
        )
        .order_by(prior_authorisations.c.requested_at)
        .limit(SCREEN_ROWS)
    )
    with platform.engine.connect() as conn:
        return [
            PendingAgreement(r[0], r[1], r[2], r[3], int(r[4]), aware(r[5]))
            for r in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class FamilyCard:
    serial: str
    status: str
    valid_from: date
    valid_until: date
    issued_at: datetime


def family_cards(conn: Connection, insurer_id: int, binding: bytes, year: int) -> list[FamilyCard]:
    """The cards of one family (named by its keyed binding) for one year, newest first."""
    rows = conn.execute(
        select(
            cards.c.serial,
            cards.c.status,
            cards.c.valid_from,
            cards.c.valid_until,
            cards.c.issued_at,
        )
        .where(
            cards.c.insurer_id == insurer_id,
            cards.c.family_binding == binding,
            cards.c.year == year,
        )
        .order_by(cards.c.issued_at.desc())
        .limit(SCREEN_ROWS)
    ).all()
    return [
        FamilyCard(r.serial, r.status, r.valid_from, r.valid_until, aware(r.issued_at))
        for r in rows
    ]
