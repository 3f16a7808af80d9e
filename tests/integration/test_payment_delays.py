"""The delays a payment run observes: each invoice the run paid first, once, counted by
business days from its receipt (Paris day) to the run's execution date, without holding
the run's invoices in memory (``services.delays.run_delays``); and the summaries of the
report and the portals, counted the same way as the paid invoices stream in."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.conftest import SeededInsurer
from tests.money_support import REJECTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.delays import DelaySummary
from tierspayant.domain.payments import payment_run_key
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import payments
from tierspayant.services.delays import (
    DelayReport,
    InvoiceDelay,
    delay_report,
    insurer_delays,
    invoice_delays,
    provider_delay,
    run_delays,
)
from tierspayant.store.read_models import delays as read_model
from tierspayant.store.read_models.delays import first_paid_in_run

THURSDAY = date(2026, 11, 26)
FRIDAY = date(2026, 11, 27)
TUESDAY = date(2026, 12, 1)  # a run of its own (PostgreSQL keeps the module's runs)


def test_a_run_counts_the_invoices_it_paid_first_by_delay(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(8))

    def claim(received: datetime, **kwargs: object) -> int:
        return adjudicated_claim(
            platform,
            insurer_id=insurer.id,
            amc_number=insurer.amc_number,
            provider_id=provider.id,
            adjudicated_at=received,
            **kwargs,  # type: ignore[arg-type]
        )

    # Monday 23 at 23:30 UTC is Tuesday 24 in Paris: 2 business days to Thursday.
    claim(datetime(2026, 11, 23, 23, 30, tzinfo=UTC))
    claim(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # Monday: 3 business days
    claim(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # Monday: 3
    claim(datetime(2026, 11, 24, 10, 0, tzinfo=UTC), lines=(REJECTED,))  # nothing paid
    platform.clock = lambda: datetime(2026, 11, 26, 8, tzinfo=UTC)
    payments.run_payments(platform, THURSDAY, out_dir=tmp_path)
    first = run_delays(platform, payment_run_key(THURSDAY), THURSDAY)
    assert first == Counter({3: 2, 2: 1})
    # The same as the report's per-invoice reading (another query).
    assert first == Counter(d.business_days for d in invoice_delays(platform, since=THURSDAY))

    # Friday's run: only the invoice it paid, not Thursday's again.
    claim(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))  # Wednesday: 2 business days
    platform.clock = lambda: datetime(2026, 11, 27, 8, tzinfo=UTC)
    payments.run_payments(platform, FRIDAY, out_dir=tmp_path / "friday")
    assert run_delays(platform, payment_run_key(FRIDAY), FRIDAY) == Counter({2: 1})
    # A run read with a later "since" than its own date counts nothing.
    assert run_delays(platform, payment_run_key(THURSDAY), FRIDAY) == Counter()


def test_the_reading_streams_in_chunks(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(9))
    received = [datetime(2026, 11, 30, 8 + n, 0, tzinfo=UTC) for n in range(7)]
    for moment in received:
        adjudicated_claim(
            platform,
            insurer_id=insurer.id,
            amc_number=insurer.amc_number,
            provider_id=provider.id,
            adjudicated_at=moment,
        )
    platform.clock = lambda: datetime(2026, 12, 1, 8, tzinfo=UTC)
    payments.run_payments(platform, TUESDAY, out_dir=tmp_path)
    with platform.engine.connect() as conn:
        rows = list(first_paid_in_run(conn, payment_run_key(TUESDAY), TUESDAY, chunk=2))
    assert sorted(r[0] for r in rows) == received
    assert {r[1] for r in rows} == {TUESDAY}


def _listed(items: Sequence[InvoiceDelay]) -> DelayReport:
    """The report as it was built from the list of every paid invoice."""
    insurers: dict[str, list[int]] = defaultdict(list)
    providers: dict[str, list[int]] = defaultdict(list)
    for item in items:
        insurers[item.amc_number].append(item.business_days)
        providers[item.provider_am].append(item.business_days)
    return DelayReport(
        DelaySummary.of([d.business_days for d in items]) if items else None,
        {k: DelaySummary.of(v) for k, v in sorted(insurers.items())},
        {k: DelaySummary.of(v) for k, v in sorted(providers.items())},
    )


def test_the_streamed_summaries_are_those_of_the_list_of_paid_invoices(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given invoices of two insurers and three providers, received on weekdays, evenings
    (already the next day in Paris), over the Christmas holidays and a weekend, paid by
    three runs; then the report, the insurer's and the provider's summaries are those the
    list of every paid invoice gave, without reading that list."""
    first, second = seed_insurer(platform), seed_insurer(platform)
    owners = [make_provider(platform, random.Random(20 + n)) for n in range(3)]

    def claim(insurer: SeededInsurer, owner: int, received: datetime, **kwargs: object) -> None:
        adjudicated_claim(
            platform,
            insurer_id=insurer.id,
            amc_number=insurer.amc_number,
            provider_id=owners[owner].id,
            adjudicated_at=received,
            **kwargs,  # type: ignore[arg-type]
        )

    def pay(day: date) -> None:
        platform.clock = lambda: datetime.combine(day, datetime.min.time(), UTC).replace(hour=8)
        payments.run_payments(platform, day, out_dir=tmp_path / day.isoformat())

    # Paid Thursday 24 December 2026 (business days after the Paris day received):
    claim(first, 0, datetime(2026, 12, 18, 10, tzinfo=UTC))  # Friday: 21, 22, 23, 24 → 4
    claim(first, 1, datetime(2026, 12, 21, 10, tzinfo=UTC))  # Monday: 3
    claim(second, 0, datetime(2026, 12, 22, 23, 30, tzinfo=UTC))  # Wednesday in Paris: 1
    claim(second, 2, datetime(2026, 12, 23, 12, tzinfo=UTC))  # Wednesday: 1
    claim(first, 0, datetime(2026, 12, 22, 10, tzinfo=UTC), lines=(REJECTED,))  # unpaid
    pay(date(2026, 12, 24))
    # Paid Monday 28th: 25 and 26 are TARGET2 holidays, 27 a Sunday.
    claim(first, 0, datetime(2026, 12, 24, 15, tzinfo=UTC))  # Thursday: 1
    claim(first, 2, datetime(2026, 12, 25, 10, tzinfo=UTC))  # Christmas: 1
    claim(second, 1, datetime(2026, 12, 26, 10, tzinfo=UTC))  # Saturday: 1
    claim(second, 1, datetime(2026, 12, 27, 22, 30, tzinfo=UTC))  # Sunday 23:30 in Paris: 1
    claim(first, 1, datetime(2026, 12, 27, 23, 30, tzinfo=UTC))  # Monday 00:30 in Paris: 0
    pay(date(2026, 12, 28))
    # Paid Wednesday 30th.
    claim(second, 2, datetime(2026, 12, 28, 9, tzinfo=UTC))  # Monday: 2
    claim(first, 0, datetime(2026, 12, 29, 10, tzinfo=UTC))  # Tuesday: 1
    claim(second, 0, datetime(2026, 12, 29, 22, 59, tzinfo=UTC))  # Tuesday 23:59 in Paris: 1
    claim(first, 2, datetime(2026, 12, 29, 23, tzinfo=UTC))  # Wednesday 00:00 in Paris: 0
    pay(date(2026, 12, 30))

    # The lists, read before the summaries may no longer read them.
    everything = _listed(invoice_delays(platform))
    since_monday = _listed(invoice_delays(platform, since=date(2026, 12, 28)))
    insurers = (first, second)
    per_insurer = {i.id: _listed(invoice_delays(platform, insurer_id=i.id)) for i in insurers}
    per_provider = {p.id: _listed(invoice_delays(platform, provider_id=p.id)) for p in owners}
    ours = [d for d in invoice_delays(platform) if d.insurer_id in per_insurer]
    assert sorted(d.business_days for d in ours) == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4]

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a summary read every paid invoice into a list")

    monkeypatch.setattr(read_model, "paid_invoices", unread)
    assert delay_report(platform) == everything
    assert delay_report(platform, since=date(2026, 12, 28)) == since_monday
    assert delay_report(platform, since=date(2026, 12, 31)) == DelayReport(None, {}, {})
    for insurer in insurers:
        assert insurer_delays(platform, insurer.id) == per_insurer[insurer.id]
    for owner in owners:
        principal = Principal(
            f"psc:{owner.am_number}", PrincipalKind.PROVIDER_USER, AuthStrength.AAL3, owner.id
        )
        assert provider_delay(platform, principal) == per_provider[owner.id].overall
    # The first insurer's delays, 0 0 1 1 1 3 4: the 4th is the median (ceil(0.5 × 7)),
    # the 7th the 95th percentile (ceil(0.95 × 7)); 5 of 7 within a business day.
    assert everything.by_insurer[first.amc_number] == DelaySummary(7, 1, 4, 4, 7142)
    # The second's, 1 1 1 1 1 2: the 3rd and the 6th; 5 of 6 within a day.
    assert everything.by_insurer[second.amc_number] == DelaySummary(6, 1, 2, 2, 8333)
    assert since_monday.by_insurer[second.amc_number] == DelaySummary(4, 1, 2, 2, 7500)
