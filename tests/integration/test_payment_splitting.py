"""Payments above the EPC per-transfer maximum: booked once, written as several transfers.

Issue 14 found a pain.001 with one ``InstdAmt`` of 1386000956.79, above the EPC maximum of
999,999,999.99 € a transfer: valid for the ISO XSD, refused by a bank after our ledger
showed it paid. The run now splits such a payment; these tests run it on SQLite and
PostgreSQL and read the file back with the EPC rules checker.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sepaxml
import xmlschema

from tests.conftest import SeededInsurer
from tests.money_support import ACCEPTED, Line, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.domain.payments import end_to_end_id, payment_run_key, transfer_part
from tierspayant.formats.sepa_rules import check_file
from tierspayant.services import payments
from tierspayant.store import ledger, runs

SCHEMA = Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.03.xsd"
# The amount of the issue: four hospital invoices accepted for one provider on one day.
ISSUE_CENTS = 138_600_095_679  # 1,386,000,956.79 EUR
HUGE_STAY = Line("GHS", "HOSP", billed=ISSUE_CENTS, amo=0, accepted=ISSUE_CENTS)


def at(day: date) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def transactions(pain: Path) -> list[tuple[str, int]]:
    """(end-to-end id, cents) of each transaction, in file order."""
    text = pain.read_text(encoding="utf-8")
    found = re.findall(
        r"<EndToEndId>([^<]+)</EndToEndId></PmtId><Amt><InstdAmt Ccy=\"EUR\">(\d+)\.(\d\d)<",
        text,
    )
    return [(e2e, int(whole) * 100 + int(part)) for e2e, whole, part in found]


def test_the_issues_payment_is_written_as_two_transfers_under_the_epc_maximum(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider owed 1,386,000,956.79 EUR (claims stored before the ceilings)
    day = date(2026, 11, 23)  # each test its own day: PostgreSQL keeps runs between tests
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    hospital = make_provider(platform, random.Random(14))
    adjudicated_claim(
        platform,
        insurer_id=insurer.id,
        amc_number=insurer.amc_number,
        provider_id=hospital.id,
        lines=(HUGE_STAY,),
    )
    with platform.engine.connect() as conn:
        bank_before = ledger.balance(conn, BANK)

    # When the payment run of the day runs
    summary = payments.run_payments(platform, day, out_dir=tmp_path / "out")

    # Then the file carries two transfers, each within the EPC maximum, summing to the debt
    pain = payments.transfers_file(tmp_path / "out", day)
    found = transactions(pain)
    base = end_to_end_id(day, str(hospital.id))
    assert found == [(f"{base}-1", 69_300_047_840), (f"{base}-2", 69_300_047_839)]
    assert all(cents <= EPC_MAX_TRANSFER_CENTS for _, cents in found)
    text = pain.read_text(encoding="utf-8")
    assert "<NbOfTxs>2</NbOfTxs><CtrlSum>1386000956.79</CtrlSum>" in text
    # and the file passes the EPC rules and the ISO schema
    assert check_file(pain) == []
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(pain))
    # and the ledger booked one payment of the whole amount, balanced
    assert summary.net_cents == ISSUE_CENTS
    with platform.engine.connect() as conn:
        assert ledger.balance(conn, BANK) - bank_before == -ISSUE_CENTS
        assert ledger.balance(conn, account(AccountKind.PROVIDER_PAYABLE, hospital.id)) == 0
        assert ledger.check(conn).ok


def test_split_transfers_are_unique_traceable_and_rewritten_identically(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given two providers owed 10.50 EUR and 3.50 EUR, and a maximum of 4.00 EUR a
    # transfer (the EPC maximum scaled down, so that small claims exercise the split)
    day = date(2026, 11, 24)
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    rng = random.Random(15)
    pharmacy, nurse = make_provider(platform, rng), make_provider(platform, rng)
    for provider, lines in ((pharmacy, (ACCEPTED, ACCEPTED, ACCEPTED)), (nurse, (ACCEPTED,))):
        adjudicated_claim(
            platform,
            insurer_id=insurer.id,
            amc_number=insurer.amc_number,
            provider_id=provider.id,
            lines=lines,
        )

    # When the run runs, then runs again into another directory
    payments.run_payments(platform, day, out_dir=tmp_path / "a", max_transfer_cents=400)
    payments.run_payments(platform, day, out_dir=tmp_path / "b", max_transfer_cents=400)

    # Then the pharmacy's 10.50 is three transfers of 3.50, the nurse's one of 3.50
    first = payments.transfers_file(tmp_path / "a", day)
    found = transactions(first)
    ids = {p.id: end_to_end_id(day, str(p.id)) for p in (pharmacy, nurse)}
    assert sorted(cents for _, cents in found) == [350] * 4
    assert len({e2e for e2e, _ in found}) == len(found) == 4
    # and each id leads back to its provider's payment and part
    traced = sorted(transfer_part(e2e, ids.values()) or ("?", -1) for e2e, _ in found)
    assert traced == sorted(
        [(ids[pharmacy.id], 1), (ids[pharmacy.id], 2), (ids[pharmacy.id], 3), (ids[nurse.id], 0)]
    )
    assert "virement 2/3" in first.read_text(encoding="utf-8")
    assert check_file(first) == []
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(first))
    # and the rerun wrote the same bytes, with the ledger still balanced
    assert payments.transfers_file(tmp_path / "b", day).read_bytes() == first.read_bytes()
    with platform.engine.connect() as conn:
        assert ledger.check(conn).ok


def test_a_run_keeps_its_maximum_and_refuses_one_no_bank_takes(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider owed 10.50 EUR, paid by a run with a maximum of 4.00 EUR a transfer
    day = date(2026, 11, 25)
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    pharmacy = make_provider(platform, random.Random(16))
    adjudicated_claim(
        platform,
        insurer_id=insurer.id,
        amc_number=insurer.amc_number,
        provider_id=pharmacy.id,
        lines=(ACCEPTED, ACCEPTED, ACCEPTED),
    )
    payments.run_payments(platform, day, out_dir=tmp_path / "a", max_transfer_cents=400)
    first = payments.transfers_file(tmp_path / "a", day).read_bytes()

    # When the run is run again without a maximum (as the command line and the scheduler
    # do)
    payments.run_payments(platform, day, out_dir=tmp_path / "b")

    # Then its file is rewritten with the maximum it started with: the same three
    # transfers of 3.50, the same bytes
    rewritten = payments.transfers_file(tmp_path / "b", day)
    base = end_to_end_id(day, str(pharmacy.id))
    assert [t for t in transactions(rewritten) if t[0].startswith(base)] == [
        (f"{base}-1", 350),
        (f"{base}-2", 350),
        (f"{base}-3", 350),
    ]
    assert rewritten.read_bytes() == first
    # and another maximum for the same run is refused, the run and its files unchanged
    with pytest.raises(ValueError, match="started with a maximum of 400 cents"):
        payments.run_payments(platform, day, out_dir=tmp_path / "c", max_transfer_cents=500)
    assert not (tmp_path / "c").exists()
    # and a maximum no bank takes is refused before any run starts: zero, or above the
    # EPC maximum of one SEPA transfer
    later = date(2026, 11, 26)
    for wrong in (0, EPC_MAX_TRANSFER_CENTS + 1):
        with pytest.raises(ValueError, match="maximum of one transfer is 1 to 99999999999"):
            payments.run_payments(platform, later, out_dir=tmp_path / "d", max_transfer_cents=wrong)
    with platform.engine.connect() as conn:
        assert runs.read_run(conn, payment_run_key(later)) is None
