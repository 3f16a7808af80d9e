"""The guard's daily figures in the database (``guard_daily``): the nightly roll-up writes
each structure's day; :class:`GuardDailyHistory` reads them back for the guard's calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, select, update

from tierspayant.security.guard import DailyFigures
from tierspayant.store.security_tables import guard_daily


def save_daily(conn: Connection, figures: DailyFigures) -> None:
    """Insert or replace one structure's day (the roll-up may run twice)."""
    values = {
        "distinct_lookups": figures.distinct_lookups,
        "distinct_invoiced": figures.distinct_invoiced,
        "category": figures.category,
    }
    changed = conn.execute(
        update(guard_daily)
        .where(guard_daily.c.structure == figures.structure, guard_daily.c.day == figures.day)
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(
            guard_daily.insert().values(structure=figures.structure, day=figures.day, **values)
        )


class GuardDailyHistory:
    """The guard's :class:`~tierspayant.security.guard.HistoryProvider` over ``guard_daily``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        """Distinct beneficiaries per recorded day in the ``days`` days before ``before``."""
        return self._daily(guard_daily.c.distinct_lookups, structure, before, days)

    def daily_invoiced(self, structure: str, before: date, days: int) -> Sequence[int]:
        """Of those, the people the structure invoiced, per recorded day (same days)."""
        return self._daily(guard_daily.c.distinct_invoiced, structure, before, days)

    def _daily(
        self, column: ColumnElement[int], structure: str, before: date, days: int
    ) -> Sequence[int]:
        query = (
            select(column)
            .where(
                guard_daily.c.structure == structure,
                guard_daily.c.day >= before - timedelta(days=days),
                guard_daily.c.day < before,
            )
            .order_by(guard_daily.c.day)
        )
        with self.engine.connect() as conn:
            return [int(n) for n in conn.execute(query).scalars()]


__all__ = ["GuardDailyHistory", "save_daily"]
