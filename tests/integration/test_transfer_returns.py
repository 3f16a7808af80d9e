"""Returned credit transfers to providers: recorded once from the bank's camt.054 or
pain.002, the provider owed again, its payments held until its bank details change, then
paid again to the new account and never to the returned one."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.camt054_support import Returned, notification
from tests.conftest import SeededInsurer
from tests.factories import make_french_iban
from tests.money_support import ACCEPTED, REDUCED, Line, adjudicated_claim, make_provider
from tests.pain002_support import Tx, status_report
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import bank_details, billing, ledger_check, payment_returns, payments
from tierspayant.services.providers import Provider
from tierspayant.store import ledger
from tierspayant.store.bank_tables import provider_transfer_returns
from tierspayant.store.tables import audit_events

FIRST_RUN = date(2026, 11, 10)
# The amount of issue 14 (test_payment_splitting.py): above the EPC maximum of a transfer.
HUGE_STAY = Line("GHS", "HOSP", billed=138_600_095_679, amo=0, accepted=138_600_095_679)


def at(day: date, hour: int = 9) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def provider_user(provider: Provider, name: str = "dr") -> Principal:
    return Principal(
        id=f"psc:{name}-{provider.id}",
        kind=PrincipalKind.PROVIDER_USER,
        strength=AuthStrength.AAL2,
        provider_id=provider.id,
        provider_am_number=provider.am_number,
        structure=provider.am_number,
    )


def operator(name: str) -> Principal:
    return Principal(
        id=f"operator:{name}", kind=PrincipalKind.OPERATOR_STAFF, strength=AuthStrength.AAL2
    )


def _balance(platform: Platform, name: str) -> int:
    with platform.engine.connect() as conn:
        return ledger.balance(conn, name)


def _postings(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return ledger.check(conn).postings


def _events(platform: Platform, action: str) -> int:
    with platform.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(audit_events.c.action == action)).scalar_one()
        )


def _transfers(path: Path) -> dict[str, tuple[str, str]]:
    """End-to-end id → (amount, IBAN) of each transfer of a pain.001 file."""
    text = path.read_text(encoding="utf-8")
    found = re.findall(
        r"<EndToEndId>([^<]+)</EndToEndId>.*?<InstdAmt Ccy=\"EUR\">([^<]+)</InstdAmt>"
        r".*?<CdtrAcct><Id><IBAN>([^<]+)</IBAN>",
        text,
        flags=re.S,
    )
    return {e2e: (amount, iban) for e2e, amount, iban in found}


def _cli(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def _paid_once(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    seed: int,
    day: date = FIRST_RUN,
) -> tuple[SeededInsurer, Provider, str, Path]:
    """A provider paid 10.50 EUR on ``day``: the insurer, provider, e2e id, pain.001.

    Each test pays on a day of its own: PostgreSQL tests share a database per module.
    """
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(seed))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=provider.id, lines=(ACCEPTED, REDUCED),
    )  # fmt: skip
    summary = payments.run_payments(platform, day, out_dir=tmp_path / "pay1")
    e2e = f"TP{day:%Y%m%d}-{provider.id}"
    pain001 = summary.files[0]
    assert _transfers(pain001)[e2e][0] == "10.50"
    return insurer, provider, e2e, pain001


def test_a_returned_transfer_is_owed_again_held_then_paid_to_the_new_account(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider paid 10.50 EUR, and the bank's camt.054 a few days later: the
    # transfer came back (AC04, account closed), among ordinary credits
    insurer, provider, e2e, pain001 = _paid_once(platform, seed_insurer, tmp_path, 31)
    old_iban = _transfers(pain001)[e2e][1]
    payable = account(AccountKind.PROVIDER_PAYABLE, provider.id)
    bank_before, payable_before = _balance(platform, BANK), _balance(platform, payable)
    camt = tmp_path / "camt054.xml"
    camt.write_bytes(notification([Returned(e2e, "10.50")], other_entries=2))
    platform.clock = at(date(2026, 11, 13))
    runner = _cli(platform, monkeypatch)

    # When the operator records it
    first = runner.invoke(app, ["bill", "returns", str(camt)])

    # Then the money is back in our account and we owe the provider again
    assert first.exit_code == 0, first.output
    assert f"virement retourné enregistré: {e2e} 10.50 EUR motif AC04" in first.output
    assert _balance(platform, BANK) == bank_before + 1050
    assert _balance(platform, payable) == payable_before - 1050  # a credit: owed to them
    assert ledger_check.check_ledger(platform).ok
    postings = _postings(platform)

    # When the same file is read again
    again = runner.invoke(app, ["bill", "returns", str(camt)])

    # Then nothing changes, and it says so
    assert again.exit_code == 0, again.output
    assert f"déjà enregistré: {e2e}" in again.output
    assert _postings(platform) == postings
    with platform.engine.connect() as conn:
        recorded = select(func.count()).where(provider_transfer_returns.c.end_to_end_id == e2e)
        assert conn.execute(recorded).scalar_one() == 1

    # And the provider and the insurer see it
    user = provider_user(provider)
    [seen] = payment_returns.provider_returns(platform, user)
    assert (seen.end_to_end_id, seen.cents, seen.status) == (e2e, 1050, "waiting_for_new_details")
    assert [r.end_to_end_id for r in payment_returns.insurer_returns(platform, insurer.id)] == [e2e]

    # When a new claim is adjudicated and paid while the account is still the returned one
    platform.clock = at(date(2026, 11, 16))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=provider.id, lines=(ACCEPTED,),
    )  # fmt: skip
    held = payments.run_payments(platform, date(2026, 11, 16), out_dir=tmp_path / "pay2")

    # Then nothing is sent to the returned account: the provider is held
    assert held.held_for_bank_details == (provider.am_number,)
    assert held.transfers == 0

    # When the provider gives new details, and operator staff verify them by phone
    new_iban = make_french_iban(random.Random(99))
    change = bank_details.request_change(platform, user, new_iban)
    verified = bank_details.verify_change(
        platform, operator("alice"), change.id, "provider_contact"
    )

    # Then they apply three business days later (Monday → Thursday), not before
    assert verified.effective_on == date(2026, 11, 19)
    platform.clock = at(date(2026, 11, 18))
    cooling = payments.run_payments(platform, date(2026, 11, 18), out_dir=tmp_path / "pay3")
    assert cooling.held_for_bank_details == (provider.am_number,)
    assert cooling.transfers == 0

    # When the run of the day the new details apply pays
    platform.clock = at(date(2026, 11, 19))
    paid = payments.run_payments(platform, date(2026, 11, 19), out_dir=tmp_path / "pay4")

    # Then one transfer to the new account carries the returned 10.50 and the new 3.50
    [(amount_paid, iban)] = _transfers(paid.files[0]).values()
    assert (amount_paid, iban) == ("14.00", new_iban)
    [advice] = [p for p in paid.files if p.suffix == ".csv"]
    rows = advice.read_text(encoding="utf-8").splitlines()
    assert rows[-2:] == [
        "virements_retournes_payes;10.50",
        f"virement;14.00;TP20261119-{provider.id}",
    ]
    assert iban != old_iban
    assert _balance(platform, payable) == payable_before
    [repaid] = payment_returns.provider_returns(platform, user)
    assert (repaid.status, repaid.repaid_in) == ("repaid", "2026-11-19")
    report = ledger_check.check_ledger(platform)
    assert report.ok, report

    # And a rerun of that run pays nothing twice and writes the same transfer file
    before = paid.files[0].read_bytes()
    rerun = payments.run_payments(platform, date(2026, 11, 19), out_dir=tmp_path / "pay4")
    assert rerun.files[0].read_bytes() == before
    assert ledger_check.check_ledger(platform).ok


def test_a_pain002_reject_is_recorded_and_unknown_ids_refuse_the_whole_file(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider paid, and a pain.002 that rejects its transfer and names another
    # transfer we never sent
    day = date(2026, 10, 6)
    _, provider, e2e, _ = _paid_once(platform, seed_insurer, tmp_path, 32, day)
    unknown = f"TP{day:%Y%m%d}-{provider.id + 1000}"
    bad = tmp_path / "bad.xml"
    bad.write_bytes(
        status_report(
            [Tx(e2e, reason="AC01", amount="10.50"), Tx(unknown, reason="AC01")],
            message_id="STS-PAY-1", original_message_id="TP-PAY-2026-10-06",
        )
    )  # fmt: skip
    postings = _postings(platform)
    events_before = _events(platform, "payments.return")
    runner = _cli(platform, monkeypatch)

    # When the operator records it
    refused = runner.invoke(app, ["bill", "returns", str(bad)])

    # Then the unknown id is named with its code, and nothing of the file is recorded
    assert refused.exit_code == 1
    assert (
        f"[returns.unknown_transfer] {unknown}: aucun virement à un professionnel ne porte "
        "cette référence" in refused.output
    )
    assert "rien n'a été enregistré" in refused.output
    assert _postings(platform) == postings

    # When the amount differs from the transfer
    wrong = tmp_path / "wrong.xml"
    wrong.write_bytes(status_report([Tx(e2e, reason="AC01", amount="10.49")], message_id="S2"))
    mismatch = runner.invoke(app, ["bill", "returns", str(wrong)])
    assert mismatch.exit_code == 1
    assert f"[returns.transfer_amount] {e2e}: le montant retourné diffère" in mismatch.output

    # When the right report comes
    good = tmp_path / "good.xml"
    good.write_bytes(status_report([Tx(e2e, reason="AC01", amount="10.50")], message_id="S3"))
    summary = billing.record_returns(platform, good.read_bytes(), source="good.xml")

    # Then the transfer is recorded as returned, once
    assert [(t.end_to_end_id, t.cents, t.reason_code) for t in summary.transfers] == [
        (e2e, 1050, "AC01")
    ]
    assert ledger_check.check_ledger(platform).ok
    assert _events(platform, "payments.return") == events_before + 1


def test_a_file_of_another_kind_is_refused_with_its_code(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a camt.053 statement (not a notification)
    path = tmp_path / "camt053.xml"
    path.write_text(
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        "<BkToCstmrStmt/></Document>",
        encoding="utf-8",
    )
    # When it is given to bill returns
    result = _cli(platform, monkeypatch).invoke(app, ["bill", "returns", str(path)])
    # Then it is refused with its code, exit 2
    assert result.exit_code == 2
    assert "[returns.kind]" in result.output


def test_two_operators_reading_the_same_file_at_once_record_it_once(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a paid provider and the bank's camt.054 returning its transfer
    day = date(2026, 9, 7)
    _, provider, e2e, _ = _paid_once(platform, seed_insurer, tmp_path, 33, day)
    data = notification([Returned(e2e, "10.50")], message_id="CAMT-TWICE")
    payable = account(AccountKind.PROVIDER_PAYABLE, provider.id)
    before = _balance(platform, payable)
    barrier = threading.Barrier(2)
    results: list[billing.ReturnsSummary] = []
    failures: list[BaseException] = []

    def record() -> None:
        barrier.wait()
        try:
            results.append(billing.record_returns(platform, data))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    # When two operators record it at the same moment
    workers = [threading.Thread(target=record) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    # Then one records it, the other finds it recorded, and the provider is owed it once
    assert failures == []
    assert sorted((len(r.transfers), len(r.transfers_already)) for r in results) == [
        (0, 1),
        (1, 0),
    ]
    assert _balance(platform, payable) == before - 1050
    assert ledger_check.check_ledger(platform).ok


# --- parts of a split payment -------------------------------------------------------------

# A provider owed 14.01 EUR (insurer A 10.50, insurer B 3.51) with a maximum of 10.00 EUR a
# transfer (the EPC maximum scaled down, as in test_payment_splitting.py): split_cents
# cuts 1401 into 701 + 700.
ODD = Line(billed=1001, amo=650, accepted=351)
SMALL_MAXIMUM = 1000
NB = "\u202f"  # the narrow no-break space of French amounts (format_euros)


def _paid_in_parts(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    day: date,
    maximum: int,
) -> tuple[SeededInsurer, SeededInsurer, Provider, str, dict[str, str]]:
    """A provider paid 14.01 EUR on ``day`` by a run whose maximum of one transfer is
    ``maximum``: insurers A and B, the provider, the payment's own end-to-end id and the
    amount of each transfer of the provider in the run's file."""
    platform.clock = at(day)
    a, b = seed_insurer(platform), seed_insurer(platform)
    provider = make_provider(platform, random.Random(day.toordinal()))
    for insurer, lines in ((a, (ACCEPTED, REDUCED)), (b, (ODD,))):
        adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, lines=lines,
        )  # fmt: skip
    summary = payments.run_payments(
        platform, day, out_dir=tmp_path / f"split-{day}", max_transfer_cents=maximum
    )
    e2e = f"TP{day:%Y%m%d}-{provider.id}"
    sent = {k: amount for k, (amount, _) in _transfers(summary.files[0]).items()}
    return a, b, provider, e2e, {k: v for k, v in sent.items() if k.startswith(f"{e2e}-")}


