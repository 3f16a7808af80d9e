"""A bulk arrival of claims refreshes PostgreSQL's planner statistics before adjudication.

Without it, a table loaded in bulk and never analysed looks empty to the planner, which
then reads it whole for each batch (see ``store.claims.refresh_statistics``).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tierspayant.app.platform import Platform
from tierspayant.store import claims as store


def _analyses(conn: Connection) -> int:
    return int(
        conn.execute(
            text(
                "SELECT coalesce(sum(analyze_count), 0) FROM pg_stat_user_tables "
                "WHERE relname IN ('claims', 'claim_lines', 'benefit_counters')"
            )
        ).scalar_one()
    )


def test_given_each_engine_then_statistics_refreshed_where_the_planner_needs_them(
    platform: Platform,
) -> None:
    postgres = platform.engine.dialect.name == "postgresql"
    before = 0
    if postgres:
        with platform.engine.connect() as conn:
            before = _analyses(conn)
    with platform.engine.begin() as conn:
        ran = store.refresh_statistics(conn)
    assert ran is postgres
    if postgres:
        with platform.engine.connect() as conn:
            assert _analyses(conn) == before + 3
