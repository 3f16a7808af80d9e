"""Operator fees: a rate per paid line, charged on the statement, called with the fund call,
posted as fees and reconciled by ``ledger check``."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sepaxml
import xmlschema
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.factories import make_bic, make_french_iban
from tests.money_support import ACCEPTED, REDUCED, REJECTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.config import BillingSettings
from tierspayant.domain.ledger import FEES, AccountKind, account
from tierspayant.formats import french_csv
from tierspayant.services import billing, ledger_check, payments
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store import ledger
from tierspayant.store.ledger_tables import billing_statements
from tierspayant.store.tables import audit_events

SCHEMAS = Path(sepaxml.__file__).parent / "schemas"


def at(day: date) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def _cents(text: str) -> int:
    """An amount of a French CSV (``12,50``) in cents."""
    return int(Decimal(text.replace(",", ".")) * 100)


def _postings(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return ledger.check(conn).postings


def _balance(platform: Platform, name: str) -> int:
    with platform.engine.connect() as conn:
        return ledger.balance(conn, name)


def _default_fee(platform: Platform, cents: int) -> None:
    """Give the platform ``TIERSPAYANT_OPERATOR_FEE_PER_LINE_CENTS=cents``."""
    platform.settings = replace(
        platform.settings, billing=BillingSettings(operator_fee_per_line_cents=cents)
    )


def _receivable(insurer: SeededInsurer) -> str:
    return account(AccountKind.INSURER_RECEIVABLE, insurer.amc_number)


def test_fees_are_charged_per_paid_line_and_called_with_the_fund_call(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a platform default of 0.25 per line, an insurer with its own rate of 0.40
    # (and a mandate) and one on the default (without a mandate)
    _default_fee(platform, 25)
    platform.clock = at(date(2026, 4, 10))
    own, default = seed_insurer(platform), seed_insurer(platform)
    assert billing.set_insurer_fee(platform, own.amc_number, 40, actor="test") == 40
    rng = random.Random(31)
    billing.set_mandate(
        platform, own.amc_number, iban=make_french_iban(rng), bic=make_bic(rng),
        mandate_id="RUM-FEES-1", signed_on=date(2026, 1, 2), actor="test",
    )  # fmt: skip
    pharmacy = make_provider(platform, rng)
    doctor = make_provider(platform, rng, category="gp")
    for provider, lines in ((pharmacy, (ACCEPTED, REJECTED)), (doctor, (REDUCED, ACCEPTED))):
        adjudicated_claim(
            platform, insurer_id=own.id, amc_number=own.amc_number, provider_id=provider.id,
            lines=lines,
        )  # fmt: skip
    adjudicated_claim(
        platform, insurer_id=default.id, amc_number=default.amc_number, provider_id=pharmacy.id
    )
    payments.run_payments(platform, date(2026, 4, 10), out_dir=tmp_path / "pay")
    fees_before = _balance(platform, FEES)

    # When April is billed
    platform.clock = at(date(2026, 5, 4))
    summary = billing.run_billing(platform, "2026-04", out_dir=tmp_path / "bill")

    # Then the statement separates care paid (3 lines: 3.50 + 7.00 + 3.50) from fees
    files = billing.statement_files(tmp_path / "bill", own.amc_number, "2026-04")
    statement = json.loads(files["statement_json"].read_text(encoding="utf-8"))
    assert statement["net_paid"] == "14.00"
    assert statement["operator_fees"] == {
        "lines": 3, "per_line": "0.40", "amount": "1.20", "vat_included": False,
    }  # fmt: skip
    assert statement["due"] == "15.20"
    header, *totals = french_csv.read(files["statement_csv"].read_bytes())
    assert header == ["Rubrique", "Clé", "Montant (€)"]
    rows = {(r[0], r[1]): r[2] for r in totals}
    assert rows[("Frais de gestion", "3 lignes × 0,40 € HT")] == "1,20"
    assert rows[("Total", "Net des soins")] == "14,00"
    assert rows[("Total", "Appel de fonds")] == "15,20"
    # and the detail file still lists care only: it sums to the amount due before fees
    header, *detail = french_csv.read(files["detail"].read_bytes())
    amc = header.index("Part AMC (€)")
    assert sum(_cents(r[amc]) for r in detail) == 1400
    # and the fund call collects care and fees together
    xmlschema.XMLSchema(str(SCHEMAS / "pain.008.001.02.xsd")).validate(str(files["fund_call"]))
    assert '<InstdAmt Ccy="EUR">15.20</InstdAmt>' in files["fund_call"].read_text("utf-8")
    # and the insurer on the platform default pays 0.25 for its one line, without mandate
    other = billing.statement_files(tmp_path / "bill", default.amc_number, "2026-04")
    other_statement = json.loads(other["statement_json"].read_text(encoding="utf-8"))
    assert other_statement["operator_fees"]["amount"] == "0.25"
    assert other_statement["due"] == "3.75"
    assert default.amc_number in summary.without_mandate
    # and the ledger: fees credited 1.45, each insurer owes nothing once called
    assert _balance(platform, FEES) == fees_before - 145
    assert _balance(platform, _receivable(own)) == 0
    assert _balance(platform, _receivable(default)) == 0
    assert ledger_check.check_ledger(platform).ok

    # And billing April again, after the rate changed, is refused: same bytes, no posting
    billing.set_insurer_fee(platform, own.amc_number, 99, actor="test")
    before = {p: p.read_bytes() for p in summary.files}
    postings = _postings(platform)
    with pytest.raises(Conflict) as twice:
        billing.run_billing(platform, "2026-04", out_dir=tmp_path / "bill")
    assert twice.value.code == "billing.period_billed"
    assert {p: p.read_bytes() for p in summary.files} == before
    assert _postings(platform) == postings
    assert ledger_check.check_ledger(platform).ok


def test_a_fee_is_set_within_range_audited_and_can_go_back_to_the_default(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    insurer = seed_insurer(platform)
    _default_fee(platform, 15)
    for bad in (-1, billing.MAX_FEE_PER_LINE + 1):
        with pytest.raises(ServiceError) as refused:
            billing.set_insurer_fee(platform, insurer.amc_number, bad, actor="test")
        assert refused.value.code == "billing.fee_range"
    assert billing.set_insurer_fee(platform, insurer.amc_number, 0, actor="test") == 0
    assert billing.set_insurer_fee(platform, insurer.amc_number, None, actor="test") == 15
    with platform.engine.connect() as conn:
        events = conn.execute(
            select(func.count()).where(
                audit_events.c.action == "billing.fee_set",
                audit_events.c.insurer == insurer.amc_number,
            )
        ).scalar_one()
    assert events == 2

    # The month is billed at the platform default (a default that is not whole cents never
    # gets this far: load_settings refuses it, tests/unit/test_config.py)
    # (May: months are billed in order, and the module's PostgreSQL database has April)
    platform.clock = at(date(2026, 5, 11))
    provider = make_provider(platform, random.Random(32))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    payments.run_payments(platform, date(2026, 5, 11), out_dir=tmp_path / "pay")
    platform.clock = at(date(2026, 6, 2))
    billing.run_billing(platform, "2026-05", out_dir=tmp_path / "bill")
    files = billing.statement_files(tmp_path / "bill", insurer.amc_number, "2026-05")
    statement = json.loads(files["statement_json"].read_text(encoding="utf-8"))
    assert statement["operator_fees"]["per_line"] == "0.15"
    assert statement["due"] == "3.65"
    assert ledger_check.check_ledger(platform).ok


def test_the_ledger_check_sees_fees_that_were_not_posted(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a month billed with fees (June: after April and May, billed above)
    platform.clock = at(date(2026, 6, 10))
    insurer = seed_insurer(platform)
    billing.set_insurer_fee(platform, insurer.amc_number, 30, actor="test")
    provider = make_provider(platform, random.Random(33))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id,
        lines=(ACCEPTED, ACCEPTED),
    )  # fmt: skip
    payments.run_payments(platform, date(2026, 6, 10), out_dir=tmp_path / "pay")
    platform.clock = at(date(2026, 7, 3))
    billing.run_billing(platform, "2026-06", out_dir=tmp_path / "bill")
    assert ledger_check.check_ledger(platform).ok
    key = (billing_statements.c.insurer_id == insurer.id) & (
        billing_statements.c.period == "2026-06"
    )

    def restate(per_line: int) -> None:
        with platform.engine.begin() as conn:
            conn.execute(
                update(billing_statements)
                .where(key)
                .values(
                    fee_per_line_cents=per_line,
                    fee_cents=2 * per_line,
                    due_cents=700 + 2 * per_line,
                )
            )

    # When its statement says a higher fee than the ledger charged
    restate(45)
    try:
        report = ledger_check.check_ledger(platform)
    finally:
        restate(30)
    # Then the check names the fee and fund call differences, to the cent
    found = {d.what: d.found_cents - d.expected_cents for d in report.differences}
    assert found["fee postings vs operator fees of statements"] == -30
    assert found["fees account vs operator fees of statements"] == -30
    assert found["fund calls posted vs statements"] == -30
    assert ledger_check.check_ledger(platform).ok


def test_the_fees_command(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("TIERSPAYANT_OPERATOR_FEE_PER_LINE_CENTS", "20")
    monkeypatch.setenv("COLUMNS", "200")
    insurer = seed_insurer(platform)
    runner = CliRunner()
    amc = insurer.amc_number

    own = runner.invoke(app, ["fees", "set", "--amc", amc, "--per-line-cents", "35"])
    assert own.exit_code == 0, own.output
    assert "0.35 EUR HT par ligne" in own.output
    back = runner.invoke(app, ["fees", "set", "--amc", amc, "--platform-default"])
    assert back.exit_code == 0, back.output
    assert "0.20 EUR HT par ligne" in back.output
    both = runner.invoke(
        app, ["fees", "set", "--amc", amc, "--per-line-cents", "1", "--platform-default"]
    )
    assert both.exit_code == 2
    assert "[cli.usage]" in both.output
    negative = runner.invoke(app, ["fees", "set", "--amc", amc, "--per-line-cents", "-5"])
    assert negative.exit_code == 2
    assert "[billing.fee_range]" in negative.output
    unknown = runner.invoke(app, ["fees", "set", "--amc", "000000000", "--per-line-cents", "5"])
    assert unknown.exit_code == 3  # not found
    assert "[insurer.unknown]" in unknown.output
