"""Returned direct debits: a pain.002 status report rejects fund calls; each return is
posted as the mirror of its fund call, once, and ``ledger check`` accounts for it."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.factories import make_bic, make_french_iban
from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, make_provider
from tests.pain002_support import Tx, status_report
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.services import billing, ledger_check, payments
from tierspayant.services.errors import Conflict
from tierspayant.store import ledger
from tierspayant.store.ledger_tables import fund_call_returns
from tierspayant.store.tables import audit_events


def at(day: date) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FundCall:
    insurer: SeededInsurer
    end_to_end_id: str
    amount: str  # as the pain.008 says it
    cents: int


def _bill_month(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    out: Path,
    month: int,
    insurers: int = 2,
) -> list[FundCall]:
    """Insurers with a mandate, a month of payments, the month billed: their fund calls."""
    platform.clock = at(date(2026, month, 10))
    rng = random.Random(month)
    provider = make_provider(platform, rng)
    seeded = []
    for n in range(insurers):
        insurer = seed_insurer(platform)
        billing.set_mandate(
            platform, insurer.amc_number, iban=make_french_iban(rng), bic=make_bic(rng),
            mandate_id=f"RUM-RET-{month}-{n}", signed_on=date(2026, 1, 2), actor="test",
        )  # fmt: skip
        billing.set_insurer_fee(platform, insurer.amc_number, 10, actor="test")
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, lines=(ACCEPTED, REDUCED)[: n + 1],
        )  # fmt: skip
        seeded.append(insurer)
    payments.run_payments(platform, date(2026, month, 10), out_dir=out / "pay")
    period = f"2026-{month:02d}"
    platform.clock = at(date(2026, month + 1, 2))
    billing.run_billing(platform, period, out_dir=out / "bill")
    calls = []
    for insurer in seeded:
        path = billing.statement_files(out / "bill", insurer.amc_number, period)["fund_call"]
        text = path.read_text(encoding="utf-8")
        e2e = re.search(r"<EndToEndId>([^<]+)</EndToEndId>", text)
        amount = re.search(r'<InstdAmt Ccy="EUR">([^<]+)</InstdAmt>', text)
        assert e2e is not None
        assert amount is not None
        units, cents = amount[1].split(".")
        calls.append(FundCall(insurer, e2e[1], amount[1], int(units) * 100 + int(cents)))
    return calls


def _balance(platform: Platform, name: str) -> int:
    with platform.engine.connect() as conn:
        return ledger.balance(conn, name)


def _postings(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return ledger.check(conn).postings


def _events(platform: Platform, action: str, decision: str = "allow") -> int:
    with platform.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    audit_events.c.action == action, audit_events.c.decision == decision
                )
            ).scalar_one()
        )


def _cli(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_a_rejected_fund_call_is_posted_back_once(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given June billed to two insurers, and the bank's report: the first fund call
    # rejected (AM04, insufficient funds), the second settled
    rejected, settled = _bill_month(platform, seed_insurer, tmp_path, 6)
    report = tmp_path / "pain002.xml"
    report.write_bytes(
        status_report(
            [
                Tx(rejected.end_to_end_id, reason="AM04", amount=rejected.amount),
                Tx(settled.end_to_end_id, status="ACSC", reason=None),
            ],
            message_id="STS-JUNE-1",
        )
    )
    receivable = account(AccountKind.INSURER_RECEIVABLE, rejected.insurer.amc_number)
    assert _balance(platform, receivable) == 0
    bank = _balance(platform, BANK)
    runner = _cli(platform, monkeypatch)

    # When the operator records it
    first = runner.invoke(app, ["bill", "returns", str(report)])

    # Then the return is posted: the insurer owes the fund call again, the bank lost it
    assert first.exit_code == 0, first.output
    assert f"rejet enregistré: {rejected.insurer.amc_number} 2026-06" in first.output
    assert "motif AM04" in first.output
    assert _balance(platform, receivable) == rejected.cents
    assert _balance(platform, BANK) == bank - rejected.cents
    settled_receivable = account(AccountKind.INSURER_RECEIVABLE, settled.insurer.amc_number)
    assert _balance(platform, settled_receivable) == 0
    # and the fund call is marked returned with its reason, for its insurer only
    marked = billing.returned_fund_calls(platform, rejected.insurer.id)
    assert marked["2026-06"].reason_code == "AM04"
    assert marked["2026-06"].cents == rejected.cents
    assert marked["2026-06"].value_date == date(2026, 7, 14)
    assert billing.returned_fund_calls(platform, settled.insurer.id) == {}
    assert _events(platform, "billing.return") >= 1
    assert ledger_check.check_ledger(platform).ok

    # And the same report again records nothing and says so
    postings, returns_events = _postings(platform), _events(platform, "billing.return")
    again = runner.invoke(app, ["bill", "returns", str(report)])
    assert again.exit_code == 0, again.output
    assert f"déjà enregistré: {rejected.insurer.amc_number} 2026-06 motif AM04" in again.output
    assert "aucun nouveau rejet" in again.output
    assert _postings(platform) == postings
    assert _events(platform, "billing.return") == returns_events
    assert _balance(platform, receivable) == rejected.cents
    assert ledger_check.check_ledger(platform).ok
    # and billing June again is refused and moves nothing either
    with pytest.raises(Conflict) as again_billed:
        billing.run_billing(platform, "2026-06", out_dir=tmp_path / "bill")
    assert again_billed.value.code == "billing.period_billed"
    assert _postings(platform) == postings


def test_an_unknown_end_to_end_id_records_nothing_of_the_report(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given July billed (after June, in the module's PostgreSQL database), and a report
    # rejecting a real fund call, one that never existed and one with a collection date
    # that is not the fund call's
    (call,) = _bill_month(platform, seed_insurer, tmp_path, 7, insurers=1)
    amc = call.insurer.amc_number
    unknown = f"TP20260610-{amc}-2026-04"
    wrong_date = call.end_to_end_id.replace("TP202608", "TP202607")
    report = tmp_path / "pain002.xml"
    report.write_bytes(
        status_report(
            [Tx(call.end_to_end_id, reason="MD01"), Tx(unknown), Tx(wrong_date)],
            message_id="STS-JULY-1",
        )
    )
    postings, denied = _postings(platform), _events(platform, "billing.returns", "deny")
    runner = _cli(platform, monkeypatch)

    # When the operator records it
    result = runner.invoke(app, ["bill", "returns", str(report)])

    # Then both unknown ids are listed, the command fails and nothing is posted
    assert result.exit_code == 1
    assert f"[returns.unknown] {unknown}" in result.output
    assert f"[returns.unknown] {wrong_date}" in result.output
    assert "rien n'a été enregistré" in result.output
    assert _postings(platform) == postings
    assert billing.returned_fund_calls(platform, call.insurer.id) == {}
    assert _events(platform, "billing.returns", "deny") == denied + 1
    assert ledger_check.check_ledger(platform).ok

    # And a return of another amount than the fund call is refused too
    mismatch = billing.record_returns(
        platform,
        status_report([Tx(call.end_to_end_id, amount=f"{call.cents // 100 + 1}.00")]),
        actor="test",
    )
    assert [e.code for e in mismatch.errors] == ["returns.amount_mismatch"]
    assert mismatch.recorded == ()
    # while the real fund call alone is recorded
    alone = billing.record_returns(
        platform, status_report([Tx(call.end_to_end_id, reason="MD01")]), actor="test"
    )
    assert alone.ok
    assert [(r.period, r.reason_code) for r in alone.recorded] == [("2026-07", "MD01")]
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).where(fund_call_returns.c.insurer_id == call.insurer.id)
        ).scalar_one()
    assert rows == 1
    assert ledger_check.check_ledger(platform).ok


def test_the_returns_command_refuses_unreadable_reports(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli(platform, monkeypatch)
    missing = runner.invoke(app, ["bill", "returns", str(tmp_path / "absent.xml")])
    assert missing.exit_code == 2
    assert "[cli.file]" in missing.output
    entities = tmp_path / "entities.xml"
    entities.write_bytes(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "a">]><d>&a;</d>')
    refused = runner.invoke(app, ["bill", "returns", str(entities)])
    assert refused.exit_code == 2
    assert "[returns.doctype]" in refused.output
    mixed = runner.invoke(app, ["bill", "--period", "2026-01", "returns", str(entities)])
    assert mixed.exit_code == 2
    assert "[cli.usage]" in mixed.output
    bare = runner.invoke(app, ["bill"])
    assert bare.exit_code == 2
    assert "[cli.usage]" in bare.output