def _paid_in_two_parts(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path, day: date
) -> tuple[SeededInsurer, SeededInsurer, Provider, str]:
    """A provider paid 14.01 EUR on ``day`` as two transfers: insurers A and B, the
    provider, and the payment's own end-to-end id."""
    a, b, provider, e2e, sent = _paid_in_parts(platform, seed_insurer, tmp_path, day, SMALL_MAXIMUM)
    assert sent == {f"{e2e}-1": "7.01", f"{e2e}-2": "7.00"}
    return a, b, provider, e2e


def _returned_shares(platform: Platform, *e2e_ids: str) -> dict[int, int]:
    """What the returns of these transfers put back in the bank, per insurer."""
    with platform.engine.connect() as conn:
        shares = ledger.bank_shares(conn, ["payment.return"], [f"return:{e2e}" for e2e in e2e_ids])
    return {insurer: -cents for insurer, cents in shares.items()}


def _return_rows(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(provider_transfer_returns)).scalar_one()
        )


def test_a_returned_part_of_a_split_payment_is_booked_for_its_own_cents_once(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a payment of 14.01 EUR sent as 7.01 + 7.00, and the bank's camt.054 returning
    # the second transfer
    day = date(2026, 8, 3)
    a, b, provider, e2e = _paid_in_two_parts(platform, seed_insurer, tmp_path, day)
    payable = account(AccountKind.PROVIDER_PAYABLE, provider.id)
    bank_before, payable_before = _balance(platform, BANK), _balance(platform, payable)
    part2 = notification([Returned(f"{e2e}-2", "7.00")], message_id="CAMT-PART-2")
    platform.clock = at(date(2026, 8, 5))

    # When the operator records it
    first = billing.record_returns(platform, part2)

    # Then the part's 7.00 is back and owed to the provider again, not the whole 14.01
    assert first.errors == ()
    assert [(t.end_to_end_id, t.cents) for t in first.transfers] == [(f"{e2e}-2", 700)]
    assert _balance(platform, BANK) == bank_before + 700
    assert _balance(platform, payable) == payable_before - 700
    # and each insurer gets back its share of that part: 700 x 1050/1401 = 524.6 and
    # 700 x 351/1401 = 175.4 (the shares of parts 1 and 2: 525 + 176 and 525 + 175)
    assert _returned_shares(platform, f"{e2e}-2") == {a.id: 525, b.id: 175}
    assert ledger_check.check_ledger(platform).ok
    postings = _postings(platform)
    events = _events(platform, "payments.return")

    # When the same file is read again
    again = billing.record_returns(platform, part2)

    # Then nothing more is booked
    assert again.transfers == ()
    assert [(t.end_to_end_id, t.cents) for t in again.transfers_already] == [(f"{e2e}-2", 700)]
    assert _postings(platform) == postings
    assert _events(platform, "payments.return") == events

    # When the bank's pain.002 rejects the first transfer too
    part1 = status_report([Tx(f"{e2e}-1", reason="AC04", amount="7.01")], message_id="STS-P1")
    second = billing.record_returns(platform, part1)

    # Then it is booked for its 7.01: the whole payment is back, each insurer's share whole
    assert [(t.end_to_end_id, t.cents) for t in second.transfers] == [(f"{e2e}-1", 701)]
    assert _balance(platform, BANK) == bank_before + 1401
    assert _balance(platform, payable) == payable_before - 1401
    assert _returned_shares(platform, f"{e2e}-1", f"{e2e}-2") == {a.id: 1050, b.id: 351}
    assert ledger_check.check_ledger(platform).ok
    rows = _return_rows(platform)
    postings = _postings(platform)

    # When a file names the payment's own id, which no transfer carried
    whole = status_report([Tx(e2e, reason="AC04", amount="14.01")], message_id="STS-WHOLE")
    refused = billing.record_returns(platform, whole)

    # Then it is refused, saying the payment went as two transfers, and books nothing
    [problem] = refused.errors
    assert problem.code == "returns.split_payment"
    assert f"{e2e}-1 à {e2e}-2" in problem.detail
    assert (_postings(platform), _return_rows(platform)) == (postings, rows)

    # When the provider's new bank details apply and the next run pays
    user = provider_user(provider)
    change = bank_details.request_change(platform, user, make_french_iban(random.Random(98)))
    effective = bank_details.verify_change(
        platform, operator("alice"), change.id, "provider_contact"
    ).effective_on
    assert effective is not None
    platform.clock = at(effective)
    paid = payments.run_payments(
        platform, effective, out_dir=tmp_path / "again", max_transfer_cents=SMALL_MAXIMUM
    )

    # Then both parts are paid again, once, and the provider is owed nothing more
    sent_again = _transfers(paid.files[0])
    assert sorted(amount for amount, _ in sent_again.values()) == ["7.00", "7.01"]
    assert _balance(platform, payable) == payable_before
    assert {
        (r.end_to_end_id, r.status) for r in payment_returns.provider_returns(platform, user)
    } == {
        (f"{e2e}-1", "repaid"),
        (f"{e2e}-2", "repaid"),
    }
    report = ledger_check.check_ledger(platform)
    assert report.ok, report


def test_a_returned_part_is_matched_with_the_maximum_its_own_run_recorded(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider paid 14.01 EUR by a run with a maximum of 10.00 EUR a transfer
    # (1401 = 701 + 700), and another paid 14.01 EUR the next day by a run with a
    # maximum of 5.00 EUR (3 parts: 1401 = 467 x 3)
    first_day, second_day = date(2026, 6, 8), date(2026, 6, 9)
    a1, b1, first, e2e1, sent1 = _paid_in_parts(
        platform, seed_insurer, tmp_path, first_day, SMALL_MAXIMUM
    )
    a2, b2, second, e2e2, sent2 = _paid_in_parts(platform, seed_insurer, tmp_path, second_day, 500)
    assert sent1 == {f"{e2e1}-1": "7.01", f"{e2e1}-2": "7.00"}
    assert sent2 == {f"{e2e2}-1": "4.67", f"{e2e2}-2": "4.67", f"{e2e2}-3": "4.67"}
    payables = [account(AccountKind.PROVIDER_PAYABLE, p.id) for p in (first, second)]
    bank_before = _balance(platform, BANK)
    before = [_balance(platform, payable) for payable in payables]
    # and the bank's camt.054 returning the second transfer of each
    both = notification(
        [Returned(f"{e2e1}-2", "7.00"), Returned(f"{e2e2}-2", "4.67")],
        message_id="CAMT-RUN-MAXIMA",
        created="2026-06-10T07:15:00",
    )
    platform.clock = at(date(2026, 6, 10))

    # When the operator records it, saying nothing of any maximum (the file does not)
    recorded = billing.record_returns(platform, both)

    # Then each part is matched as its own run cut it, and booked for its exact cents
    assert recorded.errors == ()
    assert sorted((t.end_to_end_id, t.cents) for t in recorded.transfers) == sorted(
        [(f"{e2e1}-2", 700), (f"{e2e2}-2", 467)]
    )
    assert _balance(platform, BANK) == bank_before + 700 + 467
    assert [_balance(platform, p) for p in payables] == [before[0] - 700, before[1] - 467]
    # each insurer's share of its part: 700 x 1050/1401 = 524.6 and 700 x 351/1401 = 175.4;
    # part 2 of 3 of 1401 in the same proportions, 467 x 2/3 up to 934 (700.0 and 234.0)
    # less part 1 (350.0 and 117.0): 350 and 117
    assert _returned_shares(platform, f"{e2e1}-2") == {a1.id: 525, b1.id: 175}
    assert _returned_shares(platform, f"{e2e2}-2") == {a2.id: 350, b2.id: 117}
    report = ledger_check.check_ledger(platform)
    assert report.ok, report


def test_a_part_of_a_payment_above_the_epc_maximum_is_refused_with_its_reason_then_recorded(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider paid 1,386,000,956.79 EUR, sent as two transfers under the EPC
    # maximum (693,000,478.40 + 693,000,478.39)
    day = date(2026, 7, 6)
    platform.clock = at(day)
    insurer = seed_insurer(platform)
    hospital = make_provider(platform, random.Random(day.toordinal()))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=hospital.id, lines=(HUGE_STAY,),
    )  # fmt: skip
    summary = payments.run_payments(platform, day, out_dir=tmp_path / "pay")
    e2e = f"TP{day:%Y%m%d}-{hospital.id}"
    assert {k: v[0] for k, v in _transfers(summary.files[0]).items()} == {
        f"{e2e}-1": "693000478.40",
        f"{e2e}-2": "693000478.39",
    }
    payable = account(AccountKind.PROVIDER_PAYABLE, hospital.id)
    postings, rows = _postings(platform), _return_rows(platform)
    platform.clock = at(date(2026, 7, 8))
    runner = _cli(platform, monkeypatch)

    # When a file returns a seventh transfer of that payment
    seventh = tmp_path / "seventh.xml"
    seventh.write_bytes(status_report([Tx(f"{e2e}-7", reason="AC04")], message_id="STS-7"))
    unknown = runner.invoke(app, ["bill", "returns", str(seventh)])

    # Then it is unknown, and the operator reads that the payment has two transfers
    assert unknown.exit_code == 1
    assert (
        f"[returns.unknown_transfer] {e2e}-7: aucun virement à un professionnel ne porte cette "
        f"référence\n  le paiement {e2e} a 2 virements, {e2e}-1 à {e2e}-2 : pas de virement 7\n"
    ) in unknown.output

    # When a file returns the second transfer for the first one's amount
    wrong = tmp_path / "wrong.xml"
    wrong.write_bytes(
        status_report([Tx(f"{e2e}-2", reason="AC04", amount="693000478.40")], message_id="STS-W")
    )
    mismatch = runner.invoke(app, ["bill", "returns", str(wrong)])

    # Then both amounts are named, in French, and nothing of either file was stored
    assert mismatch.exit_code == 1
    assert (
        f"[returns.transfer_amount] {e2e}-2: le montant retourné diffère du virement\n"
        f"  retourné 693{NB}000{NB}478,40 €, le virement 2/2 du paiement {e2e} : "
        f"693{NB}000{NB}478,39 €\n"
    ) in mismatch.output
    assert (_postings(platform), _return_rows(platform)) == (postings, rows)
    assert _balance(platform, payable) == 0

    # When the right return comes
    good = tmp_path / "good.xml"
    good.write_bytes(
        status_report([Tx(f"{e2e}-2", reason="AC04", amount="693000478.39")], message_id="STS-G")
    )
    recorded = runner.invoke(app, ["bill", "returns", str(good)])

    # Then that transfer is booked for its own amount
    assert recorded.exit_code == 0, recorded.output
    assert f"virement retourné enregistré: {e2e}-2 693000478.39 EUR motif AC04" in recorded.output
    assert _balance(platform, payable) == -69_300_047_839
    assert ledger_check.check_ledger(platform).ok
