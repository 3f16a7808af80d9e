"""``pay`` and ``bill`` refuse closed days, past dates and billed periods in French, with
their code and exit status (docs/money.md#banking-calendar), on SQLite and PostgreSQL.

The command line runs on the wall clock: the dates below are refused, or accepted, on any
day these tests run (a past date is years back, a holiday years ahead).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.domain.banking_calendar import paris_day
from tierspayant.store.ledger_tables import money_runs
from tierspayant.store.tables import audit_events


@pytest.fixture
def runner(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner()


def _runs(platform: Platform) -> list[str]:
    with platform.engine.connect() as conn:
        return sorted(conn.execute(select(money_runs.c.run_key)).scalars())


def test_pay_refuses_a_closed_day_and_a_past_date_in_french(
    platform: Platform, runner: CliRunner
) -> None:
    # Given no run yet
    before = _runs(platform)

    # When Christmas 2030 (a Wednesday) is asked
    closed = runner.invoke(app, ["pay", "--date", "2030-12-25"])
    # Then it is refused in French, with its code, the next business day and exit 2
    assert closed.exit_code == 2, closed.output
    assert "[payments.not_business_day]" in closed.output
    assert "le 2030-12-25 n'est pas un jour ouvré TARGET2" in closed.output
    assert "prochain jour ouvré le 2030-12-27" in closed.output

    # When a past date is asked without a reason, then with a reason too short
    past = runner.invoke(app, ["pay", "--date", "2020-10-15"])
    short = runner.invoke(app, ["pay", "--date", "2020-10-15", "--backdate-reason", "oubli"])
    # Then both are refused, exit 2, saying today's date in Paris and what to do
    assert past.exit_code == 2, past.output
    assert "[payments.date_past]" in past.output
    assert f"le 2020-10-15 est passé (nous sommes le {paris_day(platform.now())}" in past.output
    assert "--backdate-reason" in past.output
    assert short.exit_code == 2, short.output
    assert "[payments.backdate_reason]" in short.output
    assert "10 à 200 caractères" in short.output
    # and no run was started
    assert _runs(platform) == before

    # When the reason is given
    reason = "missed run, bank holiday incident"
    done = runner.invoke(app, ["pay", "--date", "2020-10-15", "--backdate-reason", reason])
    # Then the run is made and the override audited under the command line's actor
    assert done.exit_code == 0, done.output
    assert "pay:2020-10-15" in done.output
    assert _runs(platform) == sorted([*before, "pay:2020-10-15"])
    with platform.engine.connect() as conn:
        events = conn.execute(
            select(audit_events.c.actor, audit_events.c.detail).where(
                audit_events.c.action == "payments.backdate"
            )
        ).all()
    assert [(e.actor, json.loads(e.detail)["reason"]) for e in events] == [("operator:cli", reason)]


def test_bill_refuses_an_open_a_billed_and_an_earlier_period_in_french(
    platform: Platform, runner: CliRunner
) -> None:
    # Given October 2020 billed
    billed = runner.invoke(app, ["bill", "--period", "2020-10"])
    assert billed.exit_code == 0, billed.output
    runs = _runs(platform)

    # When the month under way in Paris, October again and September are billed, and a
    # day of October paid
    month = f"{paris_day(platform.now()):%Y-%m}"
    still_open = runner.invoke(app, ["bill", "--period", month])
    again = runner.invoke(app, ["bill", "--period", "2020-10"])
    earlier = runner.invoke(app, ["bill", "--period", "2020-09"])
    late_pay = runner.invoke(
        app, ["pay", "--date", "2020-10-16", "--backdate-reason", "a late run of October"]
    )

    # Then each is refused in French with its code and status, and no run is started
    assert still_open.exit_code == 2, still_open.output
    assert f"[billing.period_open] la période {month} n'est pas terminée" in still_open.output
    assert again.exit_code == 4, again.output
    assert "[billing.period_billed] la période 2020-10 est déjà facturée" in again.output
    assert earlier.exit_code == 4, earlier.output
    assert "[billing.period_order] une période postérieure à 2020-09" in earlier.output
    assert late_pay.exit_code == 4, late_pay.output
    assert "[payments.period_billed] la période 2020-10 est déjà facturée" in late_pay.output
    assert _runs(platform) == runs
    assert _runs(platform) == runs
