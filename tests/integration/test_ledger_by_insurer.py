"""The ledger by insurer (migration 0020): a provider's transfer nets every insurer's
lines and recoveries, and the postings split it so that each insurer's books balance on
their own — through a recovery for one insurer paid out of another's lines, a return of
that transfer and its reissue; then the migration's downgrade merges the shares into one
posting per movement and its upgrade splits them again, identically."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, bindparam, create_engine, text

from tests.conftest import SeededInsurer
from tests.factories import make_french_iban
from tests.money_support import REDUCED, Line, adjudicated_claim, make_provider
from tests.pain002_support import Tx, status_report
from tierspayant.app.platform import Platform
from tierspayant.domain.ledger import BANK, AccountKind, account
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import bank_details, billing, ledger_check, overpayments, payments
from tierspayant.store.db import alembic_config

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


@dataclass(frozen=True, slots=True)
class World:
    a: SeededInsurer
    b: SeededInsurer
    provider_id: int
    netted_run: str  # the run where B's undue was recovered out of A's lines
    returned: str  # the end-to-end id of that run's transfer, returned
    reissue_run: str


def _world(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], out: Path, first: date
) -> World:
    """A provider paid for two insurers' lines; B's line found undue and recovered out of
    A's next lines; that transfer returned, then paid again to new bank details."""
    platform.clock = at(first)
    a, b = seed_insurer(platform), seed_insurer(platform)
    provider = make_provider(platform, random.Random(first.toordinal()))

    def claim(insurer: SeededInsurer, line: Line, day: date) -> int:
        return adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
            provider_id=provider.id, lines=(line,), adjudicated_at=at(day)(),
        )  # fmt: skip

    claim(a, BIG, first)
    b_claim = claim(b, REDUCED, first)
    payments.run_payments(platform, first, out_dir=out / "1")
    second = first + timedelta(days=1)
    platform.clock = at(second)
    overpayments.flag_undue(platform, staff(b.id), b_claim, 1, "rights.ended")
    claim(a, BIG, second)
    netted = payments.run_payments(platform, second, out_dir=out / "2")
    assert netted.net_cents == 1100 - 700
    e2e = f"TP{second:%Y%m%d}-{provider.id}"
    report = status_report(
        [Tx(e2e, reason="AC04", amount="4.00")],
        message_id=f"STS-{second:%Y%m%d}",
        original_message_id=f"TP-PAY-{second:%Y-%m-%d}",
    )
    platform.clock = at(second + timedelta(days=1))
    billing.record_returns(platform, report, source="pain002.xml")
    user = Principal(
        id=f"psc:dr-{provider.id}", kind=PrincipalKind.PROVIDER_USER,
        strength=AuthStrength.AAL2, provider_id=provider.id,
        provider_am_number=provider.am_number, structure=provider.am_number,
    )  # fmt: skip
    change = bank_details.request_change(platform, user, make_french_iban(random.Random(7)))
    operator = Principal(
        id="operator:alice", kind=PrincipalKind.OPERATOR_STAFF, strength=AuthStrength.AAL2
    )
    effective = bank_details.verify_change(
        platform, operator, change.id, "provider_contact"
    ).effective_on
    assert effective is not None
    platform.clock = at(effective)
    reissue = payments.run_payments(platform, effective, out_dir=out / "3")
    assert reissue.transfers == 1
    return World(a, b, provider.id, netted.run_key, e2e, reissue.run_key)


Row = tuple[int | None, str, str, int, tuple[tuple[str, int, int], ...]]


def _postings(engine: Engine, references: list[str]) -> list[Row]:
    """(insurer, journal, reference, total, entries) of the postings of ``references``."""
    with engine.connect() as conn:
        heads = conn.execute(
            text(
                "SELECT id, insurer_id, journal, reference, total_cents FROM ledger_postings"
                " WHERE reference IN :r ORDER BY journal, reference, insurer_id"
            ).bindparams(bindparam("r", expanding=True)),
            {"r": references},
        ).all()
        rows = []
        for posting_id, insurer_id, journal, reference, total in heads:
            entries = conn.execute(
                text(
                    "SELECT account, debit_cents, credit_cents FROM ledger_entries"
                    " WHERE posting_id = :p ORDER BY line_no"
                ),
                {"p": posting_id},
            ).all()
            rows.append(
                (
                    None if insurer_id is None else int(insurer_id),
                    str(journal),
                    str(reference),
                    int(total),
                    tuple((str(a), int(d), int(c)) for a, d, c in entries),
                )
            )
    return rows


def _references(world: World) -> list[str]:
    return [
        f"{world.netted_run}:{world.provider_id}",
        f"{world.reissue_run}:{world.provider_id}",
        f"return:{world.returned}",
    ]


def _by_insurer(platform: Platform, name: str) -> dict[int, int]:
    """Debits minus credits of one account, in each insurer's books."""
    with platform.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT insurer_id, sum(debit_cents - credit_cents) FROM ledger_entries"
                " WHERE account = :a GROUP BY insurer_id"
            ),
            {"a": name},
        ).all()
    return {int(i): int(b) for i, b in rows}


