"""Payment and billing runs on the TARGET2 calendar, in Paris time (SQLite and PostgreSQL).

A refused run writes nothing: no run row, no posting, no payment, no file, no audit
event; a backdated run is audited once, in the transaction that starts it. The tests of
this module share one PostgreSQL database: payment tests come first, then billing
periods in ascending order (a month before the latest billed one is refused).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import SeededInsurer
from tests.factories import make_bic, make_french_iban
from tests.money_support import adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.services import billing, payments
from tierspayant.services.errors import Conflict, ServiceError, Unprocessable
from tierspayant.store import ledger
from tierspayant.store.ledger_tables import billing_statements, money_runs
from tierspayant.store.ledger_tables import payments as payments_table
from tierspayant.store.tables import audit_events


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@dataclass(frozen=True, slots=True)
class Written:
    """What the money runs have written so far."""

    runs: int
    payments: int
    statements: int
    postings: int
    events: int
    backdates: int


def written(platform: Platform) -> Written:
    def count(table: object, *where: object) -> int:
        query = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int(conn.execute(query).scalar_one())

    with platform.engine.connect() as conn:
        return Written(
            runs=count(money_runs),
            payments=count(payments_table),
            statements=count(billing_statements),
            postings=ledger.check(conn).postings,
            events=count(audit_events),
            backdates=count(audit_events, audit_events.c.action == "payments.backdate"),
        )


def _claim(platform: Platform, insurer: SeededInsurer, seed: int) -> None:
    provider = make_provider(platform, random.Random(seed))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )


# --- payment runs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 12, 25),  # Christmas, a Friday
        date(2026, 12, 26),  # Saint Stephen's, a Saturday
        date(2026, 12, 13),  # a Sunday
        date(2027, 1, 1),
        date(2027, 3, 26),  # Good Friday 2027
        date(2027, 3, 29),  # Easter Monday 2027
    ],
)
def test_a_payment_run_on_a_closed_day_is_refused_and_writes_nothing(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path, day: date
) -> None:
    # Given a claim to pay, on Friday 11 December 2026
    platform.clock = at(datetime(2026, 12, 11, 9, tzinfo=UTC))
    _claim(platform, seed_insurer(platform), 41)
    before = written(platform)

    # When a run is asked for a day TARGET2 is closed (even with a backdating reason)
    with pytest.raises(Unprocessable) as refused:
        payments.run_payments(
            platform, day, out_dir=tmp_path / "out", backdate_reason="no reason to close"
        )

    # Then it is refused with its code, and nothing is written
    assert refused.value.code == "payments.not_business_day"
    assert refused.value.field == "date"
    assert written(platform) == before
    assert not (tmp_path / "out").exists()


def test_a_past_payment_date_needs_an_audited_reason(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a claim adjudicated in October, and the day: Sunday 6 December 2026
    platform.clock = at(datetime(2026, 10, 14, 9, tzinfo=UTC))
    _claim(platform, seed_insurer(platform), 42)
    platform.clock = at(datetime(2026, 12, 6, 15, tzinfo=UTC))
    before = written(platform)

    # When October 15 is asked for without a reason, then with a reason too short
    with pytest.raises(Unprocessable) as past:
        payments.run_payments(platform, date(2026, 10, 15), out_dir=tmp_path / "a")
    with pytest.raises(ServiceError) as short:
        payments.run_payments(
            platform, date(2026, 10, 15), out_dir=tmp_path / "a", backdate_reason="  oubli  "
        )

    # Then both are refused and nothing is written
    assert past.value.code == "payments.date_past"
    assert short.value.code == "payments.backdate_reason"
    assert written(platform) == before
    assert not (tmp_path / "a").exists()

    # When it is asked with a reason
    reason = "run of 15 October missed:   server down"
    summary = payments.run_payments(
        platform, date(2026, 10, 15), out_dir=tmp_path / "b", backdate_reason=reason
    )

    # Then the run pays, and one audit event records who, which date, today and why
    assert summary.net_cents == 350
    after = written(platform)
    assert after.runs == before.runs + 1
    assert after.backdates == before.backdates + 1
    with platform.engine.connect() as conn:
        event = conn.execute(
            select(audit_events.c.actor, audit_events.c.detail)
            .where(audit_events.c.action == "payments.backdate")
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).one()
    assert event.actor == payments.ACTOR
    detail = json.loads(event.detail)
    assert detail["run"] == "pay:2026-10-15"
    assert detail["date"] == "2026-10-15"
    assert detail["today"] == "2026-12-06"
    assert detail["reason"] == "run of 15 October missed: server down"

    # And running the started run again is not a second override
    payments.run_payments(platform, date(2026, 10, 15), out_dir=tmp_path / "b")
    assert written(platform).backdates == after.backdates
    # and a reason given for a date that is not past (Monday 7 December) overrides nothing
    payments.run_payments(
        platform, date(2026, 12, 7), out_dir=tmp_path / "c", backdate_reason="nothing to override"
    )
    assert written(platform).backdates == after.backdates


def test_today_is_the_day_in_paris(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given Friday 30 October 2026 (winter time since Sunday 25 October: UTC+1)
    insurer = seed_insurer(platform)
    platform.clock = at(datetime(2026, 10, 30, 8, tzinfo=UTC))
    _claim(platform, insurer, 43)

    # When the run of the 30th is asked at 23:30 UTC, 00:30 on Saturday 31 in Paris
    platform.clock = at(datetime(2026, 10, 30, 23, 30, tzinfo=UTC))
    with pytest.raises(Unprocessable) as late:
        payments.run_payments(platform, date(2026, 10, 30), out_dir=tmp_path)
    # Then it is already past, though the UTC day is still the 30th
    assert late.value.code == "payments.date_past"

    # When it is asked at 22:59 UTC, 23:59 on Friday in Paris, it runs
    platform.clock = at(datetime(2026, 10, 30, 22, 59, tzinfo=UTC))
    assert payments.run_payments(platform, date(2026, 10, 30), out_dir=tmp_path).net_cents == 350

    # And in summer time (UTC+2, from Sunday 29 March 2026), at 22:30 UTC on Tuesday 31
    # March it is Wednesday in Paris: the Tuesday's run is past
    platform.clock = at(datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    with pytest.raises(Unprocessable) as summer:
        payments.run_payments(platform, date(2026, 3, 31), out_dir=tmp_path)
    assert summer.value.code == "payments.date_past"
    # (the same minute of UTC a week before, in winter time, was 23:30 on Tuesday 24)
    platform.clock = at(datetime(2026, 3, 24, 22, 30, tzinfo=UTC))
    payments.run_payments(platform, date(2026, 3, 24), out_dir=tmp_path)


# --- billing runs, periods in ascending order --------------------------------------------


def test_a_month_is_over_at_midnight_in_paris_at_the_spring_change(
    platform: Platform, tmp_path: Path
) -> None:
    # Given 31 March 2026, after the change to summer time (Sunday 29 March): UTC+2
    platform.clock = at(datetime(2026, 3, 31, 21, 59, tzinfo=UTC))  # 23:59 in Paris
    before = written(platform)
    with pytest.raises(ServiceError) as still_open:
        billing.run_billing(platform, "2026-03", out_dir=tmp_path)
    assert still_open.value.code == "billing.period_open"
    assert written(platform) == before

    # When it is midnight in Paris (22:00 UTC, still 31 March in UTC)
    platform.clock = at(datetime(2026, 3, 31, 22, 0, tzinfo=UTC))
    summary = billing.run_billing(platform, "2026-03", out_dir=tmp_path)

    # Then March is billed, collected on the usual date, Friday 10 April (the 2-day notice
    # from Wednesday 1 April, over Good Friday and Easter Monday, ends on Tuesday 7 April)
    assert summary.collection_date == date(2026, 4, 10)


def test_a_month_is_over_at_midnight_in_paris_at_the_autumn_change(
    platform: Platform, tmp_path: Path
) -> None:
    # Given 31 October 2026, after the change back to winter time (Sunday 25th): UTC+1
    platform.clock = at(datetime(2026, 10, 31, 22, 30, tzinfo=UTC))  # 23:30 in Paris
    with pytest.raises(ServiceError) as still_open:
        billing.run_billing(platform, "2026-10", out_dir=tmp_path)
    assert still_open.value.code == "billing.period_open"

    # When it is midnight in Paris (23:00 UTC)
    platform.clock = at(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    summary = billing.run_billing(platform, "2026-10", out_dir=tmp_path)

    # Then October is billed, collected on 10 November (a Tuesday)
    assert summary.collection_date == date(2026, 11, 10)


def test_a_period_billed_or_before_the_last_billed_is_refused(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given November 2026 paid and billed (the day: Sunday 6 December)
    insurer = seed_insurer(platform)
    platform.clock = at(datetime(2026, 11, 16, 9, tzinfo=UTC))
    _claim(platform, insurer, 44)
    payments.run_payments(platform, date(2026, 11, 16), out_dir=tmp_path / "pay")
    platform.clock = at(datetime(2026, 12, 6, 15, tzinfo=UTC))
    november = billing.run_billing(platform, "2026-11", out_dir=tmp_path / "bill")
    # (1 December + 10 = Thursday 10 December, after the notice)
    assert november.collection_date == date(2026, 12, 10)
    before = written(platform)
    files = sorted(p.name for p in (tmp_path / "bill").iterdir())

    # When November is billed again, and September (never billed, but before November)
    with pytest.raises(Conflict) as twice:
        billing.run_billing(platform, "2026-11", out_dir=tmp_path / "bill")
    with pytest.raises(Conflict) as earlier:
        billing.run_billing(platform, "2026-09", out_dir=tmp_path / "bill")

    # Then both are refused with their codes, and nothing is written
    assert twice.value.code == "billing.period_billed"
    assert earlier.value.code == "billing.period_order"
    assert written(platform) == before
    assert sorted(p.name for p in (tmp_path / "bill").iterdir()) == files
    # and November can no longer be paid, even with a backdating reason
    with pytest.raises(Conflict) as closed:
        payments.run_payments(
            platform,
            date(2026, 11, 30),
            out_dir=tmp_path / "late",
            backdate_reason="late run for November",
        )
    assert closed.value.code == "payments.period_billed"
    # nor October, before it, with no statement of its own in this test
    with pytest.raises(Conflict) as before_billed:
        payments.run_payments(
            platform,
            date(2026, 10, 30),
            out_dir=tmp_path / "late",
            backdate_reason="late run for October",
        )
    assert before_billed.value.code == "payments.period_billed"
    assert written(platform) == before


def test_the_fund_call_of_december_falls_on_a_business_day(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given December 2026 paid on Thursday 24 December for an insurer with a mandate
    insurer = seed_insurer(platform)
    rng = random.Random(45)
    billing.set_mandate(
        platform, insurer.amc_number, iban=make_french_iban(rng), bic=make_bic(rng),
        mandate_id="RUM-CAL-12", signed_on=date(2026, 1, 2), actor="test",
    )  # fmt: skip
    platform.clock = at(datetime(2026, 12, 24, 9, tzinfo=UTC))
    _claim(platform, insurer, 45)
    payments.run_payments(platform, date(2026, 12, 24), out_dir=tmp_path / "pay")

    # When December is billed on Monday 4 January 2027
    platform.clock = at(datetime(2027, 1, 4, 9, tzinfo=UTC))
    summary = billing.run_billing(platform, "2026-12", out_dir=tmp_path / "bill")

    # Then it is collected on Monday 11 January, not on Sunday the 10th, in the pain.008 too
    assert summary.collection_date == date(2027, 1, 11)
    call = billing.statement_files(tmp_path / "bill", insurer.amc_number, "2026-12")
    text = call["fund_call"].read_text(encoding="utf-8")
    assert "<ReqdColltnDt>2027-01-11</ReqdColltnDt>" in text
