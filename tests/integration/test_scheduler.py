"""The scheduler of ``serve`` over a simulated month with holidays, two instances side by
side, the clock stepped (never slept): December 2026 (Friday 25th a TARGET2 holiday,
Saturday 26th) to the first business day of January 2027 (Friday 1st a holiday)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.money_support import ACCEPTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.jobs.scheduler import Scheduler
from tierspayant.services.delays import delay_report, invoice_delays
from tierspayant.services.scheduling import done_jobs
from tierspayant.store.ledger_tables import money_runs
from tierspayant.store.tables import audit_events

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 01:00 in Paris
END = datetime(2027, 1, 5, 23, 0, tzinfo=UTC)
STEP = timedelta(hours=3)  # Paris ticks at 01, 04, 07, 10, 13, 16, 19, 22 h
HOLIDAYS = {date(2026, 12, 25), date(2027, 1, 1)}


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_a_month_of_jobs_runs_each_job_once_on_its_days(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moment = [START]
    platform.clock = lambda: moment[0]
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(7))
    first, second = (Scheduler(platform, checkpoint_dir=tmp_path / "checkpoints") for _ in range(2))
    ran: list[str] = []
    received: dict[int, datetime] = {}
    while moment[0] <= END:
        paris_hour = (moment[0].hour + 1) % 24  # winter time all along
        if paris_hour in (10, 19):  # before and after the 16:00 cut-off, every day
            claim = adjudicated_claim(
                platform,
                insurer_id=insurer.id,
                amc_number=insurer.amc_number,
                provider_id=provider.id,
                lines=(ACCEPTED,),
                adjudicated_at=moment[0],
            )
            received[claim] = moment[0]
        # Both instances look at every tick, in turn and in the other order.
        pair = (first, second) if moment[0].hour % 2 else (second, first)
        for scheduler in pair:
            result = scheduler.tick()
            assert result.failed == []
            ran.extend(result.ran)
        moment[0] += STEP

    counts = Counter(ran)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    days = _days(date(2026, 12, 1), date(2027, 1, 5))
    weekdays = [d for d in days if d.weekday() < 5]
    paid_days = sorted(date.fromisoformat(k.split(":")[1]) for k in ran if k.startswith("payment:"))
    assert paid_days == [d for d in weekdays if d not in HOLIDAYS]
    assert date(2026, 12, 25) not in paid_days
    assert date(2026, 12, 26) not in paid_days
    assert sorted(k for k in ran if k.startswith("billing:")) == [
        "billing:2026-11",
        "billing:2026-12",
    ]
    for nightly in ("checkpoint", "guard_figures"):
        assert sorted(k for k in ran if k.startswith(nightly + ":")) == [
            f"{nightly}:{d.isoformat()}" for d in days
        ]
    # What the money runs recorded agrees: one payment run per business day, one billing.
    with platform.engine.connect() as conn:
        runs = conn.execute(select(money_runs.c.kind, money_runs.c.run_date)).all()
        audited = conn.execute(
            select(audit_events.c.action).where(audit_events.c.action == "payments.run")
        ).all()
    assert sorted(d for kind, d in runs if kind == "payment") == paid_days
    assert [kind for kind, _ in runs].count("billing") == 2
    assert len(audited) == len(paid_days)
    assert {j.job_key for j in done_jobs(platform)} == set(ran)

    # Every invoice paid: received before the cut-off on a business day, the same day;
    # otherwise the next business day (Friday 25th → Monday 28th, Thursday 31st evening
    # → Monday 4 January).
    delays = {d.claim_id: d for d in invoice_delays(platform)}
    paid_by_end = {c for c, at in received.items() if at < datetime(2027, 1, 5, 15, tzinfo=UTC)}
    assert paid_by_end <= set(delays)
    for claim in paid_by_end:
        at = received[claim]
        item = delays[claim]
        same_day = at.date() not in HOLIDAYS and at.weekday() < 5 and at.hour + 1 < 16
        assert item.business_days == (0 if same_day else 1), (at, item)
    christmas = [d for d in delays.values() if d.received_on == date(2026, 12, 25)]
    assert christmas
    assert {d.executed_on for d in christmas} == {date(2026, 12, 28)}
    report = delay_report(platform)
    assert report.overall is not None
    assert report.overall.p95 == 1
    assert report.overall.worst == 1
    assert set(report.by_insurer) == {insurer.amc_number}
    assert report.by_provider[provider.am_number].invoices == report.overall.invoices

    # The same figures from the command line, in French, and as JSON lines.
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["report", "delays"])
    assert shown.exit_code == 0, shown.output
    assert "Délai de paiement" in shown.output
    assert f"professionnel {provider.am_number}" in shown.output
    lines = CliRunner().invoke(app, ["report", "delays", "--json", "--depuis", "2027-01-04"])
    assert lines.exit_code == 0, lines.output
    rows = [json.loads(line) for line in lines.output.splitlines()]
    assert [row["groupe"] for row in rows] == ["ensemble", "assureur", "professionnel"]
    # Paid on 4 and 5 January: the claims of 31 Dec evening to 5 Jan before the cut-off.
    january = [d for d in delays.values() if d.executed_on >= date(2027, 1, 4)]
    assert rows[0]["invoices"] == len(january)
    bad = CliRunner().invoke(app, ["report", "delays", "--depuis", "hier"])
    assert bad.exit_code == 2
    assert "date AAAA-MM-JJ attendue" in bad.output
