"""Payment delays per invoice, per provider and per insurer (``tierspayant report delays``).

The delay is read from the claims and the payments (``store/read_models/delays.py``) and
counted in TARGET2 business days from the Paris day the invoice was received
(:func:`~tierspayant.domain.delays.business_days_between`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date

from tierspayant.app.platform import Platform
from tierspayant.domain.banking_calendar import paris_day
from tierspayant.domain.codes import AuthCode
from tierspayant.domain.delays import DelaySummary, business_days_between
from tierspayant.security.principal import Principal
from tierspayant.services.errors import Forbidden
from tierspayant.store.read_models import delays as store


@dataclass(frozen=True, slots=True)
class InvoiceDelay:
    insurer_id: int
    amc_number: str
    claim_id: int
    provider_am: str
    received_on: date  # Paris day
    executed_on: date
    business_days: int


@dataclass(frozen=True, slots=True)
class DelayReport:
    overall: DelaySummary | None
    by_insurer: dict[str, DelaySummary]  # AMC number → summary
    by_provider: dict[str, DelaySummary]  # AM number → summary


def invoice_delays(
    platform: Platform,
    *,
    since: date | None = None,
    provider_id: int | None = None,
    insurer_id: int | None = None,
) -> list[InvoiceDelay]:
    """The delay of every paid invoice (executed on or after ``since``; of one provider;
    of one insurer), one object per invoice held in a list: for looking at invoices one
    by one; the summaries (:func:`delay_report`, the portals) count them as they stream."""
    with platform.engine.connect() as conn:
        rows = store.paid_invoices(
            conn, since=since, provider_id=provider_id, insurer_id=insurer_id
        )
    out = []
    for row in rows:
        received = paris_day(row.received_at)
        out.append(
            InvoiceDelay(
                row.insurer_id,
                row.amc_number,
                row.claim_id,
                row.provider_am,
                received,
                row.executed_on,
                business_days_between(received, row.executed_on),
            )
        )
    return out


def run_delays(platform: Platform, run_key: str, since: date) -> Counter[int]:
    """How many invoices run ``run_key`` paid first (none executed before ``since``), by
    delay in business days. Counted as the rows stream in, by (Paris day received,
    execution day): a day of two million lines holds some 800,000 invoices, which a list
    of them (:func:`invoice_delays`) held in memory at once (390 MB measured)."""
    days: Counter[tuple[date, date]] = Counter()
    with platform.engine.connect() as conn:
        for received_at, executed_on in store.first_paid_in_run(conn, run_key, since):
            days[(paris_day(received_at), executed_on)] += 1
    delays: Counter[int] = Counter()
    for (received, executed), count in days.items():
        delays[business_days_between(received, executed)] += count
    return delays


def delay_report(platform: Platform, *, since: date | None = None) -> DelayReport:
    """The delay of every invoice paid (executed on or after ``since``), overall, per
    insurer and per provider (``tierspayant report delays``)."""
    return _report(platform, since=since)


def provider_delay(platform: Platform, principal: Principal) -> DelaySummary | None:
    """The delay of the acting provider's own paid invoices (provider portal), None when
    none was paid; Forbidden for any other principal."""
    if principal.provider_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "payment delays are open to providers only")
    return _report(platform, provider_id=principal.provider_id).overall


def insurer_delays(platform: Platform, insurer_id: int) -> DelayReport:
    """The delay of one insurer's paid invoices, overall and per provider (insurer
    portal: the staff's own insurer only, the caller checks it)."""
    return _report(platform, insurer_id=insurer_id)


def _report(
    platform: Platform,
    *,
    since: date | None = None,
    provider_id: int | None = None,
    insurer_id: int | None = None,
) -> DelayReport:
    """The summaries of the paid invoices in scope, counted as the rows stream in by
    (insurer, provider, Paris day received, execution day), each distinct day pair then
    converted once to business days: memory grows with those keys, not with the
    invoices (an insurer's portal page at national scale reads millions of them, which
    :func:`invoice_delays` held in a list per page view)."""
    days: Counter[tuple[str, str, date, date]] = Counter()
    with platform.engine.connect() as conn:
        rows = store.paid_invoice_days(
            conn, since=since, provider_id=provider_id, insurer_id=insurer_id
        )
        for amc_number, provider_am, received_at, executed_on in rows:
            days[(amc_number, provider_am, paris_day(received_at), executed_on)] += 1
    business: dict[tuple[date, date], int] = {}
    overall: Counter[int] = Counter()
    insurers: defaultdict[str, Counter[int]] = defaultdict(Counter)
    providers: defaultdict[str, Counter[int]] = defaultdict(Counter)
    for (amc_number, provider_am, received, executed), count in days.items():
        if (received, executed) not in business:
            business[(received, executed)] = business_days_between(received, executed)
        delay = business[(received, executed)]
        overall[delay] += count
        insurers[amc_number][delay] += count
        providers[provider_am][delay] += count
    return DelayReport(
        DelaySummary.of_counts(overall) if overall else None,
        {k: DelaySummary.of_counts(v) for k, v in sorted(insurers.items())},
        {k: DelaySummary.of_counts(v) for k, v in sorted(providers.items())},
    )
