"""Read models of the insurer portal: rights checks on its members, its imports, the prior
authorisations waiting for a person, the engagements honoured. Each query filters on the
insurer first."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, select

from tierspayant.store.claims_tables import claims, engaged_lines, prior_authorisations
from tierspayant.store.read_models import SCREEN_ROWS, aware
from tierspayant.store.tables import audit_events, import_runs, providers


@dataclass(frozen=True, slots=True)
class LookupStats:
    per_day: list[tuple[str, int]]
    per_domain: list[tuple[str, int]]


def lookup_stats(
    conn: Connection, amc: str, today: date, since: datetime, days: int
) -> LookupStats:
    """Rights checks on the insurer's members per day (the ``days`` days up to ``today``)
    and per care domain, from the audit log's events since ``since``."""
    query = select(audit_events.c.at, audit_events.c.detail).where(
        audit_events.c.insurer == amc,
        audit_events.c.action == "eligibility.check",
        audit_events.c.at >= since,
    )
    by_day: Counter[date] = Counter()
    by_domain: Counter[str] = Counter()
    for at, detail in conn.execute(query):
        by_day[aware(at).date()] += 1
        for domain in str(json.loads(detail).get("domains") or "").split(","):
            if domain:
                by_domain[domain] += 1
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


def import_history(conn: Connection, insurer_id: int) -> list[ImportRow]:
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
class PendingAgreement:
    number: str
    provider: str
    domain: str
    care_date: date
    guaranteed_cents: int
    requested_at: datetime


def pending_agreements(conn: Connection, insurer_id: int) -> list[PendingAgreement]:
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
    return [
        PendingAgreement(r[0], r[1], r[2], r[3], int(r[4]), aware(r[5]))
        for r in conn.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class HonouredEngagement:
    claim_id: int
    invoice_number: str
    provider: str
    care_date: date
    domain: str
    contract_code: str
    cents: int
    decided_at: datetime


def honoured_engagements(conn: Connection, insurer_id: int) -> list[HonouredEngagement]:
    """Lines of one insurer paid on an engagement after it ended the rights, newest first
    (no identity: the claim, the provider's name, the date, the domain and the amount)."""
    query = (
        select(
            engaged_lines.c.claim_id,
            claims.c.invoice_number,
            providers.c.name,
            engaged_lines.c.care_date,
            engaged_lines.c.domain,
            engaged_lines.c.contract_code,
            engaged_lines.c.cents,
            engaged_lines.c.decided_at,
        )
        .join(
            claims,
            (claims.c.insurer_id == engaged_lines.c.insurer_id)
            & (claims.c.id == engaged_lines.c.claim_id),
        )
        .join(providers, providers.c.id == engaged_lines.c.provider_id)
        .where(engaged_lines.c.insurer_id == insurer_id, engaged_lines.c.withdrawn.is_(False))
        .order_by(engaged_lines.c.decided_at.desc(), engaged_lines.c.claim_id.desc())
        .limit(SCREEN_ROWS)
    )
    return [
        HonouredEngagement(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), aware(r[7]))
        for r in conn.execute(query)
    ]
