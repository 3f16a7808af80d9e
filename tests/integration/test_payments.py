"""Provider payment run: transfers, remittance advice, ledger, reruns and leases."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sepaxml
import xmlschema
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.money_support import ACCEPTED, REDUCED, REJECTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.domain.banking_calendar import following_business_day, paris_day
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.services import payments, run_leases
from tierspayant.services.errors import Conflict
from tierspayant.store import ledger
from tierspayant.store import payments as store
from tierspayant.store.payments import claim_is_paid

PAY_DAY = date(2026, 11, 30)
SCHEMAS = Path(sepaxml.__file__).parent / "schemas"


def at(day: date, hour: int = 9) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _paid_providers(platform: Platform, run_key: str) -> set[int]:
    with platform.engine.connect() as conn:
        return {p.provider_id for p in store.run_payments(conn, run_key)}


def _remittance_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, delimiter=";"))


def test_a_run_pays_each_provider_once_across_insurers(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given two insurers and two providers with adjudicated claims
    platform.clock = at(PAY_DAY)
    rng = random.Random(7)
    first, second = seed_insurer(platform), seed_insurer(platform)
    pharmacy, doctor = make_provider(platform, rng), make_provider(platform, rng, category="gp")
    claims = [
        adjudicated_claim(
            platform, insurer_id=first.id, amc_number=first.amc_number,
            provider_id=pharmacy.id, lines=(ACCEPTED, REJECTED),
        ),
        adjudicated_claim(
            platform, insurer_id=second.id, amc_number=second.amc_number,
            provider_id=pharmacy.id, lines=(REDUCED,),
        ),
        adjudicated_claim(
            platform, insurer_id=first.id, amc_number=first.amc_number,
            provider_id=doctor.id, lines=(ACCEPTED, ACCEPTED),
        ),
    ]  # fmt: skip

    with platform.engine.connect() as conn:
        bank_before = ledger.balance(conn, BANK)

    # When the payment run of the day runs
    summary = payments.run_payments(platform, PAY_DAY, out_dir=tmp_path / "out")

    # Then one transfer per provider, for what adjudication accepted
    assert (summary.providers, summary.transfers) == (2, 2)
    assert summary.net_cents == 350 + 700 + 700
    pain = payments.transfers_file(tmp_path / "out", PAY_DAY)
    xmlschema.XMLSchema(str(SCHEMAS / "pain.001.001.03.xsd")).validate(str(pain))
    text = pain.read_text(encoding="utf-8")
    assert "<CtrlSum>17.50</CtrlSum>" in text
    assert text.count("<CdtTrfTxInf>") == 2
    assert '<InstdAmt Ccy="EUR">10.50</InstdAmt>' in text
    # and the ledger: payables settled, the bank paid out the net amounts
    with platform.engine.connect() as conn:
        assert ledger.balance(conn, account(AccountKind.PROVIDER_PAYABLE, pharmacy.id)) == 0
        assert ledger.balance(conn, account(AccountKind.PROVIDER_PAYABLE, doctor.id)) == 0
        assert ledger.balance(conn, BANK) - bank_before == -1750
        assert ledger.check(conn).ok
        assert all(claim_is_paid(conn, c_ins, c) for c_ins, c in zip(
            (first.id, second.id, first.id), claims, strict=True
        ))  # fmt: skip
    # and the pharmacy's advice lists the paid line, the rejected one with its reason
    rows = _remittance_rows(payments.remittance_file(tmp_path / "out", PAY_DAY, pharmacy.id))
    lines = [r for r in rows if r[0] == "ligne"]
    assert [(r[4], r[9], r[10], r[11]) for r in lines] == [
        ("1", "3.50", "accepted", ""),
        ("2", "0.00", "rejected", "rights.none"),
        ("1", "7.00", "reduced", "ceiling"),
    ]
    assert ["virement", "10.50", f"TP20261130-{pharmacy.id}"] in rows


def test_a_rerun_pays_nothing_twice_and_rewrites_the_same_files(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    day = date(2026, 11, 27)  # each test its own day: PostgreSQL keeps runs between tests
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(3))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    first = payments.run_payments(platform, day, out_dir=tmp_path / "a")
    with platform.engine.connect() as conn:
        postings = ledger.check(conn).postings

    # When the same run runs again, and a later run runs with nothing new
    again = payments.run_payments(platform, day, out_dir=tmp_path / "b")
    later = payments.run_payments(platform, date(2026, 12, 1), out_dir=tmp_path / "c")

    # Then no money moves again, and the files are the same bytes
    with platform.engine.connect() as conn:
        assert ledger.check(conn).postings == postings
    assert again.net_cents == first.net_cents == 350
    assert later.providers == 0
    assert later.files == ()
    for name in ("pain001-20261127.xml", f"remittances/R20261127-{provider.id}.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_lines_adjudicated_after_a_run_are_paid_by_the_next(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    platform.clock = at(date(2026, 11, 23))
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(4))
    first = payments.run_payments(platform, date(2026, 11, 23), out_dir=tmp_path)
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id,
        lines=(REDUCED,), adjudicated_at=datetime(2026, 11, 23, 15, tzinfo=UTC),
    )  # fmt: skip
    platform.clock = at(date(2026, 11, 24))
    summary = payments.run_payments(platform, date(2026, 11, 24), out_dir=tmp_path)
    assert provider.id not in _paid_providers(platform, first.run_key)
    assert _paid_providers(platform, summary.run_key) == {provider.id}
    assert summary.net_cents == 700


def test_a_provider_without_iban_waits(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    day = date(2026, 11, 20)
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(5), iban=False)
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    summary = payments.run_payments(platform, day, out_dir=tmp_path)
    assert provider.am_number in summary.waiting_for_iban
    assert provider.id not in _paid_providers(platform, summary.run_key)
    with platform.engine.connect() as conn:
        assert ledger.balance(conn, account(AccountKind.PROVIDER_PAYABLE, provider.id)) == -350


def test_a_live_lease_keeps_a_second_worker_out(platform: Platform) -> None:
    platform.clock = at(PAY_DAY)
    key = "pay:lease-test"
    _, owner = run_leases.acquire_run(
        platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None
    )
    with pytest.raises(Conflict) as refused:
        run_leases.acquire_run(platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None)
    assert refused.value.code == "run.locked"
    run_leases.release_run(platform, key, owner, done=False)
    _, again = run_leases.acquire_run(
        platform, run_key=key, kind="payment", run_date=PAY_DAY, period=None
    )
    assert again != owner


def test_the_pay_and_bill_commands(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an adjudicated claim in a platform the command line opens (wall clock: the
    # claim was adjudicated an hour ago, the payment date is today or, on a weekend or a
    # TARGET2 holiday, the next business day)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(6))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    today = following_business_day(paris_day(platform.now()))
    runner = CliRunner()

    paid = runner.invoke(app, ["pay", "--date", today.isoformat(), "--out", str(tmp_path)])
    assert paid.exit_code == 0, paid.output
    assert f"pay:{today.isoformat()}" in paid.output
    assert (tmp_path / f"remittances/R{today:%Y%m%d}-{provider.id}.csv").exists()

    bad_date = runner.invoke(app, ["pay", "--date", "30/11/2026"])
    assert bad_date.exit_code == 2
    assert "[cli.date]" in bad_date.output
    bad_period = runner.invoke(app, ["bill", "--period", "2026-13"])
    assert bad_period.exit_code == 2
    assert "[billing.period]" in bad_period.output
    still_open = runner.invoke(app, ["bill", "--period", f"{today:%Y-%m}"])
    assert still_open.exit_code == 2
    assert "[billing.period_open]" in still_open.output
