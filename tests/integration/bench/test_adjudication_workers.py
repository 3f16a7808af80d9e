"""The adjudication benchmark's worker processes (bench/bench_adjudication.py): they start
and open the platform before the clock, then judge the backlog together (PostgreSQL; a
module of its own: its database holds this workload alone)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.bench_adjudication import adjudicate_with_workers, check_decisions, seed, store_claims

from tierspayant.app.platform import Platform


def test_worker_processes_start_before_the_clock(platform: Platform, tmp_path: Path) -> None:
    """Each worker opens the platform, says it is ready and waits; the clock runs from the
    word to go, and their start-up is reported apart. The decisions are the workload's."""
    if platform.settings.is_sqlite:
        pytest.skip("several workers share a backlog on PostgreSQL (SQLite has one writer)")
    seeded = seed(platform, tmp_path, 200, pharmacies=2, dentists=1)
    expected = store_claims(platform, seeded, 600)
    env = {
        "TIERSPAYANT_DATA_DIR": str(platform.settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": platform.settings.database_url,
    }
    done = adjudicate_with_workers(env, 2)
    assert done.lines == 600
    assert done.accepted_cents == expected.accepted_cents
    assert check_decisions(platform, expected)["checked"]
    # Starting Python and opening the platform takes time of its own, outside the clock.
    assert done.startup_seconds > 0.1
    assert done.seconds > 0
