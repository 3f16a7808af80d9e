"""A bulk arrival of claims refreshes PostgreSQL's planner statistics before adjudication,
where they are stale, in one process at a time.

Without it, a table loaded in bulk and never analysed looks empty to the planner, which
then reads it whole for each batch (see ``store.claims.refresh_statistics``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import Connection, text

from tests.conftest import SeededInsurer
from tests.money_support import make_provider
from tierspayant.app.platform import Platform
from tierspayant.store import claims as store
from tierspayant.store.claims_tables import claims

_TABLES = ("claims", "claim_lines", "benefit_counters")


def _analyses(conn: Connection) -> dict[str, int]:
    """Analyses on record per partition of the adjudication's tables (parents included)."""
    rows = conn.execute(
        text(
            "SELECT s.relname, s.analyze_count FROM pg_stat_user_tables AS s"
            " WHERE s.relname = ANY(:parents) OR s.relid IN (SELECT inhrelid FROM pg_inherits"
            " WHERE inhparent = ANY(CAST(:parents AS regclass[])))"
        ),
        {"parents": list(_TABLES)},
    ).all()
    return {str(name): int(count) for name, count in rows}


def _refresh(platform: Platform) -> bool:
    with platform.engine.begin() as conn:
        return store.refresh_statistics(conn)


def _analysed_since(platform: Platform, before: dict[str, int]) -> set[str]:
    with platform.engine.connect() as conn:
        after = _analyses(conn)
    return {name for name, count in after.items() if count > before.get(name, 0)}


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
def test_given_sqlite_then_nothing_to_refresh(platform: Platform) -> None:
    assert _refresh(platform) is False


@pytest.mark.parametrize("engine_name", ["postgres"], indirect=True)
def test_given_postgres_then_only_stale_partitions_analysed_once(platform: Platform) -> None:
    with platform.engine.connect() as conn:
        before = _analyses(conn)
        partitions = {
            str(name): str(parent)
            for name, parent in conn.execute(
                text(
                    "SELECT inhrelid::regclass::text, inhparent::regclass::text FROM pg_inherits"
                    " WHERE inhparent = ANY(CAST(:parents AS regclass[]))"
                ),
                {"parents": list(_TABLES)},
            )
        }
    assert len(partitions) >= 3
    # A fresh database: every partition is without statistics, so every one is analysed;
    # the partitioned parents are not (their own analysis samples every partition again).
    assert _refresh(platform) is True
    analysed = _analysed_since(platform, before)
    assert analysed == set(partitions)

    # Nothing changed since: nothing to analyse.
    with platform.engine.connect() as conn:
        before = _analyses(conn)
    assert _refresh(platform) is False
    assert _analysed_since(platform, before) == set()

    # More than 50 rows + 10 % changed in one partition: that partition alone.
    counters = next(
        name for name, parent in sorted(partitions.items()) if parent == "benefit_counters"
    )
    with platform.engine.begin() as conn:
        bound = conn.execute(
            text(
                "SELECT pg_get_expr(relpartbound, oid) FROM pg_class"
                " WHERE oid = CAST(:name AS regclass)"
            ),
            {"name": counters},
        ).scalar_one()
        # An insurer id that hashes into that partition: try ids until one lands there.
        insurer = next(
            i
            for i in range(1, 10_000)
            if conn.execute(
                text(
                    "SELECT satisfies_hash_partition(CAST('benefit_counters' AS regclass),"
                    " :modulus, :remainder, CAST(:insurer AS integer))"
                ),
                {
                    "modulus": int(str(bound).split("modulus ")[1].split(",")[0]),
                    "remainder": int(str(bound).split("remainder ")[1].rstrip(")")),
                    "insurer": i,
                },
            ).scalar_one()
        )
        conn.execute(
            text(
                "INSERT INTO benefit_counters (insurer_id, beneficiary_id, counter_key,"
                " care_date, claim_id, used_cents, used_units)"
                " SELECT :insurer, n, 'dental', :day, n, 100, 1 FROM generate_series(1, 80) AS n"
            ),
            {"insurer": insurer, "day": date(2026, 12, 1)},
        )
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    with platform.engine.connect() as conn:
        before = _analyses(conn)
    assert _refresh(platform) is True
    assert _analysed_since(platform, before) == {counters}
    with platform.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM benefit_counters WHERE insurer_id = :insurer"), {"insurer": insurer}
        )


@pytest.mark.parametrize("engine_name", ["postgres"], indirect=True)
def test_given_another_process_refreshing_then_this_one_goes_on(platform: Platform) -> None:
    with platform.engine.begin() as conn:
        conn.execute(text("SELECT pg_stat_reset()"))  # every partition stale again
    with platform.engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": store._STATISTICS_LOCK})
        with platform.engine.connect() as conn:
            before = _analyses(conn)
        assert _refresh(platform) is False
        assert _analysed_since(platform, before) == set()
        holder.rollback()
    assert _refresh(platform) is True


@pytest.mark.parametrize("engine_name", ["postgres"], indirect=True)
def test_given_received_claims_the_planner_does_not_count_then_their_partitions_analysed(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    """A few received claims on a partition the planner thinks empty (a load whose change
    counts are not in the statistics yet): that insurer's claims, lines and counters
    partitions are analysed, no other."""
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(7))
    assert _refresh(platform) in (True, False)  # whatever the module's earlier tests left
    with platform.engine.begin() as conn:
        for claim_id in (1, 2, 3):
            conn.execute(
                claims.insert().values(
                    insurer_id=insurer.id,
                    id=claim_id,
                    provider_id=provider.id,
                    invoice_number=f"F{claim_id:08d}",
                    version=1,
                    beneficiary_id=claim_id,
                    care_date=date(2026, 12, 1),
                    request_digest=bytes(32),
                    status="received",
                    source="file",
                    received_at=platform.now(),
                    billed_cents=1000,
                    amc_requested_cents=400,
                )
            )
        partition = conn.execute(
            text("SELECT tableoid::regclass::text FROM claims WHERE insurer_id = :i LIMIT 1"),
            {"i": insurer.id},
        ).scalar_one()
    suffix = str(partition).removeprefix("claims")
    with platform.engine.connect() as conn:
        before = _analyses(conn)
    assert _refresh(platform) is True
    assert _analysed_since(platform, before) == {f"{table}{suffix}" for table in _TABLES}
