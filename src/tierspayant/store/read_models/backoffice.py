"""Read models of the insurer's invoice figures and billing statements.

Every query takes the insurer's id from the staff session and filters on it first; the
figures are aggregates (GROUP BY in the database) of claim lines and providers, and no
column of a beneficiary is ever selected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import ColumnElement, Connection, and_, func, select

from tierspayant.domain.claims import LineStatus
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import billing_statements
from tierspayant.store.tables import providers

WEEKS = 8
TOP_PROVIDERS = 10
DECIDED = (LineStatus.ACCEPTED.value, LineStatus.REDUCED.value, LineStatus.REJECTED.value)
PAID = (LineStatus.ACCEPTED.value, LineStatus.REDUCED.value)
REFUSED = (LineStatus.REDUCED.value, LineStatus.REJECTED.value)


@dataclass(frozen=True, slots=True)
class WeekDomain:
    week: str  # ISO week, "2026-W47"
    domain: str
    lines: int
    amc_cents: int


@dataclass(frozen=True, slots=True)
class ReasonCount:
    code: str
    lines: int


@dataclass(frozen=True, slots=True)
class ProviderTotal:
    name: str
    am_number: str
    amc_cents: int
    provider_id: int


@dataclass(frozen=True, slots=True)
class InvoiceFigures:
    weeks: list[str]  # the last WEEKS ISO weeks, oldest first, even when empty
    per_week: list[WeekDomain]
    reasons: list[ReasonCount]
    top_providers: list[ProviderTotal]

    def lines_per_week(self) -> list[tuple[str, int]]:
        totals: dict[str, int] = defaultdict(int)
        for row in self.per_week:
            totals[row.week] += row.lines
        return [(week, totals[week]) for week in self.weeks]


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _decided_lines(insurer_id: int, since: date) -> list[ColumnElement[bool]]:
    """Lines of the insurer's current (adjudicated) claims cared for since ``since``."""
    return [
        claim_lines.c.insurer_id == insurer_id,
        claims.c.status == "adjudicated",
        claim_lines.c.status.in_(DECIDED),
        claim_lines.c.care_date >= since,
    ]


def invoice_figures(conn: Connection, insurer_id: int, today: date) -> InvoiceFigures:
    """Lines and AMC amounts per week and care domain, refusal reasons, top providers,
    over the last ``WEEKS`` ISO weeks of care dates up to ``today``."""
    monday = today - timedelta(days=today.weekday()) - timedelta(weeks=WEEKS - 1)
    weeks = [iso_week(monday + timedelta(weeks=n)) for n in range(WEEKS)]
    same_claim = and_(
        claims.c.insurer_id == claim_lines.c.insurer_id, claims.c.id == claim_lines.c.claim_id
    )
    joined = claim_lines.join(claims, same_claim)
    scope = _decided_lines(insurer_id, monday)
    amount = func.coalesce(func.sum(claim_lines.c.amc_accepted_cents), 0)
    per_day = (
        select(claim_lines.c.care_date, claim_lines.c.domain, func.count(), amount)
        .select_from(joined)
        .where(*scope)
        .group_by(claim_lines.c.care_date, claim_lines.c.domain)
    )
    reasons = (
        select(claim_lines.c.reason_code, func.count().label("n"))
        .select_from(joined)
        .where(*scope, claim_lines.c.status.in_(REFUSED), claim_lines.c.reason_code.is_not(None))
        .group_by(claim_lines.c.reason_code)
        .order_by(func.count().desc(), claim_lines.c.reason_code)
    )
    top = (
        select(providers.c.name, providers.c.am_number, amount.label("total"), providers.c.id)
        .select_from(joined.join(providers, providers.c.id == claims.c.provider_id))
        .where(*scope, claim_lines.c.status.in_(PAID))
        .group_by(providers.c.id, providers.c.name, providers.c.am_number)
        .order_by(amount.desc(), providers.c.am_number)
        .limit(TOP_PROVIDERS)
    )
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    # A day's rows are folded into its ISO week here: SQLite and PostgreSQL name
    # weeks differently, and there are at most 56 days × a dozen domains.
    for care_date, domain, count, cents in conn.execute(per_day):
        cell = cells[(iso_week(care_date), str(domain))]
        cell[0] += int(count)
        cell[1] += int(cents)
    reason_rows = [ReasonCount(str(code), int(n)) for code, n in conn.execute(reasons)]
    top_rows = [
        ProviderTotal(str(name), str(am), int(total), int(pid))
        for name, am, total, pid in conn.execute(top)
    ]
    per_week = [
        WeekDomain(week, domain, lines, cents)
        for (week, domain), (lines, cents) in sorted(cells.items())
    ]
    return InvoiceFigures(weeks, per_week, reason_rows, top_rows)


@dataclass(frozen=True, slots=True)
class StatementRow:
    period: str
    lines: int
    paid_cents: int
    undue_cents: int
    due_cents: int
    collection_date: date


def statements(conn: Connection, insurer_id: int) -> list[StatementRow]:
    """The insurer's monthly billing statements, newest first (at most three years)."""
    query = (
        select(
            billing_statements.c.period,
            billing_statements.c.lines,
            billing_statements.c.paid_cents,
            billing_statements.c.undue_cents,
            billing_statements.c.due_cents,
            billing_statements.c.collection_date,
        )
        .where(billing_statements.c.insurer_id == insurer_id)
        .order_by(billing_statements.c.period.desc())
        .limit(36)
    )
    return [
        StatementRow(
            str(r.period),
            int(r.lines),
            int(r.paid_cents),
            int(r.undue_cents),
            int(r.due_cents),
            r.collection_date,
        )
        for r in conn.execute(query)
    ]
