"""Read models of the claims officer's desk (insurer portal): one prior authorisation with
its provider, the search of the insurer's invoices and one invoice with its lines and
payments, and one provider's figures with this insurer.

Every query filters on the staff member's insurer first (``insurer_id`` leads the
claims indexes ``ix_claims_insurer_care``, ``ix_claims_insurer_provider`` and
``ix_claims_insurer_invoice``). No column of a beneficiary's identity is selected; the
beneficiary id of an agreement or of a claim is returned to the service, which audits the
read under the person's pseudonym and never shows the id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    func,
    or_,
    select,
)

from tierspayant.store.claims_tables import claim_lines, claims, prior_authorisations
from tierspayant.store.ledger_tables import money_runs, payment_lines
from tierspayant.store.read_models import aware
from tierspayant.store.read_models.backoffice import DECIDED, REFUSED, iso_week
from tierspayant.store.tables import conventions, providers

PAGE_ROWS = 25
MAX_PAGES = 40  # no page beyond 1 000 results: narrow the search instead
PROVIDER_MATCHES = 50  # providers a name may stand for
PAYMENT_RUNS = 12
TOP_REASONS = 5


@dataclass(frozen=True, slots=True)
class ProviderRef:
    id: int
    name: str
    am_number: str
    finess: str | None
    category: str


def _provider(row: Any) -> ProviderRef:  # a Row carrying _PROVIDER_COLUMNS
    return ProviderRef(
        int(row.provider_id), str(row.provider_name), str(row.am_number), row.finess,
        str(row.category),
    )  # fmt: skip


_PROVIDER_COLUMNS = (
    providers.c.id.label("provider_id"),
    providers.c.name.label("provider_name"),
    providers.c.am_number,
    providers.c.finess,
    providers.c.category,
)


@dataclass(frozen=True, slots=True)
class AgreementRecord:
    """One prior authorisation of the insurer as stored, and who asked for it."""

    id: int
    number: str
    beneficiary_id: int  # for the service's audit and ceilings only: never shown
    provider: ProviderRef
    domain: str
    care_date: date
    status: str
    reason_code: str | None
    reason: str | None
    valid_until: date | None
    guaranteed_cents: int
    lines: str  # JSON, as services.prior_auth stores them
    requested_at: datetime
    decided_at: datetime | None


def agreement(conn: Connection, insurer_id: int, number: str) -> AgreementRecord | None:
    """The insurer's prior authorisation numbered ``number``, or None (another insurer's
    is None too)."""
    pa = prior_authorisations.c
    query = (
        select(
            pa.id,
            pa.agreement_number,
            pa.beneficiary_id,
            pa.domain,
            pa.care_date,
            pa.status,
            pa.reason_code,
            pa.reason,
            pa.valid_until,
            pa.guaranteed_cents,
            pa.lines,
            pa.requested_at,
            pa.decided_at,
            *_PROVIDER_COLUMNS,
        )
        .join(providers, providers.c.id == pa.provider_id)
        .where(pa.insurer_id == insurer_id, pa.agreement_number == number)
    )
    r = conn.execute(query).first()
    if r is None:
        return None
    return AgreementRecord(
        int(r.id),
        r.agreement_number,
        int(r.beneficiary_id),
        _provider(r),
        r.domain,
        r.care_date,
        r.status,
        r.reason_code,
        r.reason,
        r.valid_until,
        int(r.guaranteed_cents),
        r.lines,
        aware(r.requested_at),
        None if r.decided_at is None else aware(r.decided_at),
    )


# ------------------------------------------------------------------------ claim search


@dataclass(frozen=True, slots=True)
class ClaimFilters:
    """What a claims officer searches invoices by: never a person."""

    invoice: str | None = None  # the provider's invoice number, exactly
    provider: str | None = None  # an AM or FINESS number (9 digits), else part of a name
    care_from: date | None = None
    care_to: date | None = None
    status: str | None = None  # the claim's status
    domain: str | None = None  # has a line of this care domain
    reason: str | None = None  # has a line refused or reduced for this reason

    def any(self) -> bool:
        return any(
            value is not None
            for value in (
                self.invoice,
                self.provider,
                self.care_from,
                self.care_to,
                self.status,
                self.domain,
                self.reason,
            )
        )


@dataclass(frozen=True, slots=True)
class ClaimHit:
    claim_id: int
    invoice_number: str
    version: int
    provider: ProviderRef
    care_date: date
    status: str
    billed_cents: int
    amc_accepted_cents: int


@dataclass(frozen=True, slots=True)
class ClaimPage:
    rows: list[ClaimHit]
    page: int
    has_more: bool


def matching_providers(conn: Connection, text: str) -> list[int]:
    """Providers an officer's text names: an AM or FINESS number, else part of a name
    (at most ``PROVIDER_MATCHES``). Resolved before the search, so that the planner
    sees the ids and walks ``ix_claims_insurer_provider``."""
    if text.isdigit() and len(text) == 9:
        where: ColumnElement[bool] = or_(providers.c.am_number == text, providers.c.finess == text)
    else:
        pattern = "%" + text.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
        where = func.lower(providers.c.name).like(pattern)
    query = select(providers.c.id).where(where).order_by(providers.c.id).limit(PROVIDER_MATCHES)
    return [int(found) for found in conn.execute(query).scalars()]


def _line_exists(insurer_id: int, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(
        claim_lines.c.insurer_id == insurer_id,
        claim_lines.c.claim_id == claims.c.id,
        *conditions,
    )


def search_query(
    insurer_id: int, filters: ClaimFilters, provider_ids: Sequence[int] = ()
) -> Select[Any]:
    """The search as one query (for its plan too): the insurer's claims matching every
    filter given, newest care first; ``provider_ids`` are those ``filters.provider``
    names (see :func:`matching_providers`)."""
    c = claims.c
    where: list[ColumnElement[bool]] = [c.insurer_id == insurer_id]
    if filters.invoice is not None:
        where.append(c.invoice_number == filters.invoice)
    if filters.provider is not None:
        if len(provider_ids) == 1:
            where.append(c.provider_id == provider_ids[0])
        else:
            where.append(c.provider_id.in_(provider_ids))
    if filters.care_from is not None:
        where.append(c.care_date >= filters.care_from)
    if filters.care_to is not None:
        where.append(c.care_date <= filters.care_to)
    if filters.status is not None:
        where.append(c.status == filters.status)
    if filters.domain is not None:
        where.append(_line_exists(insurer_id, claim_lines.c.domain == filters.domain))
    if filters.reason is not None:
        where.append(
            _line_exists(
                insurer_id,
                claim_lines.c.reason_code == filters.reason,
                claim_lines.c.status.in_(REFUSED),
            )
        )
    return (
        select(
            c.id,
            c.invoice_number,
            c.version,
            c.care_date,
            c.status,
            c.billed_cents,
            c.amc_accepted_cents,
            *_PROVIDER_COLUMNS,
        )
        .join(providers, providers.c.id == c.provider_id)
        .where(*where)
        .order_by(c.care_date.desc(), c.id.desc())
    )


def search_claims(
    conn: Connection, insurer_id: int, filters: ClaimFilters, page: int = 1
) -> ClaimPage:
    """One page (``PAGE_ROWS``) of the insurer's claims matching ``filters``."""
    page = min(max(page, 1), MAX_PAGES)
    named: list[int] = []
    if filters.provider is not None:
        named = matching_providers(conn, filters.provider)
        if not named:
            return ClaimPage([], page, False)
    query = search_query(insurer_id, filters, named).limit(PAGE_ROWS + 1)
    query = query.offset((page - 1) * PAGE_ROWS)
    rows = [
        ClaimHit(
            int(r.id),
            r.invoice_number,
            int(r.version),
            _provider(r),
            r.care_date,
            r.status,
            int(r.billed_cents),
            int(r.amc_accepted_cents),
        )
        for r in conn.execute(query)
    ]
    more = len(rows) > PAGE_ROWS and page < MAX_PAGES
    return ClaimPage(rows[:PAGE_ROWS], page, more)


