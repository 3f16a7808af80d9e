"""Insurer billing run: statement, fund call (pain.008), detail file, ledger to the cent."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sepaxml
import xmlschema

from tests.conftest import SeededInsurer
from tests.factories import make_bic, make_french_iban
from tests.money_support import ACCEPTED, REDUCED, REJECTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.formats import french_csv
from tierspayant.services import billing, ledger_check, overpayments, payments
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.store import ledger

from .test_overpayments import staff

SCHEMAS = Path(sepaxml.__file__).parent / "schemas"


def at(day: date) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def _cents(text: str) -> int:
    """An amount of a French CSV (``12,50``) in cents."""
    return int(Decimal(text.replace(",", ".")) * 100)


def test_a_month_is_billed_to_the_cent(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a month of payments for an insurer, one line found undue the same month,
    # and a claim adjudicated but not yet paid
    platform.clock = at(date(2026, 6, 10))
    insurer = seed_insurer(platform)
    rng = random.Random(21)
    billing.set_mandate(
        platform, insurer.amc_number, iban=make_french_iban(rng), bic=make_bic(rng),
        mandate_id="RUM-TP-0001", signed_on=date(2026, 1, 2), actor="test",
    )  # fmt: skip
    pharmacy = make_provider(platform, rng)
    doctor = make_provider(platform, rng, category="gp")
    for provider, lines in ((pharmacy, (ACCEPTED, REJECTED)), (doctor, (REDUCED, ACCEPTED))):
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, lines=lines,
        )  # fmt: skip
    payments.run_payments(platform, date(2026, 6, 10), out_dir=tmp_path / "pay")
    undue_claim = adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=doctor.id,
        adjudicated_at=datetime(2026, 6, 10, 10, tzinfo=UTC),
    )  # fmt: skip
    platform.clock = at(date(2026, 6, 11))
    payments.run_payments(platform, date(2026, 6, 11), out_dir=tmp_path / "pay")
    overpayments.flag_undue(platform, staff(insurer.id), undue_claim, 1, "care.not_given")
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=doctor.id,
        lines=(REDUCED,), adjudicated_at=datetime(2026, 6, 11, 10, tzinfo=UTC),
    )  # fmt: skip
    with pytest.raises(ServiceError) as still_open:
        billing.run_billing(platform, "2026-06", out_dir=tmp_path / "bill")
    assert still_open.value.code == "billing.period_open"

    # When June is billed in July
    platform.clock = at(date(2026, 7, 2))
    summary = billing.run_billing(platform, "2026-06", out_dir=tmp_path / "bill")

    # Then the statement: paid 3.50 + 7.00 + 3.50 + 3.50, minus the 3.50 undue
    files = billing.statement_files(tmp_path / "bill", insurer.amc_number, "2026-06")
    statement = json.loads(files["statement_json"].read_text(encoding="utf-8"))
    assert statement["paid"] == "17.50"
    assert statement["undue_credited"] == "3.50"
    assert statement["due"] == "14.00"
    # (no fee configured: the platform default is 0, the fee line says so)
    assert statement["net_paid"] == "14.00"
    assert statement["operator_fees"] == {
        "lines": 4, "per_line": "0.00", "amount": "0.00", "vat_included": False,
    }  # fmt: skip
    assert statement["by_domain"] == {"MED": "7.00", "PHAR": "7.00"}
    assert statement["by_provider_category"] == {"gp": "10.50", "pharmacy": "3.50"}
    # and the detail file sums to it, one row per paid line and one per undue line
    header, *detail = french_csv.read(files["detail"].read_bytes())
    rows = [dict(zip(header, line, strict=True)) for line in detail]
    assert sum(_cents(r["Part AMC (€)"]) for r in rows) == 1400
    assert [r["Type"] for r in rows].count("indu") == 1
    assert all(r["Id bénéficiaire"] == "1" for r in rows)
    # and the fund call is a valid pain.008 for that amount
    xmlschema.XMLSchema(str(SCHEMAS / "pain.008.001.02.xsd")).validate(str(files["fund_call"]))
    assert '<InstdAmt Ccy="EUR">14.00</InstdAmt>' in files["fund_call"].read_text("utf-8")
    # and the ledger: the insurer owes exactly the accepted line not yet paid
    with platform.engine.connect() as conn:
        receivable = account(AccountKind.INSURER_RECEIVABLE, insurer.amc_number)
        assert ledger.balance(conn, receivable) == 700
        assert ledger.signed_journal_total(conn, "billing", BANK) >= 1400
    assert summary.insurers >= 1
    assert ledger_check.check_ledger(platform).ok

    # And billing June again is refused: nothing written, nothing moved
    before = {p: p.read_bytes() for p in summary.files}
    with pytest.raises(Conflict) as twice:
        billing.run_billing(platform, "2026-06", out_dir=tmp_path / "bill")
    assert twice.value.code == "billing.period_billed"
    assert {p: p.read_bytes() for p in summary.files} == before
    with platform.engine.connect() as conn:
        assert ledger.balance(conn, receivable) == 700
    # and paying at a date of the billed month is refused, even with a backdating reason
    with pytest.raises(Conflict) as billed:
        payments.run_payments(
            platform,
            date(2026, 6, 30),
            out_dir=tmp_path / "pay",
            backdate_reason="missed run of 30 June",
        )
    assert billed.value.code == "payments.period_billed"
