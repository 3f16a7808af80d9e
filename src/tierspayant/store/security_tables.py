"""Tables of the exfiltration guard, on the shared metadata, and the queries they serve.

``security_alerts`` is what the security console lists and acknowledges; ``guard_daily``
keeps each structure's daily figures so the guard can calibrate its cap on the
structure's own history (:class:`GuardDailyHistory`). Neither holds identity data: no
NIR, no name, no subject pseudonym.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
    update,
)

from tierspayant.security.guard import DailyFigures
from tierspayant.store.tables import BigId, metadata

security_alerts = Table(
    "security_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("level", String(8), nullable=False),  # soft | hard
    Column("code", String(60), nullable=False),  # guard.canary, guard.no_proof_quota…
    Column("principal", String(120), nullable=True),  # None for platform-wide signals
    Column("structure", String(20), nullable=True),
    Column("insurer", String(10), nullable=True),
    Column("message", String(300), nullable=False),
    Column("figures", Text, nullable=False),  # JSON object of counts and thresholds
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_by", String(120), nullable=True),
    CheckConstraint("level IN ('soft', 'hard')", name="level"),
    Index("ix_security_alerts_at", "at"),
    Index("ix_security_alerts_principal_at", "principal", "at"),
)

# One row per structure and day, written by the nightly roll-up from the guard counters.
guard_daily = Table(
    "guard_daily",
    metadata,
    Column("structure", String(20), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("distinct_lookups", Integer, nullable=False),
    Column("distinct_invoiced", Integer, nullable=False),
    Column("category", String(20), nullable=False),
)


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
        query = (
            select(guard_daily.c.distinct_lookups)
            .where(
                guard_daily.c.structure == structure,
                guard_daily.c.day >= before - timedelta(days=days),
                guard_daily.c.day < before,
            )
            .order_by(guard_daily.c.day)
        )
        with self.engine.connect() as conn:
            return [int(n) for n in conn.execute(query).scalars()]


__all__ = ["GuardDailyHistory", "guard_daily", "save_daily", "security_alerts"]