def test_a_netted_transfer_is_posted_share_by_share_and_each_insurer_balances(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    world = _world(platform, seed_insurer, tmp_path, date(2026, 10, 5))
    a, b, p = world.a.id, world.b.id, world.provider_id
    payable = account(AccountKind.PROVIDER_PAYABLE, p)
    netted, reissue = _references(world)[:2]

    rows = _postings(platform.engine, _references(world))

    # One transfer of 4.00, posted as A's 11.00 out of the bank and B's 7.00 into it
    # (B's undue recovered out of A's lines), B's recovery in B's books only
    assert (a, "payment", netted, 1100, ((payable, 1100, 0), (BANK, 0, 1100))) in rows
    assert (b, "payment", netted, 700, ((BANK, 700, 0), (payable, 0, 700))) in rows
    recovery = [r for r in rows if r[1] == "recovery"]
    overpaid = account(AccountKind.PROVIDER_OVERPAID, p)
    assert recovery == [(b, "recovery", netted, 700, ((payable, 700, 0), (overpaid, 0, 700)))]
    # Its return, and its reissue, take the same shares
    returns = {r[0]: r[4] for r in rows if r[1] == "payment.return"}
    assert returns == {
        a: ((BANK, 1100, 0), (payable, 0, 1100)),
        b: ((payable, 700, 0), (BANK, 0, 700)),
    }
    reissues = {r[0]: r[4] for r in rows if r[1] == "payment.reissue" and r[2] == reissue}
    assert reissues == {
        a: ((payable, 1100, 0), (BANK, 0, 1100)),
        b: ((BANK, 700, 0), (payable, 0, 700)),
    }
    # Each insurer's payable to the provider is settled in its own books, and the whole
    # ledger checks: every posting, every insurer, every record
    assert _by_insurer(platform, payable) == {a: 0, b: 0}
    assert _by_insurer(platform, overpaid) == {b: 0}
    # The bank paid 18.00 then 4.00 (returned, paid again): A's two lines; B's line was
    # paid, then recovered
    assert _by_insurer(platform, BANK) == {a: -2200, b: 0}
    report = ledger_check.check_ledger(platform)
    assert report.ok, report


def test_the_migration_merges_the_shares_on_downgrade_and_splits_them_again(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    world = _world(platform, seed_insurer, tmp_path, date(2026, 10, 19))
    references = _references(world)
    split = _postings(platform.engine, references)
    cfg = alembic_config(platform.settings.database_url)
    platform.engine.dispose()

    command.downgrade(cfg, "0019")

    # One posting per movement again, without an insurer, moving what the bank moved
    engine = create_engine(platform.settings.database_url)
    try:
        merged = _postings(engine, references)
    finally:
        engine.dispose()
    payable = account(AccountKind.PROVIDER_PAYABLE, world.provider_id)
    netted, reissue, returned = references
    assert {(r[1], r[2]): r[0] for r in merged} == {
        ("payment", netted): None,
        ("recovery", netted): None,
        ("payment.return", returned): None,
        ("payment.reissue", reissue): None,
    }
    assert ("payment", netted, 400, ((payable, 400, 0), (BANK, 0, 400))) in [r[1:] for r in merged]
    assert ("payment.return", returned, 400, ((BANK, 400, 0), (payable, 0, 400))) in [
        r[1:] for r in merged
    ]

    command.upgrade(cfg, "head")

    assert _postings(platform.engine, references) == split
    assert ledger_check.check_ledger(platform).ok


@pytest.fixture
def bare_url(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'bare.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_migration_refuses_a_posting_no_record_can_split(bare_url: str) -> None:
    cfg = alembic_config(bare_url)
    engine = create_engine(bare_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - a fresh SQLite file has no version table yet
        version = None
    finally:
        engine.dispose()
    if version is not None:
        command.downgrade(cfg, "0019")
    else:
        command.upgrade(cfg, "0019")
    engine = create_engine(bare_url)
    try:
        with engine.begin() as conn:
            posting_id = conn.execute(
                text(
                    "INSERT INTO ledger_postings (journal, reference, value_date, posted_at,"
                    " memo, total_cents) VALUES ('payment', 'pay:2020-01-06:424242',"
                    " '2020-01-06', '2020-01-06 09:00:00+00', '', 500) RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO ledger_entries (posting_id, line_no, account, debit_cents,"
                    " credit_cents) VALUES (:p, 1, 'provider_payable:424242', 500, 0),"
                    " (:p, 2, 'bank:operator', 0, 500)"
                ),
                {"p": posting_id},
            )
        with pytest.raises(RuntimeError, match="the run's records split 0 cents by insurer"):
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            # Nothing changed: still at 0019, the posting as it was.
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0019"
            kept = (
                "SELECT insurer_id FROM ledger_postings WHERE reference = 'pay:2020-01-06:424242'"
            )
            assert conn.execute(text(kept)).all() == [(None,)]
    finally:
        engine.dispose()
