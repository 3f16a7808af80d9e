"""The ledger on a real database: append-only, and ``tierspayant ledger check``."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.money_support import REDUCED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.domain.ledger import (
    BANK,
    AccountKind,
    LedgerError,
    Posting,
    account,
    credit,
    debit,
    posting,
)
from tierspayant.services import payments
from tierspayant.store import ledger
from tierspayant.store.ledger import post_bulk
from tierspayant.store.ledger_tables import ledger_entries, ledger_postings

NOW = datetime(2026, 9, 7, 9, tzinfo=UTC)


@pytest.fixture
def cli(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The command line on the test's own platform (same data directory and database)."""
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def _paid_world(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], out: Path, day: int
) -> SeededInsurer:
    """Each test pays on its own day: PostgreSQL keeps a module's runs between tests."""
    now = NOW.replace(day=day)
    platform.clock = lambda: now
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(31))
    adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=provider.id, lines=(REDUCED,),
    )  # fmt: skip
    payments.run_payments(platform, now.date(), out_dir=out)
    return insurer


def test_the_ledger_refuses_updates_and_deletes(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    _paid_world(platform, seed_insurer, tmp_path, 7)
    statements = (
        update(ledger_entries).values(debit_cents=ledger_entries.c.debit_cents + 1),
        delete(ledger_entries),
        update(ledger_postings).values(memo="edited"),
        delete(ledger_postings),
    )
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), platform.engine.begin() as conn:
            conn.execute(statement)


def test_ledger_check_passes_on_a_consistent_ledger(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    cli: CliRunner,
) -> None:
    _paid_world(platform, seed_insurer, tmp_path, 8)
    result = cli.invoke(app, ["ledger", "check"])
    assert result.exit_code == 0, result.output
    assert "équilibré et rapproché au centime" in result.output


def test_ledger_check_names_every_difference(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    cli: CliRunner,
) -> None:
    # Given a consistent ledger, then an adjudication posting no claim accounts for,
    # and a posting written around the ledger API with one side only
    insurer = _paid_world(platform, seed_insurer, tmp_path, 9)
    with platform.engine.begin() as conn:
        ledger.post(
            conn,
            posting(
                "adjudication",
                "claim:stray",
                NOW.date(),
                debit(account(AccountKind.INSURER_RECEIVABLE, insurer.amc_number), 123),
                credit(account(AccountKind.PROVIDER_PAYABLE, 999), 123),
            ),
            at=NOW,
            insurer_id=insurer.id,
        )
        posting_id = conn.execute(
            ledger_postings.insert()
            .values(
                insurer_id=insurer.id, journal="payment", reference="forged",
                value_date=date(2026, 9, 7), posted_at=NOW, memo="", total_cents=500,
            )
            .returning(ledger_postings.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            ledger_entries.insert().values(
                insurer_id=insurer.id,
                posting_id=posting_id,
                line_no=1,
                account=BANK,
                debit_cents=0,
                credit_cents=500,
            )
        )
        # and an entry of that posting filed in another insurer's books
        conn.execute(
            ledger_entries.insert().values(
                insurer_id=insurer.id + 100_000, posting_id=posting_id, line_no=2,
                account=BANK, debit_cents=77, credit_cents=0,
            )
        )  # fmt: skip

    # When the check runs
    result = cli.invoke(app, ["ledger", "check"])

    # Then it fails and says where
    assert result.exit_code == 1
    assert "postings that do not balance" in result.output
    assert "the ledger does not sum to zero" in result.output
    assert "adjudication postings vs accepted totals of claims" in result.output
    assert "(difference +123)" in result.output
    assert "payment postings vs transfers of remittances" in result.output
    assert f"insurers whose postings do not balance: {insurer.id}, {insurer.id + 100_000}" in (
        result.output
    )
    assert "entries that belong to no posting of their insurer: 1" in result.output


def _bulk(n: int, amount: int = 1234) -> list[Posting]:
    payable = account(AccountKind.PROVIDER_PAYABLE, 9)
    receivable = account(AccountKind.INSURER_RECEIVABLE, "75012345")
    return [
        posting(
            "adjudication",
            f"bulk-test:{n}:{i}",
            date(2026, 9, 7),
            debit(receivable, amount + i),
            credit(payable, amount + i),
            memo=f"invoice {i}",
        )
        for i in range(3)
    ]


def test_bulk_postings_are_idempotent_and_refuse_a_reused_reference(platform: Platform) -> None:
    first = _bulk(1)
    with platform.engine.begin() as conn:
        assert post_bulk(conn, first, at=NOW, insurer_id=1) == 3
        # A second call in the same transaction stages its own rows only.
        assert post_bulk(conn, _bulk(2), at=NOW, insurer_id=1) == 3
        # The key holds the insurer: the same references in another insurer's books are
        # other postings.
        assert post_bulk(conn, _bulk(2), at=NOW, insurer_id=2) == 3
    with platform.engine.begin() as conn:
        # The same postings again: nothing new, nothing doubled.
        assert post_bulk(conn, [*first, *_bulk(3)], at=NOW, insurer_id=1) == 3
        for p in [*first, *_bulk(2), *_bulk(3)]:
            (stored,) = conn.execute(
                ledger_postings.select().where(
                    ledger_postings.c.insurer_id == 1, ledger_postings.c.reference == p.reference
                )
            ).all()
            assert ledger.entries_of(conn, 1, int(stored.id)) == p.entries
            assert stored.total_cents == p.total_debit
    with pytest.raises(LedgerError) as reused, platform.engine.begin() as conn:
        post_bulk(conn, _bulk(1, amount=999), at=NOW, insurer_id=1)
    assert reused.value.code == "ledger.reference_reused"
    with pytest.raises(LedgerError) as twice, platform.engine.begin() as conn:
        post_bulk(conn, [*_bulk(4), _bulk(4)[0]], at=NOW, insurer_id=1)
    assert twice.value.code == "ledger.reference_reused"
    with platform.engine.connect() as conn:
        # The refused calls left nothing behind.
        refs = {r.reference for r in conn.execute(ledger_postings.select())}
        assert not any(ref.startswith("bulk-test:4:") for ref in refs)
