"""The delays a payment run observes: each invoice the run paid first, once, counted by
business days from its receipt (Paris day) to the run's execution date, without holding
the run's invoices in memory (``services.delays.run_delays``)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from tests.conftest import SeededInsurer
from tests.money_support import REJECTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.payments import payment_run_key
from tierspayant.services import payments
from tierspayant.services.delays import invoice_delays, run_delays
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
