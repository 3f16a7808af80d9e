"""Migration 0021, on both engines: a payment run keeps the maximum of one transfer it
used (``money_runs.max_transfer_cents``); the runs made before it get the EPC maximum,
the only one the platform ran with outside tests, and the downgrade drops the column."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from tierspayant.app.platform import Platform
from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS
from tierspayant.domain.payments import payment_run_key
from tierspayant.services import payments
from tierspayant.store import runs
from tierspayant.store.db import alembic_config


def _maximum(platform: Platform, run_key: str) -> int:
    with platform.engine.connect() as conn:
        run = runs.read_run(conn, run_key)
    assert run is not None
    return run.max_transfer_cents


def test_a_run_keeps_its_maximum_and_older_runs_get_the_epc_one(
    platform: Platform, tmp_path: Path
) -> None:
    # Given a payment run made with a maximum of 4.00 EUR a transfer
    day = date(2026, 12, 14)
    platform.clock = lambda: datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    run_key = payments.run_payments(
        platform, day, out_dir=tmp_path / "pay", max_transfer_cents=400
    ).run_key
    assert run_key == payment_run_key(day)
    # Then the run records it
    assert _maximum(platform, run_key) == 400
    cfg = alembic_config(platform.settings.database_url)
    platform.engine.dispose()

    # When the migration is undone
    command.downgrade(cfg, "0020")

    # Then the run is kept, without the column
    engine = create_engine(platform.settings.database_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("money_runs")}
        with engine.connect() as conn:
            kept = conn.execute(
                text("SELECT kind, status FROM money_runs WHERE run_key = :k"), {"k": run_key}
            ).all()
    finally:
        engine.dispose()
    assert "max_transfer_cents" not in columns
    assert [tuple(r) for r in kept] == [("payment", "done")]

    # When it is applied again to that run, made before it
    command.upgrade(cfg, "head")

    # Then the run has the EPC maximum, the only one a run used outside tests
    assert _maximum(platform, run_key) == EPC_MAX_TRANSFER_CENTS
    # and the database refuses a maximum no bank takes, and none at all
    for wrong in (0, EPC_MAX_TRANSFER_CENTS + 1, None):
        with pytest.raises(IntegrityError), platform.engine.begin() as conn:
            conn.execute(
                text("UPDATE money_runs SET max_transfer_cents = :m WHERE run_key = :k"),
                {"m": wrong, "k": run_key},
            )
    assert _maximum(platform, run_key) == EPC_MAX_TRANSFER_CENTS