# ------------------------------------------------------------------------ one claim


@dataclass(frozen=True, slots=True)
class ClaimLineRow:
    line_no: int
    act_code: str
    domain: str
    family: str | None
    quantity: int
    care_date: date
    billed_cents: int
    br_cents: int
    amo_paid_cents: int
    amc_requested_cents: int
    status: str
    amc_accepted_cents: int
    reason_code: str | None
    decided_at: datetime | None
    paid_cents: int | None  # None: not in a payment run (yet)
    run_key: str | None
    paid_on: date | None


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    id: int
    invoice_number: str
    version: int
    beneficiary_id: int  # for the service's audit only: never shown
    provider: ProviderRef
    care_date: date
    agreement_number: str | None
    status: str
    source: str
    received_at: datetime
    adjudicated_at: datetime | None
    billed_cents: int
    amc_requested_cents: int
    amc_accepted_cents: int
    reason_code: str | None
    lines: list[ClaimLineRow]


def claim(conn: Connection, insurer_id: int, claim_id: int) -> ClaimRecord | None:
    """One claim of the insurer with its lines, each with its payment if paid."""
    c = claims.c
    head = conn.execute(
        select(
            c.id,
            c.invoice_number,
            c.version,
            c.beneficiary_id,
            c.care_date,
            c.agreement_number,
            c.status,
            c.source,
            c.received_at,
            c.adjudicated_at,
            c.billed_cents,
            c.amc_requested_cents,
            c.amc_accepted_cents,
            c.reason_code,
            *_PROVIDER_COLUMNS,
        )
        .join(providers, providers.c.id == c.provider_id)
        .where(c.insurer_id == insurer_id, c.id == claim_id)
    ).first()
    if head is None:
        return None
    cl, pl = claim_lines.c, payment_lines.c
    paid = payment_lines.join(money_runs, money_runs.c.run_key == pl.run_key)
    lines_query = (
        select(
            cl.line_no,
            cl.act_code,
            cl.domain,
            cl.family,
            cl.quantity,
            cl.care_date,
            cl.billed_cents,
            cl.br_cents,
            cl.amo_paid_cents,
            cl.amc_requested_cents,
            cl.status,
            cl.amc_accepted_cents,
            cl.reason_code,
            cl.decided_at,
            pl.paid_cents,
            pl.run_key,
            money_runs.c.run_date,
        )
        .select_from(
            claim_lines.outerjoin(
                paid,
                and_(
                    pl.insurer_id == cl.insurer_id,
                    pl.claim_id == cl.claim_id,
                    pl.line_no == cl.line_no,
                ),
            )
        )
        .where(cl.insurer_id == insurer_id, cl.claim_id == claim_id)
        .order_by(cl.line_no)
    )
    lines = [
        ClaimLineRow(
            int(r.line_no),
            r.act_code,
            r.domain,
            r.family,
            int(r.quantity),
            r.care_date,
            int(r.billed_cents),
            int(r.br_cents),
            int(r.amo_paid_cents),
            int(r.amc_requested_cents),
            r.status,
            int(r.amc_accepted_cents),
            r.reason_code,
            None if r.decided_at is None else aware(r.decided_at),
            None if r.paid_cents is None else int(r.paid_cents),
            r.run_key,
            r.run_date,
        )
        for r in conn.execute(lines_query)
    ]
    return ClaimRecord(
        int(head.id),
        head.invoice_number,
        int(head.version),
        int(head.beneficiary_id),
        _provider(head),
        head.care_date,
        head.agreement_number,
        head.status,
        head.source,
        aware(head.received_at),
        None if head.adjudicated_at is None else aware(head.adjudicated_at),
        int(head.billed_cents),
        int(head.amc_requested_cents),
        int(head.amc_accepted_cents),
        head.reason_code,
        lines,
    )


