"""Undue amounts found after payment: reversal, recovery on the next payments, advice."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import SeededInsurer
from tests.money_support import ACCEPTED, REDUCED, Line, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.ledger import AccountKind, account
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import overpayments, payments
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.store import ledger
from tierspayant.store.claims_tables import claim_lines

BIG = Line("C", "MED", billed=3000, amo=1900, accepted=1100)


def at(day: date) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def staff(insurer_id: int) -> Principal:
    return Principal(
        id=f"staff:{insurer_id}",
        kind=PrincipalKind.INSURER_STAFF,
        strength=AuthStrength.AAL2,
        insurer_id=insurer_id,
    )


def _overpaid(platform: Platform, provider_id: int) -> int:
    with platform.engine.connect() as conn:
        return ledger.balance(conn, account(AccountKind.PROVIDER_OVERPAID, provider_id))


def _line_status(platform: Platform, insurer_id: int, claim_id: int, line_no: int) -> str:
    with platform.engine.connect() as conn:
        return str(
            conn.execute(
                select(claim_lines.c.status).where(
                    claim_lines.c.insurer_id == insurer_id,
                    claim_lines.c.claim_id == claim_id,
                    claim_lines.c.line_no == line_no,
                )
            ).scalar_one()
        )


def test_an_undue_line_is_recovered_over_the_next_payments(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider paid 11.00 for a line, then flagged undue by the insurer's staff
    platform.clock = at(date(2026, 10, 5))
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(11))

    def claim(line: Line, adjudicated_at: datetime | None = None) -> int:
        return adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, lines=(line,), adjudicated_at=adjudicated_at,
        )  # fmt: skip

    paid = claim(BIG)
    payments.run_payments(platform, date(2026, 10, 5), out_dir=tmp_path)
    platform.clock = at(date(2026, 10, 6))
    flagged = overpayments.flag_undue(platform, staff(insurer.id), paid, 1, "rights.ended")
    again = overpayments.flag_undue(platform, staff(insurer.id), paid, 1, "rights.ended")
    assert (flagged.cents, flagged.created, again.created) == (1100, True, False)
    assert _overpaid(platform, provider.id) == 1100
    assert _line_status(platform, insurer.id, paid, 1) == "undue"

    # When the next run owes it only 7.00, then the one after 11.00 again
    claim(REDUCED)
    first = payments.run_payments(platform, date(2026, 10, 6), out_dir=tmp_path)
    platform.clock = at(date(2026, 10, 7))
    claim(BIG, datetime(2026, 10, 6, 12, tzinfo=UTC))
    second = payments.run_payments(platform, date(2026, 10, 7), out_dir=tmp_path)

    # Then nothing is transferred the first time (never a negative payment), and the rest
    # of the undue amount is deducted the second time
    assert first.net_cents == 0
    assert first.transfers == 0
    assert second.net_cents == 1100 - 400
    assert _overpaid(platform, provider.id) == 0
    with platform.engine.connect() as conn:
        assert ledger.check(conn).ok
    advice = payments.remittance_file(tmp_path, date(2026, 10, 7), provider.id)
    with advice.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert ["indu_recupere", insurer.amc_number] == rows[4][:2]
    assert rows[4][9:] == ["-4.00", "undue", "rights.ended"]
    assert ["total_indus_deduits", "4.00"] in rows


def test_only_a_paid_line_of_the_staff_s_own_insurer_can_be_flagged(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    platform.clock = at(date(2026, 10, 12))
    insurer, other = seed_insurer(platform), seed_insurer(platform)
    provider = make_provider(platform, random.Random(12))
    claim = adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number, provider_id=provider.id
    )
    with pytest.raises(Conflict) as not_paid:
        overpayments.flag_undue(platform, staff(insurer.id), claim, 1, "rights.ended")
    assert not_paid.value.code == "overpayment.not_paid"
    payments.run_payments(platform, date(2026, 10, 12), out_dir=tmp_path)
    with pytest.raises(NotFound):
        overpayments.flag_undue(platform, staff(other.id), claim, 1, "rights.ended")
    with pytest.raises(ServiceError) as bad:
        overpayments.flag_undue(platform, staff(insurer.id), claim, 1, "Not A Code!")
    assert bad.value.code == "overpayment.reason"


def test_reversing_a_paid_claim_is_idempotent(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # The contract with the claims service: a corrected invoice that was paid is reversed.
    platform.clock = at(date(2026, 10, 14))
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(13))
    claim = adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=provider.id, lines=(ACCEPTED, REDUCED),
    )  # fmt: skip
    payments.run_payments(platform, date(2026, 10, 14), out_dir=tmp_path)
    receivable = account(AccountKind.INSURER_RECEIVABLE, insurer.amc_number)
    for _ in range(2):
        with platform.engine.begin() as conn:
            cents = overpayments.reverse_paid_claim(
                platform, conn, insurer_id=insurer.id, claim_id=claim,
                reason_code="claim.corrected", actor="test",
            )  # fmt: skip
        assert cents == 1050
    with platform.engine.connect() as conn:
        assert ledger.balance(conn, receivable) == 0
    assert _overpaid(platform, provider.id) == 1050