# ------------------------------------------------------------------------ one provider


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    id: int
    name: str
    am_number: str
    rpps: str | None
    finess: str | None
    siret: str | None
    category: str
    optam: bool
    status: str


@dataclass(frozen=True, slots=True)
class ConventionState:
    domain: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class ProviderWeek:
    week: str  # ISO week
    monday: date
    claims: int
    lines: int
    billed_cents: int
    amc_accepted_cents: int


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    run_key: str
    paid_on: date
    lines: int
    paid_cents: int


@dataclass(frozen=True, slots=True)
class ProviderFigures:
    provider: ProviderIdentity
    conventions: list[ConventionState]
    weeks: list[ProviderWeek]  # oldest first, every week of the window
    decided_lines: int
    refused_lines: int
    reasons: list[tuple[str, int]]
    payments: list[ProviderPayment]

    @property
    def reject_rate_bp(self) -> int | None:
        """Refused or reduced lines per 10 000 decided lines (None: nothing decided)."""
        if not self.decided_lines:
            return None
        return self.refused_lines * 10_000 // self.decided_lines


def provider_figures(
    conn: Connection, insurer_id: int, provider_id: int, mondays: list[date]
) -> ProviderFigures | None:
    """One provider as the insurer sees it: identity, its conventions with the insurer,
    its claims per ISO week since ``mondays[0]``, refusals, and the payments made to it
    for the insurer. None when the provider has neither a claim nor a convention with the
    insurer (it is then none of the insurer's business)."""
    p = providers.c
    who = conn.execute(
        select(
            p.id, p.name, p.am_number, p.rpps, p.finess, p.siret, p.category, p.optam, p.status
        ).where(p.id == provider_id)
    ).first()
    if who is None:
        return None
    agreed = [
        ConventionState(r.domain, r.valid_from, r.valid_to)
        for r in conn.execute(
            select(conventions.c.domain, conventions.c.valid_from, conventions.c.valid_to)
            .where(conventions.c.insurer_id == insurer_id, conventions.c.provider_id == provider_id)
            .order_by(conventions.c.domain)
        )
    ]
    any_claim = conn.execute(
        select(claims.c.id)
        .where(claims.c.insurer_id == insurer_id, claims.c.provider_id == provider_id)
        .limit(1)
    ).first()
    if not agreed and any_claim is None:
        return None
    since = mondays[0]
    same_claim = and_(
        claims.c.insurer_id == claim_lines.c.insurer_id, claims.c.id == claim_lines.c.claim_id
    )
    current = claims.c.status.in_(("received", "adjudicated"))
    per_day = (
        select(
            claims.c.care_date,
            func.count(func.distinct(claims.c.id)),
            func.count(),
            func.coalesce(func.sum(claim_lines.c.billed_cents), 0),
            func.coalesce(func.sum(claim_lines.c.amc_accepted_cents), 0),
        )
        .select_from(claims.join(claim_lines, same_claim))
        .where(
            claims.c.insurer_id == insurer_id,
            claims.c.provider_id == provider_id,
            claims.c.care_date >= since,
            current,
        )
        .group_by(claims.c.care_date)
    )
    cells: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for care_date, n_claims, n_lines, billed, accepted in conn.execute(per_day):
        cell = cells[iso_week(care_date)]
        for index, value in enumerate((n_claims, n_lines, billed, accepted)):
            cell[index] += int(value)
    weeks = [ProviderWeek(iso_week(m), m, *cells[iso_week(m)]) for m in mondays]
    decided_scope = (
        claims.c.insurer_id == insurer_id,
        claims.c.provider_id == provider_id,
        claims.c.care_date >= since,
        claims.c.status == "adjudicated",
    )
    counts = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((claim_lines.c.status.in_(REFUSED), 1), else_=0)), 0),
        )
        .select_from(claims.join(claim_lines, same_claim))
        .where(*decided_scope, claim_lines.c.status.in_(DECIDED))
    ).one()
    reasons = [
        (str(code), int(n))
        for code, n in conn.execute(
            select(claim_lines.c.reason_code, func.count())
            .select_from(claims.join(claim_lines, same_claim))
            .where(
                *decided_scope,
                claim_lines.c.status.in_(REFUSED),
                claim_lines.c.reason_code.is_not(None),
            )
            .group_by(claim_lines.c.reason_code)
            .order_by(func.count().desc(), claim_lines.c.reason_code)
            .limit(TOP_REASONS)
        )
    ]
    paid = [
        ProviderPayment(r.run_key, r.run_date, int(r.lines), int(r.paid))
        for r in conn.execute(
            select(
                payment_lines.c.run_key,
                money_runs.c.run_date,
                func.count().label("lines"),
                func.coalesce(func.sum(payment_lines.c.paid_cents), 0).label("paid"),
            )
            .join(money_runs, money_runs.c.run_key == payment_lines.c.run_key)
            .where(
                payment_lines.c.insurer_id == insurer_id,
                payment_lines.c.provider_id == provider_id,
            )
            .group_by(payment_lines.c.run_key, money_runs.c.run_date)
            .order_by(money_runs.c.run_date.desc(), payment_lines.c.run_key.desc())
            .limit(PAYMENT_RUNS)
        )
    ]
    identity = ProviderIdentity(
        int(who.id),
        who.name,
        who.am_number,
        who.rpps,
        who.finess,
        who.siret,
        who.category,
        bool(who.optam),
        who.status,
    )
    return ProviderFigures(identity, agreed, weeks, int(counts[0]), int(counts[1]), reasons, paid)
